"""Prometheus as DataFrames: instant and range queries, and discovery for cross-checks.

Every request goes through the shared :class:`~obslib.sources.http.HttpClient` (deadline,
retries, credentials, redaction and error mapping are the same for every backend). Queries
and series lookups are POSTed as forms, as Prometheus allows, so long PromQL never meets a
URL length limit; the envelope's ``data`` is checked here and parsed by the pure functions of
:mod:`obslib.sources.prometheus_frames` (where the frames' columns are documented).

Prometheus refuses range queries of more than 11,000 points per series. ``query_range``
picks a step that stays under the limit when none is given, and splits a long range with a
small explicit step into step-aligned requests that it stitches back together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import pandas as pd

from obslib.durations import DurationLike, step_seconds
from obslib.errors import ConfigError, MalformedResponse, NoData
from obslib.sources.endpoint import Endpoint, endpoint_from_env, env_name, is_configured
from obslib.sources.frames import conform, empty_frame
from obslib.sources.http import HttpClient
from obslib.sources.prometheus_frames import (
    SERIES_COLUMNS,
    ShapeError,
    alerts_frame,
    frame_from_result,
    metadata_frame,
    rules_frame,
    series_text,
)

BACKEND = "prometheus"
MAX_POINTS = 11_000  # Prometheus's hard limit of points per series in one range query
MIN_STEP_S = 15.0
# Automatic steps are the smallest of these that keeps a request under the point limit.
AUTO_STEPS_S = (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)

TimeLike = datetime | float | int
T = TypeVar("T")


def _configured_endpoint() -> Endpoint:
    """The Prometheus of ``$OBSLIB_PROMETHEUS_URL`` (and its credentials).

    Sources never look for the embedded stack themselves: that choice is the reports'
    (:func:`obslib.reports.inputs.prometheus`).

    Raises:
        ConfigError: the variable is not set.
    """
    if not is_configured(BACKEND):
        raise ConfigError(
            f"prometheus: no endpoint configured. Set {env_name(BACKEND)} (a cluster's "
            "Prometheus, or the url `obslib stack up` prints for the embedded local stack), or "
            "take obslib.reports.inputs.prometheus(), which uses the embedded stack when the "
            "variable is not set."
        )
    return endpoint_from_env(BACKEND)


def to_seconds(t: TimeLike) -> float:
    """Unix seconds of ``t``; a naive datetime is taken as UTC."""
    if isinstance(t, datetime):
        return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()
    if isinstance(t, int | float) and not isinstance(t, bool):
        return float(t)
    raise TypeError(f"expected a datetime or unix seconds, got {type(t).__name__}")


def auto_step(start_s: float, end_s: float, max_points: int = MAX_POINTS) -> float:
    """The smallest round step, at least ``MIN_STEP_S``, with ``(end-start)/step <= max_points``."""
    needed = max(MIN_STEP_S, (end_s - start_s) / max_points)
    return float(next((s for s in AUTO_STEPS_S if s >= needed), math.ceil(needed)))


def plan_chunks(
    start_s: int, end_s: int, step_s: float, max_points: int = MAX_POINTS
) -> list[tuple[int, int]]:
    """Split ``[start_s, end_s]`` into requests of at most ``max_points`` points per series.

    Every chunk starts one step after the previous chunk's last point, so the stitched result
    has no gap and no duplicate at the boundaries. The client rounds times to whole seconds,
    so a range that needs splitting needs a whole-second step to stay on the grid.
    """
    if (end_s - start_s) / step_s <= max_points:
        return [(start_s, end_s)]
    if step_s != int(step_s):
        raise ValueError(
            f"a range of more than {max_points} steps is split into several requests, "
            f"which needs a whole-second step; got {step_s:g} s"
        )
    stride = max_points * int(step_s)  # from one chunk's first point to the next one's
    return [(t, min(t + stride - int(step_s), end_s)) for t in range(start_s, end_s + 1, stride)]


def _step_text(step_s: float) -> str:
    return format(step_s, ".3f").rstrip("0").rstrip(".")


class RangeSource(Protocol):
    """What a reader of range queries needs: :class:`PrometheusSource` is one, a test's fake too."""

    def query_range(self, promql: str, start: Any, end: Any, step: Any = None) -> pd.DataFrame:
        """Samples of a range query (``PROMETHEUS_COLUMNS`` plus one column per label)."""
        ...


class PrometheusSource:
    """Query one Prometheus and get DataFrames back.

    Args:
        endpoint: where Prometheus is; default ``$OBSLIB_PROMETHEUS_URL`` (a ``ConfigError``
            when it is not set: :func:`obslib.reports.inputs.prometheus` falls back to the
            embedded stack).
        client: an :class:`HttpClient` to use (tests inject a recording session); built from
            ``endpoint`` with ``retries`` and ``backoff_s`` when omitted.
        retries: retries after a connection error or 502/503/504, within the deadline.
        backoff_s: base of the exponential backoff between retries.
        max_points: points per series in one range request (Prometheus refuses over 11,000).
    """

    def __init__(
        self,
        endpoint: Endpoint | None = None,
        client: HttpClient | None = None,
        *,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_points: int = MAX_POINTS,
    ) -> None:
        if client is not None and endpoint is not None and client.endpoint != endpoint:
            raise ConfigError(
                "PrometheusSource: pass an endpoint or a client, not two different ones"
            )
        self.client = client or HttpClient(
            endpoint or _configured_endpoint(), retries=retries, backoff_s=backoff_s
        )
        self.max_points = max_points

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint requests go to (its repr shows no credentials)."""
        return self.client.endpoint

    def __repr__(self) -> str:
        return f"PrometheusSource(url={self.endpoint.safe_url!r})"

    def _data(
        self, path: str, query: str, params: Mapping[str, Any] | None = None, post: bool = False
    ) -> Any:
        """The ``data`` of a successful envelope from ``path``."""
        if post:
            body = self.client.post_form_json(path, params or {}, query=query)
        else:
            body = self.client.get_json(path, params=params, query=query)
        if not isinstance(body, dict) or body.get("status") != "success" or "data" not in body:
            shown = sorted(body) if isinstance(body, dict) else type(body).__name__
            detail = f"expected an envelope with status 'success' and 'data', got {shown}"
            raise MalformedResponse(BACKEND, self.client.url(path), query, detail)
        return body["data"]

    def _build(self, path: str, query: str, build: Callable[[Any], T], data: Any) -> T:
        """``build(data)``, a shape error in it raised as ``MalformedResponse``."""
        try:
            return build(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            shape = isinstance(exc, ShapeError)
            detail = str(exc) if shape else f"unexpected body shape ({type(exc).__name__}: {exc})"
            # from None: the cause may quote the body, which is scrubbed only in the detail
            detail = self.client.scrub(detail)
            raise MalformedResponse(BACKEND, self.client.url(path), query, detail) from None

    def _result(self, path: str, query: str, params: Mapping[str, Any]) -> Any:
        data = self._data(path, query, params, post=True)
        return self._build(path, query, lambda d: d["result"], data)

    def _require(self, frame: pd.DataFrame, path: str, query: str, require: bool) -> pd.DataFrame:
        if require and frame.empty:
            detail = "the query matched no series in the requested time"
            raise NoData(BACKEND, self.client.url(path), query, detail)
        return frame

    def query(
        self, promql: str, at: TimeLike | None = None, *, require_data: bool = False
    ) -> pd.DataFrame:
        """Evaluate ``promql`` at one instant (default: the server's now).

        Raises:
            QueryRejected: Prometheus refused the query; the message is its own.
            BackendTimeout: no complete answer within the endpoint's timeout.
            NoData: ``require_data`` and nothing matched.
        """
        path = "/api/v1/query"
        params = {"query": promql}
        if at is not None:
            params["time"] = _step_text(to_seconds(at))
        result = self._result(path, promql, params)
        frame = self._build(path, promql, frame_from_result, result)
        return self._require(frame, path, promql, require_data)

    def query_range(
        self,
        promql: str,
        start: TimeLike,
        end: TimeLike,
        step: DurationLike | None = None,
        *,
        require_data: bool = False,
    ) -> pd.DataFrame:
        """Evaluate ``promql`` at every ``step`` from ``start`` to ``end`` (whole seconds).

        With ``step=None`` the step is the smallest round value keeping one request under
        ``max_points``; an explicit step too small for the range is served in chunks (each
        chunk is one request with its own deadline).
        """
        start_s, end_s = round(to_seconds(start)), round(to_seconds(end))
        step_s = auto_step(start_s, end_s, self.max_points) if step is None else step_seconds(step)
        path = "/api/v1/query_range"
        result: list[Any] = []
        for first, last in plan_chunks(start_s, end_s, step_s, self.max_points):
            params = {
                "query": promql,
                "start": str(first),
                "end": str(last),
                "step": _step_text(step_s),
            }
            part = self._result(path, promql, params)
            result += part if isinstance(part, list) else [part]
        frame = self._build(path, promql, frame_from_result, result)
        return self._require(frame, path, promql, require_data)

    def series(
        self, match: list[str], start: TimeLike | None = None, end: TimeLike | None = None
    ) -> pd.DataFrame:
        """Series matching any selector in ``match``: one row each, a column per label."""
        path = "/api/v1/series"
        query = " or ".join(match)
        params: dict[str, Any] = {"match[]": list(match)}
        if start is not None:
            params["start"] = _step_text(to_seconds(start))
        if end is not None:
            params["end"] = _step_text(to_seconds(end))
        found = self._data(path, query, params, post=True)
        if not isinstance(found, list) or not all(isinstance(s, dict) for s in found):
            raise MalformedResponse(BACKEND, self.client.url(path), query, "not a list")
        rows = [{"series": series_text(s), **s} for s in found]
        frame = pd.DataFrame(rows).fillna("") if rows else empty_frame(SERIES_COLUMNS)
        return conform(frame.sort_values("series", ignore_index=True), SERIES_COLUMNS)

    def labels(self) -> list[str]:
        """Every label name in the TSDB."""
        path = "/api/v1/labels"
        names = self._data(path, "")
        return self._build(path, "", lambda d: sorted(str(n) for n in d), names)

    def label_values(self, name: str, match: list[str] | None = None) -> list[str]:
        """Values of label ``name``, optionally only on series matching ``match``."""
        path = f"/api/v1/label/{quote(name, safe='')}/values"
        query = " or ".join(match or [])
        values = self._data(path, query, {"match[]": list(match)} if match else None)
        return self._build(path, query, lambda d: sorted(str(v) for v in d), values)

    def metadata(self) -> pd.DataFrame:
        """Type, help and unit of every metric scraped (backfilled history has none)."""
        path = "/api/v1/metadata"
        return self._build(path, "", metadata_frame, self._data(path, ""))

    def rules(self) -> pd.DataFrame:
        """Every loaded rule, one row each (``RULE_COLUMNS``)."""
        path = "/api/v1/rules"
        return self._build(path, "", rules_frame, self._data(path, ""))

    def alerts(self) -> pd.DataFrame:
        """Pending and firing alerts, one row each (``ALERT_COLUMNS``)."""
        path = "/api/v1/alerts"
        return self._build(path, "", alerts_frame, self._data(path, ""))

    def buildinfo(self) -> dict[str, str]:
        """The server's version, revision, branch and Go version."""
        path = "/api/v1/status/buildinfo"
        return self._build(
            path, "", lambda data: {str(k): str(v) for k, v in data.items()}, self._data(path, "")
        )
