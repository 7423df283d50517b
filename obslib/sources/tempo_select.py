"""Tempo's ``select()`` search answers as span rows: the query, and how Tempo 3.1 answers it.

A search with ``select()`` returns every span of a trace's span set with the fields asked for,
but not as trace by id does (``reference/samples/tempo-3.1``, third set): selected attributes come
back without their scope and some intrinsics renamed (``service.name``, ``kind``, ``status``,
``statusMessage``; ``span:parentID`` and ``instrumentation:name`` keep theirs), values lowercase,
roots with the parent ``0000000000000000``, trace ids without leading zeros, and ``matched``
above the spans returned as the only sign a span set was cut. :func:`spans_from_select` reads it
into the span frame; :mod:`obslib.sources.tempo_window` does the searching.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from obslib.catalogue.hops import (
    AGENT_TYPE,
    DESTINATION,
    ENVELOPE_TRACE_ID,
    SERVICE_PREFIX,
    TASK_ID,
    TASK_STATE,
)
from obslib.sources.frames import SPAN_COLUMNS, conform, empty_frame
from obslib.sources.tempo_frames import hex_trace_id

SPAN_ATTRIBUTES = (TASK_ID, AGENT_TYPE, DESTINATION, ENVELOPE_TRACE_ID, TASK_STATE)
INTRINSICS = (
    "span:name",
    "span:parentID",
    "span:kind",
    "span:status",
    "span:statusMessage",
    "instrumentation:name",
)
DEFAULT_FILTER = f'{{ resource.service.name =~ "{SERVICE_PREFIX}.*" }}'
# The names selected fields come back under (unscoped, some intrinsics renamed).
_RETURNED = (
    "span:parentID",
    "kind",
    "status",
    "statusMessage",
    "instrumentation:name",
    "service.name",
)
_NO_PARENT = "0" * 16


def select_query(traceql_filter: str = "") -> str:
    """The filter (default: every span of a Daedalus service) with every field the audit reads."""
    fields = [*INTRINSICS, "resource.service.name", *(f"span.{a}" for a in SPAN_ATTRIBUTES)]
    return f"{(traceql_filter or DEFAULT_FILTER).strip()} | select({', '.join(fields)})"


@dataclass(frozen=True)
class TraceHit:
    """One trace of a search answer: its id, time range and whether its span set was cut."""

    trace_id: str
    start_ns: int
    end_ns: int
    spans: int
    matched: int

    @property
    def cut(self) -> bool:
        """Whether Tempo returned fewer spans than matched (``spss`` too small)."""
        return self.matched > self.spans


_SCALARS = frozenset(("stringValue", "intValue", "doubleValue", "boolValue"))
_WANTED = frozenset((*_RETURNED, *SPAN_ATTRIBUTES))


def _fields(span: Mapping[str, Any]) -> dict[str, str]:
    """The span's fields the reader uses, as strings; a value of no scalar kind reads as ""."""
    fields = {}
    for item in span.get("attributes") or ():
        key = item.get("key")
        if key not in _WANTED:
            continue
        for kind, value in (item.get("value") or {}).items():
            if kind in _SCALARS:
                fields[key] = value if type(value) is str else str(value)
                break
        else:
            fields[key] = ""
    return fields


def _span_row(trace_id: str, span: Mapping[str, Any]) -> dict[str, Any]:
    fields = _fields(span)
    parent = fields.get("span:parentID", "").lower()
    start = int(span.get("startTimeUnixNano") or 0)
    end = start + int(span.get("durationNanos") or 0)
    service = fields.get("service.name", "")
    return {
        "trace_id": trace_id,
        "span_id": str(span.get("spanID", "")).lower().rjust(16, "0"),
        "parent_span_id": "" if not parent or parent == _NO_PARENT else parent.rjust(16, "0"),
        "name": str(span.get("name", "")),
        "kind": fields.get("kind", "unspecified").upper(),
        "service_name": service,
        "scope_name": fields.get("instrumentation:name", ""),
        "start_ns": start,
        "end_ns": end,
        "duration_ns": end - start,
        "status_code": fields.get("status", "unset").upper(),
        "status_message": fields.get("statusMessage", ""),
        "task_id": fields.get(TASK_ID, ""),
        "agent_type": fields.get(AGENT_TYPE, ""),
        "destination": fields.get(DESTINATION, ""),
        "attributes": {a: fields[a] for a in SPAN_ATTRIBUTES if a in fields},
        "resource_attributes": {"service.name": service} if service else {},
        "partial": False,
    }


def _is_among(span: Mapping[str, Any], spans: dict[Any, list[Mapping[str, Any]]]) -> bool:
    """Whether a span equal in every field to ``span`` is in ``spans`` (keyed by span id)."""
    return any(span == other for other in spans.get(span.get("spanID"), ()))


def spans_from_select(body: Any) -> tuple[pd.DataFrame, list[TraceHit], int]:
    """Spans of a ``select()`` search answer, its traces, and the span copies collapsed.

    A span repeated across a trace's span sets is one span; a span twice in one span set is an
    identical copy (an exporter's retry) and counted. Spans that share an id but differ in any
    field are all kept (the audit reports the duplicate id).

    Raises:
        ValueError: the body is not a search answer.
    """
    if not isinstance(body, dict) or not {"traces", "metrics"} & body.keys():
        raise ValueError("not a search response (no 'traces' or 'metrics')")
    rows: list[dict[str, Any]] = []
    hits: list[TraceHit] = []
    copies = 0
    for trace in body.get("traces") or []:
        trace_id = hex_trace_id(str(trace.get("traceID", "")))
        sets = trace.get("spanSets") or ([trace["spanSet"]] if trace.get("spanSet") else [])
        seen: dict[Any, list[Mapping[str, Any]]] = {}  # span id -> distinct spans of the trace
        mine: list[dict[str, Any]] = []
        matched = 0
        for span_set in sets:
            matched = max(matched, int(span_set.get("matched") or 0))
            in_set: dict[Any, list[Mapping[str, Any]]] = {}
            for span in span_set.get("spans") or []:
                if _is_among(span, in_set):
                    copies += 1
                    continue
                in_set.setdefault(span.get("spanID"), []).append(span)
                if not _is_among(span, seen):
                    seen.setdefault(span.get("spanID"), []).append(span)
                    mine.append(_span_row(trace_id, span))
        rows += mine
        start = int(trace.get("startTimeUnixNano") or 0)
        ends = [r["end_ns"] for r in mine]
        starts = [r["start_ns"] for r in mine]
        duration_end = start + int(trace.get("durationMs") or 0) * 1_000_000
        hits.append(
            TraceHit(
                trace_id,
                min([start, *starts]) if start else min(starts, default=0),
                max([duration_end, *ends]),
                len(mine),
                matched,
            )
        )
    frame = conform(pd.DataFrame(rows), SPAN_COLUMNS) if rows else empty_frame(SPAN_COLUMNS)
    return frame, hits, copies
