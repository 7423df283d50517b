"""PrometheusSource against a real Prometheus over a small backfilled history.

The module's fixture writes a few days of OpenMetrics (gauges, counters, a histogram and a
series with NaN/+Inf/-Inf samples), backfills it through the local stack and stops the server
when the module ends. Expected values are computed from the same generator functions.
"""

from __future__ import annotations

import math
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
import yaml

from obslib.emit import RULE_FILE
from obslib.errors import (
    BackendUnavailable,
    ConfigError,
    MalformedResponse,
    NoData,
    QueryRejected,
)
from obslib.sources.endpoint import Endpoint
from obslib.sources.frames import PROMETHEUS_COLUMNS
from obslib.sources.http import HttpClient
from obslib.sources.prometheus import MAX_POINTS, MIN_STEP_S, PrometheusSource, plan_chunks
from obslib.sources.prometheus_frames import frame_from_result
from obslib.stack import FLEET_JOB, LocalStack
from tests.fakes.http_server import FakeServer, Reply, Request
from tests.world import ANCHOR

REPO = Path(__file__).resolve().parents[2]
AGENTS = ("claude", "copilot")
INTERVAL = 60
DAYS = 3
# The history ends at the pinned world's anchor, a fixed past hour.
END = ANCHOR
START = END - DAYS * 86400
STEPS = DAYS * 86400 // INTERVAL
TASKS_PER_MINUTE = (6, 12)  # per agent: counter increments per sample
BUCKETS = (("0.5", 1), ("1", 3), ("5", 4), ("+Inf", 4))  # cumulative increments per sample
SUM_PER_SAMPLE = 5.0
TEST_ALERT = "ObslibTestAlwaysFiring"
TEST_RULES = {
    "groups": [
        {
            "name": "obslib-source-test",
            "interval": "1s",
            "rules": [
                {
                    "record": "agent_type:test_tasks:rate5m",
                    "expr": "sum by (agent_type) (rate(test_tasks_total[5m]))",
                },
                {"alert": TEST_ALERT, "expr": "vector(1)", "labels": {"severity": "info"}},
            ],
        }
    ]
}


def gauge_value(agent: int, i: int) -> float:
    return 1000.0 * agent + i


def special_value(i: int) -> float:
    return {1: math.nan, 2: math.inf, 3: -math.inf}.get(i % 100, float(i))


def om(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def write_history(path: Path) -> Path:
    times = [START + i * INTERVAL for i in range(STEPS + 1)]
    lines = ["# TYPE test_gauge gauge"]
    for j, agent in enumerate(AGENTS):
        lines += [
            f'test_gauge{{agent_type="{agent}"}} {gauge_value(j, i)} {t}'
            for i, t in enumerate(times)
        ]
    lines.append("# TYPE test_special gauge")
    lines += [
        f'test_special{{case="edge"}} {om(special_value(i))} {t}' for i, t in enumerate(times)
    ]
    lines.append("# TYPE test_tasks counter")
    for j, agent in enumerate(AGENTS):
        rate = TASKS_PER_MINUTE[j]
        lines += [
            f'test_tasks_total{{agent_type="{agent}"}} {i * rate} {t}' for i, t in enumerate(times)
        ]
    lines.append("# TYPE test_duration_seconds histogram")
    labels = 'agent_type="claude"'
    for i, t in enumerate(times):
        lines += [
            f'test_duration_seconds_bucket{{{labels},le="{le}"}} {i * n} {t}' for le, n in BUCKETS
        ]
        lines.append(f"test_duration_seconds_sum{{{labels}}} {i * SUM_PER_SAMPLE} {t}")
        lines.append(f"test_duration_seconds_count{{{labels}}} {i * BUCKETS[-1][1]} {t}")
    lines.append("# EOF")
    path.write_text("\n".join(lines) + "\n")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RecordingSession(requests.Session):
    """A real session that remembers every request's URL and parameters (query or form)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, dict]] = []

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        self.sent.append((url, dict(kwargs.get("params") or kwargs.get("data") or {})))
        return super().request(method, url, *args, **kwargs)

    def range_steps(self) -> list[tuple[float, float, float]]:
        return [
            (float(p["start"]), float(p["end"]), float(p["step"]))
            for url, p in self.sent
            if url.endswith("/api/v1/query_range")
        ]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("prometheus-source")
    rules = root / "test-rules.yaml"
    rules.write_text(yaml.safe_dump(TEST_RULES))
    port = free_port()
    local = LocalStack(
        data_dir=root / "stack",
        port=port,
        rule_files=[REPO / RULE_FILE, rules],
        scrape_targets=[f"127.0.0.1:{port}"],  # itself, so metadata has something to show
    )
    try:
        local.up(history=lambda work: write_history(work / "history.om"))
        yield local
    finally:
        local.down()


@pytest.fixture(scope="module")
def source(stack) -> PrometheusSource:
    return PrometheusSource(stack.endpoint())


def recording_source(stack: LocalStack, **kwargs) -> tuple[PrometheusSource, RecordingSession]:
    session = RecordingSession()
    client = HttpClient(stack.endpoint(), session=session)
    return PrometheusSource(client=client, **kwargs), session


def at_step(i: int) -> int:
    return START + i * INTERVAL


# --- queries ---------------------------------------------------------------------------------


def test_instant_query_has_the_documented_frame(source):
    frame = source.query("test_gauge", at=at_step(100))
    assert list(frame.columns) == [*PROMETHEUS_COLUMNS, "__name__", "agent_type"]
    for name, dtype in PROMETHEUS_COLUMNS.items():
        assert str(frame[name].dtype) == dtype
    assert sorted(frame["agent_type"]) == list(AGENTS)
    for j, agent in enumerate(AGENTS):
        row = frame[frame["agent_type"] == agent].iloc[0]
        assert row["value"] == gauge_value(j, 100)
        assert row["series"] == f'test_gauge{{agent_type="{agent}"}}'
        assert row["timestamp"] == pd.Timestamp(at_step(100), unit="s", tz="UTC")


def test_instant_range_vector_gives_one_row_per_sample(source):
    frame = source.query('test_gauge{agent_type="claude"}[3m]', at=at_step(100))
    first = 100 - len(frame) + 1
    assert len(frame) >= 3
    assert frame["value"].tolist() == [gauge_value(0, i) for i in range(first, 101)]
    assert list(frame["timestamp"]) == list(
        pd.to_datetime([at_step(i) for i in range(first, 101)], unit="s", utc=True)
    )


def test_frame_parser_handles_scalars_and_label_name_clashes():
    scalar = frame_from_result([1700000000.5, "2.5"])
    assert scalar[["value", "series"]].values.tolist() == [[2.5, "{}"]]
    assert scalar["timestamp"].tolist() == [pd.Timestamp(1700000000.5, unit="s", tz="UTC")]
    clash = frame_from_result(
        [
            {"metric": {"__name__": "m", "value": "v1"}, "value": [1, "1"]},
            {"metric": {"__name__": "m", "series": "s"}, "value": [1, "2"]},
        ]
    )
    assert list(clash.columns) == [
        *PROMETHEUS_COLUMNS,
        "__name__",
        "exported_series",
        "exported_value",
    ]
    assert clash["series"].tolist() == ['m{series="s"}', 'm{value="v1"}']  # sorted by series
    assert clash["exported_series"].tolist() == ["s", ""]
    assert clash["exported_value"].tolist() == ["", "v1"]


def test_range_query_returns_one_row_per_sample(source):
    frame = source.query_range('test_gauge{agent_type="copilot"}', at_step(10), at_step(70), 60)
    assert len(frame) == 61
    expected_times = pd.to_datetime([at_step(10 + k) for k in range(61)], unit="s", utc=True)
    assert list(frame["timestamp"]) == list(expected_times)
    assert list(frame["value"]) == [gauge_value(1, 10 + k) for k in range(61)]
    assert set(frame["series"]) == {'test_gauge{agent_type="copilot"}'}


def test_range_query_evaluates_promql_functions(source):
    rates = source.query_range(
        "sum by (agent_type) (rate(test_tasks_total[5m]))", at_step(60), at_step(330), "30m"
    )
    assert len(rates) == 2 * 10
    for j, agent in enumerate(AGENTS):
        values = rates.loc[rates["agent_type"] == agent, "value"]
        assert values.tolist() == pytest.approx([TASKS_PER_MINUTE[j] / 60] * 10)
    median = source.query_range(
        "histogram_quantile(0.5, sum by (le) (rate(test_duration_seconds_bucket[5m])))",
        at_step(60),
        at_step(120),
        "10m",
    )
    # Linear interpolation inside the bucket that holds the median observation.
    total = BUCKETS[-1][1]
    rank = 0.5 * total
    below = max((n, float(le)) for le, n in BUCKETS if n < rank)
    upper_n, upper_le = next((n, float(le)) for le, n in BUCKETS if n >= rank)
    expected = below[1] + (upper_le - below[1]) * (rank - below[0]) / (upper_n - below[0])
    assert median["value"].tolist() == pytest.approx([expected] * len(median))
    assert len(median) == 7


def test_nan_and_infinities_survive_as_floats(source):
    frame = source.query_range("test_special", at_step(0), at_step(5), 60)
    assert frame["value"].dtype == "float64"
    values = frame["value"].tolist()
    assert [special_value(i) for i in (0, 4, 5)] == [values[0], values[4], values[5]]
    assert math.isnan(values[1])
    assert values[2] == math.inf
    assert values[3] == -math.inf
    instant = source.query("test_special", at=at_step(203))
    assert instant["value"].tolist() == [-math.inf]


def test_auto_step_keeps_thirty_days_under_the_point_limit(stack):
    src, session = recording_source(stack)
    frame = src.query_range("test_gauge", END - 30 * 86400, END)
    [(start, end, step)] = session.range_steps()
    assert (end - start) / step <= MAX_POINTS
    assert step >= MIN_STEP_S
    assert frame["timestamp"].nunique() <= MAX_POINTS + 1
    gaps = frame.groupby("series")["timestamp"].diff().dropna().unique()
    assert list(gaps) == [pd.Timedelta(seconds=step)]


def test_auto_step_has_a_floor_on_short_ranges(stack):
    src, session = recording_source(stack)
    src.query_range("test_gauge", at_step(0), at_step(60))
    assert [s for _, _, s in session.range_steps()] == [MIN_STEP_S]


def test_chunked_range_query_equals_a_single_request(stack, source):
    query = "rate(test_tasks_total[5m])"
    start, end = at_step(100), at_step(100 + 999)
    small, session = recording_source(stack, max_points=100)
    chunked = small.query_range(query, start, end, 60)
    spans = session.range_steps()
    assert len(spans) == 10
    assert all((e - s) / step <= 100 for s, e, step in spans)
    single = source.query_range(query, start, end, 60)
    assert len(single) == 2 * 1000
    pd.testing.assert_frame_equal(chunked, single)


def test_small_step_over_a_long_range_is_split_under_the_server_limit(stack):
    src, session = recording_source(stack)
    start, end = at_step(0), at_step(0) + 2 * 86400
    frame = src.query_range('test_gauge{agent_type="claude"}', start, end, 15)
    assert len(session.range_steps()) > 1  # the server would refuse one request
    points = (end - start) // 15 + 1
    assert len(frame) == points > MAX_POINTS
    assert frame["timestamp"].is_unique
    assert (frame["timestamp"].diff().dropna() == pd.Timedelta(seconds=15)).all()
    expected = [gauge_value(0, (k * 15) // INTERVAL) for k in range(points)]
    assert frame["value"].tolist() == expected


@pytest.mark.parametrize(("start", "end", "step"), [(0, 1000, 1), (7, 250_007, 15), (5, 5, 60)])
def test_chunk_plan_covers_the_grid_exactly_once(start, end, step):
    chunks = plan_chunks(start, end, step, max_points=100)
    grid = [t for a, b in chunks for t in range(a, b + 1, step)]
    assert grid == list(range(start, end + 1, step))
    assert all((b - a) / step <= 100 for a, b in chunks)


def test_fractional_step_cannot_be_split():
    with pytest.raises(ValueError, match="whole-second step"):
        plan_chunks(0, 100_000, 0.5, max_points=100)


# --- failures --------------------------------------------------------------------------------


def test_malformed_promql_is_rejected_with_prometheus_own_text(stack):
    promql = "sum(rate(test_tasks_total[5m])"
    url = stack.endpoint().url
    server_text = requests.get(f"{url}/api/v1/query", params={"query": promql}).json()["error"]
    secret_url = url.replace("http://", "http://reader:s3cret@")
    src = PrometheusSource(Endpoint("prometheus", secret_url))
    with pytest.raises(QueryRejected) as caught:
        src.query(promql)
    error = caught.value
    assert server_text in error.detail
    assert (error.backend, error.query) == ("prometheus", promql)
    assert error.url == f"{url}/api/v1/query"
    assert "s3cret" not in str(error)


def test_range_query_rejections_are_mapped_too(source):
    with pytest.raises(QueryRejected, match="end timestamp"):
        source.query_range("test_gauge", at_step(10), at_step(0), 60)


def test_require_data_turns_an_empty_result_into_no_data(source):
    query = 'test_gauge{agent_type="nobody"}'
    empty = source.query(query, at=at_step(10))
    assert empty.empty
    assert list(empty.columns) == list(PROMETHEUS_COLUMNS)
    with pytest.raises(NoData):
        source.query(query, at=at_step(10), require_data=True)
    with pytest.raises(NoData):
        source.query_range(query, at_step(0), at_step(10), 60, require_data=True)


def test_unreachable_prometheus_is_backend_unavailable():
    src = PrometheusSource(
        Endpoint("prometheus", f"http://127.0.0.1:{free_port()}", timeout=2),
        retries=1,
        backoff_s=0.01,
    )
    with pytest.raises(BackendUnavailable, match="2 attempts") as caught:
        src.query("up")
    assert caught.value.query == "up"
    with pytest.raises(BackendUnavailable):
        src.rules()


def vector_body(value: str = "1") -> str:
    return f'{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1,"{value}"]}}]}}}}'


def test_overload_is_retried_then_answered():
    def handler(request: Request) -> Reply:
        if len(server.requests) <= 2:
            return Reply(503, '{"status":"error","errorType":"timeout","error":"busy"}')
        return Reply(200, vector_body("7"))

    with FakeServer(handler) as server:
        src = PrometheusSource(Endpoint("prometheus", server.url), retries=3, backoff_s=0.01)
        assert src.query("up")["value"].tolist() == [7.0]
        assert len(server.requests) == 3


def test_persistent_overload_is_backend_unavailable_with_the_server_text():
    reply = Reply(503, '{"status":"error","errorType":"timeout","error":"query timed out"}')
    with FakeServer(lambda r: reply) as server:
        src = PrometheusSource(Endpoint("prometheus", server.url), retries=2, backoff_s=0.01)
        with pytest.raises(BackendUnavailable, match="query timed out"):
            src.query("up")
        assert len(server.requests) == 3


def test_unprocessable_query_is_rejected_with_the_server_text():
    reply = Reply(422, '{"status":"error","errorType":"execution","error":"many-to-many matching"}')
    with FakeServer(lambda r: reply) as server:
        src = PrometheusSource(Endpoint("prometheus", server.url), retries=0)
        with pytest.raises(QueryRejected, match="execution: many-to-many matching"):
            src.query("a / b")


@pytest.mark.parametrize(
    "body",
    [
        '{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}',
        '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}',
        '{"status":"success"}',
        "<html>proxy login</html>",
    ],
)
def test_wrongly_shaped_bodies_are_malformed_responses(body):
    with FakeServer(lambda r: Reply(200, body)) as server:
        src = PrometheusSource(Endpoint("prometheus", server.url), retries=0)
        with pytest.raises(MalformedResponse) as caught:
            src.query("up")
        assert caught.value.query == "up"


def test_credentials_from_the_endpoint_are_sent_on_every_path():
    def handler(request: Request) -> Reply:
        if request.path == "/api/v1/rules":
            return Reply(200, '{"status":"success","data":{"groups":[]}}')
        return Reply(200, vector_body())

    with FakeServer(handler) as server:
        headers = {"Authorization": "Bearer t0ken"}
        src = PrometheusSource(Endpoint("prometheus", server.url, headers=headers), retries=0)
        src.query("up")
        assert src.rules().empty
    assert [r.headers.get("authorization") for r in server.requests] == ["Bearer t0ken"] * 2


# --- discovery -------------------------------------------------------------------------------


def test_series_and_labels_are_discovered(source):
    series = source.series(["test_gauge"])
    assert sorted(series["agent_type"]) == list(AGENTS)
    assert set(series["series"]) == {f'test_gauge{{agent_type="{a}"}}' for a in AGENTS}
    before = source.series(["test_gauge"], start=START - 9 * 86400, end=START - 8 * 86400)
    assert before.empty
    assert {"agent_type", "case", "le", "__name__"} <= set(source.labels())
    assert source.label_values("agent_type", match=["test_gauge"]) == list(AGENTS)
    assert source.label_values("agent_type", match=["test_duration_seconds_bucket"]) == ["claude"]


def test_rules_lists_every_loaded_rule(source):
    expected = set()
    for path_rules in (yaml.safe_load((REPO / RULE_FILE).read_text()), TEST_RULES):
        for group in path_rules["groups"]:
            expected |= {r.get("alert") or r["record"] for r in group["rules"]}
    rules = source.rules()
    assert set(rules["name"]) == expected
    recorded = rules[rules["name"] == "agent_type:test_tasks:rate5m"].iloc[0]
    assert (recorded["type"], recorded["state"]) == ("recording", "")


def poll(fetch, ready, timeout_s: float = 45.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = fetch()
        if ready(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_alerts_lists_firing_alerts(source):
    alerts = poll(source.alerts, lambda f: TEST_ALERT in set(f["alertname"]))
    firing = alerts[alerts["alertname"] == TEST_ALERT].iloc[0]
    assert firing["state"] == "firing"
    assert firing["value"] == 1.0
    assert firing["labels"]["severity"] == "info"
    assert firing["active_at"].tzinfo is not None


def test_metadata_matches_what_the_scraped_target_declares(stack, source):
    metadata = poll(source.metadata, lambda f: not f.empty)
    declared = {}
    for line in requests.get(f"{stack.endpoint().url}/metrics", timeout=5).text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            declared[name] = kind
    assert not metadata.empty
    checked = metadata[metadata["metric"].isin(declared)]
    assert len(checked) > 0
    assert (checked["type"] == checked["metric"].map(declared)).all()
    assert FLEET_JOB in source.label_values("job")


def test_buildinfo_reports_the_installed_version(source):
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    installed = subprocess.run([binary, "--version"], capture_output=True, text=True)
    first_line = (installed.stdout or installed.stderr).splitlines()[0]
    assert f"version {source.buildinfo()['version']} " in first_line


# --- endpoint resolution ---------------------------------------------------------------------


def test_endpoint_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("OBSLIB_PROMETHEUS_URL", "https://prom.example.com/")
    monkeypatch.setenv("OBSLIB_PROMETHEUS_TOKEN", "abc")
    endpoint = PrometheusSource().endpoint
    assert endpoint.url == "https://prom.example.com"
    assert endpoint.request_headers()["Authorization"] == "Bearer abc"


def test_without_an_endpoint_the_source_never_looks_for_the_stack(monkeypatch, stack):
    # Choosing the embedded stack is the reports' job (tests/test_backend_choice.py).
    monkeypatch.delenv("OBSLIB_PROMETHEUS_URL", raising=False)
    monkeypatch.setenv("OBSLIB_STACK_DIR", str(stack.data_dir))
    monkeypatch.setenv("OBSLIB_STACK_PORT", str(stack.port))
    with pytest.raises(ConfigError, match="OBSLIB_PROMETHEUS_URL") as caught:
        PrometheusSource()
    assert "obslib.reports.inputs.prometheus()" in str(caught.value)
    assert "obslib stack up" in str(caught.value)
