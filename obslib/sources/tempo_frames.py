"""Tempo answers as frames: pure parsers of search, trace-by-id and tag bodies.

Search carries hex ids, trace-by-id JSON base64 ids (see :mod:`obslib.sources.otlp`); both end
up as lowercase hex. A body of another shape raises :class:`TempoFormatError`, which
:class:`~obslib.sources.tempo.TempoSource` reports as ``MalformedResponse``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from numbers import Real
from typing import Any

import pandas as pd

from obslib.sources.frames import TRACE_SUMMARY_COLUMNS, conform, empty_frame
from obslib.sources.otlp import OtlpFormatError, spans_from_json

NO_ROOT = "<root span not yet received>"  # Tempo's placeholder root service name
TAG_VALUE_COLUMNS: dict[str, str] = {"value": "str", "type": "str"}  # rows of tag_values()
_HEX = frozenset("0123456789abcdef")


class TempoFormatError(ValueError):
    """A Tempo body does not have the documented shape; the message says what is wrong."""


def hex_trace_id(value: str) -> str:
    """``value`` as 32 lowercase hex characters, left-padded with zeros as Tempo does.

    Raises:
        ValueError: ``value`` is not 1 to 32 hexadecimal characters.
    """
    text = value.strip().lower() if isinstance(value, str) else ""
    if not text or len(text) > 32 or not set(text) <= _HEX:
        raise ValueError(f"{value!r} is not a trace id (1 to 32 hexadecimal characters)")
    return text.rjust(32, "0")


def unix_seconds(value: datetime | float | int, *, round_up: bool = False) -> int:
    """Whole unix seconds (Tempo's time unit) of a datetime or a number of seconds.

    Naive datetimes are taken as UTC. Fractions are floored, or ceiled with ``round_up`` so a
    window never shrinks.
    """
    if isinstance(value, datetime):
        seconds = (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    elif isinstance(value, Real) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"expected a datetime or unix seconds, got {type(value).__name__}")
    return math.ceil(seconds) if round_up else math.floor(seconds)


def _typed(rows: list[dict[str, Any]], columns: dict[str, str]) -> pd.DataFrame:
    return conform(pd.DataFrame(rows), columns) if rows else empty_frame(columns)


def _summary_row(trace: Any) -> dict[str, Any]:
    if not isinstance(trace, dict) or not isinstance(trace.get("traceID"), str):
        raise TempoFormatError("a search result has no traceID")
    try:
        trace_id = hex_trace_id(trace["traceID"])  # search drops leading zeros
    except ValueError as exc:
        raise TempoFormatError(str(exc)) from exc
    service = trace.get("rootServiceName") or ""
    name = trace.get("rootTraceName") or ""
    has_root = bool(service) and bool(name) and service != NO_ROOT
    # Tempo writes proto3 JSON, which omits zero values: a rooted trace shorter than 1 ms
    # has no durationMs, so only a missing root makes the duration unknown.
    duration = float(trace.get("durationMs") or 0) if has_root else math.nan
    sets = trace.get("spanSets") or ([trace["spanSet"]] if trace.get("spanSet") else [])
    if not isinstance(sets, list) or not all(isinstance(s, dict) for s in sets):
        raise TempoFormatError(f"trace {trace_id}: spanSets is not a list of objects")
    span_ids = [
        str(span.get("spanID", "")).lower().rjust(16, "0")
        for s in sets
        for span in s.get("spans") or []
    ]
    return {
        "trace_id": trace_id,
        "root_service_name": service if has_root else "",
        "root_trace_name": name if has_root else "",
        "has_root": has_root,
        "start_ns": int(trace.get("startTimeUnixNano") or 0),
        "duration_ms": duration,
        "matched": sum(int(s.get("matched") or 0) for s in sets),
        "span_ids": list(dict.fromkeys(span_ids)),
    }


def summaries_from_search(body: Any) -> pd.DataFrame:
    """Trace-summary frame (``TRACE_SUMMARY_COLUMNS``) from a ``/api/search`` JSON body."""
    if not isinstance(body, dict) or not {"traces", "metrics"} & body.keys():
        raise TempoFormatError("not a search response (no 'traces' or 'metrics')")
    traces = body.get("traces", [])  # omitted when nothing matched
    if not isinstance(traces, list):
        raise TempoFormatError("'traces' is not a list")
    try:
        rows = [_summary_row(trace) for trace in traces]
    except TempoFormatError:
        raise
    except (AttributeError, TypeError, ValueError) as exc:  # e.g. a number that is not one
        raise TempoFormatError(f"unexpected search result field: {exc}") from exc
    return _typed(rows, TRACE_SUMMARY_COLUMNS)


def trace_frame(body: Any, api: str = "v2") -> pd.DataFrame | None:
    """Span frame of a trace-by-id JSON body, or None when the body says there is no trace.

    ``api`` is ``v2`` (``{"trace": {"resourceSpans": [...]}}``, possibly with
    ``"status": "PARTIAL"`` and a ``message``) or ``v1`` (``{"batches": [...]}``). A partial
    trace has ``partial`` True on every row and ``attrs["partial_message"]``.
    """
    if not isinstance(body, dict):
        raise TempoFormatError("trace body is not a JSON object")
    if api == "v2":
        trace = body.get("trace")
        if not isinstance(trace, dict):
            raise TempoFormatError("no 'trace' object in the v2 trace body")
        resource_spans = trace.get("resourceSpans")
        status = body.get("status") or "COMPLETE"
    elif api == "v1":
        if "batches" not in body:
            raise TempoFormatError("no 'batches' in the v1 trace body")
        resource_spans, status = body["batches"], "COMPLETE"
    else:
        raise ValueError(f"api must be v1 or v2, not {api!r}")
    if status not in ("COMPLETE", "PARTIAL"):
        raise TempoFormatError(f"unknown trace status {status!r}")
    if resource_spans is None:
        return None
    if not isinstance(resource_spans, list):
        raise TempoFormatError("resourceSpans is not a list")
    try:
        frame = spans_from_json(resource_spans, id_encoding="base64")
    except (OtlpFormatError, TypeError, ValueError) as exc:
        raise TempoFormatError(str(exc)) from exc
    if frame.empty:
        return None
    partial = status == "PARTIAL"
    frame["partial"] = partial
    frame.attrs["partial"] = partial
    frame.attrs["partial_message"] = str(body.get("message") or "") if partial else ""
    return frame


def tags_from_body(body: Any) -> dict[str, list[str]]:
    """Tag names by scope from a ``/api/v2/search/tags`` JSON body."""
    if not isinstance(body, dict) or not {"scopes", "metrics"} & body.keys():
        raise TempoFormatError("not a tags response (no 'scopes' or 'metrics')")
    scopes = body.get("scopes", [])  # omitted when empty
    if not isinstance(scopes, list) or not all(isinstance(s, dict) and "name" in s for s in scopes):
        raise TempoFormatError("'scopes' is not a list of named scopes")
    return {s["name"]: sorted(s.get("tags") or []) for s in scopes}


def tag_values_from_body(body: Any) -> pd.DataFrame:
    """``TAG_VALUE_COLUMNS`` frame from a ``/api/v2/search/tag/<tag>/values`` JSON body."""
    if not isinstance(body, dict) or not {"tagValues", "metrics"} & body.keys():
        raise TempoFormatError("not a tag values response (no 'tagValues' or 'metrics')")
    values = body.get("tagValues", [])  # omitted when empty
    if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
        raise TempoFormatError("'tagValues' is not a list of typed values (v1 answers strings)")
    return _typed(
        [{"value": str(v.get("value", "")), "type": str(v.get("type", ""))} for v in values],
        TAG_VALUE_COLUMNS,
    )
