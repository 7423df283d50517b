"""OTLP trace data (JSON or protobuf) to the span frame of :mod:`obslib.sources.frames`.

Tempo's trace-by-id JSON, the OpenTelemetry Collector's file exporter and OTLP/HTTP request
bodies all carry ``resourceSpans``; they differ in how ids are encoded. Trace-by-id JSON uses
base64 (the protobuf JSON mapping of bytes), files and search use hex. A 32-character hex id is
also valid base64, so ids are decoded by their length for the expected byte count, never by
trying one encoding and then the other.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from obslib.catalogue.hops import AGENT_TYPE, DESTINATION, TASK_ID
from obslib.sources.frames import SPAN_COLUMNS, conform, empty_frame

TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8
_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS = ("UNSET", "OK", "ERROR")
_HEX = set("0123456789abcdefABCDEF")


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
    is_hex = len(value) == 2 * nbytes and set(value) <= _HEX
    if encoding == "hex" and not is_hex:
        raise OtlpFormatError(f"id {value!r} is not {2 * nbytes} hex characters")
    if is_hex and encoding != "base64":
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise OtlpFormatError(
            f"id {value!r} is neither {2 * nbytes} hex characters nor base64"
        ) from exc
    if len(raw) != nbytes:
        raise OtlpFormatError(f"id {value!r} decodes to {len(raw)} bytes, expected {nbytes}")
    return raw.hex()


def any_value(value: Mapping[str, Any]) -> Any:
    """The Python value of an OTLP JSON ``AnyValue``."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])  # int64 is a string in the JSON mapping
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return attributes(value["kvlistValue"].get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(items: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    """OTLP JSON ``[{"key": ..., "value": {...}}]`` as a dict."""
    return {item["key"]: any_value(item.get("value", {})) for item in items or ()}


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
    start, end = int(span.get("startTimeUnixNano") or 0), int(span.get("endTimeUnixNano") or 0)
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


def spans_from_json(
    resource_spans: Iterable[Mapping[str, Any]], id_encoding: str = "auto"
) -> pd.DataFrame:
    """Span frame from OTLP JSON ``resourceSpans`` (or Tempo v1 ``batches``).

    ``id_encoding`` is ``hex`` (collector files, OTLP/HTTP JSON), ``base64`` (Tempo trace by id)
    or ``auto`` (by length: hex when the length is twice the byte count).
    """
    if id_encoding not in ("auto", "hex", "base64"):
        raise ValueError(f"id_encoding must be auto, hex or base64, not {id_encoding!r}")
    rows = []
    try:
        for rs in resource_spans:
            resource = attributes((rs.get("resource") or {}).get("attributes"))
            scopes = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []
            for ss in scopes:
                scope = (ss.get("scope") or ss.get("instrumentationLibrary") or {}).get("name", "")
                for span in ss.get("spans") or []:
                    rows.append(_span_row(span, resource, scope, id_encoding))
    except (AttributeError, TypeError, KeyError, binascii.Error) as exc:
        raise OtlpFormatError(f"not OTLP resourceSpans: {exc}") from exc
    return conform(pd.DataFrame(rows), SPAN_COLUMNS) if rows else empty_frame(SPAN_COLUMNS)


def spans_from_proto(resource_spans: Iterable[Any]) -> pd.DataFrame:
    """Span frame from protobuf ``ResourceSpans`` messages (ids are raw bytes)."""
    from google.protobuf.json_format import MessageToDict

    # MessageToDict writes bytes as base64, the protobuf JSON mapping Tempo's by-id JSON uses.
    return spans_from_json([MessageToDict(rs) for rs in resource_spans], id_encoding="base64")
