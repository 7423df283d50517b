"""What a source could not get: the data coverage every report shows before its findings.

A source that reads a window (spans from Tempo or OTLP files, log lines from Loki) returns a
:class:`Fetched`: its frame and a :class:`Coverage` naming every way the frame falls short of
"everything in the window". Some gaps only inform (copies collapsed, rows outside the window
dropped); the others make the data *partial*, and a verdict drawn from partial data is never a
pass (:func:`verdict_on`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from obslib.verdict import Verdict

# Gap kinds that make the data partial: something in the window was not read.
CUT_BY_LIMIT = "cut_by_limit"  # a cap stopped the read while more matched
NOT_SEARCHABLE = "not_searchable"  # part of the window the backend cannot search (yet)
UNREADABLE = "unreadable"  # records the reader had to skip
TRUNCATED = "truncated"  # the backend cut a result (a span set, a trace) and it stayed cut
PARTIAL_KINDS = frozenset({CUT_BY_LIMIT, NOT_SEARCHABLE, UNREADABLE, TRUNCATED})
# Gap kinds that only inform: the frame is whole, and the report says what was tidied.
OUTSIDE_WINDOW = "outside_window"  # returned by the backend, outside the window: dropped
REDELIVERED = "redelivered"  # identical copies (an exporter's retry) collapsed into one
REFETCHED = "refetched"  # cut or unsearchable in search, fetched whole by id
NO_MATCH = "no_match"  # the selector matched nothing at all (no stream, no trace)
INFO_KINDS = frozenset({OUTSIDE_WINDOW, REDELIVERED, REFETCHED, NO_MATCH})


@dataclass(frozen=True)
class Gap:
    """One way a read falls short (or was tidied): what, how many, in plain words."""

    kind: str
    count: int  # traces, spans or log lines concerned; 0 when the backend cannot tell
    detail: str

    def __post_init__(self) -> None:
        if self.kind not in PARTIAL_KINDS | INFO_KINDS:
            raise ValueError(f"unknown gap kind {self.kind!r}")

    @property
    def partial(self) -> bool:
        """Whether this gap means something in the window was not read."""
        return self.kind in PARTIAL_KINDS


@dataclass(frozen=True)
class Coverage:
    """What one read covered: its source, the window asked for and read, its gaps."""

    source: str  # where: "Tempo http://tempo:3200", "OTLP file traces.jsonl", ...
    what: str  # "spans" or "log lines"
    items: int  # rows in the frame
    requested: tuple[pd.Timestamp, pd.Timestamp] | None = None
    covered: tuple[pd.Timestamp, pd.Timestamp] | None = None  # None: the whole request
    gaps: tuple[Gap, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)  # how it was read, for the reader

    @property
    def partial(self) -> bool:
        """Whether anything in the requested window was not read."""
        return any(g.partial for g in self.gaps)

    @property
    def matched_nothing(self) -> bool:
        """Whether the read found nothing to read (an empty frame that is no evidence)."""
        return self.items == 0 or any(g.kind == NO_MATCH for g in self.gaps)

    def with_gaps(self, *gaps: Gap, items: int | None = None) -> Coverage:
        """This coverage with more gaps (those counting nothing are left out)."""
        kept = tuple(g for g in gaps if g.count or g.kind in (NO_MATCH, NOT_SEARCHABLE))
        return replace(self, gaps=self.gaps + kept, items=self.items if items is None else items)

    def headline(self) -> str:
        """One line: complete or partial, and why."""
        state = "partial" if self.partial else "complete"
        why = "; ".join(g.detail for g in self.gaps if g.partial)
        return f"{self.source}: {self.items:,} {self.what}, {state}" + (f" ({why})" if why else "")

    def table(self) -> pd.DataFrame:
        """One row per gap (``kind``, ``count``, ``partial``, ``detail``) for the report."""
        rows = [
            {"kind": g.kind, "count": g.count, "partial": g.partial, "detail": g.detail}
            for g in self.gaps
        ]
        return pd.DataFrame(rows, columns=["kind", "count", "partial", "detail"])

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form for a results file."""

        def window(w: tuple[pd.Timestamp, pd.Timestamp] | None) -> dict[str, str] | None:
            return None if w is None else {"start": w[0].isoformat(), "end": w[1].isoformat()}

        return {
            "source": self.source,
            "what": self.what,
            "items": self.items,
            "partial": self.partial,
            "requested": window(self.requested),
            "covered": window(self.covered),
            "gaps": [
                {"kind": g.kind, "count": g.count, "partial": g.partial, "detail": g.detail}
                for g in self.gaps
            ],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Fetched:
    """A source's frame and what it could not get."""

    frame: pd.DataFrame
    coverage: Coverage


def verdict_on(verdict: Verdict, coverages: Iterable[Coverage]) -> tuple[Verdict, list[str]]:
    """``verdict`` as the data allows it, and why it was lowered.

    A pass on partial data becomes inconclusive: what was not read could hold the break. A
    fail stands (what was found is real) but keeps the reason, so the report says so.
    """
    reasons = [c.headline() for c in coverages if c.partial]
    if reasons and verdict is Verdict.PASS:
        return Verdict.INCONCLUSIVE, reasons
    return verdict, reasons
