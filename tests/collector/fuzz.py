"""Seeded OTLP/HTTP bodies for fuzzing the collector: valid batches and hostile ones.

``BodyFuzzer(seed).next()`` gives one request to send: now and then a valid traces or logs
batch (whose spans or records must all be readable afterwards), otherwise random bytes, a valid
body truncated or mutated byte by byte, a JSON or protobuf body with hostile values put in at
random places (timestamps beyond int64, empty and surrogate keys, wrong types, deep nesting,
bad ids), gzip bombs and broken gzip, in both encodings. The same seed gives the same bodies.
Shared by ``tests/collector/test_fuzz.py`` and ``benchmarks/collector_fuzz.py``.
"""

from __future__ import annotations

import copy
import gzip
import json
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from obslib.sources.otlp_files import request_to_json

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_TEXT = 'abcxyz ._-/:ÄéßДж中文\U0001f600\u2028"\\\t\x00'
# Values that break a field: beyond int64 and fixed64, wrong types, lone surrogates, nesting.
_HOSTILE_JSON: list[Any] = [
    None,
    True,
    -1,
    0,
    2**63,
    2**64 - 1,
    2**64,
    10**30,
    1.5e308,
    "",
    "\ud800",
    "x\udfffy",
    "NaN",
    "-9223372036854775809",
    str(2**63),
    "0" * 5000,
    [],
    {},
    {"": 1},
    {"\ud800": "v"},
    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    {"stringValue": "v"},
    {"intValue": "12"},
    {"arrayValue": {"values": [{"intValue": "x"}]}},
    {"kvlistValue": {"values": [{"value": {"boolValue": True}}]}},
    "5b8efff798038103d269b633813fc60c",
    "eee19b7ec3c1b174",
    "zz",
]


@cache
def _gzipped(unit: bytes, times: int, head: bytes = b"", tail: bytes = b"") -> bytes:
    return gzip.compress(head + unit * times + tail, compresslevel=9)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field: tag, length (varints) and payload."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while n >= 0x80:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        return bytes([*out, n])

    return varint(number << 3 | 2) + varint(len(payload)) + payload


@dataclass(frozen=True)
class Case:
    """One request for the collector.

    Attributes:
        kind: how it was made, e.g. ``valid-traces`` or ``truncated``.
        path: ``/v1/traces`` or ``/v1/logs``.
        headers: Content-Type and perhaps Content-Encoding.
        body: the bytes to send.
        span_ids: for a valid traces batch, its span ids (they must be accepted and read back).
        log_bodies: for a valid logs batch, its records' body strings.
    """

    kind: str
    path: str
    headers: dict[str, str]
    body: bytes
    span_ids: frozenset[str] = field(default_factory=frozenset)
    log_bodies: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        """A valid batch, which must be accepted."""
        return self.kind.startswith("valid")


class BodyFuzzer:
    """Valid and hostile OTLP/HTTP bodies from one seed.

    Args:
        seed: the random seed.
        valid_share: the share of valid batches among the bodies.
    """

    def __init__(self, seed: int, valid_share: float = 0.1) -> None:
        self.rng = random.Random(seed)
        self.valid_share = valid_share
        self._hostile: list[Callable[[], Case]] = [
            self._random_bytes,
            self._truncated,
            self._byte_mutated,
            self._json_mutated,
            self._json_mutated,
            self._proto_mutated,
            self._proto_mutated,
            self._compression_trick,
        ]

    def next(self) -> Case:
        """The next request: a valid batch with probability ``valid_share``, else hostile."""
        if self.rng.random() < self.valid_share:
            return self.valid()
        return self.rng.choice(self._hostile)()

    # --- valid batches ---------------------------------------------------------------------

    def _text(self, n: int = 12) -> str:
        return "".join(self.rng.choices(_TEXT, k=self.rng.randint(1, n)))

    def _any_value(self, depth: int = 0) -> AnyValue:
        pick = self.rng.randrange(7 if depth < 3 else 5)
        if pick == 0:
            return AnyValue(string_value=self._text())
        if pick == 1:
            return AnyValue(int_value=self.rng.randint(-(2**63), 2**63 - 1))
        if pick == 2:
            return AnyValue(double_value=self.rng.choice([0.5, -1e300, 1e-300, 3.25]))
        if pick == 3:
            return AnyValue(bool_value=self.rng.random() < 0.5)
        if pick == 4:
            return AnyValue(bytes_value=self.rng.randbytes(self.rng.randint(0, 8)))
        if pick == 5:
            values = [self._any_value(depth + 1) for _ in range(self.rng.randint(0, 3))]
            return AnyValue(array_value=ArrayValue(values=values))
        return AnyValue(kvlist_value=KeyValueList(values=self._attributes(depth + 1, 3)))

    def _attributes(self, depth: int = 0, most: int = 5) -> list[KeyValue]:
        return [
            KeyValue(key=f"{self._text(6)}.{i}", value=self._any_value(depth))
            for i in range(self.rng.randint(0, most))
        ]

    def _span(self, trace_id: bytes, parent: bytes) -> Span:
        start = self.rng.randint(0, 2**63 - 1)
        return Span(
            trace_id=trace_id,
            span_id=self.rng.randbytes(8),
            parent_span_id=parent,
            name=self._text(20),
            kind=self.rng.randrange(6),
            start_time_unix_nano=start,
            end_time_unix_nano=self.rng.choice([0, start, self.rng.randint(0, 2**63 - 1)]),
            attributes=self._attributes(),
            events=[
                Span.Event(time_unix_nano=self.rng.randint(0, 2**64 - 1), name=self._text())
                for _ in range(self.rng.randint(0, 2))
            ],
            links=[
                Span.Link(trace_id=self.rng.randbytes(16), span_id=self.rng.randbytes(8))
                for _ in range(self.rng.randint(0, 2))
            ],
            status=Status(code=self.rng.randrange(3), message=self._text()),
        )

    def traces_request(self) -> ExportTraceServiceRequest:
        """A valid traces request with random spans."""
        resource_spans = []
        for _ in range(self.rng.randint(1, 3)):
            trace_id = self.rng.randbytes(16)
            parent = b""
            scopes = []
            for _ in range(self.rng.randint(1, 2)):
                spans = []
                for _ in range(self.rng.randint(1, 6)):
                    spans.append(self._span(trace_id, parent))
                    parent = spans[-1].span_id if self.rng.random() < 0.7 else b""
                scope = InstrumentationScope(name=self._text())
                scopes.append(ScopeSpans(scope=scope, spans=spans))
            service = KeyValue(key="service.name", value=AnyValue(string_value="svc"))
            resource = Resource(attributes=[service, *self._attributes()])
            resource_spans.append(ResourceSpans(resource=resource, scope_spans=scopes))
        return ExportTraceServiceRequest(resource_spans=resource_spans)

    def logs_request(self) -> ExportLogsServiceRequest:
        """A valid logs request with random records (bodies are distinct strings)."""
        records = [
            LogRecord(
                time_unix_nano=self.rng.randint(0, 2**63 - 1),
                severity_number=self.rng.randrange(25),
                body=AnyValue(string_value=f"record {self.rng.getrandbits(64):x}"),
                attributes=self._attributes(),
                trace_id=self.rng.choice([b"", self.rng.randbytes(16)]),
            )
            for _ in range(self.rng.randint(1, 6))
        ]
        return ExportLogsServiceRequest(
            resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=records)])]
        )

    def _encode(self, request: Any) -> tuple[bytes, str]:
        if self.rng.random() < 0.5:
            return request.SerializeToString(), PROTOBUF
        text = json.dumps(request_to_json(request), ensure_ascii=self.rng.random() < 0.5)
        return text.encode(), JSON

    def _compress(self, body: bytes, headers: dict[str, str]) -> bytes:
        if self.rng.random() < 0.3:
            headers["Content-Encoding"] = "gzip"
            return gzip.compress(body, compresslevel=1)
        return body

    def valid(self) -> Case:
        """A valid traces batch (or, one time in four, a logs batch)."""
        if self.rng.random() < 0.25:
            logs = self.logs_request()
            body, content_type = self._encode(logs)
            headers = {"Content-Type": content_type}
            bodies = tuple(
                r.body.string_value
                for rl in logs.resource_logs
                for sl in rl.scope_logs
                for r in sl.log_records
            )
            return Case(
                "valid-logs", "/v1/logs", headers, self._compress(body, headers), log_bodies=bodies
            )
        request = self.traces_request()
        body, content_type = self._encode(request)
        headers = {"Content-Type": content_type}
        ids = frozenset(
            s.span_id.hex()
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for s in ss.spans
        )
        return Case("valid-traces", "/v1/traces", headers, self._compress(body, headers), ids)

    # --- hostile bodies --------------------------------------------------------------------

    def _path(self) -> str:
        return "/v1/logs" if self.rng.random() < 0.2 else "/v1/traces"

    def _base(self, path: str) -> tuple[bytes, str]:
        request = self.logs_request() if path == "/v1/logs" else self.traces_request()
        return self._encode(request)

    def _random_bytes(self) -> Case:
        body = self.rng.randbytes(self.rng.choice([0, 1, 2, 10, 100, 2000]))
        content_type = self.rng.choice([PROTOBUF, JSON])
        return Case("random-bytes", self._path(), {"Content-Type": content_type}, body)

    def _truncated(self) -> Case:
        path = self._path()
        body, content_type = self._base(path)
        headers = {"Content-Type": content_type}
        body = self._compress(body, headers)
        return Case("truncated", path, headers, body[: self.rng.randrange(len(body))])

    def _byte_mutated(self) -> Case:
        path = self._path()
        body, content_type = self._base(path)
        headers = {"Content-Type": content_type}
        data = bytearray(self._compress(body, headers))
        for _ in range(self.rng.randint(1, 8)):
            at = self.rng.randrange(len(data))
            pick = self.rng.randrange(4)
            if pick == 0:
                data[at] ^= 1 << self.rng.randrange(8)
            elif pick == 1:
                data[at] = self.rng.choice([0x00, 0x7F, 0x80, 0xFF, ord("{"), ord('"'), ord("\\")])
            elif pick == 2:
                data[at:at] = self.rng.randbytes(self.rng.randint(1, 16))
            else:
                del data[at : at + self.rng.randint(1, 16)]
        return Case("byte-mutated", path, headers, bytes(data))

    def _json_mutated(self) -> Case:
        path = self._path()
        request = self.logs_request() if path == "/v1/logs" else self.traces_request()
        data = request_to_json(request)
        for _ in range(self.rng.randint(1, 3)):
            self._mutate_json(data)
        # ensure_ascii keeps lone surrogates as escapes, the way a hostile client sends them.
        body = json.dumps(data, ensure_ascii=True).encode()
        headers = {"Content-Type": JSON}
        return Case("json-mutated", path, headers, self._compress(body, headers))

    def _mutate_json(self, node: Any) -> None:
        # Walk down to a random container, then replace, delete or rename one of its entries.
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                return
            key = self.rng.choice(keys)
            child = node[key]
            if isinstance(child, dict | list) and child and self.rng.random() < 0.75:
                node = child
                continue
            pick = self.rng.randrange(4)
            if pick == 0 and isinstance(node, dict):
                del node[key]
            elif pick == 1 and isinstance(node, dict):
                node[self.rng.choice(["", "\ud800", "key", "traceId", "value"])] = node.pop(key)
            else:
                node[key] = copy.deepcopy(self.rng.choice(_HOSTILE_JSON))  # never shared
            return

    def _proto_mutated(self) -> Case:
        request = self.traces_request()
        spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        span = self.rng.choice(spans)
        pick = self.rng.randrange(9)
        if pick == 0:
            span.start_time_unix_nano = self.rng.randint(2**63, 2**64 - 1)
        elif pick == 1:
            span.end_time_unix_nano = self.rng.randint(2**63, 2**64 - 1)
        elif pick == 2:
            span.attributes.append(KeyValue(key="", value=AnyValue(int_value=1)))
        elif pick == 3:
            span.span_id = self.rng.choice([b"", b"\x00" * 8, self.rng.randbytes(7)])
        elif pick == 4:
            span.trace_id = self.rng.choice([b"", b"\x00" * 16, self.rng.randbytes(17)])
        elif pick == 5:  # on the wire: protobuf refuses to build this deep, so splice it in
            value = AnyValue(int_value=1).SerializeToString()
            for _ in range(self.rng.randint(40, 120)):
                value = _field(5, _field(1, value))  # AnyValue.array_value.values[0]
            deep = span.SerializeToString() + _field(9, _field(1, b"deep") + _field(2, value))
            extra = _field(1, _field(2, _field(2, deep)))  # resource_spans.scope_spans.spans
        elif pick == 6:
            resource = request.resource_spans[0].resource
            resource.attributes.append(KeyValue(key="", value=AnyValue(string_value="v")))
        elif pick == 7:
            span.parent_span_id = self.rng.randbytes(self.rng.choice([1, 9, 16]))
        else:
            request.resource_spans.extend(ResourceSpans() for _ in range(self.rng.randint(1, 500)))
        body = request.SerializeToString() + (extra if pick == 5 else b"")  # appends the span
        if pick == 8 or self.rng.random() < 0.3:
            body += bytes([0x0A, 0x00]) * self.rng.randint(0, 20_000)  # empty ResourceSpans
        headers = {"Content-Type": PROTOBUF}
        return Case("proto-mutated", "/v1/traces", headers, self._compress(body, headers))

    def _compression_trick(self) -> Case:
        path = self._path()
        body, content_type = self._base(path)
        headers = {"Content-Type": content_type, "Content-Encoding": "gzip"}
        pick = self.rng.randrange(5)
        if pick == 0:  # inflates far beyond any cap
            body = _gzipped(b"\x00", self.rng.choice([10**6, 4 * 10**7]))
        elif pick == 1:  # many empty messages (or JSON objects), within the cap
            times = self.rng.choice([10**5, 10**6, 8 * 2**20])
            if content_type == PROTOBUF:
                body = _gzipped(b"\x0a\x00", times)
            else:
                body = _gzipped(b"{},", times // 3, b'{"resourceSpans":[', b"{}]}")
        elif pick == 2:  # two members, the second one cut
            body = gzip.compress(body) + gzip.compress(body)[:-5]
        elif pick == 3:  # deflate declared, gzip sent (or the reverse)
            headers["Content-Encoding"] = "deflate"
            body = gzip.compress(body) if self.rng.random() < 0.5 else zlib.compress(body)
        else:  # not compressed at all
            pass
        return Case("compression-trick", path, headers, body)
