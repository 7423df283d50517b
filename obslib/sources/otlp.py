"""OTLP trace data (JSON or protobuf) to the span frame of :mod:`obslib.sources.frames`.

Tempo's trace-by-id JSON, the OpenTelemetry Collector's file exporter and OTLP/HTTP request
bodies all carry ``resourceSpans``; they differ in how ids are encoded. Trace-by-id JSON uses
base64 (the protobuf JSON mapping of bytes), files and search use hex. A 32-character hex id is
also valid base64, so ids are decoded by their length for the expected byte count, never by
trying one encoding and then the other.

:func:`span_rows` holds the one rule for what a span must be to become a row. The test collector
applies it before it accepts a request, the file reader to skip (and count) what it cannot read.
A span is malformed, together with its resource or scope when the fault is theirs, when:

- it, its resource, scope, status, an attribute or an attribute value is not a JSON object, or a
  list of them (``scopeSpans``, ``spans``, ``attributes``) is not a JSON list;
- an id is not hex (or base64) of 16 bytes for a trace id, 8 for a span id;
- ``startTimeUnixNano`` or ``endTimeUnixNano`` is not an integer in 0..2^63-1: the frame holds
  int64 nanoseconds (up to April 2262) while OTLP's fixed64 goes on to 2^64-1;
- an attribute key is missing, empty or not a string (OTLP requires a non-empty key; protobuf's
  JSON mapping leaves an empty key out), or a value does not decode (an ``intValue`` that is not
  an integer, nesting beyond Python's recursion limit).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd

from obslib.catalogue.hops import AGENT_TYPE, DESTINATION, TASK_ID
from obslib.sources.frames import SPAN_COLUMNS, conform, empty_frame

TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8
MAX_UNIX_NANO = 2**63 - 1
_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS = ("UNSET", "OK", "ERROR")
_HEX = set("0123456789abcdefABCDEF")
_ID_ENCODINGS = ("auto", "hex", "base64")
# What malformed JSON data raises on its way to a row.
MALFORMED = (AttributeError, TypeError, KeyError, ValueError, RecursionError, binascii.Error)

# skip(where, reason, items): one malformed part (e.g. "resourceSpans[0].scopeSpans[1]") was
# left out, with the number of items (spans, log records) it held.
Skip = Callable[[str, str, int], None]


class OtlpFormatError(ValueError):
    """The data does not have the OTLP shape; the message says which field."""


def decode_id(value: str | bytes | None, nbytes: int, encoding: str = "auto") -> str:
    """An OTLP trace or span id as lowercase hex, from hex, base64 or raw bytes ("" if empty).

    With ``encoding="auto"`` a string of ``2 * nbytes`` hex characters is hex and any other
    string must be the base64 of exactly ``nbytes`` bytes; ``hex`` and ``base64`` insist.
    """
    if not value:
        return ""
    if isinstance(value, bytes):
        if len(value) != nbytes:
            raise OtlpFormatError(f"id has {len(value)} bytes, expected {nbytes}")
        return value.hex()
    if not isinstance(value, str):
        raise OtlpFormatError(f"id {value!r} is not a string")
    is_hex = len(value) == 2 * nbytes and set(value) <= _HEX
    if encoding == "hex" and not is_hex:
        raise OtlpFormatError(f"id {value[:40]!r} is not {2 * nbytes} hex characters")
    if is_hex and encoding != "base64":
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise OtlpFormatError(
            f"id {value[:40]!r} is neither {2 * nbytes} hex characters nor base64"
        ) from exc
    if len(raw) != nbytes:
        raise OtlpFormatError(f"id {value!r} decodes to {len(raw)} bytes, expected {nbytes}")
    return raw.hex()


def unix_nano(value: Any, field: str) -> int:
    """An OTLP timestamp (an integer, or a decimal string as in JSON); absent is 0.

    Raises:
        OtlpFormatError: not an integer, or outside the frames' int64 (0..2^63-1).
    """
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise OtlpFormatError(f"{field} {value!r} is not an integer")
    try:
        nanos = int(value)
    except ValueError:
        raise OtlpFormatError(f"{field} {str(value)[:40]!r} is not an integer") from None
    if not 0 <= nanos <= MAX_UNIX_NANO:
        raise OtlpFormatError(f"{field} {nanos} is outside 0..2^63-1 unix nanoseconds")
    return nanos


def any_value(value: Mapping[str, Any]) -> Any:
    """The Python value of an OTLP JSON ``AnyValue`` (None for an empty one)."""
    if not isinstance(value, Mapping):
        raise OtlpFormatError(f"an AnyValue is a JSON object, not {type(value).__name__}")
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])  # int64 is a string in the JSON mapping
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values") or []]
    if "kvlistValue" in value:
        return attributes(value["kvlistValue"].get("values"))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(items: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    """OTLP JSON ``[{"key": ..., "value": {...}}]`` as a dict.

    Raises:
        OtlpFormatError: a key is missing, empty or not a string.
    """
    out = {}
    for item in items or ():
        key = item.get("key")
        if not key:
            raise OtlpFormatError("an attribute key is empty or missing, which OTLP forbids")
        if not isinstance(key, str):
            raise OtlpFormatError(f"attribute key {key!r} is not a string")
        out[key] = any_value(item.get("value") or {})
    return out


def _enum(value: Any, names: tuple[str, ...], prefix: str) -> str:
    if isinstance(value, int):
        return names[value] if 0 <= value < len(names) else names[0]
    if isinstance(value, str) and value:
        return value.removeprefix(prefix)
    return names[0]


def _span_row(
    span: Mapping[str, Any], resource: dict[str, Any], scope: str, encoding: str
) -> dict[str, Any]:
    def ident(key: str, nbytes: int) -> str:
        return decode_id(span.get(key) or "", nbytes, encoding)

    attrs = attributes(span.get("attributes"))
    status = span.get("status") or {}
    start = unix_nano(span.get("startTimeUnixNano"), "startTimeUnixNano")
    end = unix_nano(span.get("endTimeUnixNano"), "endTimeUnixNano")
    return {
        "trace_id": ident("traceId", TRACE_ID_BYTES),
        "span_id": ident("spanId", SPAN_ID_BYTES),
        "parent_span_id": ident("parentSpanId", SPAN_ID_BYTES),
        "name": span.get("name", ""),
        "kind": _enum(span.get("kind"), _KINDS, "SPAN_KIND_"),
        "service_name": str(resource.get("service.name", "")),
        "scope_name": scope,
        "start_ns": start,
        "end_ns": end,
        "duration_ns": end - start,
        "status_code": _enum(status.get("code"), _STATUS, "STATUS_CODE_"),
        "status_message": status.get("message", ""),
        "task_id": str(attrs.get(TASK_ID, "")),
        "agent_type": str(attrs.get(AGENT_TYPE, "")),
        "destination": str(attrs.get(DESTINATION, "")),
        "attributes": attrs,
        "resource_attributes": resource,
        "partial": False,
    }


def json_list(container: Any, key: str, where: str) -> list[Any]:
    """``container[key]`` as a list (absent or null is empty), for the part at ``where``.

    Raises:
        OtlpFormatError: ``container`` is not an object, or ``container[key]`` not a list.
    """
    if not isinstance(container, Mapping):
        raise OtlpFormatError(f"{where} is not a JSON object but {type(container).__name__}")
    items = container.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise OtlpFormatError(f"{where}.{key} is not a JSON list but {type(items).__name__}")
    return items


def count_items(container: Any, *keys: str) -> int:
    """How many items the list at ``container[keys[0]][*][keys[1]]...`` holds, 0 if not lists."""
    level = [container]
    for key in keys:
        level = [
            item
            for parent in level
            if isinstance(parent, Mapping) and isinstance(parent.get(key), list)
            for item in parent[key]
        ]
    return len(level)


def malformed(skip: Skip | None, where: str, exc: Exception, items: int) -> None:
    """Report the part at ``where``, holding ``items`` items, as malformed by ``exc``.

    Raises:
        OtlpFormatError: naming ``where``, when there is no ``skip`` to tell.
    """
    if isinstance(exc, RecursionError):
        reason = "nested too deeply"
    elif isinstance(exc, OtlpFormatError):
        reason = str(exc)
    else:
        reason = f"{type(exc).__name__}: {exc}"
    if skip is None:
        raise OtlpFormatError(f"{where}: {reason}") from exc
    skip(where, reason, items)


def span_rows(
    resource_spans: Iterable[Any], id_encoding: str = "auto", skip: Skip | None = None
) -> list[dict[str, Any]]:
    """Rows of the span frame from OTLP JSON ``resourceSpans`` (or Tempo v1 ``batches``).

    Args:
        resource_spans: the list of ``ResourceSpans`` objects.
        id_encoding: as in :func:`spans_from_json`.
        skip: told of each malformed span, or resource or scope with the spans it held, which is
            then left out. Without it the first malformed part raises.

    Raises:
        OtlpFormatError: without ``skip``, the first malformed part, named by its path.
    """
    if id_encoding not in _ID_ENCODINGS:
        raise ValueError(f"id_encoding must be auto, hex or base64, not {id_encoding!r}")
    rows: list[dict[str, Any]] = []
    for i, rs in enumerate(resource_spans):
        at = f"resourceSpans[{i}]"
        try:
            legacy = isinstance(rs, Mapping) and "scopeSpans" not in rs
            scopes = json_list(rs, "instrumentationLibrarySpans" if legacy else "scopeSpans", at)
            resource = attributes(
                json_list(rs.get("resource") or {}, "attributes", f"{at}.resource")
            )
        except MALFORMED as exc:
            malformed(skip, at, exc, count_items(rs, "scopeSpans", "spans"))
            continue
        for j, ss in enumerate(scopes):
            where = f"{at}.scopeSpans[{j}]"
            try:
                spans = json_list(ss, "spans", where)
                scope = (ss.get("scope") or ss.get("instrumentationLibrary") or {}).get("name", "")
            except MALFORMED as exc:
                malformed(skip, where, exc, count_items(ss, "spans"))
                continue
            for k, span in enumerate(spans):
                try:
                    rows.append(_span_row(span, resource, scope, id_encoding))
                except MALFORMED as exc:
                    malformed(skip, f"{where}.spans[{k}]", exc, 1)
    return rows


def span_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The span frame (SPAN_COLUMNS) of rows from :func:`span_rows`."""
    return conform(pd.DataFrame(rows), SPAN_COLUMNS) if rows else empty_frame(SPAN_COLUMNS)


def spans_from_json(
    resource_spans: Iterable[Mapping[str, Any]], id_encoding: str = "auto"
) -> pd.DataFrame:
    """Span frame from OTLP JSON ``resourceSpans`` (or Tempo v1 ``batches``).

    ``id_encoding`` is ``hex`` (collector files, OTLP/HTTP JSON), ``base64`` (Tempo trace by id)
    or ``auto`` (by length: hex when the length is twice the byte count).

    Raises:
        OtlpFormatError: a span is malformed (see the module docstring); the message names it.
    """
    return span_frame(span_rows(resource_spans, id_encoding))


def spans_from_proto(resource_spans: Iterable[Any]) -> pd.DataFrame:
    """Span frame from protobuf ``ResourceSpans`` messages (ids are raw bytes)."""
    from google.protobuf.json_format import MessageToDict

    # MessageToDict writes bytes as base64, the protobuf JSON mapping Tempo's by-id JSON uses.
    return spans_from_json([MessageToDict(rs) for rs in resource_spans], id_encoding="base64")
