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
# How selected fields come back (unscoped, some renamed) -> what they are.
_RETURNED = {
    "span:parentID": "parent",
    "kind": "kind",
    "status": "status",
    "statusMessage": "status_message",
    "instrumentation:name": "scope",
    "service.name": "service",
}
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


def _value(item: Mapping[str, Any]) -> str:
    value = item.get("value") or {}
    for key in ("stringValue", "intValue", "doubleValue", "boolValue"):
        if key in value:
            return str(value[key])
    return ""


def _span_row(trace_id: str, span: Mapping[str, Any]) -> dict[str, Any]:
    fields = {str(a.get("key")): _value(a) for a in span.get("attributes") or ()}
    named = {_RETURNED[k]: v for k, v in fields.items() if k in _RETURNED}
    attrs = {a: fields[a] for a in SPAN_ATTRIBUTES if a in fields}
    parent = named.get("parent", "").lower()
    start = int(span.get("startTimeUnixNano") or 0)
    end = start + int(span.get("durationNanos") or 0)
    service = named.get("service", "")
    return {
        "trace_id": trace_id,
        "span_id": str(span.get("spanID", "")).lower().rjust(16, "0"),
        "parent_span_id": "" if not parent or parent == _NO_PARENT else parent.rjust(16, "0"),
        "name": str(span.get("name", "")),
        "kind": named.get("kind", "unspecified").upper(),
        "service_name": service,
        "scope_name": named.get("scope", ""),
        "start_ns": start,
        "end_ns": end,
        "duration_ns": end - start,
        "status_code": named.get("status", "unset").upper(),
        "status_message": named.get("status_message", ""),
        "task_id": attrs.get(TASK_ID, ""),
        "agent_type": attrs.get(AGENT_TYPE, ""),
        "destination": attrs.get(DESTINATION, ""),
        "attributes": attrs,
        "resource_attributes": {"service.name": service} if service else {},
        "partial": False,
    }


def spans_from_select(body: Any) -> tuple[pd.DataFrame, list[TraceHit], int]:
    """Spans of a ``select()`` search answer, its traces, and the span copies collapsed.

    A span repeated across a trace's span sets is one span; a span twice in one span set is an
    identical copy (an exporter's retry) and counted.

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
        seen: set[str] = set()
        matched = 0
        for span_set in sets:
            matched = max(matched, int(span_set.get("matched") or 0))
            in_set: set[str] = set()
            for span in span_set.get("spans") or []:
                key = repr(sorted(span.items(), key=lambda kv: kv[0]))
                if key in in_set:
                    copies += 1
                    continue
                in_set.add(key)
                if key not in seen:
                    seen.add(key)
                    rows.append(_span_row(trace_id, span))
        mine = rows[len(rows) - len(seen) :]
        start = int(trace.get("startTimeUnixNano") or 0)
        ends = [r["end_ns"] for r in mine]
        starts = [r["start_ns"] for r in mine]
        duration_end = start + int(trace.get("durationMs") or 0) * 1_000_000
        hits.append(
            TraceHit(
                trace_id,
                min([start, *starts]) if start else min(starts, default=0),
                max([duration_end, *ends]),
                len(seen),
                matched,
            )
        )
    frame = conform(pd.DataFrame(rows), SPAN_COLUMNS) if rows else empty_frame(SPAN_COLUMNS)
    return frame, hits, copies
