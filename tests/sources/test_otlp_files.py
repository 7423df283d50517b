"""Reading the OpenTelemetry Collector file exporter's output, and OTLP protobuf files."""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, TracesData

from obslib.sources.frames import LOG_COLUMNS, SPAN_COLUMNS
from obslib.sources.otlp import spans_from_json, spans_from_proto
from obslib.sources.otlp_files import (
    MAX_PROBLEMS,
    OtlpFileError,
    read_logs,
    read_logs_with_skips,
    read_spans,
    read_spans_with_skips,
    request_from_json,
    request_to_json,
)

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "tempo"
TRACE = "0af7651916cd43dd8448eb211c80319c"


def _attr(key: str, value: Any) -> dict[str, Any]:
    kind = {str: "stringValue", int: "intValue", bool: "boolValue"}[type(value)]
    return {"key": key, "value": {kind: str(value) if kind == "intValue" else value}}


def _resource_spans(service: str, *spans: dict[str, Any]) -> dict[str, Any]:
    return {
        "resource": {"attributes": [_attr("service.name", service)]},
        "scopeSpans": [{"scope": {"name": "daedalus"}, "spans": list(spans)}],
    }


def _span(span_id: str, name: str, parent: str = "", **extra: Any) -> dict[str, Any]:
    span = {
        "traceId": TRACE,
        "spanId": span_id,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": "1795824539149711617",
        "endTimeUnixNano": "1795824539156594744",
        "status": {},
        **extra,
    }
    if parent:
        span["parentSpanId"] = parent
    return span


# Two lines as the file exporter writes them: hex ids, integer enums, int64 as strings.
LINE_1 = {
    "resourceSpans": [
        _resource_spans(
            "daedalus-orchestrator",
            _span(
                "b7ad6b7169203331",
                "ingress.mattermost",
                kind=2,
                attributes=[_attr("daedalus.task.id", "t-1"), _attr("agent_type", "copilot")],
            ),
            _span(
                "00f067aa0ba902b7",
                "nats.publish",
                "b7ad6b7169203331",
                kind=4,
                attributes=[_attr("messaging.destination.name", "agent.tasks.copilot")],
            ),
        )
    ]
}
LINE_2 = {
    "resourceSpans": [
        _resource_spans(
            "daedalus-agent-copilot",
            _span(
                "53995c3f42cd8ad8",
                "agent.session.prompt",
                "00f067aa0ba902b7",
                kind=2,
                status={"code": 2, "message": "exit 3"},
                attributes=[_attr("retried", True), _attr("tokens", 12)],
            ),
        )
    ]
}
LOG_LINE = {
    "resourceLogs": [
        {
            "resource": {"attributes": [_attr("service.name", "daedalus-proxy")]},
            "scopeLogs": [
                {
                    "scope": {"name": "proxy"},
                    "logRecords": [
                        {
                            "timeUnixNano": "1795824539150000000",
                            "severityNumber": 17,
                            "severityText": "ERROR",
                            "body": {"stringValue": "agent exited"},
                            "attributes": [
                                _attr("taskId", "t-1"),
                                _attr("agent_type", "copilot"),
                                _attr("exit_code", 3),
                            ],
                            "traceId": TRACE,
                            "spanId": "53995c3f42cd8ad8",
                        },
                        {"observedTimeUnixNano": "1795824539160000000", "severityNumber": 13},
                    ],
                }
            ],
        }
    ]
}


def _write_lines(path: Path, *lines: Any) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


@pytest.fixture
def traces_jsonl(tmp_path: Path) -> Path:
    return _write_lines(tmp_path / "traces.jsonl", LINE_1, LINE_2)


def test_json_lines_with_hex_ids(traces_jsonl: Path) -> None:
    frame = read_spans(traces_jsonl)

    assert frame[["span_id", "parent_span_id", "name", "kind"]].values.tolist() == [
        ["b7ad6b7169203331", "", "ingress.mattermost", "SERVER"],
        ["00f067aa0ba902b7", "b7ad6b7169203331", "nats.publish", "PRODUCER"],
        ["53995c3f42cd8ad8", "00f067aa0ba902b7", "agent.session.prompt", "SERVER"],
    ]
    assert set(frame["trace_id"]) == {TRACE}
    assert frame["service_name"].tolist() == [
        "daedalus-orchestrator",
        "daedalus-orchestrator",
        "daedalus-agent-copilot",
    ]
    assert frame["status_code"].tolist() == ["UNSET", "UNSET", "ERROR"]
    assert frame["status_message"].tolist() == ["", "", "exit 3"]
    assert frame["task_id"].tolist() == ["t-1", "", ""]
    assert frame["destination"].tolist() == ["", "agent.tasks.copilot", ""]
    assert frame["attributes"].iloc[2] == {"retried": True, "tokens": 12}
    assert list(frame.columns) == list(SPAN_COLUMNS)


def test_gzipped_file_reads_the_same(traces_jsonl: Path, tmp_path: Path) -> None:
    gz = tmp_path / "traces.jsonl.gz"
    gz.write_bytes(gzip.compress(traces_jsonl.read_bytes()))
    pd.testing.assert_frame_equal(read_spans(gz), read_spans(traces_jsonl))


def test_several_paths_are_read_in_order(tmp_path: Path) -> None:
    second = _write_lines(tmp_path / "b.jsonl", LINE_2)
    first = _write_lines(tmp_path / "a.jsonl", LINE_1)
    assert read_spans([second, str(first)])["name"].tolist() == [
        "agent.session.prompt",
        "ingress.mattermost",
        "nats.publish",
    ]


def _proto_request() -> ExportTraceServiceRequest:
    trace_id = bytes.fromhex(TRACE)
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(
                    attributes=[KeyValue(key="service.name", value=AnyValue(string_value="svc"))]
                ),
                scope_spans=[
                    ScopeSpans(
                        spans=[
                            Span(
                                trace_id=trace_id,
                                span_id=bytes.fromhex("1111111111111111"),
                                name="root",
                                kind=Span.SPAN_KIND_SERVER,
                                start_time_unix_nano=10,
                                end_time_unix_nano=25,
                            ),
                            Span(
                                trace_id=trace_id,
                                span_id=bytes.fromhex("2222222222222222"),
                                parent_span_id=bytes.fromhex("1111111111111111"),
                                name="child",
                                kind=Span.SPAN_KIND_CONSUMER,
                                start_time_unix_nano=12,
                                end_time_unix_nano=20,
                                attributes=[
                                    KeyValue(
                                        key="agent_type", value=AnyValue(string_value="claude")
                                    )
                                ],
                            ),
                        ]
                    )
                ],
            )
        ]
    )


@pytest.mark.parametrize("suffix", [".pb", ".binpb", ".pb.gz"])
def test_protobuf_request_file(tmp_path: Path, suffix: str) -> None:
    request = _proto_request()
    raw = request.SerializeToString()
    path = tmp_path / f"request{suffix}"
    path.write_bytes(gzip.compress(raw) if suffix.endswith(".gz") else raw)

    frame = read_spans(path)

    assert frame[["trace_id", "span_id", "parent_span_id", "name", "kind"]].values.tolist() == [
        [TRACE, "1111111111111111", "", "root", "SERVER"],
        [TRACE, "2222222222222222", "1111111111111111", "child", "CONSUMER"],
    ]
    assert frame["duration_ns"].tolist() == [15, 8]
    assert frame["agent_type"].tolist() == ["", "claude"]
    # The same request as a file-exporter line reads to the same frame.
    line = _write_lines(tmp_path / "same.jsonl", request_to_json(request))
    pd.testing.assert_frame_equal(read_spans(line), frame)


def test_request_json_round_trip_uses_hex_ids() -> None:
    request = _proto_request()
    data = request_to_json(request)
    span = data["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    assert (span["traceId"], span["parentSpanId"], span["kind"]) == (TRACE, "1111111111111111", 5)
    assert request_from_json(data, ExportTraceServiceRequest()) == request


def test_tempo_protobuf_sample_matches_its_json() -> None:
    traces = TracesData.FromString((SAMPLES / "trace-v1-complete.pb").read_bytes())
    batches = json.loads((SAMPLES / "trace-v1-complete.json").read_text())["batches"]

    from_pb = spans_from_proto(traces.resource_spans).sort_values("span_id", ignore_index=True)
    from_json = spans_from_json(batches, "base64").sort_values("span_id", ignore_index=True)

    pd.testing.assert_frame_equal(from_pb, from_json)
    ok_trace = json.loads((SAMPLES / "trace-ids.json").read_text())["ok"][0]
    assert set(from_pb["trace_id"]) == {ok_trace}
    assert len(from_pb) == 7
    # A Tempo v1 trace is wire-compatible with an export request, so read_spans takes it too.
    from_file = read_spans(SAMPLES / "trace-v1-complete.pb").sort_values(
        "span_id", ignore_index=True
    )
    pd.testing.assert_frame_equal(from_file, from_pb)


def test_a_protobuf_file_of_another_message_is_refused() -> None:
    path = SAMPLES / "trace-v2-complete.pb"  # Tempo's v2 by-id envelope, not a request
    with pytest.raises(OtlpFileError, match="probably holds another message") as caught:
        read_spans(path)
    assert caught.value.url == str(path) and caught.value.line is None


def _one_span_line(**extra: Any) -> str:
    return json.dumps(
        {"resourceSpans": [_resource_spans("s", _span("1111111111111111", "x", **extra))]}
    )


# Lines the reader leaves out whole: (line, lines skipped).
BAD_LINES: dict[str, str | bytes] = {
    "not-json": '{"resourceSpans": [',
    "not-an-object": '["resourceSpans"]',
    "no-signal": '{"spans": []}',
    "not-a-list": '{"resourceSpans": {"scopeSpans": []}}',
    "not-utf8": '{"resourceSpans": [], "x": "\xe9"}'.encode("latin-1"),
    "too-deep": '{"resourceSpans": ' + "[" * 100_000 + "]" * 100_000 + "}",
}
# Lines with one malformed span, which alone is left out.
BAD_SPANS = {
    "base64-ids": json.dumps(
        {
            "resourceSpans": [
                _resource_spans("s", _span("AW9xMV+oyPc=", "x", traceId="Gvw0e385bVnb/ZN5Yg0/mA=="))
            ]
        }
    ),
    "short-id": json.dumps({"resourceSpans": [_resource_spans("s", _span("abcd", "x"))]}),
    "bad-time": _one_span_line(startTimeUnixNano="soon"),
    # What the collector once accepted: protobuf's JSON leaves an empty key out.
    "empty-key": _one_span_line(attributes=[{"value": {"stringValue": "v"}}]),
    "blank-key": _one_span_line(attributes=[{"key": "", "value": {"stringValue": "v"}}]),
    "time-beyond-int64": _one_span_line(endTimeUnixNano=str(2**63)),
    "time-max-fixed64": _one_span_line(startTimeUnixNano=str(2**64 - 1)),
    "negative-time": _one_span_line(startTimeUnixNano="-1"),
    "bad-int-attribute": _one_span_line(attributes=[{"key": "k", "value": {"intValue": "x"}}]),
    "value-not-object": _one_span_line(attributes=[{"key": "k", "value": "v"}]),
    "status-not-object": _one_span_line(status=["ERROR"]),
    "span-not-object": json.dumps({"resourceSpans": [_resource_spans("s", "span")]}),
}
# Lines with a malformed part that held no span: skipped all the same, and not complete.
BAD_PARTS = {
    "resource-not-object": '{"resourceSpans": ["resource"]}',
    "scopes-not-a-list": '{"resourceSpans": [{"scopeSpans": {"spans": []}}]}',
}


def _write(path: Path, *lines: str | bytes | dict[str, Any]) -> Path:
    def encoded(line: str | bytes | dict[str, Any]) -> bytes:
        if isinstance(line, dict):
            line = json.dumps(line)
        return line if isinstance(line, bytes) else line.encode()

    path.write_bytes(b"".join(encoded(line) + b"\n" for line in lines))
    return path


GOOD_IDS = ["b7ad6b7169203331", "00f067aa0ba902b7", "53995c3f42cd8ad8"]


@pytest.mark.parametrize(
    "bad", [*BAD_LINES.values(), *BAD_SPANS.values()], ids=[*BAD_LINES, *BAD_SPANS]
)
def test_a_malformed_line_or_span_is_skipped_counted_and_named(tmp_path: Path, bad: str) -> None:
    path = _write(tmp_path / "traces.jsonl", LINE_1, "", bad, LINE_2)

    read = read_spans_with_skips(path)

    assert read.frame["span_id"].tolist() == GOOD_IDS
    whole_line = bad in BAD_LINES.values()
    assert (read.lines_skipped, read.items_skipped) == ((1, 0) if whole_line else (0, 1))
    assert not read.complete
    assert len(read.problems) == 1 and read.problems[0].startswith(f"{path}:3: ")
    if not whole_line:
        assert "resourceSpans[0].scopeSpans[0].spans[0]: " in read.problems[0]
    pd.testing.assert_frame_equal(read_spans(path), read.frame)


@pytest.mark.parametrize(
    "bad", [*BAD_LINES.values(), *BAD_SPANS.values()], ids=[*BAD_LINES, *BAD_SPANS]
)
def test_strict_reading_names_file_and_line(tmp_path: Path, bad: str) -> None:
    path = _write(tmp_path / "traces.jsonl", LINE_1, "", bad, LINE_2)
    with pytest.raises(OtlpFileError) as caught:
        read_spans(path, strict=True)
    error = caught.value
    assert error.line == 3
    assert f"{path}:3: " in str(error)
    assert "fix or remove" in str(error)
    assert error.backend == "otlp-file"


@pytest.mark.parametrize("bad", BAD_PARTS.values(), ids=BAD_PARTS.keys())
def test_a_malformed_part_without_spans_still_makes_the_read_incomplete(
    tmp_path: Path, bad: str
) -> None:
    path = _write(tmp_path / "traces.jsonl", LINE_1, bad, LINE_2)

    read = read_spans_with_skips(path)

    assert read.frame["span_id"].tolist() == GOOD_IDS
    assert (read.lines_skipped, read.items_skipped) == (0, 0)
    assert not read.complete and read.problems[0].startswith(f"{path}:2: resourceSpans[0]")
    with pytest.raises(OtlpFileError, match="resourceSpans"):
        read_spans(path, strict=True)


def test_skipping_keeps_the_good_spans_of_a_line_and_counts_a_bad_resource(tmp_path: Path) -> None:
    bad_resource = _resource_spans(
        "s", _span("2222222222222222", "a"), _span("3333333333333333", "b")
    )
    bad_resource["resource"]["attributes"].append({"key": "", "value": {"stringValue": "v"}})
    mixed = {
        "resourceSpans": [
            _resource_spans(
                "s",
                _span("4444444444444444", "kept"),
                _span("5555555555555555", "late", endTimeUnixNano=str(2**63 + 1)),
            ),
            bad_resource,
        ]
    }
    path = _write(tmp_path / "traces.jsonl", mixed, LOG_LINE, LINE_2)

    read = read_spans_with_skips(path)

    assert read.frame["span_id"].tolist() == ["4444444444444444", "53995c3f42cd8ad8"]
    assert (read.items_skipped, read.lines_skipped) == (3, 0)
    assert [p.split(": ")[1] for p in read.problems] == [
        "resourceSpans[0].scopeSpans[0].spans[1]",
        "resourceSpans[1]",
    ]
    assert "endTimeUnixNano 9223372036854775809 is outside 0..2^63-1" in read.problems[0]
    assert "an attribute key is empty or missing" in read.problems[1]


def test_problems_are_capped_but_counts_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path / "traces.jsonl", LINE_1, *["nope"] * (MAX_PROBLEMS + 5))
    read = read_spans_with_skips(path)
    assert read.lines_skipped == MAX_PROBLEMS + 5
    assert len(read.problems) == MAX_PROBLEMS
    assert len(read_spans(path)) == 2
    assert f"skipped 0 malformed span(s) and {MAX_PROBLEMS + 5} unreadable line(s)" in caplog.text


def test_error_pickles_with_its_line(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "t?.jsonl", LINE_1, "nope")
    with pytest.raises(OtlpFileError) as caught:
        read_spans(path, strict=True)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert str(copy) == str(caught.value)
    assert copy.line == 2 and copy.url == str(path)


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("missing.jsonl", None, "cannot be read"),
        ("bad.jsonl.gz", b"not gzip at all", "gzip"),
        ("cut.jsonl.gz", gzip.compress(json.dumps(LINE_1).encode())[:-8], "gzip"),
        ("bad.pb", b"\x0a\xff\xff\xff\xff\x0f", "not a protobuf ExportTraceServiceRequest"),
    ],
)
def test_an_unreadable_file_is_named(
    tmp_path: Path, name: str, content: bytes | None, words: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(OtlpFileError, match=words) as caught:
        read_spans([path])
    assert str(caught.value).startswith(f"otlp-file {path}")


def test_empty_input_gives_typed_empty_frames(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    for frame, columns in [
        (read_spans([]), SPAN_COLUMNS),
        (read_spans(empty), SPAN_COLUMNS),
        (read_logs([]), LOG_COLUMNS),
        (read_logs(empty), LOG_COLUMNS),
    ]:
        assert frame.empty
        assert list(frame.columns) == list(columns)
        assert frame["trace_id"].dtype == pd.Series(dtype="str").dtype


def test_logs_lines_and_a_mixed_file(tmp_path: Path) -> None:
    mixed = _write_lines(tmp_path / "otlp.jsonl", LINE_1, LOG_LINE, LINE_2)

    logs = read_logs(mixed)
    spans = read_spans(mixed)

    assert len(spans) == 3  # the logs line is another signal, not an error
    assert logs[
        ["level", "msg", "trace_id", "span_id", "task_id", "agent_type"]
    ].values.tolist() == [
        ["ERROR", "agent exited", TRACE, "53995c3f42cd8ad8", "t-1", "copilot"],
        ["WARN", "", "", "", "", ""],
    ]
    assert logs["fields"].tolist() == [{"exit_code": 3}, {}]
    assert logs["timestamp_ns"].tolist() == [1795824539150000000, 1795824539160000000]
    assert logs["time"].iloc[0] == pd.Timestamp(1795824539150000000, unit="ns", tz="UTC")
    assert logs["labels"].iloc[0] == {"service.name": "daedalus-proxy"}


def test_logs_protobuf_file(tmp_path: Path) -> None:
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                scope_logs=[
                    ScopeLogs(
                        log_records=[
                            LogRecord(
                                time_unix_nano=5,
                                severity_text="INFO",
                                body=AnyValue(string_value="started"),
                                trace_id=bytes.fromhex(TRACE),
                                span_id=bytes.fromhex("1111111111111111"),
                                attributes=[
                                    KeyValue(
                                        key="daedalus.task.id", value=AnyValue(string_value="t-3")
                                    )
                                ],
                            )
                        ]
                    )
                ]
            )
        ]
    )
    path = tmp_path / "logs.binpb"
    path.write_bytes(request.SerializeToString())

    frame = read_logs(path)

    assert frame[["level", "msg", "trace_id", "span_id", "task_id"]].values.tolist() == [
        ["INFO", "started", TRACE, "1111111111111111", "t-3"]
    ]


def test_malformed_log_records_are_skipped_and_counted(tmp_path: Path) -> None:
    good = LOG_LINE["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    bad_records = [
        {**good, "timeUnixNano": str(2**64 - 1)},
        {**good, "attributes": [{"value": {"intValue": "1"}}]},
        {**good, "spanId": "xyz"},
    ]
    bad = {"resourceLogs": [{"scopeLogs": [{"logRecords": bad_records}]}]}
    path = _write(tmp_path / "logs.jsonl", bad, LOG_LINE, b"\xff\xfe")

    read = read_logs_with_skips(path)

    assert read.frame["msg"].tolist() == ["agent exited", ""]
    assert (read.items_skipped, read.lines_skipped) == (3, 1)
    assert [p.split(": ")[1] for p in read.problems[:3]] == [
        f"resourceLogs[0].scopeLogs[0].logRecords[{i}]" for i in range(3)
    ]
    assert read.problems[3].startswith(f"{path}:3: not UTF-8")
    with pytest.raises(OtlpFileError, match="timeUnixNano 18446744073709551615 is outside"):
        read_logs(path, strict=True)


def test_a_protobuf_file_keeps_its_readable_spans(tmp_path: Path) -> None:
    request = _proto_request()
    request.resource_spans[0].scope_spans[0].spans[1].end_time_unix_nano = 2**64 - 1
    path = tmp_path / "request.pb"
    path.write_bytes(request.SerializeToString())

    read = read_spans_with_skips(path)

    assert read.frame["span_id"].tolist() == ["1111111111111111"]
    assert read.items_skipped == 1
    assert read.problems == (
        f"{path}: resourceSpans[0].scopeSpans[0].spans[1]: endTimeUnixNano "
        "18446744073709551615 is outside 0..2^63-1 unix nanoseconds",
    )
