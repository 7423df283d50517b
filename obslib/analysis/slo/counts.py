"""Per-period SLI event counts from Prometheus: bucket increases and task increases per status.

Everything the SLO work measures starts here, from counter increases that Prometheus computes
with ``increase()``, so an orchestrator restart (a counter reset) neither loses nor invents
events. :func:`bucket_counts` and :func:`task_counts` fetch, per period, the increase of every
histogram bucket and of every task status (one query per metric and period length). Counts are
increases, so they can be fractional (``increase`` extrapolates to the window's edges); a period
without any sample has NaN counts, never zeros.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from obslib.catalogue.contract import COLD_START, STATUSES, TASK_DURATION, TASKS
from obslib.settings import Settings
from obslib.sources.prometheus import PrometheusSource, TimeLike, to_seconds

DAY_S = 86_400
# Latency SLIs by name, and the histogram each is read from.
LATENCY_SLIS = {"cold_start": COLD_START, "task_duration": TASK_DURATION}
ERROR_SLI = "error_rate"

BUCKET_COUNT_COLUMNS: dict[str, str] = {
    "period_start": "datetime64[ns, UTC]",
    "period_end": "datetime64[ns, UTC]",
    "agent_type": "str",
    "metric": "str",  # histogram name, e.g. daedalus_cold_start_seconds
    "le": "float64",  # bucket upper bound, +inf for the last
    "count": "float64",  # observations <= le in the period; NaN when there was no sample
}
TASK_COUNT_COLUMNS: dict[str, str] = {
    "period_start": "datetime64[ns, UTC]",
    "period_end": "datetime64[ns, UTC]",
    "agent_type": "str",
    "status": "str",  # success | failure | canceled
    "count": "float64",  # tasks that ended so in the period; NaN when there was no sample
}


def _window(start: TimeLike, end: TimeLike) -> tuple[int, int]:
    start_s, end_s = round(to_seconds(start)), round(to_seconds(end))
    if end_s <= start_s:
        raise ValueError(f"the window must end after it starts: {start!r} .. {end!r}")
    return start_s, end_s


def _periods(start_s: int, end_s: int, period_s: int | None) -> pd.DataFrame:
    """Consecutive periods ending at ``end_s``; the first is shorter when the window is.

    Anchored at the end so the latest period, the one a reader looks at first, is complete.
    """
    period_s = period_s or end_s - start_s
    ends = np.arange(end_s, start_s, -period_s)[::-1]
    starts = np.maximum(ends - period_s, start_s)
    frame = pd.DataFrame({"period_start": starts, "period_end": ends})
    return frame.apply(lambda s: pd.to_datetime(s * 10**9, utc=True))  # ns, as sources give


def _increases(
    source: PrometheusSource, settings: Settings, series: str, label: str, periods: pd.DataFrame
) -> pd.DataFrame:
    """``sum by (agent_type, label) (increase(series[period]))`` at each period's end."""
    selector = f'{series}{{namespace="{settings.namespace}"}}'
    lengths = (periods.period_end - periods.period_start).dt.total_seconds().astype(int)
    ends = (periods.period_end - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    parts = []
    for length in lengths.unique():  # a range query for the full periods, one for a short one
        chosen = ends[lengths == length]
        query = f"sum by (agent_type, {label}) (increase({selector}[{length}s]))"
        if len(chosen) > 1:
            frame = source.query_range(query, int(chosen.min()), int(chosen.max()), int(length))
        else:
            frame = source.query(query, at=int(chosen.iloc[0]))
        frame = frame.reindex(columns=["timestamp", "value", "agent_type", label])
        frame = frame.fillna({"agent_type": "", label: ""})
        parts.append(frame.assign(period_start=frame.timestamp - pd.Timedelta(seconds=length)))
    found = pd.concat(parts, ignore_index=True)
    return found.rename(columns={"timestamp": "period_end", "value": "count"})


def _complete(
    found: pd.DataFrame, periods: pd.DataFrame, settings: Settings, values: pd.DataFrame
) -> pd.DataFrame:
    """Every period x agent type x ``values`` row, NaN where Prometheus returned nothing."""
    extra = sorted(set(found.agent_type) - set(settings.agent_types) - {""})
    agents = pd.DataFrame({"agent_type": [*settings.agent_types, *extra]})
    grid = periods.merge(agents, how="cross").merge(values, how="cross")
    return grid.merge(found, how="left", on=[*grid.columns])


def bucket_counts(
    source: PrometheusSource,
    settings: Settings,
    start: TimeLike,
    end: TimeLike,
    period: int | None = None,
) -> pd.DataFrame:
    """Cumulative bucket counts of both latency histograms, per period (``BUCKET_COUNT_COLUMNS``).

    ``period`` is in seconds (``None``: one period, the whole window); periods end at ``end``
    and the first is shorter when the window is not a multiple. Every configured
    agent type and contract bucket gets a row, NaN where the period has no sample.
    """
    periods = _periods(*_window(start, end), period)
    frames = []
    for spec in LATENCY_SLIS.values():
        found = _increases(source, settings, f"{spec.name}_bucket", "le", periods)
        found = found.assign(metric=spec.name, le=found["le"].replace("", "nan").astype(float))
        bounds = sorted({*spec.buckets, np.inf} | set(found["le"].dropna()))
        values = pd.DataFrame({"metric": spec.name, "le": bounds})
        frames.append(_complete(found, periods, settings, values))
    return pd.concat(frames, ignore_index=True)[list(BUCKET_COUNT_COLUMNS)]


def task_counts(
    source: PrometheusSource,
    settings: Settings,
    start: TimeLike,
    end: TimeLike,
    period: int | None = None,
) -> pd.DataFrame:
    """Tasks per terminal status and period (``TASK_COUNT_COLUMNS``); see :func:`bucket_counts`."""
    periods = _periods(*_window(start, end), period)
    found = _increases(source, settings, TASKS.name, "status", periods)
    statuses = pd.DataFrame({"status": sorted(set(STATUSES) | set(found.status) - {""})})
    return _complete(found, periods, settings, statuses)[list(TASK_COUNT_COLUMNS)]
