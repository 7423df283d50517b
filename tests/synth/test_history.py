"""The synthetic history: deterministic, shaped as the exporters emit, consistent with its ground truth."""

import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from obslib.catalogue.contract import COLD_START, TASKS
from obslib.catalogue.exporters import MetricCatalogue
from obslib.errors import ConfigError
from obslib.settings import load_settings
from obslib.synth import generate, load_ground_truth, write_history
from obslib.synth.openmetrics import BLOCK_SECONDS
from obslib.synth.scenario import (
    DAY,
    HEAD_BLOCK_MARGIN_S,
    LatencyProfile,
    Timeline,
    agent_profile,
    default_end,
)
from obslib.synth.tasks import simulate

END = 1_795_000_000 // 3600 * 3600
LINE = re.compile(r"^([a-z_:][a-z0-9_:]*)\{(.*)\} (\S+) (\d+)$")


@pytest.fixture(scope="module")
def settings():
    return load_settings(None)


@pytest.fixture(scope="module")
def history(tmp_path_factory, settings):
    out = tmp_path_factory.mktemp("history")
    write_history(settings, out, days=2, seed=7, end=END)
    return out


def read_lines(om_dir: Path):
    for path in sorted(om_dir.glob("*.om")):
        text = path.read_text()
        assert text.endswith("# EOF\n")
        window = int(path.stem.split("-")[1])
        for line in text.splitlines()[:-1]:
            yield window, line


def test_same_seed_same_history(tmp_path, settings, history):
    write_history(settings, tmp_path, days=2, seed=7, end=END)
    ours = sorted((history / "openmetrics").glob("*.om"))
    again = sorted((tmp_path / "openmetrics").glob("*.om"))
    assert [p.name for p in ours] == [p.name for p in again]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(ours, again, strict=True))
    other = tmp_path / "other"
    write_history(settings, other, days=2, seed=8, end=END)
    assert (other / "openmetrics" / ours[5].name).read_bytes() != ours[5].read_bytes()


def test_every_line_is_openmetrics_in_its_block_with_full_exporter_labels(history, settings):
    metrics = MetricCatalogue.for_keda(settings.keda_version)
    seen = set()
    for window, line in read_lines(history / "openmetrics"):
        name, body, value, ts = LINE.match(line).groups()
        assert window <= int(ts) < window + BLOCK_SECONDS
        float(value)
        if name in seen:
            continue
        seen.add(name)
        labels = {kv.split("=", 1)[0] for kv in re.findall(r'(\w+="[^"]*")', body)}
        expected = metrics.labels_of(name)
        assert expected is not None, f"{name} is not a metric of the catalogue"
        optional = (
            {"service_instance_id", "service_name", "service_version"}
            if name.startswith("otelcol")
            else set()
        )
        assert labels == expected - optional or labels == expected, (name, labels ^ expected)
    for needed in ("daedalus_cold_start_seconds_bucket", "daedalus_tasks_total", "kube_job_status_active",
                   "nats_consumer_num_pending", "keda_scaler_detail_errors_total", "up",
                   "kube_deployment_status_replicas_available", "nats_stream_consumer_count"):  # fmt: skip
        assert needed in seen


def test_window_stays_out_of_the_head_block():
    assert default_end(now=10 * DAY + 5 * 3600 + 42) == 10 * DAY + 2 * 3600
    assert 10 * DAY + 5 * 3600 - default_end(now=10 * DAY + 5 * 3600) >= HEAD_BLOCK_MARGIN_S


def series_values(history, name, **match):
    out: dict[str, list[tuple[int, float]]] = {}
    for _, line in read_lines(history / "openmetrics"):
        if not line.startswith(name + "{"):
            continue
        n, body, value, ts = LINE.match(line).groups()
        if n != name or any(f'{k}="{v}"' not in body for k, v in match.items()):
            continue
        out.setdefault(body, []).append((int(ts), float(value)))
    return {k: sorted(v) for k, v in out.items()}


def test_histograms_are_cumulative_and_counters_reset_after_the_outage(history):
    truth = load_ground_truth(history)
    outage = truth.incident("orchestrator-down")
    buckets = series_values(history, f"{COLD_START.name}_bucket", agent_type="claude")
    by_le = {re.search(r'le="([^"]+)"', k).group(1): v for k, v in buckets.items()}
    bounds = [*(f"{b:g}" for b in COLD_START.buckets), "+Inf"]
    assert set(by_le) == set(bounds)
    matrix = np.array([[v for _, v in by_le[le]] for le in bounds])
    assert (np.diff(matrix, axis=0) >= 0).all()  # cumulative over le
    ((_, count),) = series_values(history, f"{COLD_START.name}_count", agent_type="claude").items()
    assert [v for _, v in count] == list(matrix[-1])
    ((_, success),) = series_values(
        history, TASKS.name, agent_type="copilot", status="success"
    ).items()
    times = np.array([t for t, _ in success])
    values = np.array([v for _, v in success])
    assert not ((times >= outage.start) & (times < outage.end)).any()  # not scraped while down
    before, after = values[times < outage.start], values[times >= outage.end]
    assert after[0] < before[-1]  # a restart resets the counter
    assert (np.diff(before) >= 0).all() and (np.diff(after) >= 0).all()


def test_incidents_do_not_overlap_and_name_their_alert(history, settings):
    truth = load_ground_truth(history)
    alerts = [i for i in truth.incidents if i.kind == "alert"]
    assert sorted(i.alert for i in alerts) == sorted(
        [
            "WorkerImagePullBackOff",
            "WorkerCrashLoopBackOff",
            "NATSConsumerLagUnbounded",
            "KEDAScalerError",
            "OTelCollectorDown",
            "OrchestratorDown",
            "NATSStreamUnhealthy",
        ]
    )
    spans = sorted((i.start, i.end) for i in alerts)
    assert all(a_end + 3600 < b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    assert all(truth.start < i.start < i.end <= truth.end for i in truth.incidents)
    assert all(i.labels for i in alerts)
    regression = truth.incident("latency-regression")
    assert regression.agent_type == "claude" and regression.factor > 1


def test_profiles_in_the_ground_truth_are_the_true_quantiles(history):
    truth = load_ground_truth(history)
    profile = agent_profile("codex")
    rng = np.random.default_rng(3)
    sample = profile.cold_start.sample(rng, 400_000)
    for q in (0.5, 0.95, 0.99):
        true = truth.profiles["codex"]["cold_start_s"][f"p{round(q * 100)}"]
        assert abs(np.quantile(sample, q) / true - 1) < 0.03


def test_latency_regression_slows_only_its_agent_type(settings):
    timeline = Timeline(END - 4 * DAY, END)
    from obslib.synth.scenario import schedule

    regression = next(i for i in schedule(timeline, settings) if i.id == "latency-regression")
    for agent, expect_slower in (("claude", True), ("copilot", False)):
        tasks = simulate(agent_profile(agent), timeline, [regression], np.random.default_rng(1))
        work = tasks.done - tasks.ready
        late = tasks.arrival >= regression.start
        ratio = np.median(work[late]) / np.median(work[~late])
        assert (ratio > 1.8) if expect_slower else (0.8 < ratio < 1.25), (agent, ratio)


def test_lognormal_mixture_quantile_inverts_cdf():
    p = LatencyProfile(60, 0.5, 0.05, 600, 0.4)
    for q in (0.1, 0.5, 0.99):
        assert abs(p.cdf(p.quantile(q)) - q) < 1e-9


def test_too_short_a_window_is_refused(settings):
    with pytest.raises(ConfigError, match="at least 1 day"):
        generate(settings, 0.5, 1, END, 60)


def test_custom_agent_types_get_their_own_series(tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text("agentTypes: [gemini, claude-code]\n")
    series, truth = generate(load_settings(values), 1, 1, END, 60)
    assert {s.labels.get("agent_type") for s in series if s.name == TASKS.name} == {
        "gemini",
        "claude-code",
    }
    assert set(truth.tasks) == {"gemini", "claude-code"} and all(truth.tasks.values())


def test_slow_cold_starts_break_ac1_only_inside_their_window(settings):
    from obslib.synth.scenario import schedule

    timeline = Timeline(END - 3 * DAY, END)
    incidents = schedule(timeline, settings)
    slow = next(i for i in incidents if i.id == "slow-cold-starts")
    alerts = [i for i in incidents if i.kind == "alert"]
    assert all(slow.end < i.start or i.end < slow.start for i in alerts)
    tasks = simulate(agent_profile("copilot"), timeline, [slow], np.random.default_rng(2))
    cold = tasks.ready - tasks.arrival
    inside = (tasks.arrival >= slow.start) & (tasks.arrival < slow.end)
    assert np.quantile(cold[inside], 0.99) > 1500 and np.quantile(cold[~inside], 0.99) < 1500


WORKER_METRICS = (
    "kube_job_status_active",
    "kube_pod_container_status_restarts_total",
    "kube_pod_container_status_waiting_reason",
)


@pytest.fixture(scope="module")
def fortnight(settings):
    """The embedded default's shape: 14 days, seed 1."""
    return generate(settings, 14, 1, END, 60)


def worker_series_of(series, truth, settings):
    """The task workers' kube-state-metrics series (not the scripted incidents' pods)."""
    incident_pods = {i.labels["pod"] for i in truth.incidents if "pod" in i.labels}
    incident_jobs = {p.rsplit("-", 1)[0] for p in incident_pods}
    out = []
    for s in series:
        if s.name not in WORKER_METRICS:
            continue
        name = s.labels["job_name"] if s.name == "kube_job_status_active" else s.labels["pod"]
        if name.startswith(settings.worker_prefix) and name not in incident_pods | incident_jobs:
            out.append(s)
    return out


def test_worker_pods_serve_several_tasks_and_still_churn_every_day(fortnight, settings):
    # One pod per task made 25,700 worker series (1,800 a day), which took the embedded
    # Prometheus past 2 GiB under repeated 14-day alert replays (benchmarks/README.md).
    series, truth = fortnight
    workers = worker_series_of(series, truth, settings)
    day_of = {id(s): set(((s.t - truth.start) // DAY).tolist()) for s in workers}
    per_day = [sum(d in day_of[id(s)] for s in workers) for d in range(14)]
    assert max(per_day) <= 800, per_day
    pods = [s for s in workers if s.name == "kube_pod_container_status_restarts_total"]
    names = {s.labels["pod"] for s in pods}
    assert len(names) < sum(truth.tasks.values()) / 3  # pods serve several tasks
    assert all(s.t[-1] - s.t[0] < DAY / 2 for s in pods)  # ...and none lives for long
    for agent in settings.agent_types:
        prefix = f"{settings.worker_prefix}{agent}-"
        first_day = {}
        for s in pods:
            if s.labels["pod"].startswith(prefix):
                first_day.setdefault(s.labels["pod"], int((s.t[0] - truth.start) // DAY))
        new_per_day = np.bincount(list(first_day.values()), minlength=14)
        assert (new_per_day >= 5).all(), (agent, new_per_day)  # new pod names every day


def test_a_worker_runs_one_task_at_a_time_and_is_active_while_any_runs(settings):
    from obslib.synth.exporter_series import labeler
    from obslib.synth.tasks import WORKER_IDLE_S, assign_workers, worker_series

    timeline = Timeline(END - 2 * DAY, END)
    tasks = simulate(agent_profile("copilot"), timeline, [], np.random.default_rng(4))
    worker = assign_workers(tasks, WORKER_IDLE_S)
    assert 1 < worker.max() + 1 < len(tasks) / 2
    for w in range(worker.max() + 1):
        mine = np.flatnonzero(worker == w)
        mine = mine[np.argsort(tasks.arrival[mine])]
        gaps = tasks.arrival[mine[1:]] - tasks.done[mine[:-1]]
        assert (gaps >= 0).all() and (gaps < WORKER_IDLE_S).all()  # no overlap, no idle exit
    label = labeler(MetricCatalogue.for_keda(settings.keda_version), settings)
    series = worker_series(tasks, timeline, settings.worker_prefix, "daedalus", label,
                           np.random.default_rng(5))  # fmt: skip
    active = np.zeros(len(timeline.grid))
    for s in series:
        if s.name == "kube_job_status_active":
            active[np.searchsorted(timeline.grid, s.t)] += s.v
    grid = timeline.grid[:, None]
    in_flight = ((tasks.arrival <= grid) & (grid < tasks.done)).sum(axis=1)
    assert (active >= in_flight).all()  # the "Active workers" panel never shows fewer workers
    assert (active <= in_flight + (worker.max() + 1)).all()
    assert (active > in_flight).any()  # idle workers wait for the next task
