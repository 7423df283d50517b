"""Grafana Loki: LogQL log and metric queries as DataFrames, with paging Loki itself lacks.

Loki answers ``query_range`` with at most ``limit`` entries and refuses a ``limit`` above
``max_entries_limit_per_query`` (5000 by default) with a 400; it has no cursor. Reading a
whole window therefore means paging by time: after a full page, the next request starts at
the last timestamp seen (forward) or ends just after it (backward, ``end`` is exclusive). That
timestamp is asked for again, because entries sharing it may not all have fitted in the page;
the ones already read are skipped by (timestamp, stream labels, line), counted, so an entry is
neither lost nor repeated. See https://grafana.com/docs/loki/latest/reference/loki-http-api/.

Endpoint and credentials (``OBSLIB_LOKI_URL``, ``_TOKEN``, ``_ORG_ID`` for X-Scope-OrgID, ...)
come from the environment only: see :mod:`obslib.sources.endpoint`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, TypeAlias

import numpy as np
import pandas as pd

from obslib.errors import ConfigError, MalformedResponse, NoData, QueryRejected, redact_url
from obslib.sources.endpoint import Endpoint, endpoint_from_env
from obslib.sources.frames import PROMETHEUS_COLUMNS, conform, empty_frame
from obslib.sources.http import HttpClient
from obslib.sources.logfields import log_frame

TimeLike: TypeAlias = int | str | dt.datetime | pd.Timestamp | np.datetime64
DEFAULT_PAGE_SIZE = 5000  # Loki's default max_entries_limit_per_query
DIRECTIONS = ("forward", "backward")
QUERY_RANGE = "/loki/api/v1/query_range"
QUERY = "/loki/api/v1/query"
LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# (timestamp_ns, stream labels, line): one log entry as Loki returned it.
Entry = tuple[int, dict[str, str], str]


def to_ns(value: TimeLike, what: str = "time") -> int:
    """Unix nanoseconds of ``value``.

    Args:
        value: an int (already nanoseconds), a string of digits (nanoseconds) or RFC3339 text,
            a datetime, ``pd.Timestamp`` or ``np.datetime64`` (naive values are taken as UTC).
        what: the parameter's name, for the error message.

    Raises:
        ConfigError: ``value`` is none of these.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a time, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{what}: {value!r} is not unix nanoseconds, RFC3339 text or a datetime"
        ) from exc
    if stamp is pd.NaT:
        raise ConfigError(f"{what}: got NaT")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value)


def _step(step: float | str | dt.timedelta) -> str:
    if isinstance(step, dt.timedelta):
        step = step.total_seconds()
    if isinstance(step, str):
        return step  # a Loki duration such as "1m", passed through
    if step <= 0:
        raise ConfigError(f"step must be positive, got {step!r}")
    return f"{step:g}"


def _series_text(metric: Mapping[str, str]) -> str:
    body = ", ".join(
        f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in sorted(metric.items())
    )
    return "{" + body + "}"


class LokiSource:
    """LogQL queries against one Loki; every method returns plain Python data or a DataFrame.

    Args:
        endpoint: where Loki is; default ``endpoint_from_env("loki")``.
        client: an :class:`HttpClient` to use (tests inject small timeouts and retries); its
            endpoint is the source's endpoint.
    """

    backend = "loki"

    def __init__(self, endpoint: Endpoint | None = None, client: HttpClient | None = None) -> None:
        if client is not None and endpoint is not None and client.endpoint != endpoint:
            raise ConfigError("LokiSource: pass an endpoint or a client, not two different ones")
        self.client = client or HttpClient(endpoint or endpoint_from_env("loki"))
        self.endpoint = self.client.endpoint

    def __repr__(self) -> str:
        return f"LokiSource(url={self.endpoint.safe_url!r})"

    # -- log queries ---------------------------------------------------------------------

    def query_range(
        self,
        logql: str,
        start: TimeLike,
        end: TimeLike,
        limit: int | None = None,
        direction: str = "forward",
        page_size: int = DEFAULT_PAGE_SIZE,
        require_data: bool = False,
    ) -> pd.DataFrame:
        """Log entries of a LogQL log query in ``[start, end)``, paged past Loki's entry limit.

        Args:
            logql: a log query (stream selector and pipeline), e.g. ``{container="proxy"} | json``.
            start: inclusive start (see :func:`to_ns`).
            end: exclusive end.
            limit: at most this many entries; None reads every entry in the window.
            direction: ``forward`` keeps the oldest ``limit`` entries, ``backward`` the newest.
            page_size: entries per request, at most the server's max_entries_limit_per_query.
            require_data: raise :class:`NoData` instead of returning an empty frame.

        Returns:
            A LOG_COLUMNS frame sorted by time, oldest first, whatever the direction; entries
            with equal timestamps are ordered by stream labels, and within one stream keep
            Loki's forward order.

        Raises:
            QueryRejected: Loki refused the query (its text is kept), the query is a metric
                query, or more than a page of entries share one timestamp.
            BackendUnavailable, MalformedResponse, NoData: see :mod:`obslib.errors`.
        """
        start_ns, end_ns = to_ns(start, "start"), to_ns(end, "end")
        if direction not in DIRECTIONS:
            raise ConfigError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if end_ns <= start_ns:
            raise ConfigError(f"end ({end_ns}) must be after start ({start_ns})")
        if page_size < 2 or (limit is not None and limit < 1):
            # a page of one entry can never step past a timestamp it shares with the next
            raise ConfigError(f"need page_size >= 2 and limit >= 1, got {page_size}, {limit}")
        entries = self._collect(logql, start_ns, end_ns, limit, direction, page_size)
        if direction == "backward":
            entries.reverse()
        # Loki groups its answer by stream, which loses how streams interleave at one instant;
        # order those by stream labels so the frame does not depend on the paging.
        entries.sort(key=lambda entry: (entry[0], sorted(entry[1].items())))
        if require_data and not entries:
            raise NoData(self.backend, self._url(QUERY_RANGE), logql, "no log entries")
        return log_frame(entries)

    def _collect(
        self, logql: str, start_ns: int, end_ns: int, limit: int | None, direction: str, size: int
    ) -> list[Entry]:
        collected: list[Entry] = []
        at_boundary: Counter[tuple[Any, ...]] = Counter()  # read entries at the page edge
        while True:
            wanted = (
                size if limit is None else min(size, limit - len(collected) + at_boundary.total())
            )
            page = self._page(logql, start_ns, end_ns, wanted, direction)
            to_skip = at_boundary.copy()
            for entry in page:
                key = _key(entry)
                if to_skip[key]:
                    to_skip[key] -= 1
                    continue
                collected.append(entry)
            if limit is not None and len(collected) >= limit:
                return collected[:limit]
            if len(page) < wanted:
                return collected
            edge = page[-1][0]
            if page[0][0] == edge:
                raise QueryRejected(
                    self.backend,
                    self._url(QUERY_RANGE),
                    logql,
                    f"a whole page of {wanted} entries shares the timestamp {edge} ns "
                    f"({pd.Timestamp(edge, unit='ns', tz='UTC').isoformat()}), so paging by time "
                    "cannot step past it without losing or repeating entries; raise page_size "
                    "above the number of entries at that instant (the server allows up to its "
                    "max_entries_limit_per_query, 5000 by default) or narrow the query",
                )
            at_boundary = Counter(_key(entry) for entry in page if entry[0] == edge)
            if direction == "forward":
                start_ns = edge
            else:
                end_ns = edge + 1

    def _page(
        self, logql: str, start_ns: int, end_ns: int, limit: int, direction: str
    ) -> list[Entry]:
        """One request; entries of every stream merged in ``direction`` order."""
        params = {
            "query": logql,
            "start": str(start_ns),
            "end": str(end_ns),
            "limit": str(limit),
            "direction": direction,
        }
        try:
            body = self.client.get_json(QUERY_RANGE, params=params, query=logql)
        except QueryRejected as exc:
            if "max entries limit" not in exc.detail:
                raise
            hint = f" (page_size={limit}: lower it to the server's limit)"
            raise QueryRejected(exc.backend, exc.url, exc.query, exc.detail + hint) from exc
        data = self._data(body, QUERY_RANGE, logql)
        result = self._result(data, "streams", QUERY_RANGE, logql)
        entries: list[Entry] = []
        for stream in result:
            labels = stream.get("stream") if isinstance(stream, dict) else None
            values = stream.get("values") if isinstance(stream, dict) else None
            if not isinstance(labels, dict) or not isinstance(values, list):
                self._malformed(QUERY_RANGE, logql, "a stream lacks 'stream' or 'values'")
            for value in values:
                entries.append(self._entry(value, labels, logql))
        entries.sort(key=lambda entry: entry[0], reverse=direction == "backward")
        outside = [ts for ts, _, _ in entries if not start_ns <= ts < end_ns]
        if outside:  # paging relies on the window being honoured, or it would never end
            self._malformed(
                QUERY_RANGE, logql, f"entry at {outside[0]} ns is outside [{start_ns}, {end_ns})"
            )
        return entries

    def _entry(self, value: Any, labels: dict[str, str], logql: str) -> Entry:
        if not (isinstance(value, list) and len(value) >= 2 and isinstance(value[1], str)):
            self._malformed(QUERY_RANGE, logql, f"log entry {value!r:.80} is not [ts, line]")
        try:
            return int(value[0]), labels, value[1]
        except (TypeError, ValueError):
            self._malformed(QUERY_RANGE, logql, f"timestamp {value[0]!r} is not unix ns")

    # -- metric queries ------------------------------------------------------------------

    def metric_range(
        self,
        logql: str,
        start: TimeLike,
        end: TimeLike,
        step: float | str | dt.timedelta,
        require_data: bool = False,
    ) -> pd.DataFrame:
        """Samples of a LogQL metric query over ``[start, end]`` every ``step``.

        Args:
            logql: a metric query, e.g. ``sum by (container) (count_over_time({...}[1m]))``.
            start: first evaluation time (see :func:`to_ns`).
            end: last evaluation time.
            step: seconds, a timedelta, or a Loki duration string such as ``"1m"``.
            require_data: raise :class:`NoData` instead of returning an empty frame.

        Returns:
            PROMETHEUS_COLUMNS plus one str column per label ("" where a series lacks it;
            a label named like a base column gets a ``label_`` prefix). Values are floats,
            NaN and infinities included.
        """
        params = {
            "query": logql,
            "start": str(to_ns(start, "start")),
            "end": str(to_ns(end, "end")),
            "step": _step(step),
        }
        body = self.client.get_json(QUERY_RANGE, params=params, query=logql)
        result = self._result(self._data(body, QUERY_RANGE, logql), "matrix", QUERY_RANGE, logql)
        rows = []
        for series in result:
            metric, values = self._series(series, "values", QUERY_RANGE, logql)
            if not isinstance(values, list):
                self._malformed(QUERY_RANGE, logql, "a series' 'values' is not a list")
            rows += [self._sample(metric, pair, QUERY_RANGE, logql) for pair in values]
        return self._metric_frame(rows, QUERY_RANGE, logql, require_data)

    def metric_instant(self, logql: str, at: TimeLike, require_data: bool = False) -> pd.DataFrame:
        """One sample per series of a LogQL metric query evaluated at ``at``.

        Returns:
            The same columns as :meth:`metric_range`.
        """
        params = {"query": logql, "time": str(to_ns(at, "at"))}
        body = self.client.get_json(QUERY, params=params, query=logql)
        result = self._result(self._data(body, QUERY, logql), "vector", QUERY, logql)
        rows = []
        for series in result:
            metric, value = self._series(series, "value", QUERY, logql)
            rows.append(self._sample(metric, value, QUERY, logql))
        return self._metric_frame(rows, QUERY, logql, require_data)

    def _series(self, series: Any, key: str, path: str, logql: str) -> tuple[dict[str, str], Any]:
        if not isinstance(series, dict) or not isinstance(series.get("metric"), dict):
            self._malformed(path, logql, "a series lacks its 'metric' labels")
        return series["metric"], series.get(key)

    def _sample(self, metric: dict[str, str], pair: Any, path: str, logql: str) -> dict[str, Any]:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], str)):
            self._malformed(path, logql, f'sample {pair!r:.80} is not [unix s, "value"]')
        try:
            millis = round(float(pair[0]) * 1000)  # Loki's sample times have ms resolution
            value = float(pair[1])  # "NaN", "+Inf" and "-Inf" parse as floats
        except (TypeError, ValueError):
            self._malformed(path, logql, f"sample {pair!r:.80} has a non-numeric time or value")
        return {"millis": millis, "value": value, "metric": metric}

    def _metric_frame(
        self, rows: list[dict[str, Any]], path: str, logql: str, require_data: bool
    ) -> pd.DataFrame:
        if not rows:
            if require_data:
                raise NoData(self.backend, self._url(path), logql, "no series matched")
            return empty_frame(PROMETHEUS_COLUMNS)
        names = sorted({name for row in rows for name in row["metric"]})
        columns = {n: f"label_{n}" if n in PROMETHEUS_COLUMNS else n for n in names}
        frame = pd.DataFrame(
            {
                "timestamp": pd.to_datetime([r["millis"] for r in rows], unit="ms", utc=True),
                "value": [r["value"] for r in rows],
                "series": [_series_text(r["metric"]) for r in rows],
                **{col: [r["metric"].get(n, "") for r in rows] for n, col in columns.items()},
            }
        )
        frame = frame.astype({col: "str" for col in columns.values()})
        return conform(frame, PROMETHEUS_COLUMNS)

    # -- discovery -----------------------------------------------------------------------

    def labels(self, start: TimeLike | None = None, end: TimeLike | None = None) -> list[str]:
        """Label names Loki knows in the window (its default window when not given)."""
        path = "/loki/api/v1/labels"
        return self._strings(path, self._window(start, end), "labels")

    def label_values(
        self, name: str, start: TimeLike | None = None, end: TimeLike | None = None
    ) -> list[str]:
        """Values of label ``name`` in the window."""
        if not LABEL_NAME.fullmatch(name):
            raise ConfigError(f"{name!r} is not a Loki label name")
        path = f"/loki/api/v1/label/{name}/values"
        return self._strings(path, self._window(start, end), f"label {name}")

    def series(
        self,
        match: str | Sequence[str],
        start: TimeLike | None = None,
        end: TimeLike | None = None,
    ) -> pd.DataFrame:
        """Streams matching the selector(s) ``match``: one row each, one str column per label.

        The ``series`` column holds the stream's selector text, usable as a LogQL selector
        (a label named ``series`` becomes ``label_series``); a stream without some label has
        "" in its column.
        """
        path = "/loki/api/v1/series"
        matches = [match] if isinstance(match, str) else list(match)
        query = " or ".join(matches)
        params: dict[str, Any] = {"match[]": matches, **self._window(start, end)}
        data = self._data(self.client.get_json(path, params=params, query=query), path, query)
        if not isinstance(data, list) or not all(isinstance(s, dict) for s in data):
            self._malformed(path, query, "'data' is not a list of label sets")
        names = sorted({name for labels in data for name in labels})
        columns = {"series": [_series_text(labels) for labels in data]}
        for name in names:
            column = "label_series" if name == "series" else name
            columns[column] = [labels.get(name, "") for labels in data]
        return pd.DataFrame(columns, dtype="str")

    def _window(self, start: TimeLike | None, end: TimeLike | None) -> dict[str, str]:
        window: dict[str, str] = {}
        if start is not None:
            window["start"] = str(to_ns(start, "start"))
        if end is not None:
            window["end"] = str(to_ns(end, "end"))
        return window

    def _strings(self, path: str, params: dict[str, str], query: str) -> list[str]:
        data = self._data(self.client.get_json(path, params=params, query=query), path, query)
        if data is None:
            return []
        if not isinstance(data, list) or not all(isinstance(s, str) for s in data):
            self._malformed(path, query, "'data' is not a list of strings")
        return data

    # -- response shape ------------------------------------------------------------------

    def _data(self, body: Any, path: str, logql: str) -> Any:
        if not isinstance(body, dict) or body.get("status") != "success":
            shown = body.get("status") if isinstance(body, dict) else type(body).__name__
            self._malformed(path, logql, f"expected status 'success', got {shown!r}")
        return body.get("data")  # discovery on an empty store may leave it out

    def _result(self, data: Any, kind: str, path: str, logql: str) -> list[Any]:
        if not isinstance(data, dict) or not isinstance(data.get("result"), list):
            self._malformed(path, logql, "'data' has no 'result' list")
        got = data.get("resultType")
        if got == kind:
            return data["result"]
        if {got, kind} <= {"streams", "matrix", "vector"}:
            use = "query_range" if got == "streams" else "metric_range or metric_instant"
            raise QueryRejected(
                self.backend,
                self._url(path),
                logql,
                f"the query returned {got}, not {kind}: use {use}() for this query",
            )
        self._malformed(path, logql, f"unknown resultType {got!r}")

    def _url(self, path: str) -> str:
        return redact_url(self.client.url(path))  # errors keep it in their args, seen by repr

    def _malformed(self, path: str, logql: str, detail: str) -> NoReturn:
        raise MalformedResponse(self.backend, self._url(path), logql, detail)


def _key(entry: Entry) -> tuple[Any, ...]:
    ts, labels, line = entry
    return ts, tuple(sorted(labels.items())), line
