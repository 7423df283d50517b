"""Plotly figures for reports: dashboard panels drawn from Prometheus, and trace waterfalls.

Reports are read offline during incidents: :func:`use_offline_renderer` embeds plotly.js in the
notebook once, so nbconvert's HTML shows the plots without network access, while JupyterLab
still gets plotly's own MIME bundle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from obslib.catalogue.panels import PanelSpec, Target, legend_text
from obslib.promql import interpolate
from obslib.sources.frames import PROMETHEUS_COLUMNS
from obslib.sources.prometheus import RangeSource

SCRAPE_INTERVAL_S = 60  # the synthetic history's; live targets scrape more often, which only helps
_UNIT_TITLES = {
    "s": "seconds",
    "ms": "milliseconds",
    "ops": "tasks per second",
    "percentunit": "share",
    "short": "",
}


def use_offline_renderer() -> None:
    """Make plotly render for both JupyterLab and offline HTML exports."""
    import plotly.io as pio

    pio.renderers.default = "plotly_mimetype+notebook"


def panel_frames(
    source: RangeSource,
    panel: PanelSpec,
    variables: dict[str, str | list[str]],
    start: object,
    end: object,
    step: float,
) -> pd.DataFrame:
    """One frame of all the panel's targets over the window, with a ``legend`` column.

    ``$__rate_interval`` becomes what Grafana would use at this step: at least four scrape
    intervals, and never shorter than the step plus one scrape (so no sample is skipped).
    """
    frames = []
    rate_interval = f"{int(max(4 * SCRAPE_INTERVAL_S, step + SCRAPE_INTERVAL_S))}s"
    bound = {"__rate_interval": rate_interval, **variables}
    for target in panel.fleet:
        frame = source.query_range(interpolate(target.expr, bound), start, end, step)
        if frame.empty:
            continue
        label_columns = [c for c in frame.columns if c not in PROMETHEUS_COLUMNS]
        names = (
            frame[label_columns].astype(str).to_dict("records")
            if label_columns
            else [{}] * len(frame)
        )
        frames.append(
            frame.assign(legend=[legend_text(target.legend, n) or "value" for n in names])
        )
    if not frames:
        return pd.DataFrame(
            {"timestamp": pd.Series(dtype="datetime64[ns, UTC]"), "value": [], "legend": []}
        )
    return pd.concat(frames, ignore_index=True)[["timestamp", "value", "legend"]]


def panel_figure(panel: PanelSpec, frame: pd.DataFrame) -> go.Figure:
    """A line chart of one panel, titled and labelled like the dashboard."""
    figure = go.Figure()
    for name, series in frame.groupby("legend", sort=True):
        figure.add_trace(
            go.Scatter(x=series["timestamp"], y=series["value"], mode="lines", name=str(name))
        )
    figure.update_layout(
        title=panel.title,
        height=340,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
        yaxis_title=_UNIT_TITLES.get(panel.unit, panel.unit),
        yaxis_tickformat=".0%" if panel.unit == "percentunit" else None,
        legend={"orientation": "h", "y": -0.2},
    )
    if frame.empty:
        figure.add_annotation(
            text="no data in this window", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
        )
    return figure


def tree_order(spans: pd.DataFrame) -> tuple[list[Any], int]:
    """Index labels of ``spans`` depth first from the roots (children by start time).

    Safe on any data: a span that names itself as parent, spans that are each other's
    ancestors (a cycle) and spans sharing an id are each placed once; spans no root reaches
    (a cycle has no root) follow at the end. Returns the order and how many spans were placed
    outside the tree that way.
    """
    ordered = spans.sort_values("start_ns", kind="stable")
    span_ids = ordered["span_id"].tolist()
    ids = set(span_ids)
    children: dict[str, list[int]] = {}
    roots = []
    for pos, (span_id, parent) in enumerate(zip(span_ids, ordered["parent_span_id"], strict=True)):
        if parent and parent in ids and parent != span_id:
            children.setdefault(parent, []).append(pos)
        else:
            roots.append(pos)
    out: list[int] = []
    placed = [False] * len(span_ids)
    expanded: set[str] = set()  # an id's children are placed once, even if the id repeats
    stack = list(reversed(roots))
    while stack:
        pos = stack.pop()
        if placed[pos]:
            continue
        placed[pos] = True
        out.append(pos)
        if span_ids[pos] not in expanded:
            expanded.add(span_ids[pos])
            stack.extend(reversed(children.get(span_ids[pos], [])))
    stray = [pos for pos, done in enumerate(placed) if not done]
    return [ordered.index[p] for p in out + stray], len(stray)


def waterfall_figure(spans: pd.DataFrame, title: str) -> go.Figure:
    """A trace waterfall: one bar per span, in tree order, offset from the first span's start."""
    figure = go.Figure()
    if spans.empty:
        figure.update_layout(title=f"{title} (no spans)")
        return figure
    order, stray = tree_order(spans)
    rows = spans.loc[order]
    if stray:
        title += f" ({stray} span(s) in a parent cycle, drawn last)"
    t0 = rows["start_ns"].min()
    for service, part in rows.groupby("service_name", sort=False):
        label = [f"{n} ({s[:8]})" for n, s in zip(part["name"], part["span_id"], strict=True)]
        figure.add_trace(
            go.Bar(
                y=label,
                x=(part["duration_ns"] / 1e6).clip(lower=0.05),
                base=(part["start_ns"] - t0) / 1e6,
                orientation="h",
                name=str(service),
                marker_line_width=[2 if c == "ERROR" else 0 for c in part["status_code"]],
                marker_line_color="crimson",
                hovertext=[
                    f"{k} · {c}" for k, c in zip(part["kind"], part["status_code"], strict=True)
                ],
            )
        )
    order = [f"{n} ({s[:8]})" for n, s in zip(rows["name"], rows["span_id"], strict=True)]
    figure.update_layout(
        title=title,
        barmode="overlay",
        height=max(260, 26 * len(rows) + 110),
        xaxis_title="milliseconds since the first span",
        yaxis={"categoryorder": "array", "categoryarray": order[::-1]},
        margin={"l": 260, "r": 20, "t": 50, "b": 40},
    )
    return figure


def targets_text(targets: Sequence[Target]) -> str:
    """The PromQL of a panel's targets, one per line (shown under each plot)."""
    return "\n".join(t.expr for t in targets)


def timeseries_panels(catalogue: Any) -> list[Any]:
    """The catalogue's line-chart panels, in dashboard order."""
    return [p for p in catalogue.panels if p.kind == "timeseries"]


def panel_stats(frame: pd.DataFrame) -> dict[str, Any]:
    """What a drawn panel showed: how many series, and each one's latest value."""
    latest = frame.sort_values("timestamp").groupby("legend")["value"].last()
    return {"series": int(frame["legend"].nunique()), "latest": latest.round(4).to_dict()}
