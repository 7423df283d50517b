"""The test OTLP collector against the real OpenTelemetry SDK exporters and raw HTTP requests."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from google.rpc.status_pb2 import Status
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from obslib.cli import main
from obslib.collector import OtlpCollector
from obslib.errors import ConfigError
from obslib.sources.otlp_files import read_logs, read_spans

REPO = Path(__file__).resolve().parent.parent
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
SMALL_LIMIT = 64 * 1024


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[OtlpCollector]:
    with OtlpCollector(tmp_path / "otlp") as c:
        yield c


@pytest.fixture
def small_collector(tmp_path: Path) -> Iterator[OtlpCollector]:
    with OtlpCollector(tmp_path / "otlp", max_body_bytes=SMALL_LIMIT) as c:
        yield c


# --- helpers -----------------------------------------------------------------------------------


def _emit_hop_chain(provider: TracerProvider, task_id: str) -> None:
    tracer = provider.get_tracer("daedalus.test")
    with tracer.start_as_current_span(
        "ingress.mattermost",
        kind=SpanKind.SERVER,
        attributes={"daedalus.task.id": task_id, "agent_type": "copilot"},
    ):
        publish = {"messaging.destination.name": "agent.tasks.copilot", "size": 412}
        with (
            tracer.start_as_current_span("orchestrator.dispatch"),
            tracer.start_as_current_span(
                "nats.publish", kind=SpanKind.PRODUCER, attributes=publish
            ),
        ):
            pass
        with tracer.start_as_current_span(
            "agent.session.prompt",
            kind=SpanKind.CLIENT,
            attributes={"ratio": 0.5, "retried": True, "tools": ["grep", "sed"]},
        ) as span:
            span.set_status(StatusCode.ERROR, "agent exited with 3")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _expected_rows(spans: Any) -> list[dict[str, Any]]:
    """What the SDK produced, in the span frame's terms."""
    rows = [
        {
            "trace_id": f"{s.context.trace_id:032x}",
            "span_id": f"{s.context.span_id:016x}",
            "parent_span_id": f"{s.parent.span_id:016x}" if s.parent else "",
            "name": s.name,
            "kind": s.kind.name,
            "service_name": s.resource.attributes["service.name"],
            "start_ns": s.start_time,
            "end_ns": s.end_time,
            "status_code": s.status.status_code.name,
            "status_message": s.status.description or "",
            "attributes": {k: _plain(v) for k, v in s.attributes.items()},
        }
        for s in spans
    ]
    return sorted(rows, key=lambda r: r["span_id"])


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    return sorted(frame[columns].to_dict("records"), key=lambda r: r["span_id"])


def _proto_request(n: int, kind: int = Span.SPAN_KIND_INTERNAL) -> ExportTraceServiceRequest:
    trace_id = os.urandom(16)
    spans = [
        Span(
            trace_id=trace_id,
            span_id=os.urandom(8),
            name=f"step-{i}",
            kind=kind,
            start_time_unix_nano=1_700_000_000_000_000_000 + i,
            end_time_unix_nano=1_700_000_000_000_001_000 + i,
            attributes=[KeyValue(key="step", value=AnyValue(int_value=i))],
        )
        for i in range(n)
    ]
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
    )


def _span_ids(request: ExportTraceServiceRequest) -> set[str]:
    return {
        span.span_id.hex()
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    }


def _post(
    c: OtlpCollector, body: bytes, headers: dict[str, str], path: str = "/v1/traces"
) -> requests.Response:
    return requests.post(f"{c.endpoint}{path}", data=body, headers=headers, timeout=10)


def _status_message(response: requests.Response) -> str:
    """The google.rpc.Status message of an error response, decoded per its content type."""
    if response.headers["Content-Type"] == "application/json":
        return json.loads(response.content)["message"]
    assert response.headers["Content-Type"] == "application/x-protobuf"
    return Status.FromString(response.content).message


def _json_span(**overrides: Any) -> dict[str, Any]:
    span = {
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "EEE19B7EC3C1B174",
        "parentSpanId": "eee19b7ec3c1b173",
        "name": "acp.session.prompt",
        "kind": 3,
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": "1544712661000000000",
        "attributes": [
            {"key": "daedalus.task.id", "value": {"stringValue": "t-42"}},
            {"key": "agent_type", "value": {"stringValue": "claude"}},
            {"key": "tokens", "value": {"intValue": "7"}},
        ],
        "status": {"code": 2, "message": "broken pipe"},
        "someFieldFromTheFuture": {"ignored": True},
    }
    span.update(overrides)
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": "daedalus-proxy"}}
                    ]
                },
                "scopeSpans": [{"scope": {"name": "proxy"}, "spans": [span]}],
            }
        ]
    }


# --- the SDK exporting over OTLP/HTTP protobuf ----------------------------------------------


@pytest.mark.parametrize(
    ("compression", "accepted_as"),
    [(Compression.NoCompression, "traces/protobuf"), (Compression.Gzip, "traces/protobuf+gzip")],
)
def test_sdk_spans_arrive_unchanged_in_memory_and_in_the_file(
    collector: OtlpCollector, compression: Compression, accepted_as: str
) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "daedalus-orchestrator"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    exporter = OTLPSpanExporter(endpoint=f"{collector.endpoint}/v1/traces", compression=compression)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _emit_hop_chain(provider, "t-1")
    _emit_hop_chain(provider, "t-2")
    provider.shutdown()  # flushes the batch processor

    produced = memory.get_finished_spans()
    assert collector.wait_for_spans(len(produced), timeout_s=10)
    expected = _expected_rows(produced)
    columns = list(expected[0])
    assert _rows(collector.spans_frame(), columns) == expected
    from_file = read_spans(collector.traces_path)
    assert _rows(from_file, columns) == expected
    assert set(from_file["task_id"]) == {"t-1", "t-2", ""}
    assert set(from_file["destination"]) == {"agent.tasks.copilot", ""}

    stats = collector.stats
    assert set(stats.accepted) == {accepted_as}
    assert stats.rejected == {}
    assert stats.spans_accepted == len(produced) == 8


def test_trace_file_lines_are_the_file_exporter_format(collector: OtlpCollector) -> None:
    first, second = _proto_request(2), _proto_request(3, kind=Span.SPAN_KIND_SERVER)
    for request in (first, second):
        assert _post(collector, request.SerializeToString(), PROTOBUF).status_code == 200

    lines = collector.traces_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    for line, request in zip(lines, (first, second), strict=True):
        data = json.loads(line)
        assert list(data) == ["resourceSpans"]
        spans = data["resourceSpans"][0]["scopeSpans"][0]["spans"]
        assert {s["spanId"] for s in spans} == _span_ids(request)
        assert {s["traceId"] for s in spans} == {
            request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
        }
        assert all(re.fullmatch("[0-9a-f]{32}", s["traceId"]) for s in spans)
        assert {s["kind"] for s in spans} == {
            request.resource_spans[0].scope_spans[0].spans[0].kind
        }
        assert all(isinstance(s["startTimeUnixNano"], str) for s in spans)


# --- JSON bodies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("gzipped", [False, True])
def test_json_body_is_accepted(collector: OtlpCollector, gzipped: bool) -> None:
    body = json.dumps(_json_span()).encode()
    headers = dict(JSON)
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"

    response = _post(collector, body, headers)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {}  # ExportTraceServiceResponse with partial_success unset
    row = collector.spans_frame().iloc[0]
    assert (row.trace_id, row.span_id, row.parent_span_id) == (
        "5b8efff798038103d269b633813fc60c",
        "eee19b7ec3c1b174",
        "eee19b7ec3c1b173",
    )
    assert (row["name"], row.kind, row.service_name, row.scope_name) == (
        "acp.session.prompt",
        "CLIENT",
        "daedalus-proxy",
        "proxy",
    )
    assert (row.status_code, row.status_message, row.task_id, row.agent_type) == (
        "ERROR",
        "broken pipe",
        "t-42",
        "claude",
    )
    assert row.attributes["tokens"] == 7
    assert row.duration_ns == 1_000_000_000
    assert read_spans(collector.traces_path)["span_id"].tolist() == ["eee19b7ec3c1b174"]
    assert collector.stats.accepted == {"traces/json+gzip" if gzipped else "traces/json": 1}


# --- logs ----------------------------------------------------------------------------------------


def test_sdk_logs_arrive_with_trace_and_span_ids(collector: OtlpCollector) -> None:
    memory = InMemoryLogRecordExporter()
    logs = LoggerProvider(resource=Resource.create({"service.name": "daedalus-proxy"}))
    logs.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logs.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{collector.endpoint}/v1/logs"))
    )
    logger = logs.get_logger("daedalus.proxy")
    tracer = TracerProvider().get_tracer("daedalus.proxy")
    with tracer.start_as_current_span("proxy.handle") as span:
        logger.emit(
            timestamp=1_795_000_000_123_456_789,
            severity_text="ERROR",
            severity_number=SeverityNumber.ERROR,
            body="agent exited",
            attributes={"daedalus.task.id": "t-7", "agent_type": "claude", "exit_code": 3},
        )
    logger.emit(severity_number=SeverityNumber.WARN, body={"msg": "queue slow", "depth": 120})
    logs.shutdown()

    assert collector.wait_for_log_records(2, timeout_s=10)
    frame = collector.logs_frame()
    produced = [r.log_record for r in memory.get_finished_logs()]
    assert len(frame) == len(produced) == 2

    inside, outside = frame.iloc[0], frame.iloc[1]
    context = span.get_span_context()
    assert (inside.trace_id, inside.span_id) == (
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
    )
    assert (inside.trace_id, inside.span_id) == (
        f"{produced[0].trace_id:032x}",
        f"{produced[0].span_id:016x}",
    )
    assert (inside.level, inside.msg, inside.line) == ("ERROR", "agent exited", "agent exited")
    assert (inside.task_id, inside.agent_type, inside.fields) == ("t-7", "claude", {"exit_code": 3})
    assert inside.labels["service.name"] == "daedalus-proxy"
    assert inside.timestamp_ns == produced[0].timestamp == 1_795_000_000_123_456_789
    assert outside.timestamp_ns == produced[1].observed_timestamp  # no timestamp: observed time
    assert (outside.trace_id, outside.span_id, outside.level) == ("", "", "WARN")
    assert outside.msg == "queue slow"
    assert json.loads(outside.line) == {"msg": "queue slow", "depth": 120}

    lines = [json.loads(x) for x in collector.logs_path.read_text().splitlines()]
    records = [
        rec
        for line in lines
        for rl in line["resourceLogs"]
        for sl in rl["scopeLogs"]
        for rec in sl["logRecords"]
    ]
    assert all(list(line) == ["resourceLogs"] for line in lines)
    assert records[0]["traceId"] == inside.trace_id and records[0]["spanId"] == inside.span_id
    pd.testing.assert_frame_equal(read_logs(collector.logs_path), frame)
    assert collector.stats.log_records_accepted == 2


# --- rejections ----------------------------------------------------------------------------------


def _gzip_bomb() -> bytes:
    return gzip.compress(b"\x00" * (SMALL_LIMIT * 4))


REJECTIONS: list[tuple[str, Callable[[], bytes], dict[str, str], int, str, str]] = [
    # id, body, headers, status, counted reason, words in the Status message
    (
        "bad-protobuf",
        lambda: b"\x0a\xff\xff\xff\xff\x0f",
        PROTOBUF,
        400,
        "malformed_protobuf",
        "not a protobuf",
    ),
    ("bad-json", lambda: b'{"resourceSpans": [', JSON, 400, "malformed_json", "not JSON"),
    (
        "bad-gzip",
        lambda: b"plain bytes",
        {**PROTOBUF, "Content-Encoding": "gzip"},
        400,
        "bad_compression",
        "corrupt",
    ),
    (
        "cut-gzip",
        lambda: gzip.compress(_proto_request(3).SerializeToString())[:-12],
        {**PROTOBUF, "Content-Encoding": "gzip"},
        400,
        "bad_compression",
        "truncated",
    ),
    ("json-array", lambda: b"[1, 2]", JSON, 400, "wrong_shape", "JSON object"),
    (
        "json-wrong-nesting",
        lambda: json.dumps({"resourceSpans": {"scopeSpans": []}}).encode(),
        JSON,
        400,
        "wrong_shape",
        "not an OTLP",
    ),
    (
        "json-wrong-type",
        lambda: json.dumps(_json_span(name=5)).encode(),
        JSON,
        400,
        "wrong_shape",
        "name",
    ),
    (
        "json-base64-id",
        lambda: json.dumps(_json_span(traceId="Gvw0e385bVnb/ZN5Yg0/mA==")).encode(),
        JSON,
        400,
        "invalid_id",
        "traceId",
    ),
    (
        "json-short-id",
        lambda: json.dumps(_json_span(spanId="abcd")).encode(),
        JSON,
        400,
        "invalid_id",
        "spanId has 2 bytes",
    ),
    (
        "protobuf-short-id",
        lambda: ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    scope_spans=[
                        ScopeSpans(spans=[Span(trace_id=os.urandom(16), span_id=b"abc", name="x")])
                    ]
                )
            ]
        ).SerializeToString(),
        PROTOBUF,
        400,
        "invalid_id",
        "spanId has 3 bytes",
    ),
    (
        "oversized",
        lambda: _proto_request(2).SerializeToString() + b"\x00" * SMALL_LIMIT,
        PROTOBUF,
        400,
        "too_large",
        "exceeds",
    ),
    (
        "oversized-inflated",
        _gzip_bomb,
        {**PROTOBUF, "Content-Encoding": "gzip"},
        400,
        "too_large",
        "decompression",
    ),
]


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in REJECTIONS],
)
def test_bad_request_is_refused_counted_and_costs_nothing(
    small_collector: OtlpCollector,
    body: Callable[[], bytes],
    headers: dict[str, str],
    status: int,
    reason: str,
    words: str,
) -> None:
    before, after = _proto_request(3), _proto_request(2)
    assert _post(small_collector, before.SerializeToString(), PROTOBUF).status_code == 200

    response = _post(small_collector, body(), headers)

    assert response.status_code == status
    assert response.headers["Content-Type"] == headers["Content-Type"]
    assert words in _status_message(response)
    assert _post(small_collector, after.SerializeToString(), PROTOBUF).status_code == 200
    stats = small_collector.stats
    assert stats.rejected == {reason: 1}
    assert stats.requests_accepted == 2 and stats.spans_accepted == 5
    kept = _span_ids(before) | _span_ids(after)
    assert set(small_collector.spans_frame()["span_id"]) == kept
    assert set(read_spans(small_collector.traces_path)["span_id"]) == kept


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "reason"),
    [
        ("POST", "/v1/traces", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        ("POST", "/v1/traces", {**PROTOBUF, "Content-Encoding": "br"}, 415, "unsupported_encoding"),
        ("POST", "/v1/metrics", PROTOBUF, 404, "not_found"),
        ("POST", "/", JSON, 404, "not_found"),
        ("GET", "/v1/traces", {}, 405, "method_not_allowed"),
        ("PUT", "/v1/logs", JSON, 405, "method_not_allowed"),
    ],
)
def test_wrong_media_type_path_or_method(
    collector: OtlpCollector,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    body = _proto_request(1).SerializeToString()
    response = requests.request(
        method, f"{collector.endpoint}{path}", data=body, headers=headers, timeout=10
    )

    assert response.status_code == status
    assert _status_message(response)  # a Status with a message, JSON for JSON requests
    if status == 405:
        assert response.headers["Allow"] == "POST"
    assert collector.stats.rejected == {reason: 1}
    assert collector.spans_frame().empty
    assert not collector.traces_path.exists()


def test_chunked_bodies_are_read_and_bounded(small_collector: OtlpCollector) -> None:
    url = f"{small_collector.endpoint}/v1/traces"
    request = _proto_request(4)
    raw = request.SerializeToString()
    with requests.Session() as session:  # one keep-alive connection for all three
        ok = session.post(url, data=iter([raw[:10], raw[10:]]), headers=PROTOBUF, timeout=10)
        big = session.post(url, data=iter([raw] + [b"\0" * 8192] * 9), headers=PROTOBUF, timeout=10)
        again = session.post(url, data=iter([raw]), headers=PROTOBUF, timeout=10)

    assert ok.request.headers["Transfer-Encoding"] == "chunked"
    assert (ok.status_code, big.status_code, again.status_code) == (200, 400, 200)
    assert small_collector.stats.rejected == {"too_large": 1}
    assert small_collector.stats.spans_accepted == 8
    assert set(small_collector.spans_frame()["span_id"]) == _span_ids(request)


# --- serving -----------------------------------------------------------------------------------


def test_binds_loopback_only(collector: OtlpCollector, tmp_path: Path) -> None:
    host, port = collector.address
    assert host == "127.0.0.1" and port > 0
    assert collector.endpoint == f"http://127.0.0.1:{port}"
    with pytest.raises(ConfigError, match="loopback"):
        OtlpCollector(tmp_path, host="0.0.0.0")


def test_concurrent_exports_are_all_kept(collector: OtlpCollector) -> None:
    requests_sent = [_proto_request(3) for _ in range(40)]
    statuses: list[int] = []

    def send(batch: list[ExportTraceServiceRequest]) -> None:
        with requests.Session() as session:
            for request in batch:
                url = f"{collector.endpoint}/v1/traces"
                statuses.append(
                    session.post(
                        url, data=request.SerializeToString(), headers=PROTOBUF, timeout=10
                    ).status_code
                )

    threads = [threading.Thread(target=send, args=(requests_sent[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert statuses == [200] * 40
    expected = set().union(*(_span_ids(r) for r in requests_sent))
    assert len(expected) == 120
    assert set(collector.spans_frame()["span_id"]) == expected
    assert len(collector.traces_path.read_text().splitlines()) == 40
    assert set(read_spans(collector.traces_path)["span_id"]) == expected


def test_stop_closes_keepalive_connections_and_keeps_the_data(tmp_path: Path) -> None:
    request = _proto_request(2)
    with requests.Session() as session:
        with OtlpCollector(tmp_path) as c:
            url = f"{c.endpoint}/v1/traces"
            assert session.post(
                url, data=request.SerializeToString(), headers=PROTOBUF, timeout=10
            ).ok
        with pytest.raises(requests.ConnectionError):
            session.post(
                url, data=_proto_request(1).SerializeToString(), headers=PROTOBUF, timeout=10
            )
    assert set(c.spans_frame()["span_id"]) == _span_ids(request)
    assert c.stats.requests_accepted == 1


def test_command_serves_until_interrupted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "obslib", "collector", "--port", "0", "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", banner)
        assert match, banner
        body = json.dumps(_json_span()).encode()
        assert requests.post(f"{match.group(0)}/v1/traces", data=body, headers=JSON, timeout=10).ok
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "accepted 1 request(s): 1 span(s), 0 log record(s); rejected 0" in stdout
    assert read_spans(out / "traces.jsonl")["span_id"].tolist() == ["eee19b7ec3c1b174"]


def test_command_reports_a_busy_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["collector", "--port", str(port), "--out", str(tmp_path)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
