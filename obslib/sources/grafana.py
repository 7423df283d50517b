"""Grafana dashboard snapshots: a dashboard frozen over a time window, shared by URL.

Endpoint and credentials come from ``OBSLIB_GRAFANA_*`` only (see
:mod:`obslib.sources.endpoint`); ``OBSLIB_GRAFANA_TOKEN`` is a service-account token sent as
``Authorization: Bearer``. Facts about the API (Grafana HTTP API docs, "Snapshot API"):

- ``POST /api/snapshots`` takes ``{"dashboard": <model>, "name": ..., "expires": <seconds>}``
  (``expires`` 0 keeps it forever) and answers ``{"url", "key", "deleteKey", "deleteUrl",
  "id"}``. Failures carry ``{"message": ...}``.
- A snapshot runs no query when it is viewed: each panel shows the data frames stored in its
  ``snapshotData``. Posted without them, every panel is empty. :func:`embed_panel_data` runs
  each Prometheus target of a model over the window and stores the series as Grafana data
  frames; :func:`snapshot_model` then pins the time range and strips queries, links and
  variable queries, as Grafana's own share dialog does.

The token never leaves the request headers: reprs, errors and :class:`Snapshot` hold none.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from obslib.catalogue.panels import legend_text
from obslib.durations import step_seconds
from obslib.errors import MalformedResponse, SourceError
from obslib.jsonable import jsonable
from obslib.promql import BUILTIN_VARIABLES, interpolate
from obslib.sources.endpoint import Endpoint, endpoint_from_env
from obslib.sources.frames import PROMETHEUS_COLUMNS
from obslib.sources.http import HttpClient
from obslib.sources.prometheus import RangeSource, TimeLike, auto_step, to_seconds

BACKEND = "grafana"
SNAPSHOT_PATH = "api/snapshots"
DEFAULT_EXPIRES_S = 30 * 86400  # long enough for the review of a release
SNAPSHOT_POINTS = 500  # points per series embedded in a snapshot (Grafana draws ~a panel width)


@dataclass(frozen=True)
class Snapshot:
    """A created snapshot: where to view it, its key, and the URL that deletes it.

    ``delete_url`` lets anyone who has it delete the snapshot, so it stays out of the repr.
    """

    url: str
    key: str
    delete_url: str = field(default="", repr=False)


def iso_utc(t: TimeLike) -> str:
    """``t`` as the ISO 8601 UTC text Grafana accepts in a dashboard's time range."""
    stamp = datetime.fromtimestamp(to_seconds(t), UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _variables(model: dict[str, Any]) -> dict[str, str | list[str]]:
    """Each template variable's current value (a list for a multi-value variable)."""
    values: dict[str, str | list[str]] = {}
    for variable in model.get("templating", {}).get("list", []):
        current = (variable.get("current") or {}).get("value")
        if isinstance(current, list):
            values[variable["name"]] = [str(v) for v in current]
        elif current is not None:
            values[variable["name"]] = str(current)
    return values


def series_frames(frame: pd.DataFrame, ref_id: str, legend: str, step_s: float) -> list[dict]:
    """Grafana data frames (the JSON of ``snapshotData``), one per series of a range result."""
    frames = []
    label_columns = [c for c in frame.columns if c not in PROMETHEUS_COLUMNS]
    for _, series in frame.groupby("series", sort=True):
        first = series.iloc[0]
        labels = {c: str(first[c]) for c in label_columns if first[c] and c != "__name__"}
        name = legend_text(legend, labels) or str(first["series"])
        millis = (series["timestamp"].astype("int64") // 1_000_000).tolist()
        frames.append(
            {
                "refId": ref_id,
                "name": name,
                "fields": [
                    {
                        "name": "Time",
                        "type": "time",
                        "config": {"interval": int(step_s * 1000)},
                        "values": millis,
                    },
                    {
                        "name": "Value",
                        "type": "number",
                        "labels": labels,
                        "config": {"displayNameFromDS": name},
                        "values": jsonable(series["value"].tolist()),  # a gap is null
                    },
                ],
            }
        )
    return frames


def embed_panel_data(
    model: dict[str, Any],
    source: RangeSource,
    start: TimeLike,
    end: TimeLike,
    *,
    step: float | str | None = None,
) -> dict[str, Any]:
    """A copy of ``model`` whose Prometheus panels carry their query results as ``snapshotData``.

    Variables take the values the model has selected; ``$__rate_interval`` is the spec's 5
    minutes, or two steps when the step is longer, so no sample falls between windows.
    Panels of other data sources (the Tempo table) get no data. A query's errors propagate
    (``QueryRejected``, ``BackendUnavailable``...): a snapshot must not hide a broken panel.
    """
    start_s, end_s = to_seconds(start), to_seconds(end)
    step_s = auto_step(start_s, end_s, SNAPSHOT_POINTS) if step is None else step_seconds(step)
    rate_s = max(step_seconds(BUILTIN_VARIABLES["__rate_interval"]), 2 * step_s)
    variables = {**_variables(model), "__rate_interval": f"{rate_s:g}s"}
    out = copy.deepcopy(model)
    for panel in out.get("panels", []):
        if (panel.get("datasource") or {}).get("type") != "prometheus":
            continue
        data: list[dict] = []
        for target in panel.get("targets", []):
            expr = interpolate(target["expr"], variables)
            frame = source.query_range(expr, start_s, end_s, step_s)
            data += series_frames(frame, target["refId"], target.get("legendFormat", ""), step_s)
        panel["snapshotData"] = data
    return out


def snapshot_model(
    model: dict[str, Any], start: TimeLike, end: TimeLike, name: str = ""
) -> dict[str, Any]:
    """A copy of ``model`` ready to post: fixed time range, no queries, links or variable queries."""
    out = copy.deepcopy(model)
    out.update(
        title=name or out.get("title", ""),
        time={"from": iso_utc(start), "to": iso_utc(end)},
        refresh="",
        links=[],
        editable=False,
    )
    for panel in out.get("panels", []):
        panel.update(targets=[], links=[], datasource=None)
        panel.setdefault("snapshotData", [])
    for variable in out.get("templating", {}).get("list", []):
        current = variable.get("current") or {}
        variable.update(query="", options=[current] if current else [])
    if "annotations" in out:
        out["annotations"] = {"list": []}
    return out


def _has_values(frame: dict[str, Any]) -> bool:
    numbers = [f for f in frame.get("fields", []) if f.get("type") == "number"]
    return any(v is not None for f in numbers for v in f.get("values", []))


def embedded_frames(model: dict[str, Any]) -> dict[str, int]:
    """By panel title, how many of its embedded data frames hold at least one value."""
    return {
        p.get("title", ""): sum(_has_values(f) for f in p.get("snapshotData") or [])
        for p in model.get("panels", [])
    }


def _grafana_message(detail: str) -> str:
    """``detail`` with a Grafana error body (``{"message": ...}``) replaced by its message."""
    start = detail.find("{")
    if start < 0:
        return detail
    try:
        body, end = json.JSONDecoder().raw_decode(detail, start)
    except ValueError:
        return detail
    if isinstance(body, dict) and body.get("message"):
        return f"{detail[:start]}{body['message']}{detail[end:]}"
    return detail


class GrafanaSource:
    """Create snapshots through one Grafana's HTTP API.

    Args:
        endpoint: where Grafana is; defaults to ``endpoint_from_env("grafana")``
            (``OBSLIB_GRAFANA_URL`` and ``OBSLIB_GRAFANA_TOKEN``).
        client: an :class:`HttpClient` on that endpoint (a shared session, fewer retries in
            tests); its session, retries and backoff are kept.
    """

    def __init__(self, endpoint: Endpoint | None = None, client: HttpClient | None = None) -> None:
        self.client = client or HttpClient(endpoint or endpoint_from_env(BACKEND))

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint requests go to (its repr shows no credentials)."""
        return self.client.endpoint

    def __repr__(self) -> str:
        return f"GrafanaSource(url={self.endpoint.safe_url!r})"

    def create_snapshot(
        self,
        dashboard_model: dict[str, Any],
        start: TimeLike,
        end: TimeLike,
        expires_s: int = DEFAULT_EXPIRES_S,
        name: str = "",
    ) -> Snapshot:
        """Post a snapshot of ``dashboard_model`` over ``[start, end]``.

        Embed the panels' data first (:func:`embed_panel_data`), or the snapshot shows empty
        panels. ``expires_s`` 0 keeps the snapshot until it is deleted.

        Raises:
            QueryRejected: Grafana refused the model (its message is kept).
            BackendUnavailable: Grafana is unreachable, answers 5xx, or refuses the token.
            MalformedResponse: the answer has no ``url`` and ``key``.
        """
        if expires_s < 0:
            raise ValueError(f"expires_s must be 0 (never) or positive, got {expires_s}")
        model = snapshot_model(dashboard_model, start, end, name)
        request = f"POST /{SNAPSHOT_PATH} {model['title']!r} {model['time']['from']} to {model['time']['to']}"
        body = {"dashboard": model, "name": model["title"], "expires": int(expires_s)}
        json.dumps(body, allow_nan=False)  # Grafana's decoder rejects NaN: fail here, not there
        try:
            response = self.client.request("POST", SNAPSHOT_PATH, json_body=body, query=request)
        except SourceError as exc:
            raise type(exc)(exc.backend, exc.url, exc.query, _grafana_message(exc.detail)) from exc
        answer = self.client.decode_json(response, request)
        if not isinstance(answer, dict) or not answer.get("url") or not answer.get("key"):
            raise MalformedResponse(
                BACKEND, self.client.url(SNAPSHOT_PATH), request, "the answer has no url and key"
            )
        return Snapshot(str(answer["url"]), str(answer["key"]), str(answer.get("deleteUrl", "")))
