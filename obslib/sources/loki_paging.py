"""Paging past Loki's entry limit: every entry of a window, none lost and none repeated.

Loki answers ``query_range`` with at most ``limit`` entries and has no cursor; nothing in an
answer says it was cut (``entries == limit`` is the only sign). :func:`collect` therefore pages
by time: after a full page, the next request starts at the last timestamp seen (forward) or
ends just after it (backward, ``end`` is exclusive). That timestamp is asked for again, because
entries sharing it may not all have fitted in the page; the ones already read are skipped by
(timestamp, labels, line, metadata). The requests themselves are the caller's
(:class:`~obslib.sources.loki.LokiSource`): :func:`collect` only decides what to ask next.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

# (timestamp_ns, labels, line, structured metadata): one log entry as Loki returned it.
Entry = tuple[int, dict[str, str], str, dict[str, str]]
# (start_ns, end_ns, limit) -> one query_range answer, its entries in request order.
PageFetcher = Callable[[int, int, int], "Page"]


class StuckPage(Exception):
    """Paging cannot go on: a whole page of entries shares one timestamp (the message says so)."""


def stamp(ns: int) -> pd.Timestamp:
    """Unix nanoseconds as a UTC timestamp."""
    return pd.Timestamp(ns, unit="ns", tz="UTC")


@dataclass
class Page:
    """One query_range answer: its entries in request order, and what else it said."""

    entries: list[Entry]
    categorized: bool  # the answer carried encodingFlags categorize-labels
    unreturned: int | None  # lines Loki's stats counted in the request's window beyond those sent


@dataclass
class Read:
    """Every page of one read."""

    entries: list[Entry] = field(default_factory=list)
    more: bool = False  # the limit stopped the read while the window held more
    pages: int = 0
    categorized: bool = True
    unreturned: int | None = None  # of the last page


def collect(
    fetch: PageFetcher,
    start_ns: int,
    end_ns: int,
    limit: int | None,
    direction: str,
    size: int,
    *,
    peek: bool = False,
) -> Read:
    """Page through ``[start_ns, end_ns)`` until it is exhausted or ``limit`` entries were read.

    With ``peek``, every request asks for one entry more than the limit leaves room for,
    so a read the limit stops knows whether more exist (``Read.more``).

    Raises:
        StuckPage: a whole page of entries shares one timestamp, so paging cannot step past it.
    """
    read = Read()
    at_boundary: Counter[tuple[Any, ...]] = Counter()  # read entries at the page edge
    edge = start_ns if direction == "forward" else end_ns - 1
    while True:
        room = None if limit is None else limit - len(read.entries)
        wanted = size if room is None else min(size, room + at_boundary.total() + peek)
        page = fetch(start_ns, end_ns, wanted)
        read.pages += 1
        read.categorized &= page.categorized
        read.unreturned = page.unreturned
        to_skip = at_boundary.copy()
        new = []
        for entry in page.entries:
            if to_skip and entry[0] == edge:  # only the edge instant was asked for again
                key = entry_key(entry)
                if to_skip[key]:
                    to_skip[key] -= 1
                    continue
            new.append(entry)
        read.entries += new if room is None else new[:room]
        if room is not None and len(new) > room:
            read.more = True
            if read.unreturned is not None:  # the peeked entries were returned, not kept
                read.unreturned += len(new) - room
            return read
        if len(page.entries) < wanted or (room is not None and len(new) == room and not peek):
            return read
        edge = page.entries[-1][0]
        if page.entries[0][0] == edge:
            raise StuckPage(
                f"a whole page of {wanted} entries shares the timestamp {edge} ns "
                f"({stamp(edge).isoformat()}), so paging by time "
                "cannot step past it without losing or repeating entries; raise page_size "
                "above the number of entries at that instant (the server allows up to its "
                "max_entries_limit_per_query, 5000 by default) or narrow the query"
            )
        at_boundary = Counter(entry_key(entry) for entry in page.entries if entry[0] == edge)
        if direction == "forward":
            start_ns = edge
        else:
            end_ns = edge + 1


def entry_key(entry: Entry) -> tuple[Any, ...]:
    """What tells two entries apart: time, labels, line and metadata."""
    ts, labels, line, metadata = entry
    return ts, tuple(sorted(labels.items())), line, tuple(sorted(metadata.items()))


def in_time_order(entries: list[Entry], direction: str) -> list[Entry]:
    """Oldest first; at one instant by labels and metadata, a stream's entries in Loki's order.

    Loki groups its answer by stream, which loses how streams interleave at one instant, so
    those are ordered by their labels: the frame does not depend on the paging.
    """
    ordered = entries[::-1] if direction == "backward" else list(entries)
    ordered.sort(key=lambda e: (e[0], sorted(e[1].items()), sorted(e[3].items())))
    return ordered


def unreturned(stats: Any) -> int | None:
    """Lines Loki's stats counted after filtering minus those it returned (None if absent).

    Only a hint: it is the sole sign in an answer that ``limit`` cut it (case 8 of the
    recorded samples: 100 returned of 120), and stats summed over replicas may overcount.
    """
    summary = stats.get("summary") if isinstance(stats, dict) else None
    if not isinstance(summary, dict):
        return None
    matched, returned = summary.get("totalPostFilterLines"), summary.get("totalEntriesReturned")
    if not (isinstance(matched, int) and isinstance(returned, int)):
        return None
    return max(0, matched - returned)
