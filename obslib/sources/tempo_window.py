"""Every span of a time window from Tempo, through sliced, selected TraceQL searches.

Fetching a window as "search, then one trace-by-id request per trace" costs Tempo CPU per
lookup (about 40 traces a second on a 2-core machine). A search with ``select()`` and a large
``spss`` returns every span with its parent id instead, so a window is read as a few dozen
searches of short time slices. What a real Tempo 3.1 does to such searches, and what this module
does about it (recordings in ``reference/samples/tempo-3.1``):

- A search ending within ``query_end_cutoff`` (30 s) of Tempo's own clock is rewritten, even
  to another window. The reader asks Tempo for its time (the ``Date`` header), waits until the
  window is searchable (bounded), or leaves the unsearchable end out and says so.
- ``limit`` cuts results silently, to an arbitrary subset. A slice that returns ``limit``
  traces, or fails with "response larger than the max", is split in two until every slice
  returns fewer; at the smallest slice the cut is reported.
- Answers are read by :mod:`obslib.sources.tempo_select` (unscoped keys, renamed intrinsics,
  zero parents of roots, trimmed ids).
- ``matched`` above the spans returned is the only sign a span set was cut: such traces are
  fetched whole by id, as are ids the caller knows of that search cannot see (spans older than
  the ingestion slack at arrival are hidden from search for minutes).
- Traces outside the window (a rewrite, a block's wider range) are dropped and counted; a trace
  found by several slices is kept once; identical copies of a span are collapsed and counted.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import pandas as pd

from obslib.errors import BackendUnavailable, MalformedResponse, QueryRejected
from obslib.sources import coverage as cov
from obslib.sources.frames import SPAN_COLUMNS, collapse_copies, conform, empty_frame
from obslib.sources.tempo import QUERY_END_CUTOFF_S, TempoSource
from obslib.sources.tempo_frames import hex_trace_id, unix_seconds
from obslib.sources.tempo_select import TraceHit, select_query, spans_from_select

log = logging.getLogger(__name__)

SLICE_S = 120  # two-minute slices keep a busy hour's job bodies under Tempo's 16 MiB
MIN_SLICE_S = 1  # Tempo's search times are whole seconds
SEARCH_LIMIT = 400  # traces per slice; about 20 KB of job body each on Tempo's side
SPANS_PER_SPANSET = 100  # above any hop profile's span count, so span sets are whole
PARALLEL = 4
MAX_WAIT_S = 60.0  # how long to wait for the window's end to become searchable
TOO_LARGE = "response larger than the max"


def plan_slices(start_s: int, end_s: int, slice_s: int = SLICE_S) -> list[tuple[int, int]]:
    """Consecutive ``[a, b)`` slices of whole seconds covering ``[start_s, end_s)``."""
    if end_s <= start_s:
        return []
    step = max(MIN_SLICE_S, int(slice_s))
    return [(a, min(a + step, end_s)) for a in range(start_s, end_s, step)]


def server_now(source: TempoSource) -> float:
    """Tempo's own time, from the ``Date`` header of a cheap request (unix seconds)."""
    response = source.client.request("GET", "api/status/buildinfo")
    date = response.headers.get("Date")
    if not date:
        raise MalformedResponse(
            "tempo",
            source.client.url("api/status/buildinfo"),
            "",
            "no Date header: cannot tell which part of the window Tempo can search yet",
        )
    return parsedate_to_datetime(date).timestamp()


@dataclass
class _Slices:
    """What the slice searches found so far (mutated by one thread only)."""

    answers: list[pd.DataFrame] = field(default_factory=list)  # one frame per slice read
    hits: dict[str, TraceHit] = field(default_factory=dict)
    answer_of: dict[str, int] = field(default_factory=dict)  # trace id -> its fullest answer
    copies: int = 0
    searches: int = 0
    splits: int = 0
    cut: list[tuple[int, int, str]] = field(default_factory=list)  # (a, b, why)

    def add(self, frame: pd.DataFrame, hits: list[TraceHit], copies: int) -> None:
        self.copies += copies
        index = len(self.answers)
        self.answers.append(frame)
        for hit in hits:
            if not hit.spans and not hit.cut:
                continue  # nothing of it returned, and nothing said to be missing
            kept = self.hits.get(hit.trace_id)
            if kept is None or hit.spans > kept.spans:  # the fullest answer of a trace wins
                self.hits[hit.trace_id] = hit
                self.answer_of[hit.trace_id] = index

    def spans(self) -> pd.DataFrame:
        """Every trace's spans from its fullest answer (a trace in two slices is read once)."""
        kept = [
            frame[frame["trace_id"].map(self.answer_of).eq(index)]
            for index, frame in enumerate(self.answers)
            if not frame.empty
        ]
        return pd.concat(kept, ignore_index=True) if kept else empty_frame(SPAN_COLUMNS)


@dataclass(frozen=True)
class WindowOptions:
    """How a window is read; defaults fit Tempo 3.1's default limits."""

    traceql_filter: str = ""
    slice_s: int = SLICE_S
    limit: int = SEARCH_LIMIT
    spans_per_spanset: int = SPANS_PER_SPANSET
    parallel: int = PARALLEL
    cutoff_s: float = QUERY_END_CUTOFF_S
    max_wait_s: float = MAX_WAIT_S
    max_traces: int | None = None  # a user's cap: the result is then partial


def read_window(
    source: TempoSource,
    start_s: int,
    end_s: int,
    options: WindowOptions,
    *,
    known_trace_ids: Iterable[str] = (),
    sleep: Callable[[float], None] | None = None,
    now: Callable[[], float] | None = None,
    progress: Callable[[str], None] = log.info,
) -> cov.Fetched:
    """Every span of the traces in ``[start_s, end_s)``, with what could not be read."""
    sleep = sleep or time.sleep
    now = now or (lambda: server_now(source))
    requested = (pd.Timestamp(start_s, unit="s", tz="UTC"), pd.Timestamp(end_s, unit="s", tz="UTC"))
    gaps: list[cov.Gap] = []
    searchable_end = _wait_until_searchable(end_s, options, sleep, now, progress)
    if searchable_end < end_s:
        gaps.append(
            cov.Gap(
                cov.NOT_SEARCHABLE,
                0,
                f"the last {end_s - max(searchable_end, start_s)} s of the window were not yet "
                f"searchable (Tempo searches only up to {options.cutoff_s:g} s before its now)",
            )
        )
    found = _search_slices(source, start_s, max(start_s, searchable_end), options)
    spans = found.spans()
    outside = {
        h.trace_id
        for h in found.hits.values()
        if h.end_ns < start_s * 10**9 or h.start_ns >= end_s * 10**9
    }
    cut = sorted({h.trace_id for h in found.hits.values() if h.cut} - outside)
    known = sorted({hex_trace_id(t) for t in known_trace_ids} - set(found.hits))
    whole = _by_id(source, [*cut, *known])
    spans = pd.concat(
        [spans[~spans["trace_id"].isin(outside | set(cut))], whole], ignore_index=True
    )
    unseen = whole[whole["trace_id"].isin(known)]["trace_id"].nunique()
    spans, copies = collapse_copies(spans)
    spans, capped = _cap(spans, options.max_traces)
    gaps.append(
        cov.Gap(
            cov.OUTSIDE_WINDOW,
            len(outside),
            f"{len(outside)} trace(s) Tempo returned lie outside the window: dropped",
        )
    )
    if found.cut:
        where = "; ".join(
            f"{why} at {pd.Timestamp(a, unit='s', tz='UTC'):%Y-%m-%d %H:%M:%S}"
            for a, _, why in found.cut[:3]
        )
        gaps.append(
            cov.Gap(
                cov.CUT_BY_LIMIT,
                len(found.cut),
                f"{len(found.cut)} one-second slice(s) still cut ({where}): some traces there "
                "were not read",
            )
        )
    gaps += [
        cov.Gap(
            cov.REFETCHED,
            len(cut),
            f"{len(cut)} trace(s) whose span sets search cut were fetched whole by id",
        ),
        cov.Gap(
            cov.REFETCHED,
            unseen,
            f"{unseen} of {len(known)} known trace(s) search did not return were found by id",
        ),
        cov.Gap(
            cov.REDELIVERED,
            copies + found.copies,
            f"{copies + found.copies} identical span copies (exporter retries Tempo kept) "
            "collapsed into one",
        ),
    ]
    if capped is not None:
        gaps.append(capped)
    notes = (
        f"{found.searches} searches of slices up to {options.slice_s} s ({found.splits} split "
        f"after reaching limit {options.limit} or Tempo's size limit), {len(cut) + len(known)} "
        "trace(s) by id",
        f"query: {select_query(options.traceql_filter)}",
    )
    coverage = cov.Coverage(
        f"Tempo {source.endpoint.safe_url}",
        "spans",
        len(spans),
        requested,
        (requested[0], pd.Timestamp(max(start_s, searchable_end), unit="s", tz="UTC")),
        notes=notes,
    ).with_gaps(*gaps)
    return cov.Fetched(spans.reset_index(drop=True), coverage)


def _wait_until_searchable(
    end_s: int,
    options: WindowOptions,
    sleep: Callable[[float], None],
    now: Callable[[], float],
    progress: Callable[[str], None],
) -> int:
    """The window's end, once Tempo can search it; earlier if waiting would take too long."""
    waited = 0.0
    while True:
        limit = math.floor(now() - options.cutoff_s)
        if end_s <= limit:
            return end_s
        pause = end_s - limit
        if waited + pause > options.max_wait_s:
            return limit
        progress(
            f"waiting {pause:.0f} s: Tempo searches only up to {options.cutoff_s:g} s before "
            "its own now, and the window ends later"
        )
        sleep(pause)
        waited += pause


def _search_slices(
    source: TempoSource, start_s: int, end_s: int, options: WindowOptions
) -> _Slices:
    found = _Slices()
    query = select_query(options.traceql_filter)
    todo = plan_slices(start_s, end_s, options.slice_s)
    with ThreadPoolExecutor(max_workers=max(1, options.parallel)) as pool:
        running: dict[Future[Any], tuple[int, int]] = {}
        while todo or running:
            while todo and len(running) < max(1, options.parallel):
                a, b = todo.pop(0)
                running[pool.submit(_search_one, source, query, a, b, options)] = (a, b)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                a, b = running.pop(future)
                found.searches += 1
                frame, hits, copies, problem = future.result()
                if problem and b - a > MIN_SLICE_S:
                    middle = (a + b) // 2
                    todo[:0] = [(a, middle), (middle, b)]
                    found.splits += 1
                    continue
                if problem:
                    found.cut.append((a, b, problem))
                found.add(frame, hits, copies)
    return found


def _search_one(
    source: TempoSource, query: str, a: int, b: int, options: WindowOptions
) -> tuple[pd.DataFrame, list[TraceHit], int, str]:
    """One slice's answer, and why it must be split ("" when it is whole)."""
    params = {
        "q": query,
        "start": a,
        "end": b,
        "limit": options.limit,
        "spss": options.spans_per_spanset,
    }
    try:
        body = source.client.get_json("api/search", params=params, query=query)
    except BackendUnavailable as exc:
        if TOO_LARGE in exc.detail:
            return empty_frame(SPAN_COLUMNS), [], 0, "Tempo's response size limit"
        raise
    try:
        frame, hits, copies = spans_from_select(body)
    except (ValueError, TypeError, AttributeError) as exc:
        raise MalformedResponse(
            "tempo", source.client.url("api/search"), query, f"unexpected search answer: {exc}"
        ) from exc
    problem = f"limit {options.limit} reached" if len(hits) >= options.limit else ""
    return frame, hits, copies, problem


def _by_id(source: TempoSource, trace_ids: Sequence[str]) -> pd.DataFrame:
    """Whole traces by id; ids Tempo does not know are left out."""
    if not trace_ids:
        return empty_frame(SPAN_COLUMNS)
    return conform(source.traces(trace_ids, progress=False), SPAN_COLUMNS)


def _cap(spans: pd.DataFrame, max_traces: int | None) -> tuple[pd.DataFrame, cov.Gap | None]:
    """The first ``max_traces`` traces by start time, and the gap that cap leaves."""
    if max_traces is None:
        return spans, None
    starts = spans.groupby("trace_id")["start_ns"].min().sort_values(kind="stable")
    if len(starts) <= max_traces:
        return spans, None
    keep = set(starts.index[:max_traces])
    detail = f"partial: {max_traces:,} traces audited, at least {len(starts):,} matched"
    kept = spans[spans["trace_id"].isin(keep)].reset_index(drop=True)
    return kept, cov.Gap(cov.CUT_BY_LIMIT, len(starts) - max_traces, detail)


def window_spans(
    source: TempoSource,
    start: datetime | float | int,
    end: datetime | float | int,
    *,
    traceql_filter: str = "",
    known_trace_ids: Iterable[str] = (),
    max_traces: int | None = None,
    sleep: Callable[[float], None] | None = None,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> cov.Fetched:
    """Every span of every trace in ``[start, end)`` from ``source``, and what could not be read.

    A window reaching into Tempo's query-end cutoff (``source.query_end_cutoff_s``) waits until
    searchable (or is partial), slices that reach ``limit`` or Tempo's size limit are split,
    cut span sets and ``known_trace_ids`` search missed are fetched by id, traces outside the
    window are dropped, identical span copies collapsed. ``max_traces`` caps the traces kept
    (the result is then partial). ``options`` are fields of :class:`WindowOptions`
    (``slice_s``, ``limit``, ``spans_per_spanset``, ``parallel``, ``max_wait_s``).
    """
    if start is None or end is None:
        raise QueryRejected(
            "tempo", source.client.url("api/search"), traceql_filter, "give start and end"
        )
    start_s, end_s = unix_seconds(start), unix_seconds(end, round_up=True)
    if start_s >= end_s:
        raise QueryRejected(
            "tempo", source.client.url("api/search"), traceql_filter, "start must be before end"
        )
    settings = WindowOptions(
        traceql_filter=traceql_filter,
        max_traces=max_traces,
        cutoff_s=source.query_end_cutoff_s,
        **options,
    )
    extra: dict[str, Any] = {"sleep": sleep}
    if progress is not None:
        extra["progress"] = progress
    return read_window(source, start_s, end_s, settings, known_trace_ids=known_trace_ids, **extra)
