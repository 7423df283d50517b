"""Grafana Loki: LogQL log and metric queries as DataFrames, with paging Loki itself lacks.

Loki answers ``query_range`` with at most ``limit`` entries and refuses a ``limit`` above
``max_entries_limit_per_query`` (5000 by default) with a 400; it has no cursor, and nothing in
an answer says it was cut (``entries == limit`` is the only sign). Reading a whole window
therefore means paging by time, neither losing nor repeating an entry
(:mod:`obslib.sources.loki_paging`); the bodies are parsed by the pure functions of
:mod:`obslib.sources.loki_frames`. See
https://grafana.com/docs/loki/latest/reference/loki-http-api/.

Log queries ask for ``categorize-labels`` (header ``X-Loki-Response-Encoding-Flags``): Loki then
keeps each entry's structured metadata (where OTLP logs carry ``trace_id``, ``span_id`` and
the record attributes) apart from the stream labels, as ``[ts, line, {"structuredMetadata":
{...}, "parsed": {...}}]``. A server that ignores the flag merges the metadata into the labels
and splits streams per entry; both answers give the same columns (:mod:`.logfields`).

:meth:`LokiSource.window_logs` reads "the log lines of this window" and says what it could not
get (:class:`~obslib.sources.coverage.Coverage`): a cap reached while more lines exist makes the
result partial, and a selector that matches no stream is "no logs matched", never a clean read.

Endpoint and credentials (``OBSLIB_LOKI_URL``, ``_TOKEN``, ``_ORG_ID`` for X-Scope-OrgID, ...)
come from the environment only: see :mod:`obslib.sources.endpoint`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeAlias, TypeVar

import numpy as np
import pandas as pd

from obslib.errors import (
    ConfigError,
    MalformedResponse,
    NoData,
    QueryRejected,
    SourceError,
    redact_url,
)
from obslib.settings import Settings
from obslib.sources.coverage import CUT_BY_LIMIT, NO_MATCH, Coverage, Fetched, Gap
from obslib.sources.endpoint import Endpoint, endpoint_from_env
from obslib.sources.frames import PROMETHEUS_COLUMNS, empty_frame
from obslib.sources.http import HttpClient
from obslib.sources.logfields import log_frame
from obslib.sources.loki_frames import (
    LokiFormatError,
    WrongResultType,
    data_of,
    metric_frame,
    metric_rows,
    result_of,
    series_frame,
    stream_entries,
    strings,
)
from obslib.sources.loki_paging import (
    Page,
    Read,
    StuckPage,
    collect,
    in_time_order,
    stamp,
    unreturned,
)

TimeLike: TypeAlias = int | str | dt.datetime | pd.Timestamp | np.datetime64
T = TypeVar("T")
DEFAULT_PAGE_SIZE = 5000  # Loki's default max_entries_limit_per_query
DIRECTIONS = ("forward", "backward")
QUERY_RANGE = "/loki/api/v1/query_range"
QUERY = "/loki/api/v1/query"
LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CATEGORIZE_LABELS = "categorize-labels"
LOG_QUERY_HEADERS = {"X-Loki-Response-Encoding-Flags": CATEGORIZE_LABELS}
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')
_MATCHER_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")


def log_selector(settings: Settings) -> str:
    """The stream selector of the release's logs: ``{<logs.namespaceLabel>="<namespace>"}``."""
    return f"{{{settings.log_namespace_label}={json.dumps(settings.namespace)}}}"


def stream_selector(logql: str) -> str:
    """The stream selector ``{...}`` a log query starts with (the whole text if it has none)."""
    text = logql.strip()
    if not text.startswith("{"):
        return text
    position = 0
    while position < len(text):
        quoted = _QUOTED.match(text, position)
        if quoted:
            position = quoted.end()
        elif text[position] == "}":
            return text[: position + 1]
        else:
            position += 1
    return text


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

    def window_logs(
        self,
        logql: str,
        start: TimeLike,
        end: TimeLike,
        *,
        cap: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        direction: str = "forward",
    ) -> Fetched:
        """Every log line of a LogQL log query in ``[start, end)``, and what the read covered.

        Pages until the window is exhausted or ``cap`` lines were read. A cap reached while
        more lines exist is a ``cut_by_limit`` gap (the data is partial: a check on it is never
        a pass); a query that read nothing asks Loki's series endpoint whether any stream
        matched the selector, and records a ``no_match`` gap, naming the selector's labels Loki
        does not know in the window, when none did.

        Args:
            logql: a log query, e.g. ``log_selector(settings)`` (see :meth:`query_range`).
            start: inclusive start (see :func:`to_ns`).
            end: exclusive end.
            cap: read at most this many lines; None reads the whole window.
            page_size: entries per request, at most the server's max_entries_limit_per_query.
            direction: ``forward`` reads oldest first (a cap keeps the oldest lines),
                ``backward`` newest first.

        Returns:
            :class:`Fetched`: the LOG_COLUMNS frame (as :meth:`query_range` orders it) and its
            :class:`Coverage` (``what`` "log lines").

        Raises:
            QueryRejected, BackendUnavailable, MalformedResponse: as :meth:`query_range`.
        """
        start_ns, end_ns = self._window_args(start, end, direction, page_size, cap)
        read = self._collect(logql, start_ns, end_ns, cap, direction, page_size, peek=True)
        frame = log_frame(in_time_order(read.entries, direction))
        requested = (stamp(start_ns), stamp(end_ns))
        covered = None
        gaps: list[Gap] = []
        notes = [f"{logql}: {read.pages} request(s) of at most {page_size:,} lines, {direction}"]
        if read.entries and not read.categorized:
            notes.append(
                "Loki ignored categorize-labels: structured metadata (OTLP trace ids and "
                "attributes) came merged into the stream labels and was read from there"
            )
        if read.more and cap is not None:
            times = frame["timestamp_ns"]
            covered = (
                (requested[0], stamp(int(times.max())))
                if direction == "forward"
                else (stamp(int(times.min())), requested[1])
            )
            counted = (
                f"; Loki's stats count {read.unreturned:,} more in the rest of the window"
                if read.unreturned
                else ""
            )
            detail = f"partial: {len(frame):,} lines read, more exist (cap of {cap:,}{counted})"
            gaps.append(Gap(CUT_BY_LIMIT, max(1, read.unreturned or 0), detail))
        if not read.entries:
            streams, sentence = self._streams_matching(logql, start_ns, end_ns)
            if streams == 0:
                gaps.append(Gap(NO_MATCH, 0, sentence))
            else:
                notes.append(sentence)
        source = f"Loki {self.endpoint.safe_url}"
        coverage = Coverage(source, "log lines", len(frame), requested, covered, (), tuple(notes))
        return Fetched(frame, coverage.with_gaps(*gaps))

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

        A ``limit`` that cuts the result is not reported here: use :meth:`window_logs` for a
        read that says what it could not get.

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
            with equal timestamps are ordered by labels and metadata, and within one stream
            keep Loki's forward order.

        Raises:
            QueryRejected: Loki refused the query (its text is kept), the query is a metric
                query, or more than a page of entries share one timestamp.
            BackendUnavailable, MalformedResponse, NoData: see :mod:`obslib.errors`.
        """
        start_ns, end_ns = self._window_args(start, end, direction, page_size, limit)
        read = self._collect(logql, start_ns, end_ns, limit, direction, page_size)
        if require_data and not read.entries:
            raise NoData(self.backend, self._url(QUERY_RANGE), logql, "no log entries")
        return log_frame(in_time_order(read.entries, direction))

    @staticmethod
    def _window_args(
        start: TimeLike, end: TimeLike, direction: str, page_size: int, limit: int | None
    ) -> tuple[int, int]:
        start_ns, end_ns = to_ns(start, "start"), to_ns(end, "end")
        if direction not in DIRECTIONS:
            raise ConfigError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if end_ns <= start_ns:
            raise ConfigError(f"end ({end_ns}) must be after start ({start_ns})")
        if page_size < 2 or (limit is not None and limit < 1):
            # a page of one entry can never step past a timestamp it shares with the next
            raise ConfigError(
                f"need page_size >= 2 and a limit or cap >= 1, got {page_size}, {limit}"
            )
        return start_ns, end_ns

    def _collect(
        self,
        logql: str,
        start_ns: int,
        end_ns: int,
        limit: int | None,
        direction: str,
        size: int,
        *,
        peek: bool = False,
    ) -> Read:
        """Every page of one read (see :func:`~obslib.sources.loki_paging.collect`)."""

        def fetch(a: int, b: int, n: int) -> Page:
            return self._page(logql, a, b, n, direction)

        try:
            return collect(fetch, start_ns, end_ns, limit, direction, size, peek=peek)
        except StuckPage as exc:
            raise QueryRejected(self.backend, self._url(QUERY_RANGE), logql, str(exc)) from None

    def _page(self, logql: str, start_ns: int, end_ns: int, limit: int, direction: str) -> Page:
        """One request; entries of every stream merged in ``direction`` order."""
        params = {
            "query": logql,
            "start": str(start_ns),
            "end": str(end_ns),
            "limit": str(limit),
            "direction": direction,
        }
        try:
            body = self.client.get_json(
                QUERY_RANGE, params=params, query=logql, headers=LOG_QUERY_HEADERS
            )
        except QueryRejected as exc:
            if "max entries limit" not in exc.detail:
                raise
            hint = f" (page_size={limit}: lower it to the server's limit)"
            raise QueryRejected(exc.backend, exc.url, exc.query, exc.detail + hint) from exc
        data = self._parse(QUERY_RANGE, logql, data_of, body)
        result = self._parse(QUERY_RANGE, logql, result_of, data, "streams")
        categorized = CATEGORIZE_LABELS in (data.get("encodingFlags") or ())
        entries = self._parse(QUERY_RANGE, logql, stream_entries, result, categorized)
        entries.sort(key=lambda entry: entry[0], reverse=direction == "backward")
        outside = [entry[0] for entry in entries if not start_ns <= entry[0] < end_ns]
        if outside:  # paging relies on the window being honoured, or it would never end
            self._malformed(
                QUERY_RANGE, logql, f"entry at {outside[0]} ns is outside [{start_ns}, {end_ns})"
            )
        return Page(entries, categorized, unreturned(data.get("stats")))

    def _streams_matching(self, logql: str, start_ns: int, end_ns: int) -> tuple[int | None, str]:
        """How many streams the query's selector matches in the window, and a sentence on it.

        None when Loki could not say (the sentence then says why).
        """
        selector = stream_selector(logql)
        window = f"between {stamp(start_ns).isoformat()} and {stamp(end_ns).isoformat()}"
        try:
            streams = len(self.series(selector, start_ns, end_ns))
            known = set(self.labels(start_ns, end_ns)) if not streams else set()
        except SourceError as exc:
            return None, f"could not ask Loki which streams match {selector}: {exc.detail}"
        if streams:
            return streams, (
                f"{streams} stream(s) match {selector} {window}, but no line of {logql} is in "
                "the window"
            )
        unknown = sorted(set(_MATCHER_NAME.findall(_QUOTED.sub('""', selector))) - known)
        note = f"no stream matched {selector} {window}"
        if unknown:
            names = ", ".join(sorted(known)) or "none"
            note += (
                f"; Loki knows no label {', '.join(repr(n) for n in unknown)} there "
                f"(its labels: {names})"
            )
        return 0, note

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
        return self._metric_answer(body, "matrix", QUERY_RANGE, logql, require_data)

    def metric_instant(self, logql: str, at: TimeLike, require_data: bool = False) -> pd.DataFrame:
        """One sample per series of a LogQL metric query evaluated at ``at``.

        Returns:
            The same columns as :meth:`metric_range`.
        """
        params = {"query": logql, "time": str(to_ns(at, "at"))}
        body = self.client.get_json(QUERY, params=params, query=logql)
        return self._metric_answer(body, "vector", QUERY, logql, require_data)

    def _metric_answer(
        self, body: Any, kind: str, path: str, logql: str, require_data: bool
    ) -> pd.DataFrame:
        result = self._parse(path, logql, result_of, self._parse(path, logql, data_of, body), kind)
        rows = self._parse(
            path, logql, metric_rows, result, "values" if kind == "matrix" else "value"
        )
        if rows:
            return self._parse(path, logql, metric_frame, rows)
        if require_data:
            raise NoData(self.backend, self._url(path), logql, "no series matched")
        return empty_frame(PROMETHEUS_COLUMNS)

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
        body = self.client.get_json(path, params=params, query=query)
        return self._parse(path, query, series_frame, self._parse(path, query, data_of, body))

    def _window(self, start: TimeLike | None, end: TimeLike | None) -> dict[str, str]:
        window: dict[str, str] = {}
        if start is not None:
            window["start"] = str(to_ns(start, "start"))
        if end is not None:
            window["end"] = str(to_ns(end, "end"))
        return window

    def _strings(self, path: str, params: dict[str, str], query: str) -> list[str]:
        body = self.client.get_json(path, params=params, query=query)
        return self._parse(path, query, strings, self._parse(path, query, data_of, body))

    # -- response shape ------------------------------------------------------------------

    def _parse(self, path: str, logql: str, parse: Callable[..., T], *args: Any) -> T:
        """``parse(*args)``, its shape errors raised as the source's errors for ``path``."""
        try:
            return parse(*args)
        except WrongResultType as exc:
            raise QueryRejected(self.backend, self._url(path), logql, str(exc)) from None
        except LokiFormatError as exc:
            self._malformed(path, logql, str(exc))

    def _url(self, path: str) -> str:
        return redact_url(self.client.url(path))  # errors keep it in their args, seen by repr

    def _malformed(self, path: str, logql: str, detail: str) -> NoReturn:
        raise MalformedResponse(self.backend, self._url(path), logql, detail)
