"""LokiSource against a fake Loki answering as the real one did (tests/samples/loki, loki-3.8)."""

from __future__ import annotations

import json
import math
import pickle
import socket
import threading

import pandas as pd
import pytest

from obslib.errors import (
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    MalformedResponse,
    NoData,
    QueryRejected,
    SourceError,
)
from obslib.settings import load_settings
from obslib.sources.coverage import verdict_on
from obslib.sources.endpoint import endpoint_from_env
from obslib.sources.frames import LOG_COLUMNS, PROMETHEUS_COLUMNS
from obslib.sources.http import HttpClient
from obslib.sources.logfields import loki_label_name, parse_line
from obslib.sources.loki import LokiSource, log_selector, stream_selector
from obslib.verdict import Verdict
from tests.fakes.http_server import FakeServer, Reply, Request
from tests.fakes.loki import (
    AGENT_QUERY,
    LIMIT_QUERY,
    MATRIX_QUERY,
    OTLP_QUERY,
    PROXY_JSON_QUERY,
    PROXY_RAW_QUERY,
    PUSH_JSON_QUERY,
    PUSH_RAW_QUERY,
    SERIES_MATCH,
    TRACE_FILTER_QUERY,
    VECTOR_QUERY,
    FakeLoki,
    LogEntry,
    limit_entries,
    otlp_entries,
    push_json_entries,
    recorded_entries,
    sample,
    sample38,
    tie_entries,
)

TOKEN = "s3cr3t-loki-token-9f2"
ORG = "tenant-daedalus-77"
ALL = '{namespace="daedalus"}'
RANGE_PATH = "/loki/api/v1/query_range"
T0 = 1_795_824_000_000_000_000  # ns; Loki reads 10 digits or fewer as seconds


def make_source(url: str, *, timeout: float = 5.0, retries: int = 1) -> LokiSource:
    env = {
        "OBSLIB_LOKI_URL": url,
        "OBSLIB_LOKI_TOKEN": TOKEN,
        "OBSLIB_LOKI_ORG_ID": ORG,
        "OBSLIB_LOKI_TIMEOUT": str(timeout),
    }
    endpoint = endpoint_from_env("loki", environ=env)
    return LokiSource(
        client=HttpClient(endpoint, retries=retries, backoff_s=0, sleep=lambda _: None)
    )


def rows(frame: pd.DataFrame) -> list[tuple]:
    return [
        (ts, tuple(sorted(labels.items())), line)
        for ts, labels, line in zip(
            frame["timestamp_ns"], frame["labels"], frame["line"], strict=True
        )
    ]


def truth(fake: FakeLoki, query: str, start: int, end: int, keep: slice = slice(None)) -> list:
    """The fake's entries (the ``keep`` slice of Loki's merge order) in the frame's order."""
    chosen = [(e.ts, e.labels, e.line) for e in fake.matching(query, start, end)][keep]
    return sorted(chosen, key=lambda row: (row[0], row[1]))  # stable within a stream


def range_requests(fake: FakeLoki) -> list:
    return [r for r in fake.requests if r.path == RANGE_PATH]


@pytest.fixture(scope="module")
def entries() -> list[LogEntry]:
    base = recorded_entries()
    return base + tie_entries(base)


@pytest.fixture(scope="module")
def window(entries: list[LogEntry]) -> tuple[int, int]:
    return min(e.ts for e in entries), max(e.ts for e in entries) + 1


@pytest.fixture
def loki(entries: list[LogEntry]):
    with FakeLoki(entries) as fake:
        yield fake


@pytest.fixture
def source(loki: FakeLoki) -> LokiSource:
    return make_source(loki.url)


# -- the fake is faithful to the recordings -----------------------------------------------


def test_fake_reproduces_recorded_answers() -> None:
    with FakeLoki(recorded_entries()) as fake:
        start, end = min(e.ts for e in fake.entries), max(e.ts for e in fake.entries) + 1
        raw = fake.streams_body(fake.select(PROXY_RAW_QUERY, start, end, 3, "forward"))
        expected = json.loads(sample("query-range-streams-raw-forward.json"))["data"]["result"]
        assert raw["data"]["result"] == expected
        agent = fake.streams_body(fake.select(AGENT_QUERY, start, end, 5000, "backward"))
        expected = json.loads(sample("query-range-limit-5000.json.gz"))["data"]["result"]
        assert agent["data"]["result"] == expected
        # the recorded instant count_over_time per container is the whole store
        vector = json.loads(sample("query-instant-vector.json"))["data"]["result"]
        for series in vector:
            selector = f'{{namespace="daedalus", container="{series["metric"]["container"]}"}}'
            assert len(fake.matching(selector, start, end)) == int(series["value"][1])


def test_fake_error_texts_are_the_recorded_bytes(loki: FakeLoki) -> None:
    reply = loki.handle(_request({"query": AGENT_QUERY, "limit": "6000"}))
    assert (reply.status, reply.body.encode()) == (400, sample("query-range-limit-exceeded.txt"))
    reply = loki.handle(_request({"query": '{namespace="daedalus" | json'}))
    assert (reply.status, reply.body.encode()) == (400, sample("query-range-parse-error.txt"))


def _request(params: dict[str, str]) -> Request:
    return Request("GET", RANGE_PATH, {k: [v] for k, v in params.items()}, {}, b"")


# -- paging -------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_paging_returns_every_entry_once(
    loki: FakeLoki, source: LokiSource, window: tuple[int, int], direction: str
) -> None:
    frame = source.query_range(ALL, *window, direction=direction, page_size=97)
    expected = truth(loki, ALL, *window)
    assert len(expected) > 6000
    assert rows(frame) == expected
    requests = range_requests(loki)
    assert len(requests) >= len(expected) // 97
    assert all(int(r.param("limit")) <= 97 for r in requests)
    assert all(r.param("direction") == direction for r in requests)
    # the data did put equal timestamps across page edges, so de-duplication was exercised
    assert any(s.edge_returned < s.edge_in_window for s in loki.served)


def test_both_directions_give_the_same_frame(source: LokiSource, window: tuple[int, int]) -> None:
    forward = source.query_range(ALL, *window, page_size=500)
    backward = source.query_range(ALL, *window, direction="backward", page_size=333)
    pd.testing.assert_frame_equal(forward, backward)
    assert list(forward.columns) == list(LOG_COLUMNS)
    assert forward["timestamp_ns"].is_monotonic_increasing


def _tie_store() -> list[LogEntry]:
    """Ten instants, some shared by two or three entries, one of them in a second stream with
    the very same line (only the labels tell it apart)."""
    s1 = {"namespace": "daedalus", "container": "agent", "pod": "p-1"}
    s2 = s1 | {"pod": "p-2"}
    store = []
    for instant, count in [(1, 1), (2, 3), (3, 1), (4, 2), (5, 1), (6, 1), (7, 3), (8, 1), (9, 2)]:
        ts = T0 + instant * 1000
        store += [LogEntry.of(ts, s1, f"line {instant}.{i}") for i in range(min(count, 2))]
        if count == 3:
            store.append(LogEntry.of(ts, s2, f"line {instant}.0"))
    return store


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("page_size", [4, 6])  # sizes that do cut through a shared instant
def test_equal_timestamps_at_a_page_edge_are_kept_once(direction: str, page_size: int) -> None:
    with FakeLoki(_tie_store()) as fake:
        frame = make_source(fake.url).query_range(
            ALL, T0, T0 + 10_000, direction=direction, page_size=page_size
        )
        assert rows(frame) == truth(fake, ALL, T0, T0 + 10_000)
        assert len(frame) == 15
        assert any(s.edge_returned < s.edge_in_window for s in fake.served)


def test_a_server_ignoring_the_window_is_malformed_not_an_endless_loop() -> None:
    page = {"stream": {"a": "b"}, "values": [[str(T0 + i), f"line {i}"] for i in (3, 2, 1)]}
    body = {"status": "success", "data": {"resultType": "streams", "result": [page]}}
    with (
        FakeServer(lambda _: Reply(body=json.dumps(body))) as server,
        pytest.raises(MalformedResponse, match="outside"),
    ):
        make_source(server.url).query_range(ALL, T0, T0 + 3, page_size=3)
    assert len(server.requests) == 1


def test_more_equal_timestamps_than_a_page_raise_a_clear_error() -> None:
    flood = {"namespace": "daedalus", "container": "flood"}
    store = [LogEntry.of(T0 + 500, flood, "before")]
    store += [LogEntry.of(T0 + 1000, flood, f"burst {i}") for i in range(30)]
    store += [LogEntry.of(T0 + 2000, flood, "after")]
    with FakeLoki(store) as fake:
        source = make_source(fake.url)
        for direction in ("forward", "backward"):
            with pytest.raises(QueryRejected, match="raise page_size") as caught:
                source.query_range(ALL, T0, T0 + 5000, direction=direction, page_size=10)
            assert f"{T0 + 1000} ns" in caught.value.detail
        assert len(range_requests(fake)) <= 4  # gave up, did not loop
        whole = source.query_range(ALL, T0, T0 + 5000, page_size=31)
        assert rows(whole) == truth(fake, ALL, T0, T0 + 5000)
        assert len(whole) == 32
        first = source.query_range(ALL, T0, T0 + 5000, limit=6, page_size=10)
        assert rows(first) == truth(fake, ALL, T0, T0 + 5000, slice(6))


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_limit_keeps_the_oldest_or_newest(
    loki: FakeLoki, source: LokiSource, window: tuple[int, int], direction: str
) -> None:
    frame = source.query_range(ALL, *window, limit=150, direction=direction, page_size=40)
    keep = slice(None, 150) if direction == "forward" else slice(-150, None)
    assert rows(frame) == truth(loki, ALL, *window, keep)
    assert len(set(rows(frame))) == 150


def test_small_limit_asks_for_no_more(loki: FakeLoki, source: LokiSource, window) -> None:
    frame = source.query_range(AGENT_QUERY, *window, limit=10)
    assert len(frame) == 10
    assert [r.param("limit") for r in range_requests(loki)] == ["10"]


def test_window_is_start_inclusive_end_exclusive_in_any_time_form(
    loki: FakeLoki, source: LokiSource
) -> None:
    agent = loki.matching(AGENT_QUERY, 0, 2**62)
    start, end = agent[100].ts, agent[200].ts
    as_ns = source.query_range(AGENT_QUERY, start, end)
    as_text = source.query_range(
        AGENT_QUERY,
        pd.Timestamp(start, unit="ns", tz="UTC").isoformat(),
        pd.Timestamp(end, unit="ns", tz="UTC").isoformat(),
    )
    pd.testing.assert_frame_equal(as_ns, as_text)
    assert as_ns["timestamp_ns"].min() == start
    assert as_ns["timestamp_ns"].max() < end
    assert rows(as_ns) == truth(loki, AGENT_QUERY, start, end)
    assert {r.param("start") for r in range_requests(loki)} == {str(start)}


@pytest.mark.parametrize(
    "kwargs",
    [{"direction": "sideways"}, {"page_size": 1}, {"limit": 0}, {"start": 10, "end": 10}],
)
def test_bad_arguments_are_config_errors(source: LokiSource, kwargs: dict) -> None:
    args = {"start": 0, "end": 10} | kwargs
    with pytest.raises(ConfigError):
        source.query_range(ALL, **args)


# -- JSON lines to columns ----------------------------------------------------------------


def test_recorded_proxy_lines_land_in_columns(source: LokiSource, window) -> None:
    frame = source.query_range(PROXY_JSON_QUERY, *window)
    assert len(frame) == 9
    assert frame["timestamp_ns"].is_monotonic_increasing
    assert (frame["time"] == pd.to_datetime(frame["timestamp_ns"], unit="ns", utc=True)).all()
    assert set(frame["task_id"]) == {"t-ok-1", "t-broken-1", "t-err-1", "t-lost-1", ""}
    assert set(frame["agent_type"]) == {"copilot"}

    failed = frame[frame["task_id"] == "t-lost-1"].iloc[0]
    assert (failed["level"], failed["msg"]) == ("ERROR", "proxy: task failed")
    assert failed["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert failed["fields"] == {
        "time": "2026-11-28T00:10:06.000Z",
        "err": "acp: session/prompt: EOF",
    }
    assert failed["parse_error"] == ""

    handling = frame[frame["msg"] == "proxy: handling task"]
    assert set(handling["span_id"]) == {"00f067aa0ba902b7"}
    completed = frame[frame["msg"] == "proxy: prompt completed"]
    # from the line itself: an int, where | json left the label "512"
    assert [f["contentLength"] for f in completed["fields"]] == [512, 512, 512]
    assert all(labels["contentLength"] == "512" for labels in completed["labels"])

    plain = frame[frame["parse_error"] != ""]
    assert list(plain["line"]) == ["plain text line that is not JSON"]
    row = plain.iloc[0]
    assert row["parse_error"].startswith("not JSON")
    assert row["labels"]["__error__"] == "JSONParserErr"
    assert (row["level"], row["task_id"], row["trace_id"], row["fields"]) == ("", "", "", {})


def test_trace_filter_recording(source: LokiSource, window) -> None:
    frame = source.query_range(TRACE_FILTER_QUERY, *window, require_data=True)
    assert list(frame["task_id"]) == ["t-lost-1"]
    assert list(frame["level"]) == ["ERROR"]


@pytest.mark.parametrize(
    ("line", "labels", "column", "expected"),
    [
        ('{"taskID": "t-1"}', {}, "task_id", "t-1"),
        ('{"task_id": "t-2"}', {}, "task_id", "t-2"),
        ('{"daedalus.task.id": "t-3"}', {}, "task_id", "t-3"),
        ('{"daedalus": {"task": {"id": "t-4"}}}', {}, "task_id", "t-4"),
        (
            '{"agent_type": "claude"}',
            {"app_kubernetes_io_component": "copilot"},
            "agent_type",
            "claude",
        ),
        ("{}", {"app_kubernetes_io_component": "copilot"}, "agent_type", "copilot"),
        (
            '{"trace_id": "0AF7651916CD43DD8448EB211C80319C"}',
            {},
            "trace_id",
            "0af7651916cd43dd8448eb211c80319c",
        ),
        ('{"message": "hello"}', {}, "msg", "hello"),
        ("not json", {"detected_level": "warn"}, "level", "warn"),
        ("not json", {"detected_level": "unknown"}, "level", ""),
        ('{"level": "INFO"}', {"detected_level": "info"}, "level", "INFO"),
    ],
)
def test_parse_line_columns(line: str, labels: dict, column: str, expected: str) -> None:
    assert parse_line(line, labels)[column] == expected


@pytest.mark.parametrize("line", ["[1, 2]", "42", "", '{"level": "INFO"'])
def test_lines_that_are_not_objects_are_kept_with_a_parse_error(line: str) -> None:
    parsed = parse_line(line, {})
    assert parsed["line"] == line
    assert parsed["parse_error"]
    assert parsed["fields"] == {}


def test_other_fields_are_kept_and_known_ones_removed() -> None:
    parsed = parse_line('{"taskId": "t", "taskID": "u", "level": "WARN", "n": 3}', {})
    assert parsed["task_id"] == "t"
    assert parsed["fields"] == {"taskID": "u", "n": 3}


# -- metric queries -----------------------------------------------------------------------


def test_matrix_recording_becomes_a_float_frame(loki: FakeLoki, source: LokiSource) -> None:
    frame = source.metric_range(MATRIX_QUERY, 1795824500 * 10**9, 1795824700 * 10**9, step=60)
    assert list(frame.columns) == [*PROMETHEUS_COLUMNS, "container"]
    assert frame["value"].dtype == "float64"
    assert list(frame["value"]) == [2674.0, 2526.0, 6.0, 3.0]
    assert list(frame["container"]) == ["agent", "agent", "proxy", "proxy"]
    assert list(frame["series"].unique()) == ['{container="agent"}', '{container="proxy"}']
    assert frame["timestamp"].iloc[0] == pd.Timestamp(1795824540, unit="s", tz="UTC")
    assert range_requests(loki)[-1].param("step") == "60"


def test_nan_and_infinities_stay_floats(loki: FakeLoki, source: LokiSource) -> None:
    body = json.loads(sample("query-range-matrix.json"))
    series = body["data"]["result"][0]
    series["values"] = [[1795824540, "NaN"], [1795824600, "+Inf"], [1795824660, "-Inf"]]
    loki.extra[(RANGE_PATH, "odd")] = json.dumps(body).encode()
    values = list(source.metric_range("odd", 0, 10**18, step="1m")["value"])
    assert math.isnan(values[0])
    assert values[1:] == [math.inf, -math.inf, 6.0, 3.0]


def test_instant_vector_recording(loki: FakeLoki, source: LokiSource) -> None:
    frame = source.metric_instant(VECTOR_QUERY, "2026-11-28T00:10:09.795Z")
    assert list(frame["value"]) == [5200.0, 9.0]
    assert list(frame["container"]) == ["agent", "proxy"]
    assert set(frame["timestamp"]) == {pd.Timestamp(1795824609795, unit="ms", tz="UTC")}
    assert loki.requests[-1].param("time") == "1795824609795000000"


def test_log_and_metric_query_mixups_say_which_method(source: LokiSource, window) -> None:
    with pytest.raises(QueryRejected, match="metric_range"):
        source.query_range(MATRIX_QUERY, *window)
    with pytest.raises(QueryRejected, match="query_range"):
        source.metric_range(AGENT_QUERY, *window, step=60)


# -- discovery ----------------------------------------------------------------------------


def test_discovery() -> None:
    with FakeLoki(recorded_entries()) as loki:
        source = make_source(loki.url)
        # The recording's Loki also held streams with `agent_type` and `app` labels that no
        # other recording shows; the fake computes the names from the streams it holds.
        recorded = json.loads(sample("labels.json"))["data"]
        assert source.labels() == [n for n in recorded if n not in ("agent_type", "app")]
        assert source.label_values("container") == ["agent", "proxy"]
        series = source.series(SERIES_MATCH)
        assert loki.requests[-1].params["match[]"] == [SERIES_MATCH]
        with pytest.raises(ConfigError):
            source.label_values("bad/name")
    assert len(series) == 2
    assert set(series["container"]) == {"agent", "proxy"}
    assert set(series["app_kubernetes_io_component"]) == {"copilot"}
    assert series["series"].str.startswith("{app_kubernetes_io_component=").all()


# -- failures -----------------------------------------------------------------------------


def test_server_refusals_keep_the_server_text(source: LokiSource, window) -> None:
    bad = '{namespace="daedalus" | json'
    with pytest.raises(QueryRejected) as caught:
        source.query_range(bad, *window)
    assert caught.value.detail == sample("query-range-parse-error.txt").decode()
    assert caught.value.query == bad
    assert RANGE_PATH in str(caught.value)
    with pytest.raises(QueryRejected) as caught:
        source.query_range(AGENT_QUERY, *window, page_size=6000)
    assert caught.value.detail.startswith(sample("query-range-limit-exceeded.txt").decode())
    assert "page_size" in caught.value.detail


def test_no_data(loki: FakeLoki, source: LokiSource) -> None:
    empty = source.query_range(ALL, T0, T0 + 1000)
    assert empty.empty
    assert list(empty.columns) == list(LOG_COLUMNS)
    with pytest.raises(NoData) as caught:
        source.query_range(ALL, T0, T0 + 1000, require_data=True)
    assert caught.value.query == ALL
    body = {"status": "success", "data": {"resultType": "vector", "result": []}}
    loki.extra[("/loki/api/v1/query", "nothing")] = json.dumps(body).encode()
    assert source.metric_instant("nothing", 0).empty
    with pytest.raises(NoData):
        source.metric_instant("nothing", 0, require_data=True)


MALFORMED = [
    ("range", b"<html>proxy error</html>"),
    ("range", b'{"status": "error"}'),
    ("range", b'{"status": "success", "data": {"resultType": "streams"}}'),
    ("range", b'{"status": "success", "data": {"resultType": "scalar", "result": []}}'),
    (
        "range",
        b'{"status": "success", "data": {"resultType": "streams", "result": [{"values": []}]}}',
    ),
    (
        "range",
        b'{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":[["x","l"]]}]}}',
    ),
    (
        "range",
        b'{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":[["1"]]}]}}',
    ),
    (
        "matrix",
        b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"abc"]]}]}}',
    ),
    ("matrix", b'{"status":"success","data":{"resultType":"matrix","result":[{"values":[]}]}}'),
    ("labels", b'{"status": "success", "data": [1, 2]}'),
]


@pytest.mark.parametrize(("call", "body"), MALFORMED)
def test_malformed_bodies(call: str, body: bytes) -> None:
    with FakeServer(lambda _: Reply(body=body)) as server:
        source = make_source(server.url)
        with pytest.raises(MalformedResponse) as caught:
            if call == "range":
                source.query_range(ALL, 0, 10)
            elif call == "matrix":
                source.metric_range("sum(rate(x[1m]))", 0, 10, step=1)
            else:
                source.labels()
    assert caught.value.backend == "loki"
    assert caught.value.url.startswith(server.url)
    _assert_no_secret(caught.value)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_port_is_backend_unavailable() -> None:
    source = make_source(f"http://127.0.0.1:{_free_port()}", retries=2)
    with pytest.raises(BackendUnavailable) as caught:
        source.query_range(ALL, 0, 10)
    assert "cannot connect" in caught.value.detail
    assert "3 attempts" in caught.value.detail
    assert caught.value.query == ALL
    _assert_no_secret(caught.value)


def test_timeout_is_backend_timeout() -> None:
    release = threading.Event()

    def slow(_request):
        release.wait(5)
        return Reply(body=b"{}")

    with FakeServer(slow) as server:
        try:
            with pytest.raises(BackendTimeout, match="no complete answer within") as caught:
                make_source(server.url, timeout=0.2, retries=1).labels()
        finally:
            release.set()
    assert len(server.requests) == 1  # the deadline is spent: no retry
    assert isinstance(caught.value, BackendUnavailable)
    _assert_no_secret(caught.value)


def test_overloaded_server_is_retried_then_unavailable() -> None:
    busy = Reply(status=503, body="too busy", content_type="text/plain")
    with (
        FakeServer(lambda _: busy) as server,
        pytest.raises(BackendUnavailable, match="too busy"),
    ):
        make_source(server.url, retries=2).metric_instant(VECTOR_QUERY, 0)
    assert len(server.requests) == 3


# -- credentials --------------------------------------------------------------------------


def _assert_no_secret(exc: SourceError) -> None:
    for text in (str(exc), repr(exc), repr(pickle.loads(pickle.dumps(exc)))):
        assert TOKEN not in text
        assert ORG not in text


def test_credentials_are_sent_but_never_shown(loki: FakeLoki, source: LokiSource, window) -> None:
    source.query_range(ALL, *window, page_size=2000)
    source.labels()
    with pytest.raises(QueryRejected) as caught:
        source.query_range("{oops", *window)
    assert loki.requests
    for request in loki.requests:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["x-scope-orgid"] == ORG
    _assert_no_secret(caught.value)
    for text in (repr(source), repr(source.endpoint), str(source.endpoint)):
        assert TOKEN not in text
        assert ORG not in text


def test_default_endpoint_comes_from_the_environment(
    loki: FakeLoki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBSLIB_LOKI_URL", loki.url)
    monkeypatch.setenv("OBSLIB_LOKI_TOKEN", TOKEN)
    monkeypatch.setenv("OBSLIB_LOKI_ORG_ID", ORG)
    assert LokiSource().label_values("container") == ["agent", "proxy"]
    assert loki.requests[-1].headers["x-scope-orgid"] == ORG


def _rejected_with_password_in_url(loki: FakeLoki) -> tuple[LokiSource, QueryRejected]:
    url = loki.url.replace("http://", "http://reader:pa55word-xyz@")
    source = LokiSource(endpoint_from_env("loki", environ={"OBSLIB_LOKI_URL": url}))
    with pytest.raises(QueryRejected) as caught:
        source.query_range("{oops", 0, 10)
    assert loki.requests[-1].headers["authorization"].startswith("Basic ")
    return source, caught.value


def test_password_in_the_url_is_not_in_messages(loki: FakeLoki) -> None:
    source, exc = _rejected_with_password_in_url(loki)
    for text in (str(exc), exc.url, repr(source), source.endpoint.safe_url):
        assert "pa55word" not in text


def test_password_in_the_url_is_not_in_reprs(loki: FakeLoki) -> None:
    _, exc = _rejected_with_password_in_url(loki)
    assert "pa55word" not in repr(exc)


def test_password_in_the_url_is_not_in_the_endpoint_repr(loki: FakeLoki) -> None:
    source, _ = _rejected_with_password_in_url(loki)
    assert "pa55word" not in repr(source.endpoint)


# -- Loki 3.8: OTLP logs, JSON push, the limit (tests/samples/loki-3.8) -------------------

OTLP_WINDOW = (1795913693437000936, 1795913994437000936)  # case 6, as recorded
PUSH_WINDOW = (1795913695987390441, 1795913996987390441)  # cases 7 and 8
NEXT_PAGE_END = 1795913865987390441  # the oldest timestamp of the limited answer
CATEGORIZE_HEADER = "x-loki-response-encoding-flags"
SHARED_TRACE = "539b0e3e8ef409e0eab1542587ec1689"
OTLP_SPANS = {
    "2f6f5d646f1379c2",
    "d5daa29b44c12bc4",
    "447bcdd1d2a33ae0",
    "45bb81f4d0a66b65",
    "bded1f47f7b816b0",
    "01745154d44b90d9",
}


def _range(query: str, window: tuple[int, int], categorize: bool = False, **params: str) -> Request:
    args = {"query": [query], "start": [str(window[0])], "end": [str(window[1])]}
    args |= {k: [v] for k, v in params.items()}
    headers = {CATEGORIZE_HEADER: "categorize-labels"} if categorize else {}
    return Request("GET", RANGE_PATH, args, headers, b"")


def _answer(fake: FakeLoki, request: Request) -> dict:
    reply = fake.handle(request)
    assert reply.status == 200, reply.body
    return json.loads(reply.body)["data"]


def _recorded(name: str) -> dict:
    return json.loads(sample38(name))["data"]


def _same_answer(got: dict, recorded: dict) -> None:
    """The same keys in the same order, the same streams, and the same counts in stats."""
    assert list(got) == list(recorded)
    assert got["result"] == recorded["result"]
    assert got.get("encodingFlags") == recorded.get("encodingFlags")
    counts = ("totalEntriesReturned", "totalPostFilterLines", "totalLinesProcessed")
    for key in counts:
        assert got["stats"]["summary"][key] == recorded["stats"]["summary"][key], key


def test_fake_answers_otlp_logs_as_recorded_with_and_without_categorize_labels() -> None:
    with FakeLoki(otlp_entries()) as fake:
        plain = _answer(fake, _range(OTLP_QUERY, OTLP_WINDOW, limit="100"))
        _same_answer(plain, _recorded("otlp-logs-query-range.json"))
        assert len(plain["result"]) == 6  # metadata merged: every record is its own stream
        categorized = _answer(fake, _range(OTLP_QUERY, OTLP_WINDOW, True, limit="100"))
        _same_answer(categorized, _recorded("otlp-logs-query-range-categorize-labels.json"))
        assert len(categorized["result"]) == 3
        labels = fake.handle(
            Request("GET", "/loki/api/v1/labels", _range("", OTLP_WINDOW).params, {}, b"")
        )
        assert json.loads(labels.body) == json.loads(sample38("otlp-logs-labels.json"))


def test_fake_splits_a_json_pushed_stream_by_detected_level_as_recorded() -> None:
    with FakeLoki(push_json_entries()) as fake:
        raw = _answer(fake, _range(PUSH_RAW_QUERY, PUSH_WINDOW, limit="100"))
        _same_answer(raw, _recorded("push-json-query-range-raw.json"))
        assert [s["stream"]["detected_level"] for s in raw["result"]] == ["debug", "error", "info"]
        parsed = _answer(fake, _range(PUSH_JSON_QUERY, PUSH_WINDOW, limit="100"))
        assert parsed == _recorded("push-json-query-range-json.json")
        # categorized, the three levels are one stream again, detected_level its metadata
        one = _answer(fake, _range(PUSH_RAW_QUERY, PUSH_WINDOW, True, limit="100"))
        (stream,) = one["result"]
        assert "detected_level" not in stream["stream"]
        assert [v[2]["structuredMetadata"] for v in stream["values"]] == [
            {"detected_level": level} for level in ("error", "debug", "info")
        ]


def test_fake_cuts_at_the_limit_and_ends_the_next_page_exclusively_as_recorded() -> None:
    with FakeLoki(limit_entries()) as fake:
        limited = _answer(fake, _range(LIMIT_QUERY, PUSH_WINDOW, limit="100"))
        _same_answer(limited, _recorded("limit-reached-100-of-120.json"))
        summary = limited["stats"]["summary"]
        assert (summary["totalEntriesReturned"], summary["totalPostFilterLines"]) == (100, 120)
        assert limited["result"][0]["values"][-1][0] == str(NEXT_PAGE_END)
        window = (PUSH_WINDOW[0], NEXT_PAGE_END)
        _same_answer(
            _answer(fake, _range(LIMIT_QUERY, window, limit="100")),
            _recorded("limit-reached-next-page.json"),
        )
        reply = fake.handle(_range(LIMIT_QUERY, PUSH_WINDOW, limit="5001"))
        assert reply.status == 400 and "(5001 > 5000)" in str(reply.body)


def test_fake_series_are_the_recorded_streams_and_never_metadata() -> None:
    series = Request("GET", "/loki/api/v1/series", {"match[]": [SERIES_MATCH]}, {}, b"")
    with FakeLoki(recorded_entries()) as loki:
        assert json.loads(loki.handle(series).body) == json.loads(sample("series.json"))
    with FakeLoki(otlp_entries()) as fake:
        by_trace = {"match[]": [f'{{trace_id="{SHARED_TRACE}"}}']}
        found = fake.handle(Request("GET", "/loki/api/v1/series", by_trace, {}, b""))
        assert json.loads(found.body) == {"status": "success", "data": []}


def _ignoring_flags(body: bytes):
    """A server that answers every query_range with ``body``: a Loki ignoring the header."""
    return FakeServer(lambda r: Reply(body=body) if r.path == RANGE_PATH else Reply(404))


SAME_PATH_COLUMNS = ["timestamp_ns", "line", "level", "msg", "trace_id", "span_id", "task_id"]


def test_otlp_logs_land_in_the_log_columns_with_categorize_labels() -> None:
    with FakeLoki(otlp_entries()) as fake:
        fetched = make_source(fake.url).window_logs(OTLP_QUERY, *OTLP_WINDOW)
        assert all(r.headers[CATEGORIZE_HEADER] == "categorize-labels" for r in fake.requests)
    frame, coverage = fetched.frame, fetched.coverage
    assert len(frame) == 6 and frame["timestamp_ns"].is_monotonic_increasing
    assert set(frame["trace_id"]) == {SHARED_TRACE}
    assert set(frame["span_id"]) == OTLP_SPANS
    assert set(frame["task_id"]) == {"shared-id-1"}
    assert set(frame["agent_type"]) == {"copilot"}
    assert list(frame["level"]) == ["INFO", "INFO", "DEBUG", "INFO", "WARN", "INFO"]
    assert list(frame["msg"]) == list(frame["line"])  # a text body is the message
    assert frame["msg"].iloc[0] == "dispatching task to agent.tasks.copilot"
    assert set(frame["parse_error"]) == {""}
    assert all(
        set(labels) == {"k8s_namespace_name", "k8s_pod_name", "service_name"}
        for labels in frame["labels"]
    )
    assert all(meta["daedalus_task_id"] == "shared-id-1" for meta in frame["metadata"])
    assert (coverage.items, coverage.partial, coverage.matched_nothing) == (6, False, False)
    assert coverage.gaps == () and coverage.covered is None
    assert coverage.requested == (
        pd.Timestamp(OTLP_WINDOW[0], unit="ns", tz="UTC"),
        pd.Timestamp(OTLP_WINDOW[1], unit="ns", tz="UTC"),
    )
    assert coverage.what == "log lines" and coverage.source.startswith("Loki http://127.0.0.1")


def test_otlp_logs_give_the_same_columns_when_metadata_is_merged_into_labels() -> None:
    with FakeLoki(otlp_entries()) as fake:
        categorized = make_source(fake.url).window_logs(OTLP_QUERY, *OTLP_WINDOW)
    with _ignoring_flags(sample38("otlp-logs-query-range.json")) as server:
        merged = make_source(server.url).window_logs(OTLP_QUERY, *OTLP_WINDOW)
    pd.testing.assert_frame_equal(
        merged.frame[[*SAME_PATH_COLUMNS, "agent_type"]],
        categorized.frame[[*SAME_PATH_COLUMNS, "agent_type"]],
    )
    assert all(labels["trace_id"] == SHARED_TRACE for labels in merged.frame["labels"])
    assert all(meta == {} for meta in merged.frame["metadata"])
    assert not merged.coverage.partial and merged.coverage.items == 6
    assert any("ignored categorize-labels" in note for note in merged.coverage.notes)
    assert not any("ignored" in note for note in categorized.coverage.notes)


def test_json_pushed_lines_fill_the_same_columns_split_by_level_or_not() -> None:
    with FakeLoki(push_json_entries()) as fake:
        fetched = make_source(fake.url).window_logs(PUSH_RAW_QUERY, *PUSH_WINDOW)
    with _ignoring_flags(sample38("push-json-query-range-raw.json")) as server:
        split = make_source(server.url).window_logs(PUSH_RAW_QUERY, *PUSH_WINDOW)
    frame = fetched.frame
    assert list(frame["msg"]) == ["task received", "session/new sent", "session/prompt failed"]
    assert list(frame["level"]) == ["INFO", "DEBUG", "ERROR"]
    assert set(frame["task_id"]) == {"json-1"} and set(frame["agent_type"]) == {"copilot"}
    assert set(frame["trace_id"]) == {SHARED_TRACE}
    assert list(frame["span_id"]) == ["bded1f47f7b816b0", "2f6f5d646f1379c2", "b0d6d43b1e02d6a6"]
    assert frame["fields"].iloc[1]["acp"] == {"method": "session/new", "durationMs": 41}
    assert frame["fields"].iloc[2]["error"] == "agent exited with status 1"
    assert [m["detected_level"] for m in frame["metadata"]] == ["info", "debug", "error"]
    assert all("detected_level" not in labels for labels in frame["labels"])
    assert (fetched.coverage.items, fetched.coverage.partial, fetched.coverage.gaps) == (
        3,
        False,
        (),
    )
    # three streams (one per detected_level) without categorize-labels: the same rows
    pd.testing.assert_frame_equal(split.frame[SAME_PATH_COLUMNS], frame[SAME_PATH_COLUMNS])
    assert [labels["detected_level"] for labels in split.frame["labels"]] == [
        "info",
        "debug",
        "error",
    ]


def test_a_parser_query_keeps_the_parsers_labels_and_the_lines_fields() -> None:
    with FakeLoki(push_json_entries()) as fake:
        frame = make_source(fake.url).query_range(PUSH_JSON_QUERY, *PUSH_WINDOW)
    first = frame.iloc[1]
    assert first["labels"]["acp_durationMs"] == "41"  # the parser's text, kept as labels
    assert first["fields"]["acp"]["durationMs"] == 41  # the line's own value
    assert first["metadata"] == {"detected_level": "debug"}
    assert first["task_id"] == "json-1"


@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_the_limit_case_pages_on_with_the_exclusive_end(direction: str) -> None:
    with FakeLoki(limit_entries()) as fake:
        fetched = make_source(fake.url).window_logs(
            LIMIT_QUERY, *PUSH_WINDOW, page_size=100, direction=direction
        )
        requests = range_requests(fake)
    frame, coverage = fetched.frame, fetched.coverage
    chunks = [json.loads(line)["msg"][-3:] for line in frame["line"]]
    assert chunks == [f"{n:03d}" for n in range(120)]
    assert (coverage.items, coverage.partial, coverage.gaps) == (120, False, ())
    assert len(requests) == 2
    if direction == "backward":  # the next page ends just after the oldest line read
        assert requests[1].param("end") == str(NEXT_PAGE_END + 1)
    else:
        assert requests[1].param("start") == str(frame["timestamp_ns"].iloc[99])


@pytest.mark.parametrize(
    ("cap", "direction", "kept", "unread"),
    [
        (100, "forward", range(100), 20),
        (119, "forward", range(119), 1),
        (100, "backward", range(20, 120), 20),
    ],
)
def test_a_cap_reached_while_more_exist_makes_the_read_partial(
    cap: int, direction: str, kept: range, unread: int
) -> None:
    with FakeLoki(limit_entries()) as fake:
        fetched = make_source(fake.url).window_logs(
            LIMIT_QUERY, *PUSH_WINDOW, cap=cap, page_size=100, direction=direction
        )
    frame, coverage = fetched.frame, fetched.coverage
    assert [json.loads(line)["msg"][-3:] for line in frame["line"]] == [f"{n:03d}" for n in kept]
    assert coverage.partial and not coverage.matched_nothing
    (gap,) = coverage.gaps
    assert (gap.kind, gap.count) == ("cut_by_limit", unread)
    assert gap.detail.startswith(f"partial: {cap} lines read, more exist (cap of {cap}")
    stamps = frame["timestamp_ns"]
    edge = pd.Timestamp(
        stamps.max() if direction == "forward" else stamps.min(), unit="ns", tz="UTC"
    )
    assert edge in coverage.covered and coverage.covered != coverage.requested
    assert verdict_on(Verdict.PASS, [coverage]) == (Verdict.INCONCLUSIVE, [coverage.headline()])


def test_a_cap_the_window_does_not_reach_leaves_the_read_complete() -> None:
    with FakeLoki(limit_entries()) as fake:
        fetched = make_source(fake.url).window_logs(
            LIMIT_QUERY, *PUSH_WINDOW, cap=120, page_size=100
        )
    assert (fetched.coverage.items, fetched.coverage.partial, fetched.coverage.gaps) == (
        120,
        False,
        (),
    )
    assert verdict_on(Verdict.PASS, [fetched.coverage])[0] is Verdict.PASS


def test_a_selector_that_matches_no_stream_is_no_logs_matched() -> None:
    with FakeLoki(otlp_entries()) as fake:
        fetched = make_source(fake.url).window_logs('{namespace="daedalus"}', *OTLP_WINDOW)
    assert fetched.frame.empty and list(fetched.frame.columns) == list(LOG_COLUMNS)
    coverage = fetched.coverage
    assert coverage.matched_nothing and not coverage.partial
    (gap,) = coverage.gaps
    assert gap.kind == "no_match"
    assert gap.detail.startswith('no stream matched {namespace="daedalus"} between')
    assert "no label 'namespace'" in gap.detail
    assert "k8s_namespace_name, k8s_pod_name, service_name" in gap.detail


def test_streams_without_a_line_in_the_window_are_not_a_missing_selector() -> None:
    query = f'{OTLP_QUERY} |= "no such text"'
    with FakeLoki(otlp_entries()) as fake:
        fetched = make_source(fake.url).window_logs(query, *OTLP_WINDOW)
    assert fetched.frame.empty and fetched.coverage.matched_nothing
    assert fetched.coverage.gaps == ()
    assert any(
        note.startswith(f"3 stream(s) match {OTLP_QUERY}") for note in fetched.coverage.notes
    )


def test_window_logs_keeps_loki_refusals() -> None:
    with FakeLoki(limit_entries()) as fake, pytest.raises(QueryRejected, match="6000 > 5000"):
        make_source(fake.url).window_logs(LIMIT_QUERY, *PUSH_WINDOW, page_size=6000)
    with pytest.raises(ConfigError):
        make_source("http://127.0.0.1:9").window_logs(LIMIT_QUERY, *PUSH_WINDOW, cap=0)


def test_stream_selector_ignores_braces_in_quotes() -> None:
    assert stream_selector('{app="a}b", x=~`c}`} |= "}"') == '{app="a}b", x=~`c}`}'
    assert stream_selector('sum(rate({a="b"}[1m]))') == 'sum(rate({a="b"}[1m]))'


# -- the release's selector ---------------------------------------------------------------


def test_the_release_log_selector_comes_from_the_values_file(tmp_path) -> None:
    assert log_selector(load_settings()) == '{namespace="daedalus"}'
    otlp = tmp_path / "otlp.yaml"
    otlp.write_text("namespace: daedalus\nlogs:\n  namespaceLabel: k8s_namespace_name\n")
    selector = log_selector(load_settings(otlp))
    assert selector == '{k8s_namespace_name="daedalus"}'
    with FakeLoki(otlp_entries()) as fake:
        assert make_source(fake.url).window_logs(selector, *OTLP_WINDOW).coverage.items == 6
    bad = tmp_path / "bad.yaml"
    bad.write_text("logs:\n  namespaceLabel: k8s.namespace.name\n")
    with pytest.raises(ConfigError, match=r"logs\.namespaceLabel"):
        load_settings(bad)


@pytest.mark.parametrize(
    ("attribute", "name"),
    [
        ("daedalus.task.id", "daedalus_task_id"),
        ("agent.type", "agent_type"),
        ("k8s.namespace.name", "k8s_namespace_name"),
        ("2xx", "key_2xx"),
        ("_x", "key_x"),
    ],
)
def test_loki_names_of_otlp_attributes(attribute: str, name: str) -> None:
    assert loki_label_name(attribute) == name


def test_an_otlp_text_body_is_a_message_and_a_plain_pushed_line_a_parse_error() -> None:
    otlp = parse_line("prompt accepted", {"service_name": "a"}, {"severity_text": "INFO"})
    assert (otlp["msg"], otlp["level"], otlp["parse_error"]) == ("prompt accepted", "INFO", "")
    pushed = parse_line("prompt accepted", {"detected_level": "unknown"})
    assert pushed["msg"] == "prompt accepted" and pushed["parse_error"].startswith("not JSON")
    # an OTLP map body arrives as a JSON line: its fields win, the metadata fills the rest
    body = parse_line('{"msg": "m", "taskId": "t-1"}', {}, {"trace_id": "A" * 32, "flags": "1"})
    assert (body["msg"], body["task_id"], body["trace_id"]) == ("m", "t-1", "a" * 32)
    # merged into the labels (no categorize-labels), the metadata is read from there
    merged = parse_line("x", {"daedalus_task_id": "t-2", "severity_text": "WARN", "span_id": "F1"})
    assert (merged["task_id"], merged["level"], merged["span_id"]) == ("t-2", "WARN", "f1")
