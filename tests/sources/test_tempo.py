"""TempoSource against a fake Tempo serving the recorded responses (tests/samples/tempo)."""

from __future__ import annotations

import base64
import json
import math
import pickle
import socket
from datetime import UTC, datetime

import pandas as pd
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from obslib.errors import (
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    MalformedResponse,
    NoData,
    NotFound,
    QueryRejected,
    SourceError,
)
from obslib.sources.endpoint import Endpoint, endpoint_from_env
from obslib.sources.frames import SPAN_COLUMNS, TRACE_SUMMARY_COLUMNS
from obslib.sources.http import HttpClient
from obslib.sources.otlp import spans_from_json, spans_from_proto
from obslib.sources.tempo import TempoSource
from obslib.sources.tempo_frames import (
    NO_ROOT,
    TAG_VALUE_COLUMNS,
    TempoFormatError,
    hex_trace_id,
    summaries_from_search,
    trace_frame,
    unix_seconds,
)
from tests.fakes.http_server import FakeServer, Reply
from tests.fakes.tempo import (
    AGENT_SIDE_ID,
    ERROR_ID,
    OK_ID,
    ORPHAN_ID,
    PARTIAL_MESSAGE,
    SEARCH_SAMPLES,
    SYNTAX_ERROR_QUERY,
    TASK_SIDE_ID,
    UNKNOWN_ID,
    FakeTempo,
    sample,
)

TOKEN = "tok-3f9a1c-never-print-me"
PASSWORD = "pw-77e2b0-never-print-me"
ORG = "daedalus-tenant"
TASK_QUERY = '{ span.daedalus.task.id =~ "t-.*" }'
RECENT_QUERY = '{ resource.service.name = "daedalus-agent-copilot" }'


def sample_json(name: str) -> dict:
    return json.loads(sample(name))


def make_source(url: str, *, retries: int = 1, timeout: float = 5.0, basic_auth: bool = False):
    """A source with env-style credentials; sleeps of the retry backoff are recorded."""
    env = {
        "OBSLIB_TEMPO_URL": url,
        "OBSLIB_TEMPO_TOKEN": TOKEN,
        "OBSLIB_TEMPO_ORG_ID": ORG,
        "OBSLIB_TEMPO_TIMEOUT": str(timeout),
    }
    if basic_auth:
        env |= {"OBSLIB_TEMPO_USER": "reader", "OBSLIB_TEMPO_PASSWORD": PASSWORD}
    sleeps: list[float] = []
    client = HttpClient(
        endpoint_from_env("tempo", environ=env),
        retries=retries,
        backoff_s=0.01,
        sleep=sleeps.append,
    )
    return TempoSource(client=client), sleeps


@pytest.fixture(scope="module")
def shared_tempo():
    with FakeTempo() as fake:
        yield fake


@pytest.fixture
def tempo(shared_tempo):
    """The default fake (it keeps no state but its request log, cleared for each test)."""
    shared_tempo.requests.clear()
    return shared_tempo


@pytest.fixture
def source(tempo):
    return make_source(tempo.url)[0]


def sorted_spans(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("span_id").reset_index(drop=True)


def trace_paths(fake: FakeTempo) -> list[str]:
    return [r.path for r in fake.requests if "/traces/" in r.path]


# -- pure parsers ---------------------------------------------------------------------------


def test_search_summaries_have_hex_ids_and_no_root_for_the_orphan():
    body = sample_json("search-by-task-attr.json")
    frame = summaries_from_search(body)
    assert list(frame.columns) == list(TRACE_SUMMARY_COLUMNS)
    assert set(frame["trace_id"]) == {OK_ID, TASK_SIDE_ID, ERROR_ID, ORPHAN_ID}
    assert frame["trace_id"].str.fullmatch(r"[0-9a-f]{32}").all()
    assert frame["span_ids"].map(lambda ids: all(len(i) == 16 for i in ids)).all()
    by_id = frame.set_index("trace_id")
    orphan = by_id.loc[ORPHAN_ID]
    assert not orphan["has_root"]
    assert orphan["root_service_name"] == "" and orphan["root_trace_name"] == ""
    assert math.isnan(orphan["duration_ms"])
    for raw in body["traces"]:
        if raw["traceID"] == ORPHAN_ID:
            continue
        row = by_id.loc[raw["traceID"]]
        assert row["has_root"]
        assert row["root_trace_name"] == raw["rootTraceName"] == "ingress.mattermost"
        assert row["duration_ms"] == raw["durationMs"]
        assert row["matched"] == raw["spanSets"][0]["matched"]
        assert row["span_ids"] == [s["spanID"] for s in raw["spanSets"][0]["spans"]]


def test_search_ids_lose_leading_zeros_and_are_padded_back():
    body = {"traces": [{"traceID": "ABC", "rootServiceName": "svc", "rootTraceName": "op"}]}
    frame = summaries_from_search(body)
    assert frame.loc[0, "trace_id"] == "0" * 29 + "abc"
    # proto3 JSON omits a zero durationMs: a rooted trace shorter than 1 ms is 0, not unknown
    assert frame.loc[0, "has_root"] and frame.loc[0, "duration_ms"] == 0.0


def test_the_placeholder_root_is_no_root_even_with_a_name():
    trace = {"traceID": "ab", "rootServiceName": NO_ROOT, "rootTraceName": "x", "durationMs": 5}
    [row] = summaries_from_search({"traces": [trace]}).to_dict("records")
    assert not row["has_root"] and row["root_service_name"] == row["root_trace_name"] == ""
    assert math.isnan(row["duration_ms"])


@pytest.mark.parametrize("body", [{"metrics": {}}, {"traces": [], "metrics": {}}])
def test_search_with_no_match_is_an_empty_typed_frame(body):
    frame = summaries_from_search(body)
    assert frame.empty and list(frame.columns) == list(TRACE_SUMMARY_COLUMNS)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"data": []},
        {"traces": {}},
        {"traces": [{"rootServiceName": "x"}]},
        {"traces": [{"traceID": "zz"}]},
        {"traces": [{"traceID": "ab", "startTimeUnixNano": "soon"}]},
        {"traces": [{"traceID": "ab", "spanSets": [{"spans": ["4486649934e8fae7"]}]}]},
    ],
)
def test_search_bodies_of_another_shape_are_refused(body):
    with pytest.raises(TempoFormatError):
        summaries_from_search(body)


def test_unknown_trace_bodies_mean_no_trace():
    assert trace_frame(sample_json("trace-v2-unknown-id.json"), "v2") is None
    assert trace_frame({"batches": []}, "v1") is None


@pytest.mark.parametrize(
    ("body", "api"),
    [
        ({"traces": {}}, "v2"),
        ({"trace": []}, "v2"),
        ({"trace": {"resourceSpans": {}}}, "v2"),
        ({"trace": {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "!!"}]}]}]}}, "v2"),
        (
            {"trace": {"resourceSpans": [{"scopeSpans": [{"spans": [{"endTimeUnixNano": "x"}]}]}]}},
            "v2",
        ),
        ({**sample_json("trace-v2-orphan-rootless.json"), "status": "SOMETHING"}, "v2"),
        ({"trace": {}}, "v1"),
        ("batches", "v1"),
    ],
)
def test_trace_bodies_of_another_shape_are_refused(body, api):
    with pytest.raises(TempoFormatError):
        trace_frame(body, api)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(OK_ID.upper(), OK_ID), ("abc", "0" * 29 + "abc"), (f" {OK_ID}\n", OK_ID)],
)
def test_trace_ids_are_normalised_like_tempo_does(raw, expected):
    assert hex_trace_id(raw) == expected


@pytest.mark.parametrize("raw", ["not-hex", "", "a" * 33, "12 34", "0x1f"])
def test_trace_ids_that_tempo_would_refuse_are_refused(raw):
    with pytest.raises(ValueError):
        hex_trace_id(raw)


def test_unix_seconds_takes_naive_datetimes_as_utc_and_never_shrinks_a_window():
    assert unix_seconds(datetime(2026, 1, 1)) == unix_seconds(datetime(2026, 1, 1, tzinfo=UTC))
    assert unix_seconds(10.7) == 10 and unix_seconds(10.2, round_up=True) == 11
    with pytest.raises(TypeError):
        unix_seconds("2026-01-01")  # type: ignore[arg-type]


# -- search ---------------------------------------------------------------------------------


def test_search_sends_window_limits_and_credentials(tempo, source):
    start = datetime.fromtimestamp(1795824000.5, UTC)
    frame = source.search(TASK_QUERY, start=start, end=1795824600.5, limit=20, spans_per_spanset=5)
    [request] = tempo.requests
    assert request.path == "/api/search"
    assert request.param("q") == TASK_QUERY
    assert request.param("start") == str(int(start.timestamp()))
    assert request.param("end") == "1795824601"
    assert (request.param("limit"), request.param("spss")) == ("20", "5")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["x-scope-orgid"] == ORG
    pd.testing.assert_frame_equal(
        frame, summaries_from_search(sample_json("search-by-task-attr.json"))
    )


def test_search_without_window_asks_recent_data_only(tempo, source):
    frame = source.search(RECENT_QUERY)
    [request] = tempo.requests
    assert "start" not in request.params and "end" not in request.params
    assert set(frame["trace_id"]) == {ERROR_ID, AGENT_SIDE_ID, OK_ID}
    assert frame["has_root"].all()


def test_syntax_error_is_rejected_with_tempos_text(source):
    with pytest.raises(QueryRejected) as caught:
        source.search(SYNTAX_ERROR_QUERY)
    assert caught.value.detail == sample("search-syntax-error.txt").decode().strip()
    assert caught.value.query == SYNTAX_ERROR_QUERY
    assert caught.value.url.endswith("/api/search")


def test_no_match_is_empty_unless_data_is_required(source):
    query = '{ span.agent_type = "nobody" }'
    assert source.search(query).empty
    with pytest.raises(NoData) as caught:
        source.search(query, start=1, end=2, require_data=True)
    assert caught.value.query == query


@pytest.mark.parametrize(
    ("start", "end", "limit"),
    [(100, None, 20), (None, 100, 20), (200, 100, 20), ("yesterday", 100, 20), (1, 2, 0)],
)
def test_bad_windows_and_limits_are_rejected_before_sending(tempo, source, start, end, limit):
    with pytest.raises(QueryRejected):
        source.search(TASK_QUERY, start=start, end=end, limit=limit)
    assert tempo.requests == []


def test_search_until_found_waits_for_indexing():
    with FakeTempo(searchable_after=2) as fake:
        source = make_source(fake.url)[0]
        pauses: list[float] = []
        frame = source.search_until_found(
            TASK_QUERY, 1, 2, min_traces=4, poll_s=5.0, sleep=pauses.append
        )
    assert pauses == [5.0, 5.0]
    assert len(fake.requests) == 3
    assert len(frame) == 4 and frame.attrs["attempts"] == 3


def test_search_until_found_gives_up_with_what_it_has():
    with FakeTempo(searchable_after=100) as fake:
        source = make_source(fake.url)[0]
        pauses: list[float] = []
        frame = source.search_until_found(
            TASK_QUERY, 1, 2, timeout_s=12.0, poll_s=5.0, sleep=pauses.append
        )
    assert frame.empty
    assert pauses == [5.0, 5.0] and frame.attrs["waited_s"] == 10.0


# -- traces by id ---------------------------------------------------------------------------


def test_trace_by_id_decodes_base64_ids_to_hex(tempo, source):
    frame = source.trace(OK_ID, start=1, end=2)
    assert list(frame.columns) == list(SPAN_COLUMNS)
    assert (frame["trace_id"] == OK_ID).all()
    assert frame["span_id"].str.fullmatch(r"[0-9a-f]{16}").all()
    roots = frame[frame["parent_span_id"] == ""]
    assert list(roots["name"]) == ["ingress.mattermost"]
    assert set(frame["parent_span_id"]) - {""} <= set(frame["span_id"])
    assert not frame["partial"].any() and frame.attrs["api"] == "v2"
    [request] = tempo.requests
    assert request.path == f"/api/v2/traces/{OK_ID}"
    assert (request.param("start"), request.param("end")) == ("1", "2")


def test_id_encodings_all_give_the_same_span_frame(source):
    via_v2 = sorted_spans(source.trace(OK_ID))
    with FakeTempo(v2_routes=False) as old:
        old_source = make_source(old.url)[0]
        via_v1 = old_source.trace(OK_ID)
        old_source.trace(OK_ID)
    assert via_v1.attrs["api"] == "v1"
    assert trace_paths(old) == [
        f"/api/v2/traces/{OK_ID}",
        f"/api/traces/{OK_ID}",
        f"/api/traces/{OK_ID}",
    ]

    traces_data = TracesData()
    traces_data.ParseFromString(sample("trace-v1-complete.pb"))
    via_proto = spans_from_proto(traces_data.resource_spans)

    def to_hex(value: str) -> str:
        return base64.b64decode(value).hex()

    resource_spans = sample_json("trace-v2-complete.json")["trace"]["resourceSpans"]
    for span in (s for rs in resource_spans for ss in rs["scopeSpans"] for s in ss["spans"]):
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in span:
                span[key] = to_hex(span[key])
    via_hex = spans_from_json(resource_spans, id_encoding="hex")

    for other in (via_v1, via_proto, via_hex):
        pd.testing.assert_frame_equal(via_v2, sorted_spans(other))
    searched = summaries_from_search(sample_json("search-by-task-attr.json")).set_index("trace_id")
    assert set(searched.loc[OK_ID, "span_ids"]) <= set(via_v2["span_id"])


def test_broken_pipe_splits_one_task_into_two_traces(source):
    task_side, agent_side = source.trace(TASK_SIDE_ID), source.trace(AGENT_SIDE_ID)
    assert set(task_side["trace_id"]) == {TASK_SIDE_ID} != set(agent_side["trace_id"])
    assert set(task_side["task_id"]) - {""} == {"t-broken-1"}
    # the agent span lost its parent: it is a root of its own trace, without the task id
    [agent] = agent_side.to_dict("records")
    assert agent["name"] == "agent.session.prompt" and agent["parent_span_id"] == ""
    assert agent["task_id"] == ""
    assert "agent.session.prompt" not in set(task_side["name"])
    # ...and it ran inside the task side's acp.session.prompt, which has no child of its own
    [prompt] = task_side[task_side["name"] == "acp.session.prompt"].to_dict("records")
    assert prompt["start_ns"] <= agent["start_ns"] and agent["end_ns"] <= prompt["end_ns"]
    assert prompt["span_id"] not in set(task_side["parent_span_id"])


def test_rootless_trace_keeps_a_parent_no_span_has(source):
    frame = source.trace(ORPHAN_ID)
    assert len(frame) == 1
    parent = frame.loc[0, "parent_span_id"]
    assert len(parent) == 16 and parent not in set(frame["span_id"])
    searched = source.search(TASK_QUERY, start=1, end=2).set_index("trace_id")
    assert not searched.loc[ORPHAN_ID, "has_root"]


def test_agent_error_has_status_error(source):
    frame = source.trace(ERROR_ID)
    failed = frame[frame["status_code"] == "ERROR"]
    assert list(failed["name"]) == ["agent.session.prompt"]
    assert failed.iloc[0]["status_message"]
    assert set(frame.loc[frame["status_code"] != "ERROR", "status_code"]) == {"UNSET"}
    assert set(source.search("{ status = error }")["trace_id"]) == {ERROR_ID}


def test_unknown_id_is_not_found_not_an_empty_trace(tempo, source):
    with pytest.raises(NotFound) as caught:
        source.trace(UNKNOWN_ID)
    assert caught.value.query == UNKNOWN_ID
    with FakeTempo(v2_routes=False) as old, pytest.raises(NotFound):
        make_source(old.url)[0].trace(UNKNOWN_ID)


def test_short_and_uppercase_ids_are_sent_as_32_lowercase_hex(tempo, source):
    source.trace(OK_ID.upper())
    with pytest.raises(NotFound):
        source.trace("ABC")
    assert trace_paths(tempo) == [f"/api/v2/traces/{OK_ID}", f"/api/v2/traces/{'0' * 29}abc"]


@pytest.mark.parametrize("bad", ["not-hex", "a" * 33, ""])
def test_non_hex_id_is_rejected_without_asking_tempo(tempo, source, bad):
    with pytest.raises(QueryRejected) as caught:
        source.trace(bad)
    assert tempo.requests == []
    assert caught.value.query == bad


def test_tempos_own_bad_id_answer_is_a_rejection(source):
    with pytest.raises(QueryRejected) as caught:
        source.client.get_json("api/v2/traces/not-hex", query="not-hex")
    assert caught.value.detail == sample("trace-v2-invalid-id.txt").decode()


def test_partial_trace_is_flagged_and_keeps_tempos_message(source):
    complete = source.trace(OK_ID)
    with FakeTempo(partial_ids={OK_ID}) as fake:
        cut_source = make_source(fake.url)[0]
        cut = cut_source.trace(OK_ID)
        other = cut_source.trace(ERROR_ID)
    assert cut["partial"].all() and cut.attrs["partial"]
    assert cut.attrs["partial_message"] == PARTIAL_MESSAGE
    pd.testing.assert_frame_equal(cut.drop(columns="partial"), complete.drop(columns="partial"))
    assert not other["partial"].any() and not other.attrs["partial"]


@pytest.fixture
def odd_tempo():
    """A server on Tempo's routes whose bodies do not have Tempo's shape."""

    def handler(request):
        if request.path == "/api/search":
            return Reply(200, "<html>proxy login</html>", "text/html")
        if request.path.endswith(ERROR_ID):
            return Reply(200, '{"data": {"spans": []}}')
        if request.path.endswith(ORPHAN_ID):  # spans of another trace than the one asked for
            return Reply(200, sample("trace-v2-complete.json"))
        if request.path.endswith(OK_ID):
            return Reply(200, sample("trace-v2-complete.json"))
        if "/tag" in request.path:
            return Reply(200, sample("search-tag-values-v1.json"))
        return Reply(404, "404 page not found\n", "text/plain")

    with FakeServer(handler) as server:
        yield server


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.search(TASK_QUERY),
        lambda s: s.trace(ERROR_ID),
        lambda s: s.trace(ORPHAN_ID),
        lambda s: s.tag_values("resource.service.name"),
    ],
    ids=["search-not-json", "trace-other-shape", "trace-other-id", "tag-values-untyped"],
)
def test_bodies_without_the_documented_shape_are_malformed(odd_tempo, call):
    with pytest.raises(MalformedResponse) as caught:
        call(make_source(odd_tempo.url)[0])
    assert caught.value.backend == "tempo"


def test_a_server_without_any_trace_route_is_not_a_missing_trace(odd_tempo):
    source = make_source(odd_tempo.url)[0]
    with pytest.raises(BackendUnavailable, match="no Tempo trace API"):
        source.trace(UNKNOWN_ID)


# -- availability ---------------------------------------------------------------------------


def test_503_is_retried_then_answered():
    with FakeTempo(unavailable_first=2) as fake:
        source, sleeps = make_source(fake.url, retries=2)
        frame = source.trace(OK_ID)
    assert len(fake.requests) == 3 and len(sleeps) == 2
    assert (frame["trace_id"] == OK_ID).all()


def test_503_beyond_the_retries_is_unavailable():
    with FakeTempo(unavailable_first=5) as fake:
        source, sleeps = make_source(fake.url, retries=1)
        with pytest.raises(BackendUnavailable, match="503"):
            source.search(TASK_QUERY)
    assert len(fake.requests) == 2 and len(sleeps) == 1


@pytest.fixture
def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_port():
    """A port that accepts connections into its backlog and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def test_nothing_listening_is_unavailable(closed_port):
    source, sleeps = make_source(f"http://127.0.0.1:{closed_port}", retries=1)
    with pytest.raises(BackendUnavailable, match="cannot connect") as caught:
        source.trace(OK_ID)
    assert len(sleeps) == 1
    assert caught.value.url == f"http://127.0.0.1:{closed_port}/api/v2/traces/{OK_ID}"


def test_a_server_that_never_answers_times_out(silent_port):
    source, sleeps = make_source(f"http://127.0.0.1:{silent_port}", retries=1, timeout=0.2)
    with pytest.raises(BackendTimeout, match=r"no complete answer within 0\.2 s") as caught:
        source.search(TASK_QUERY)
    # the deadline covers the retries: a call that ran out of time is not tried again
    assert sleeps == [] and caught.value.query == TASK_QUERY
    assert "OBSLIB_TEMPO_TIMEOUT" in str(caught.value)


# -- credentials ----------------------------------------------------------------------------


def test_credentials_are_sent_but_never_shown(tempo, closed_port):
    source = make_source(tempo.url, basic_auth=True)[0]
    unreachable = make_source(f"http://127.0.0.1:{closed_port}", basic_auth=True, retries=0)[0]
    failures = [
        lambda: source.trace(UNKNOWN_ID),
        lambda: source.trace("not-hex"),
        lambda: source.search(SYNTAX_ERROR_QUERY),
        lambda: source.search('{ span.agent_type = "nobody" }', require_data=True),
        lambda: unreachable.search(TASK_QUERY),
    ]
    errors: list[SourceError] = []
    for failure in failures:
        with pytest.raises(SourceError) as caught:
            failure()
        errors.append(caught.value)
    assert {type(e) for e in errors} == {NotFound, QueryRejected, NoData, BackendUnavailable}
    shown = [str(e) for e in errors] + [repr(e) for e in errors]
    shown += [repr(pickle.loads(pickle.dumps(e))) for e in errors]
    shown += [repr(source), repr(source.endpoint), str(source.endpoint)]
    for text in shown:
        assert TOKEN not in text and PASSWORD not in text
    assert all(e.backend == "tempo" and e.url.startswith("http://127.0.0.1:") for e in errors)
    # basic auth replaces the bearer header in requests; the tenant header is always sent
    sent = [r for r in tempo.requests if r.path.startswith("/api/")]
    assert sent and all(r.headers["x-scope-orgid"] == ORG for r in sent)
    assert all(r.headers["authorization"].startswith("Basic ") for r in sent)


def test_userinfo_in_the_url_stays_out_of_reprs(tempo):
    url = tempo.url.replace("http://", f"http://reader:{PASSWORD}@")
    source = TempoSource(endpoint_from_env("tempo", environ={"OBSLIB_TEMPO_URL": url}))
    with pytest.raises(NotFound) as caught:
        source.trace(UNKNOWN_ID)
    assert caught.value.url.startswith("http://127.0.0.1:")
    for text in (str(caught.value), repr(caught.value), repr(source), repr(source.endpoint)):
        assert PASSWORD not in text


def test_default_endpoint_comes_from_the_environment(tempo, monkeypatch):
    monkeypatch.setenv("OBSLIB_TEMPO_URL", tempo.url)
    monkeypatch.setenv("OBSLIB_TEMPO_TOKEN", TOKEN)
    source = TempoSource()
    assert (source.trace(OK_ID)["trace_id"] == OK_ID).all()
    assert tempo.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    monkeypatch.delenv("OBSLIB_TEMPO_URL")
    with pytest.raises(ConfigError, match="OBSLIB_TEMPO_URL"):
        TempoSource()


def test_endpoint_and_client_must_agree(tempo):
    client = HttpClient(Endpoint("tempo", tempo.url))
    with pytest.raises(ConfigError):
        TempoSource(endpoint=Endpoint("tempo", "http://127.0.0.1:1"), client=client)
    assert TempoSource(endpoint=Endpoint("tempo", tempo.url), client=client).client is client


# -- many traces ----------------------------------------------------------------------------


def test_traces_fetches_concurrently_and_lists_unknown_ids(tempo, source):
    ids = [OK_ID, TASK_SIDE_ID, UNKNOWN_ID, AGENT_SIDE_ID, ERROR_ID, ORPHAN_ID, OK_ID.upper()]
    frame = source.traces(ids, max_workers=4, progress=False)
    singles = [source.trace(i) for i in (OK_ID, TASK_SIDE_ID, AGENT_SIDE_ID, ERROR_ID, ORPHAN_ID)]
    assert frame.attrs["not_found"] == [UNKNOWN_ID]
    assert frame.attrs["partial"] == {}
    assert list(frame["trace_id"].unique()) == [
        OK_ID,
        TASK_SIDE_ID,
        AGENT_SIDE_ID,
        ERROR_ID,
        ORPHAN_ID,
    ]
    pd.testing.assert_frame_equal(frame, pd.concat(singles, ignore_index=True))
    assert list(frame.columns) == list(SPAN_COLUMNS)
    fetched = trace_paths(tempo)[:6]  # the duplicate upper-case id is fetched once
    assert sorted(fetched) == sorted(f"/api/v2/traces/{i}" for i in ids[:6])


def test_traces_shows_a_progress_bar_unless_disabled(source, capsys):
    source.traces([OK_ID, ERROR_ID], progress=True)
    assert "Tempo traces" in capsys.readouterr().err
    source.traces([OK_ID, ERROR_ID], progress=False)
    assert "Tempo traces" not in capsys.readouterr().err


def test_traces_with_nothing_found_is_an_empty_span_frame(source):
    frame = source.traces([UNKNOWN_ID], progress=False)
    assert frame.empty and list(frame.columns) == list(SPAN_COLUMNS)
    assert frame.attrs["not_found"] == [UNKNOWN_ID]
    assert source.traces([], progress=False).empty


def test_traces_lets_other_errors_through(tempo, source, odd_tempo):
    with pytest.raises(QueryRejected):
        source.traces([OK_ID, "not-hex"], progress=False)
    assert tempo.requests == []  # every id is checked before the first request
    with pytest.raises(MalformedResponse):
        make_source(odd_tempo.url)[0].traces([OK_ID, ERROR_ID], progress=False)


def test_traces_reports_partial_traces():
    with FakeTempo(partial_ids={ERROR_ID}) as fake:
        frame = make_source(fake.url)[0].traces([OK_ID, ERROR_ID], progress=False)
    assert frame.attrs["partial"] == {ERROR_ID: PARTIAL_MESSAGE}
    assert set(frame.loc[frame["partial"], "trace_id"]) == {ERROR_ID}


# -- tags -----------------------------------------------------------------------------------


def test_tags_by_scope(tempo, source):
    tags = source.tags()
    recorded = sample_json("search-tags-v2.json")["scopes"]
    assert tags == {s["name"]: sorted(s["tags"]) for s in recorded}
    assert tempo.requests[0].path == "/api/v2/search/tags"


def test_typed_tag_values_agree_with_the_v1_list(tempo, source):
    values = source.tag_values("resource.service.name")
    assert list(values.columns) == list(TAG_VALUE_COLUMNS)
    assert set(values["type"]) == {"string"}
    assert set(values["value"]) == set(sample_json("search-tag-values-v1.json")["tagValues"])
    assert tempo.requests[0].path == "/api/v2/search/tag/resource.service.name/values"
    assert source.tag_values("span.nothing").empty


def test_every_recorded_search_is_served_and_parsed(source):
    for query, name in SEARCH_SAMPLES.items():
        expected = summaries_from_search(sample_json(name))
        pd.testing.assert_frame_equal(source.search(query, limit=50), expected)
