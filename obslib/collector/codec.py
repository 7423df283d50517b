r"""OTLP/HTTP bodies in and out: decoding export requests, encoding responses.

Pure functions over bytes and headers, so the HTTP server stays thin and every rejection rule
can be read in one place. Facts from the OTLP specification (opentelemetry-proto
``docs/specification.md``, section OTLP/HTTP):

- A request is an ``Export{Trace,Logs}ServiceRequest``, binary protobuf
  (``application/x-protobuf``) or JSON (``application/json``, ids as hex), optionally
  ``Content-Encoding: gzip``; the server must bound the body, also after decompression.
- Success is 200 with an ``Export...ServiceResponse``; every 4xx/5xx body is a
  ``google.rpc.Status`` (``Status.message`` for people, ``Status.code`` optional). Both are
  encoded like the request and sent with the request's content type.
- Undecodable or invalid data is 400. A body over the limit is 400 too, with a reason that says
  so: the spec's SHOULD is 413, the workbench's requirement is 400; exporters retry neither.

Beyond the specification, so that what is accepted is cheap to take and can be read back:

- a body holding more items (embedded messages; JSON objects and arrays) than the item budget is
  400 before it is decoded (see :mod:`obslib.collector.budget`);
- JSON nested deeper than the decoder goes, or holding a lone UTF-16 surrogate (``"\ud800"``,
  valid JSON but no Unicode text protobuf could hold), is 400;
- a span or log record the workbench's reader would skip is 400: the request is checked with
  the reader's own rule (:func:`obslib.sources.otlp.span_rows`), on the very JSON written to the
  file (an empty attribute key, a timestamp beyond 2^63-1 ns).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from obslib.collector.budget import json_items, protobuf_items
from obslib.sources.otlp import SPAN_ID_BYTES, TRACE_ID_BYTES, OtlpFormatError, span_rows
from obslib.sources.otlp_files import InvalidIdError, log_rows, request_from_json, request_to_json

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# Some clients send the unprefixed name; it is the same encoding.
_MEDIA_TYPES = {PROTOBUF: "protobuf", "application/protobuf": "protobuf", JSON: "json"}
_COMPRESSIONS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}  # deflate = zlib format

# Rejection reasons, as counted in the collector's stats.
MALFORMED_PROTOBUF = "malformed_protobuf"
MALFORMED_JSON = "malformed_json"
BAD_COMPRESSION = "bad_compression"
WRONG_SHAPE = "wrong_shape"
INVALID_ID = "invalid_id"
TOO_LARGE = "too_large"
TOO_MANY_ITEMS = "too_many_items"
INVALID_RECORD = "invalid_record"  # a span or log record the reader would skip
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
UNSUPPORTED_ENCODING = "unsupported_encoding"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
MALFORMED_HTTP = "malformed_http"  # broken HTTP: request line, headers, framing of the body
TIMEOUT = "request_timeout"
WRITE_FAILED = "write_failed"
INTERNAL_ERROR = "internal_error"

# google.rpc.Code values: INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED, DEADLINE_EXCEEDED, ...
_RPC_CODES = {400: 3, 404: 5, 405: 12, 408: 4, 413: 8, 414: 3, 415: 3, 431: 3, 500: 13}
_RPC_CODES |= {501: 12, 505: 12}
# A body of at most this many bytes per item fits the budget: real export requests hold about
# 20 bytes per item (a span with 8 attributes is ~17 messages in ~330 bytes).
BYTES_PER_ITEM = 16
_MESSAGE_CHARS = 1000  # longest Status message: parse errors may quote the body
# A JSON escape of a UTF-16 surrogate: only then can json.loads give a lone surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class Rejection(Exception):
    """A request the collector refuses: HTTP status, counted reason and a message for people."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        if len(message) > _MESSAGE_CHARS:
            message = message[:_MESSAGE_CHARS] + "..."
        # Text from the request may hold lone surrogates, which no UTF-8 encoder takes.
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        super().__init__(status, reason, message)
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Signal:
    """One OTLP signal the collector receives."""

    name: str  # "traces" or "logs"
    path: str  # URL path, e.g. /v1/traces
    list_key: str  # top-level JSON key, e.g. resourceSpans
    scope_key: str  # the list inside each resource entry, e.g. scopeSpans
    item_key: str  # the list inside each scope entry, e.g. spans
    item_name: str  # "spans" or "log records"
    request_type: Any
    response_type: Any
    rows: Callable[[list[Any], str], list[dict[str, Any]]]  # the reader's rule (and rows)

    def count(self, request: Any) -> int:
        """Spans or log records in ``request``."""
        if self.name == "traces":
            return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)


def signals() -> dict[str, Signal]:
    """The signals served, by URL path."""
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace

    return {
        "/v1/traces": Signal(
            "traces",
            "/v1/traces",
            "resourceSpans",
            "scopeSpans",
            "spans",
            "spans",
            trace.ExportTraceServiceRequest,
            trace.ExportTraceServiceResponse,
            span_rows,
        ),
        "/v1/logs": Signal(
            "logs",
            "/v1/logs",
            "resourceLogs",
            "scopeLogs",
            "logRecords",
            "log records",
            logs.ExportLogsServiceRequest,
            logs.ExportLogsServiceResponse,
            log_rows,
        ),
    }


def media_type(content_type: str | None) -> str:
    """The request's media type without parameters, lower case ("" if none)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def encoding_of(content_type: str | None) -> str | None:
    """``protobuf``, ``json``, or None for a content type OTLP/HTTP does not define."""
    return _MEDIA_TYPES.get(media_type(content_type))


def decompress(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """``body`` without its content coding, refusing output beyond ``limit`` bytes."""
    coding = (content_encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding not in _COMPRESSIONS:
        raise Rejection(
            415, UNSUPPORTED_ENCODING, f"Content-Encoding {coding!r} is not supported; use gzip"
        )
    out = bytearray()
    data = body
    while True:  # a gzip body may be several members one after another
        inflater = zlib.decompressobj(_COMPRESSIONS[coding])
        try:
            out += inflater.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise Rejection(400, BAD_COMPRESSION, f"the {coding} stream is corrupt: {exc}") from exc
        if len(out) > limit:
            raise Rejection(
                400, TOO_LARGE, f"the body exceeds {limit} bytes after {coding} decompression"
            )
        if not inflater.eof:
            raise Rejection(400, BAD_COMPRESSION, f"the {coding} stream is truncated")
        data = inflater.unused_data
        if coding != "gzip" or not data:
            return bytes(out)


def check_items(body: bytes, encoding: str, signal: Signal, budget: int) -> None:
    """Refuse a body (already decompressed) that holds more than ``budget`` items.

    Raises:
        Rejection: 400 ``too_many_items``.
    """
    if encoding == "protobuf":
        items = protobuf_items(body, signal.request_type.DESCRIPTOR, budget)
        what = "embedded messages"
    else:
        items = json_items(body)
        what = "JSON objects and arrays"
    if items > budget:
        raise Rejection(
            400,
            TOO_MANY_ITEMS,
            f"the body holds more than {budget} {what}, the collector's budget per request: "
            f"send the {signal.item_name} in smaller batches",
        )


def _json(body: bytes) -> Any:
    try:
        data = json.loads(body)
    except RecursionError:
        raise Rejection(400, MALFORMED_JSON, "body is JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejection(400, MALFORMED_JSON, f"body is not JSON: {exc}") from exc
    if _SURROGATE_ESCAPE.search(body):  # rare: then look at every string, keys too
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise Rejection(
                400,
                MALFORMED_JSON,
                f"body holds a lone UTF-16 surrogate ({exc.object[exc.start]!r}): a \\uD800-"
                "\\uDFFF escape must be half of a pair, else the string is not Unicode text",
            ) from exc
    return data


def decode_request(body: bytes, encoding: str, signal: Signal) -> Any:
    """Parse and validate an export request body (already decompressed).

    Raises:
        Rejection: 400 with the reason: malformed protobuf or JSON, wrong shape, invalid id.
    """
    if encoding == "protobuf":
        from google.protobuf.message import DecodeError

        try:
            request = signal.request_type.FromString(body)
        except DecodeError as exc:
            raise Rejection(
                400, MALFORMED_PROTOBUF, f"body is not a protobuf {_name(signal)}: {exc}"
            ) from exc
    else:
        data = _json(body)
        try:
            request = request_from_json(data, signal.request_type())
        except OtlpFormatError as exc:
            reason = INVALID_ID if isinstance(exc, InvalidIdError) else WRONG_SHAPE
            raise Rejection(400, reason, f"JSON {_name(signal)}: {exc}") from exc
    check_ids(request, signal)
    return request


def _name(signal: Signal) -> str:
    return signal.request_type.DESCRIPTOR.name


def file_json(request: Any, signal: Signal) -> dict[str, Any]:
    """``request`` as the file exporter's JSON, checked against the reader's rule.

    Resource and scope entries without spans (or log records) are left out: they carry nothing,
    and a request of a million of them would otherwise be kept a million times over.

    Raises:
        Rejection: 400 ``invalid_record``: a span or log record the reader would skip.
    """
    data = request_to_json(request)
    try:
        signal.rows(data.get(signal.list_key, []), "hex")
    except OtlpFormatError as exc:
        raise Rejection(
            400, INVALID_RECORD, f"{_name(signal)}: {exc}; such data cannot be stored or read"
        ) from exc
    kept = []
    for resource in data.get(signal.list_key, []):
        scopes = [s for s in resource.get(signal.scope_key, []) if s.get(signal.item_key)]
        if scopes:
            kept.append({**resource, signal.scope_key: scopes})
    return {signal.list_key: kept}


def _check(value: bytes, nbytes: int, where: str, required: bool) -> None:
    if not value and not required:
        return
    if len(value) != nbytes:
        raise Rejection(400, INVALID_ID, f"{where} has {len(value)} bytes, expected {nbytes}")
    if not any(value):
        raise Rejection(400, INVALID_ID, f"{where} is all zeros, which is not a valid id")


def check_ids(request: Any, signal: Signal) -> None:
    """Reject ids of the wrong length, and spans without a trace or span id."""
    if signal.name == "traces":
        for i, rs in enumerate(request.resource_spans):
            for j, ss in enumerate(rs.scope_spans):
                for k, span in enumerate(ss.spans):
                    at = f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]"
                    _check(span.trace_id, TRACE_ID_BYTES, f"{at}.traceId", True)
                    _check(span.span_id, SPAN_ID_BYTES, f"{at}.spanId", True)
                    _check(span.parent_span_id, SPAN_ID_BYTES, f"{at}.parentSpanId", False)
                    for n, link in enumerate(span.links):
                        _check(link.trace_id, TRACE_ID_BYTES, f"{at}.links[{n}].traceId", True)
                        _check(link.span_id, SPAN_ID_BYTES, f"{at}.links[{n}].spanId", True)
        return
    for i, rl in enumerate(request.resource_logs):
        for j, sl in enumerate(rl.scope_logs):
            for k, record in enumerate(sl.log_records):
                at = f"resourceLogs[{i}].scopeLogs[{j}].logRecords[{k}]"
                _check(record.trace_id, TRACE_ID_BYTES, f"{at}.traceId", False)
                _check(record.span_id, SPAN_ID_BYTES, f"{at}.spanId", False)


def _encode(message: Any, encoding: str) -> bytes:
    if encoding == "json":
        from google.protobuf.json_format import MessageToJson

        return MessageToJson(message, indent=None).encode("utf-8")
    return message.SerializeToString()


def success_body(signal: Signal, encoding: str) -> bytes:
    """The body of a 200: an empty Export...ServiceResponse (``partial_success`` unset)."""
    return _encode(signal.response_type(), encoding)


def status_body(rejection: Rejection, encoding: str) -> bytes:
    """The body of a 4xx/5xx: a ``google.rpc.Status`` carrying the rejection's message."""
    from google.rpc.status_pb2 import Status

    status = Status(code=_RPC_CODES.get(rejection.status, 2), message=rejection.message)
    return _encode(status, encoding)
