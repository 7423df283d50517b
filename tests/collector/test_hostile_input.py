"""The collector against hostile input: framing tricks, unreadable records, bad JSON text,
decompression bombs within the cap, slow clients and broken HTTP (issue 10, items 1 to 5).

Every refusal is a 4xx with a ``google.rpc.Status`` body and leaves the collector serving, the
data it accepted before and after intact and the traces file readable.
"""

from __future__ import annotations

import gzip
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from obslib.collector import OtlpCollector
from obslib.sources.otlp_files import read_logs, read_spans, request_to_json
from tests.collector import (
    JSON,
    PROTOBUF,
    Reply,
    exchange,
    json_body,
    post_head,
    proto_request,
    read_reply,
    span_ids,
)

LIMIT = 64 * 1024


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[OtlpCollector]:
    with OtlpCollector(tmp_path / "otlp", max_body_bytes=LIMIT, timeout_s=5.0) as c:
        yield c


def _post(c: OtlpCollector, body: bytes, content_type: str, **headers: str) -> requests.Response:
    return requests.post(
        f"{c.endpoint}/v1/traces",
        data=body,
        headers={"Content-Type": content_type, **headers},
        timeout=10,
    )


def _refused(reply: Reply | None, status: int = 400, content_type: str = PROTOBUF) -> str:
    """The Status message of ``reply``, which must be a ``status`` of ``content_type``."""
    assert reply is not None, "no reply at all"
    assert reply.status == status, (reply.status, reply.body[:300])
    assert reply.content_type == content_type
    return reply.status_message()


def _still_serving(c: OtlpCollector, rng: random.Random) -> set[str]:
    """Post a valid batch, check it is taken; return its span ids."""
    request = proto_request(rng, 3)
    assert _post(c, request.SerializeToString(), PROTOBUF).status_code == 200
    return span_ids(request)


# --- 1. the body cap holds for every framing ---------------------------------------------------

FRAMINGS = {
    # Content-Length: -1 once made the collector read to the end of the stream, unbounded.
    "length-negative": ["Content-Length: -1"],
    "length-plus-sign": ["Content-Length: +12"],
    "length-underscore": ["Content-Length: 1_2"],
    "two-lengths": ["Content-Length: 12", "Content-Length: 13"],
    "chunked-and-length": ["Transfer-Encoding: chunked", "Content-Length: 12"],
    # Refused before the fix as well; kept so that the stricter parsing still refuses them.
    "length-not-a-number": ["Content-Length: twelve"],
    "length-list": ["Content-Length: 12, 13"],
}


@pytest.mark.parametrize("headers", FRAMINGS.values(), ids=FRAMINGS.keys())
def test_a_broken_content_length_is_refused_before_the_body(
    collector: OtlpCollector, headers: list[str]
) -> None:
    kept = _still_serving(collector, random.Random(1))

    # The headers alone: the verdict must not wait for a body it cannot frame.
    reply = exchange(collector.address, post_head("/v1/traces", PROTOBUF, *headers))

    assert "Content-Length" in _refused(reply)
    assert collector.stats.rejected == {"malformed_http": 1}
    assert set(read_spans(collector.traces_path, strict=True)["span_id"]) == kept


CHUNKS = {
    "size-negative": b"-1\r\n",
    "size-plus-sign": b"+10\r\n",
    "size-hex-prefix": b"0x10\r\n",
    "size-too-long": b"1" * 17 + b"\r\n",
    "no-crlf-after-chunk": b"4\r\nabcdXY",
    # Refused before the fix as well.
    "size-empty": b"\r\n",
    "size-not-hex": b"zz\r\n",
}


@pytest.mark.parametrize("chunk", CHUNKS.values(), ids=CHUNKS.keys())
def test_a_malformed_chunk_is_refused(collector: OtlpCollector, chunk: bytes) -> None:
    head = post_head("/v1/traces", PROTOBUF, "Transfer-Encoding: chunked")

    reply = exchange(collector.address, head + chunk)

    assert "chunk" in _refused(reply)
    assert collector.stats.rejected == {"malformed_http": 1}


def test_a_transfer_coding_other_than_chunked_is_refused(collector: OtlpCollector) -> None:
    head = post_head("/v1/traces", PROTOBUF, "Transfer-Encoding: gzip, chunked")
    assert "not supported" in _refused(exchange(collector.address, head), 501)


@pytest.mark.parametrize(
    "header",
    [f"Content-Length: {100 * LIMIT}", "Transfer-Encoding: chunked"],
    ids=["content-length", "chunked"],
)
def test_a_body_far_over_the_cap_is_refused_without_reading_it(
    collector: OtlpCollector, header: str
) -> None:
    # Only the first bytes are sent: the 400 must come without waiting for (or draining) the
    # rest, which a client streaming gigabytes would otherwise make the collector read.
    first = b"%x\r\n" % (100 * LIMIT) if header.startswith("Transfer") else b""
    started = time.monotonic()

    reply = exchange(collector.address, post_head("/v1/traces", PROTOBUF, header) + first)

    assert "exceeds" in _refused(reply)
    assert time.monotonic() - started < 3
    assert collector.stats.rejected == {"too_large": 1}


# --- 2. what the collector accepts, the reader reads ------------------------------------------


def _attribute(key: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value="v"))


def _unreadable(kind: str, encoding: str) -> tuple[bytes, str]:
    """A request whose second span (or resource) the reader cannot read, and its type."""
    request = proto_request(random.Random(7), 2)
    span = request.resource_spans[0].scope_spans[0].spans[1]
    if kind == "empty-key":
        span.attributes.append(_attribute(""))
    elif kind == "empty-resource-key":
        request.resource_spans[0].resource.CopyFrom(Resource(attributes=[_attribute("")]))
    elif kind == "start-beyond-int64":
        span.start_time_unix_nano = 2**63
    elif kind == "end-max-fixed64":
        span.end_time_unix_nano = 2**64 - 1
    if encoding == "protobuf":
        return request.SerializeToString(), PROTOBUF
    # As a JSON client sends it: the empty key written out, which protobuf's JSON leaves out.
    text = json.dumps(request_to_json(request)).replace('{"value"', '{"key": "", "value"')
    return text.encode(), JSON


@pytest.mark.parametrize(
    ("kind", "where", "words"),
    [
        ("empty-key", "spans[1]", "an attribute key is empty"),
        ("empty-resource-key", "resourceSpans[0]", "an attribute key is empty"),
        ("start-beyond-int64", "spans[1]", "startTimeUnixNano 9223372036854775808 is outside"),
        ("end-max-fixed64", "spans[1]", "endTimeUnixNano 18446744073709551615 is outside"),
    ],
)
@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_a_span_the_reader_cannot_read_is_refused(
    collector: OtlpCollector, kind: str, where: str, words: str, encoding: str
) -> None:
    rng = random.Random(2)
    kept = _still_serving(collector, rng)

    response = _post(collector, *_unreadable(kind, encoding))

    assert response.status_code == 400
    message = Reply(400, dict(response.headers), response.content).status_message()
    assert f"{where}: {words}" in message
    assert collector.stats.rejected == {"invalid_record": 1}
    kept |= _still_serving(collector, rng)
    # The file holds exactly the accepted spans, and reads whole: nothing skipped.
    assert set(read_spans(collector.traces_path, strict=True)["span_id"]) == kept


def test_a_log_record_the_reader_cannot_read_is_refused(collector: OtlpCollector) -> None:
    record = LogRecord(time_unix_nano=5, body=AnyValue(string_value="ok"))
    late = LogRecord(time_unix_nano=2**63 + 1, body=AnyValue(string_value="late"))
    keyless = LogRecord(time_unix_nano=6, attributes=[_attribute("")])

    def post(*records: LogRecord) -> int:
        request = ExportLogsServiceRequest(
            resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=list(records))])]
        )
        return requests.post(
            f"{collector.endpoint}/v1/logs",
            data=request.SerializeToString(),
            headers={"Content-Type": PROTOBUF},
            timeout=10,
        ).status_code

    assert [post(record), post(record, late), post(keyless), post(record)] == [200, 400, 400, 200]
    assert collector.stats.rejected == {"invalid_record": 2}
    assert read_logs(collector.logs_path, strict=True)["msg"].tolist() == ["ok", "ok"]


# --- 3. JSON text that is not Unicode, or nested too deep --------------------------------------

BAD_JSON = {
    # Each once got no reply at all (the Status could not be encoded) or a 500.
    "surrogate-double": json_body(attributes=[{"key": "k", "value": {"doubleValue": "\ud800"}}]),
    "surrogate-events": json_body(events="\udfff"),
    "surrogate-as-key": json_body(**{"\ud800": 1}),
    "surrogate-in-enum": json_body(status={"code": "\ud800"}),
    "deep-arrays": b'{"resourceSpans": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "deep-objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
}


@pytest.mark.parametrize("body", BAD_JSON.values(), ids=BAD_JSON.keys())
def test_json_that_is_not_unicode_or_too_deep_is_refused(tmp_path: Path, body: bytes) -> None:
    with OtlpCollector(tmp_path) as c:  # the default limits: deep JSON fits the item budget
        reply = exchange(
            c.address, post_head("/v1/traces", JSON, f"Content-Length: {len(body)}") + body
        )

        message = _refused(reply, 400, JSON)
        assert "surrogate" in message or "nested too deeply" in message
        assert c.stats.rejected == {"malformed_json": 1}
        assert _still_serving(c, random.Random(3))


def test_an_escaped_surrogate_pair_is_text_and_kept(collector: OtlpCollector) -> None:
    body = json_body(name="\U0001f600 done")  # json.dumps escapes it as \ud83d\ude00
    assert b"\\ud83d\\ude00" in body

    assert _post(collector, body, JSON).status_code == 200
    assert read_spans(collector.traces_path, strict=True)["name"].tolist() == ["\U0001f600 done"]


# --- 4. decoding costs bounded by the decoded-size cap -----------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (gzip.compress(b"\x0a\x00" * (LIMIT // 2)), PROTOBUF),  # 32,768 empty ResourceSpans
        (gzip.compress(b"\x0a\x04\x12\x02\x12\x00" * (LIMIT // 6)), PROTOBUF),  # empty spans
        (gzip.compress(b'{"resourceSpans":[' + b"{}," * (LIMIT // 3 - 10) + b"{}]}"), JSON),
    ],
    ids=["resource-spans", "nested-spans", "json-objects"],
)
def test_a_body_of_many_empty_messages_is_refused_before_decoding(
    collector: OtlpCollector, body: bytes, content_type: str
) -> None:
    assert len(gzip.decompress(body)) <= LIMIT  # within the byte cap: the item budget stops it

    response = _post(collector, body, content_type, **{"Content-Encoding": "gzip"})

    assert response.status_code == 400
    message = Reply(400, dict(response.headers), response.content).status_message()
    assert f"more than {collector.max_items}" in message and "smaller batches" in message
    assert collector.stats.rejected == {"too_many_items": 1}


def test_a_real_batch_at_the_cap_fits_the_item_budget(collector: OtlpCollector) -> None:
    request = proto_request(random.Random(4), 700, attributes=2)
    body = request.SerializeToString()
    assert LIMIT * 0.8 < len(body) <= LIMIT

    assert _post(collector, body, PROTOBUF).status_code == 200
    assert collector.stats.spans_accepted == 700


def test_empty_envelopes_beside_a_span_are_not_kept(collector: OtlpCollector) -> None:
    # Kept, 2 bytes of body would become a stored object each, request after request.
    request = proto_request(random.Random(8), 1)
    request.resource_spans[0].scope_spans.add()
    body = request.SerializeToString() + b"\x0a\x00" * 2000

    assert _post(collector, body, PROTOBUF).status_code == 200
    (line,) = collector.traces_path.read_text().splitlines()
    assert [len(rs["scopeSpans"]) for rs in json.loads(line)["resourceSpans"]] == [1]
    assert collector.spans_frame()["span_id"].tolist() == sorted(span_ids(request))


# --- 5. slow clients, bounded connections, Status bodies from the HTTP layer ------------------


@pytest.fixture
def quick(tmp_path: Path) -> Iterator[OtlpCollector]:
    with OtlpCollector(tmp_path / "otlp", timeout_s=0.5, max_connections=4) as c:
        yield c


def test_a_request_trickling_in_gets_408_within_the_timeout(quick: OtlpCollector) -> None:
    # One header byte every 0.1 s would hold a server with only an idle timeout forever.
    head = post_head("/v1/traces", PROTOBUF, "Content-Length: 10")
    started = time.monotonic()

    reply = exchange(quick.address, *[head[i : i + 1] for i in range(len(head))], pause_s=0.1)

    assert "did not arrive within 0.5 s" in _refused(reply, 408)
    assert time.monotonic() - started < 3


def test_a_body_trickling_in_gets_408(quick: OtlpCollector) -> None:
    head = post_head("/v1/traces", PROTOBUF, "Content-Length: 100")

    reply = exchange(quick.address, head, *[b"\x00"] * 30, pause_s=0.1)

    assert "did not arrive within 0.5 s" in _refused(reply, 408)
    assert quick.stats.rejected == {"request_timeout": 1}


def test_an_idle_connection_is_closed(quick: OtlpCollector) -> None:
    with socket.create_connection(quick.address, timeout=5) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""  # closed without a reply: no request had begun
        assert time.monotonic() - started < 3


def _request_threads() -> int:
    return sum("process_request_thread" in t.name for t in threading.enumerate())


def test_connections_are_bounded_and_slow_ones_do_not_block_for_long(quick: OtlpCollector) -> None:
    before = _request_threads()
    slow = [socket.create_connection(quick.address, timeout=5) for _ in range(12)]
    try:
        for sock in slow:
            sock.sendall(b"POST /v1/traces HTTP/1.1\r\n")  # and then nothing
        time.sleep(0.2)
        assert _request_threads() - before <= 4
        # A real export still gets through once the slow ones have timed out, four at a time.
        started = time.monotonic()
        request = proto_request(random.Random(5), 2)
        response = requests.post(
            f"{quick.endpoint}/v1/traces",
            data=request.SerializeToString(),
            headers={"Content-Type": PROTOBUF},
            timeout=30,
        )
        assert response.status_code == 200
        assert time.monotonic() - started < 10
        assert _request_threads() - before <= 4
        for sock in slow:
            assert (read_reply(sock) or Reply(0, {}, b"")).status in (408, 0)
    finally:
        for sock in slow:
            sock.close()


HTTP_ERRORS = {
    "bad-request-line": (b"GARBAGE\r\n\r\n", 400),
    "bad-version": (b"POST /v1/traces HTTP/x.y\r\n\r\n", 400),
    "version-2": (b"POST /v1/traces HTTP/2.0\r\n\r\n", 505),
    "request-line-too-long": (b"POST /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
    "header-too-long": (b"POST /v1/traces HTTP/1.1\r\nX-A: " + b"a" * 70_000 + b"\r\n\r\n", 431),
    "too-many-headers": (
        b"POST /v1/traces HTTP/1.1\r\n"
        + b"".join(b"X-%d: 1\r\n" % i for i in range(120))
        + b"\r\n",
        431,
    ),
}


@pytest.mark.parametrize(("request_bytes", "status"), HTTP_ERRORS.values(), ids=HTTP_ERRORS.keys())
def test_http_layer_errors_are_status_bodies(
    collector: OtlpCollector, request_bytes: bytes, status: int
) -> None:
    reply = exchange(collector.address, request_bytes)

    assert _refused(reply, status)
    assert reply is not None and reply.headers.get("Connection") == "close"
    assert collector.stats.rejected == {"malformed_http": 1}
    assert _still_serving(collector, random.Random(6))
