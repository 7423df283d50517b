"""Grafana Tempo: TraceQL search, traces by id and tag discovery, as pandas DataFrames.

Endpoint and credentials come from ``OBSLIB_TEMPO_*`` (see :mod:`obslib.sources.endpoint`).
Things about Tempo that callers must know (facts from ``reference/backends.md``):

- Search without ``start``/``end`` only looks at recent data. Results are the first N traces
  found, in no particular order.
- A trace is found by id as soon as it is ingested, but by search only 10 to 30 s later:
  after a run, use :meth:`TempoSource.search_until_found` rather than concluding "no traces".
- Search carries hex ids, trace-by-id JSON carries base64 ids; both end up as lowercase hex.
- An unknown id is not an empty trace: it raises ``NotFound``.

The answers are parsed by the pure functions of :mod:`obslib.sources.tempo_frames`, which raise
:class:`~obslib.sources.tempo_frames.TempoFormatError`; :class:`TempoSource` turns that into
``MalformedResponse``. Reading every trace of a window is :mod:`obslib.sources.tempo_window`'s.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pandas as pd
from tqdm import tqdm

from obslib.errors import (
    BackendUnavailable,
    ConfigError,
    MalformedResponse,
    NoData,
    NotFound,
    QueryRejected,
    SourceError,
)
from obslib.sources.endpoint import Endpoint, endpoint_from_env
from obslib.sources.frames import SPAN_COLUMNS, empty_frame
from obslib.sources.http import HttpClient
from obslib.sources.tempo_frames import (
    TempoFormatError,
    hex_trace_id,
    summaries_from_search,
    tag_values_from_body,
    tags_from_body,
    trace_frame,
    unix_seconds,
)

QUERY_END_CUTOFF_S = 30.0  # query_frontend.search.query_end_cutoff: searches end this long ago
CUTOFF_ENV = "OBSLIB_TEMPO_QUERY_END_CUTOFF"  # set it when your Tempo's cutoff is not the default
TimeArg = datetime | float | int | None
_NO_ROUTE = "404 page not found"  # Go's answer for a route the server does not have


def _cutoff_from_env() -> float:
    text = os.environ.get(CUTOFF_ENV, "").strip()
    if not text:
        return QUERY_END_CUTOFF_S
    try:
        return float(text)
    except ValueError:
        raise ConfigError(
            f"{CUTOFF_ENV}={text!r} is not a number of seconds: give your Tempo's "
            "query_frontend.search.query_end_cutoff (default 30)"
        ) from None


class TempoSource:
    """Read traces from Grafana Tempo's HTTP API into the documented frames.

    Args:
        endpoint: where Tempo is; defaults to ``endpoint_from_env("tempo")``.
        client: an :class:`HttpClient` to use (retries, timeouts, a shared session); built
            from ``endpoint`` when omitted.
    """

    def __init__(
        self,
        endpoint: Endpoint | None = None,
        client: HttpClient | None = None,
        *,
        query_end_cutoff_s: float | None = None,
    ) -> None:
        if client is not None and endpoint is not None and client.endpoint != endpoint:
            raise ConfigError("TempoSource: pass an endpoint or a client, not two different ones")
        if query_end_cutoff_s is None:
            query_end_cutoff_s = _cutoff_from_env()
        if not 0 <= query_end_cutoff_s <= 3600:
            raise ConfigError(
                f"TempoSource: query_end_cutoff_s must be 0 to 3600 seconds, got {query_end_cutoff_s!r}"
            )
        self.client = client or HttpClient(endpoint or endpoint_from_env("tempo"))
        self.query_end_cutoff_s = query_end_cutoff_s  # the server's query_end_cutoff
        self._v2_traces = True  # becomes False once the server turns out not to have the route

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint requests go to (its repr shows no credentials)."""
        return self.client.endpoint

    def __repr__(self) -> str:
        return f"TempoSource(url={self.endpoint.safe_url!r})"

    # -- search ---------------------------------------------------------------------------

    def search(
        self,
        traceql: str,
        start: TimeArg = None,
        end: TimeArg = None,
        limit: int = 20,
        spans_per_spanset: int = 3,
        *,
        require_data: bool = False,
    ) -> pd.DataFrame:
        """Traces matching a TraceQL query, one row each (``TRACE_SUMMARY_COLUMNS``).

        Args:
            traceql: the query, e.g. ``{ span.agent_type = "copilot" }``.
            start: window start (datetime, naive = UTC, or unix seconds). Without ``start``
                and ``end`` Tempo only searches recent data.
            end: window end; give both or neither.
            limit: at most this many traces (Tempo returns the first found, not the newest).
            spans_per_spanset: matched spans listed per trace (``span_ids``).
            require_data: raise ``NoData`` instead of returning an empty frame.

        Raises:
            QueryRejected: TraceQL syntax error (Tempo's own text) or a bad window or limit.
            NoData: nothing matched and ``require_data`` is set.
        """
        path = "api/search"
        for name, value in (("limit", limit), ("spans_per_spanset", spans_per_spanset)):
            if not isinstance(value, int) or value < 1:
                detail = f"{name} must be a positive integer, got {value!r}"
                raise self._error(QueryRejected, path, traceql, detail)
        params: dict[str, Any] = {"q": traceql, "limit": limit, "spss": spans_per_spanset}
        params.update(self._window(start, end, path, traceql))
        body = self.client.get_json(path, params=params, query=traceql)
        frame = self._parse(summaries_from_search, body, path, traceql)
        if frame.empty and require_data:
            where = "in the window" if "start" in params else "in recent data (no start/end given)"
            raise self._error(NoData, path, traceql, f"no trace matched {where}")
        return frame

    def search_until_found(
        self,
        traceql: str,
        start: TimeArg,
        end: TimeArg,
        *,
        min_traces: int = 1,
        timeout_s: float = 60.0,
        poll_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        limit: int = 20,
    ) -> pd.DataFrame:
        """Search, and repeat every ``poll_s`` until ``min_traces`` traces are found.

        Tempo indexes fresh traces for search 10 to 30 s after ingesting them, so a search
        right after a run can come back empty although the traces exist. This waits up to
        ``timeout_s`` (the sum of the pauses; each request has its own HTTP timeout) and then
        returns whatever the last search found, possibly an empty frame: the caller decides
        whether too few is a failure. ``attrs`` records ``attempts`` and ``waited_s``.
        ``limit`` is raised to ``min_traces`` if lower.
        """
        waited, attempts = 0.0, 0
        while True:
            attempts += 1
            frame = self.search(traceql, start, end, limit=max(limit, min_traces))
            if len(frame) >= min_traces or waited + poll_s > timeout_s:
                frame.attrs.update(attempts=attempts, waited_s=waited)
                return frame
            sleep(poll_s)
            waited += poll_s

    # -- traces by id ---------------------------------------------------------------------

    def trace(self, trace_id: str, start: TimeArg = None, end: TimeArg = None) -> pd.DataFrame:
        """All spans of one trace (``SPAN_COLUMNS``), via ``/api/v2/traces`` or the v1 route.

        ``start``/``end`` only narrow where Tempo looks. A trace Tempo cut for size has
        ``partial`` True and its reason in ``attrs["partial_message"]``.

        Raises:
            QueryRejected: ``trace_id`` is not 1 to 32 hex characters (nothing is sent), or
                Tempo refused it.
            NotFound: Tempo has no trace with this id.
            MalformedResponse: the body does not have the documented shape.
        """
        hex_id = self._trace_id(trace_id)
        params = self._window(start, end, f"api/v2/traces/{hex_id}", hex_id)
        api, path, body = self._trace_body(hex_id, params)
        frame = (
            None if body is None else self._parse(lambda b: trace_frame(b, api), body, path, hex_id)
        )
        if frame is None:
            where = " in the start/end window" if params else ""
            raise self._error(NotFound, path, hex_id, f"Tempo has no trace with this id{where}")
        if set(frame["trace_id"]) != {hex_id}:
            found = ", ".join(sorted(set(frame["trace_id"])))
            raise self._error(
                MalformedResponse, path, hex_id, f"the body holds spans of other traces: {found}"
            )
        frame.attrs.update(trace_id=hex_id, api=api)
        return frame

    def traces(
        self,
        trace_ids: Iterable[str],
        start: TimeArg = None,
        end: TimeArg = None,
        max_workers: int = 8,
        progress: bool = True,
    ) -> pd.DataFrame:
        """Spans of many traces, fetched by a pool of at most ``max_workers`` threads.

        Ids Tempo does not know are listed in ``attrs["not_found"]`` rather than failing the
        batch; ``attrs["partial"]`` maps cut traces to Tempo's message. Every other error
        stops the batch and propagates. Duplicate ids are fetched once; rows follow the
        order of ``trace_ids``. ``progress`` shows a tqdm bar.
        """
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ConfigError(f"max_workers must be a positive integer, got {max_workers!r}")
        ids = list(dict.fromkeys(self._trace_id(t) for t in trace_ids))
        self._window(start, end, "api/v2/traces", "")  # fail before starting threads
        frames: dict[str, pd.DataFrame] = {}
        missing: set[str] = set()
        if ids:
            with (
                ThreadPoolExecutor(max_workers=min(max_workers, len(ids))) as pool,
                tqdm(
                    total=len(ids), desc="Tempo traces", unit="trace", disable=not progress
                ) as bar,
            ):
                futures = {pool.submit(self.trace, i, start, end): i for i in ids}
                try:
                    for future in as_completed(futures):
                        try:
                            frames[futures[future]] = future.result()
                        except NotFound:
                            missing.add(futures[future])
                        bar.update(1)
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
        found = [frames[i] for i in ids if i in frames]
        out = pd.concat(found, ignore_index=True) if found else empty_frame(SPAN_COLUMNS)
        out.attrs = {
            "not_found": [i for i in ids if i in missing],
            "partial": {
                f.attrs["trace_id"]: f.attrs["partial_message"] for f in found if f.attrs["partial"]
            },
        }
        return out

    # -- tags -----------------------------------------------------------------------------

    def tags(
        self, scope: str | None = None, start: TimeArg = None, end: TimeArg = None
    ) -> dict[str, list[str]]:
        """Tag names by scope (``resource``, ``span``, ``intrinsic``...), from ``/api/v2/search/tags``."""
        path = "api/v2/search/tags"
        params: dict[str, Any] = {"scope": scope} if scope else {}
        params.update(self._window(start, end, path, scope or ""))
        body = self.client.get_json(path, params=params, query=scope or "")

        return self._parse(tags_from_body, body, path, scope or "")

    def tag_values(self, tag: str, start: TimeArg = None, end: TimeArg = None) -> pd.DataFrame:
        """Values of a scoped tag such as ``resource.service.name`` (``TAG_VALUE_COLUMNS``).

        From ``/api/v2/search/tag/<tag>/values``, whose values are typed: ``type`` is Tempo's
        (``string``, ``int``, ``bool``...) and ``value`` its text.
        """
        if not tag:
            raise ConfigError("tag_values: give a tag name such as 'resource.service.name'")
        path = f"api/v2/search/tag/{quote(tag, safe='')}/values"
        body = self.client.get_json(path, params=self._window(start, end, path, tag), query=tag)

        return self._parse(tag_values_from_body, body, path, tag)

    # -- helpers --------------------------------------------------------------------------

    def _error(self, cls: type[SourceError], path: str, query: str, detail: str) -> SourceError:
        return cls(self.endpoint.backend, self.client.url(path), query, detail)

    def _parse(self, parser: Callable[[Any], Any], body: Any, path: str, query: str) -> Any:
        try:
            return parser(body)
        except TempoFormatError as exc:
            raise self._error(MalformedResponse, path, query, str(exc)) from exc

    def _trace_id(self, value: str) -> str:
        try:
            return hex_trace_id(value)
        except ValueError as exc:
            detail = f"{exc}; not sent to Tempo"
            raise self._error(QueryRejected, "api/v2/traces", str(value), detail) from None

    def _window(self, start: TimeArg, end: TimeArg, path: str, query: str) -> dict[str, int]:
        if start is None and end is None:
            return {}
        if start is None or end is None:
            raise self._error(QueryRejected, path, query, "give both start and end, or neither")
        try:
            window = {"start": unix_seconds(start), "end": unix_seconds(end, round_up=True)}
        except TypeError as exc:
            raise self._error(QueryRejected, path, query, str(exc)) from None
        if window["start"] >= window["end"]:
            raise self._error(QueryRejected, path, query, f"start must be before end, got {window}")
        return window

    def _trace_body(self, hex_id: str, params: Mapping[str, int]) -> tuple[str, str, Any]:
        """(api, path, JSON body) of a trace by id; the body is None for v1's unknown id."""
        if self._v2_traces:
            path = f"api/v2/traces/{hex_id}"
            try:
                return "v2", path, self.client.get_json(path, params=params, query=hex_id)
            except NotFound:
                # v2 answers 200 for unknown ids, so a 404 means this Tempo predates the route.
                self._v2_traces = False
        path = f"api/traces/{hex_id}"
        try:
            return "v1", path, self.client.get_json(path, params=params, query=hex_id)
        except NotFound as exc:
            if _NO_ROUTE in exc.detail:
                detail = "no Tempo trace API here (neither /api/v2/traces nor /api/traces exists)"
                raise self._error(BackendUnavailable, path, hex_id, detail) from None
            return "v1", path, None  # v1's answer for an unknown id: 404, empty body
