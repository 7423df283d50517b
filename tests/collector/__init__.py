"""Helpers for the collector's hostile-input tests: raw HTTP exchanges and request bodies."""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import socket
import time
from dataclasses import dataclass
from typing import Any

from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


@dataclass(frozen=True)
class Reply:
    """One HTTP response as read off the socket."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        """The Content-Type header ("" if none)."""
        return self.headers.get("Content-Type", "")

    def status_message(self) -> str:
        """The google.rpc.Status message of an error reply, decoded per its content type.

        Raises:
            AssertionError: the body is not a Status in JSON or protobuf.
        """
        if self.content_type == JSON:
            data = json.loads(self.body)
            assert isinstance(data, dict) and isinstance(data.get("message"), str), self.body
            return data["message"]
        assert self.content_type == PROTOBUF, (self.content_type, self.body[:200])
        status = Status.FromString(self.body)
        assert status.message, self.body
        return status.message


def read_reply(sock: socket.socket) -> Reply | None:
    """The next HTTP response on ``sock``, or None when it closed without one."""
    response = http.client.HTTPResponse(sock)
    try:
        response.begin()
    except (http.client.RemoteDisconnected, ConnectionResetError):
        return None
    return Reply(response.status, dict(response.getheaders()), response.read())


def exchange(
    address: tuple[str, int], *parts: bytes, pause_s: float = 0.0, timeout_s: float = 5.0
) -> Reply | None:
    """Send ``parts`` on a new connection (``pause_s`` apart) and read one response.

    A send the server cut short is not an error: its answer is read all the same.
    """
    with socket.create_connection(address, timeout=timeout_s) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for part in parts:
                sock.sendall(part)
                if pause_s:
                    time.sleep(pause_s)
        return read_reply(sock)


def post_head(
    path: str = "/v1/traces", content_type: str = PROTOBUF, *headers: str, close: bool = True
) -> bytes:
    """The request line and headers of a POST, with ``headers`` ("Name: value") added."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {content_type}", *headers]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def proto_request(rng: random.Random, n: int, attributes: int = 1) -> ExportTraceServiceRequest:
    """A valid request of ``n`` spans of one trace with random ids (drawn from ``rng``)."""
    trace_id = rng.randbytes(16)
    spans = [
        Span(
            trace_id=trace_id,
            span_id=rng.randbytes(8),
            name=f"step-{i}",
            kind=Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=1_700_000_000_000_000_000 + i,
            end_time_unix_nano=1_700_000_000_000_001_000 + i,
            attributes=[
                KeyValue(key=f"k{j}", value=AnyValue(int_value=i * j)) for j in range(attributes)
            ],
        )
        for i in range(n)
    ]
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
    )


def span_ids(request: ExportTraceServiceRequest) -> set[str]:
    """The hex span ids in ``request``."""
    return {
        span.span_id.hex()
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    }


def json_body(span: dict[str, Any] | None = None, **overrides: Any) -> bytes:
    """An OTLP/HTTP JSON traces body of one span (``span``, or a valid one with ``overrides``)."""
    if span is None:
        span = {
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b174",
            "name": "acp.session.prompt",
            "startTimeUnixNano": "1544712660000000000",
            "endTimeUnixNano": "1544712661000000000",
            **overrides,
        }
    body = {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "t"}, "spans": [span]}]}]}
    return json.dumps(body).encode()
