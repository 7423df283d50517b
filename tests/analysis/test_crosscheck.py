"""The observability cross-check against real Prometheus servers.

Clean case: the session's synthetic history, written from the same catalogue as the rules and
dashboards. Mismatch case: a second Prometheus over a few hours shaped like the platform today
(``reference/daedalus-platform.md``): workers named ``daedalus-<worker>``, no orchestrator
Deployment, NATS jsz metrics only from the NATS chart's exporter sidecar, KEDA 2.13, Daedalus
metrics partly missing, partly without agent_type, partly with agent types outside the set.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from obslib.analysis.crosscheck import (
    agent_type_cardinality,
    alert_noise,
    cardinality_verdict,
    crosscheck_summary,
    platform_mismatches,
    run_crosscheck,
)
from obslib.analysis.crosscheck.exporters import exporter_report, keda_versions, version_range_text
from obslib.analysis.crosscheck.selectors import (
    diagnose,
    name_shape,
    selector_report,
    selector_uses,
)
from obslib.catalogue.exporters import Exporter, load_exporter
from obslib.emit import RULE_FILE, RUNBOOK_FILE
from obslib.promql import selectors
from obslib.sources.prometheus import PrometheusSource
from obslib.stack import LocalStack
from obslib.synth.exporter_series import scrape_targets
from obslib.synth.openmetrics import Series, write_blocks
from obslib.synth.scenario import HOUR
from obslib.synth.tasks import random_suffix
from obslib.verdict import Verdict
from tests.conftest import REPO, free_port
from tests.world import ANCHOR

TODAY_HOURS = 4
TASK_ID = "aks-e2e-1717171717000000000"  # the AKS e2e sentinel's id shape, leaking into a label


# --- a history shaped like the platform today -------------------------------------------------


def labels_of(exporter: Exporter, series: str, values: dict[str, str], drop=()) -> dict[str, str]:
    """The series' full label set as the catalogue says the exporter emits it (minus ``drop``)."""
    names = next(s.labels for s in exporter.series() if s.name == series) - set(drop)
    lacking = names - set(values)
    assert not lacking, f"{series}: no test value for {sorted(lacking)}"
    return {k: values[k] for k in names}


def platform_today(work_dir: Path, catalogue, end: int) -> Path:
    settings = catalogue.settings
    t = np.arange(end - TODAY_HOURS * HOUR, end, 60, dtype=np.int64)
    ones = np.ones(len(t))
    rng = np.random.default_rng(7)
    targets = scrape_targets(settings)
    metrics = catalogue.metrics
    ksm = metrics.exporter("kube-state-metrics")
    out: list[Series] = []

    def add(exporter, name, values, v=ones, drop=()):
        out.append(Series(name, labels_of(exporter, name, values, drop), t, v))

    # Workers as the chart names them: <fullname>-<worker>, so Jobs daedalus-copilot-xxxxx.
    ksm_values = dict(targets["kube-state-metrics"])
    for agent in ("copilot", "claude"):
        for job, pod in zip(random_suffix(rng, 3), random_suffix(rng, 3), strict=True):
            name = f"daedalus-{agent}-{job}"
            obj = {**ksm_values, "namespace": "daedalus", "job_name": name}
            add(ksm, "kube_job_status_active", obj)
            pod_values = {**obj, "pod": f"{name}-{pod}", "uid": f"uid-{job}-{pod}"}
            for container in ("proxy", "agent"):
                add(
                    ksm,
                    "kube_pod_container_status_restarts_total",
                    {**pod_values, "container": container},
                    0 * ones,
                )
            creating = {**pod_values, "container": "agent", "reason": "ContainerCreating"}
            add(ksm, "kube_pod_container_status_waiting_reason", creating)
    # The NATS subchart's pod lives in the release namespace too; no orchestrator Deployment,
    # only a Deployment-based worker and KEDA's own.
    nats_pod = {**ksm_values, "namespace": "daedalus", "pod": "daedalus-nats-0", "uid": "uid-nats"}
    add(
        ksm, "kube_pod_container_status_restarts_total", {**nats_pod, "container": "nats"}, 0 * ones
    )
    for namespace, deployment in (("daedalus", "daedalus-codex"), ("keda", "keda-operator")):
        obj = {**ksm_values, "namespace": namespace, "deployment": deployment}
        add(ksm, "kube_deployment_status_replicas_available", obj)

    # nats-surveyor without --jsz (core metrics only), and the NATS chart's exporter sidecar
    # (-prefix=nats) emitting the jsz names with its own labels.
    surveyor = metrics.exporter("nats-surveyor")
    core = {**targets["nats-surveyor"], "server_cluster": "nats", "server_version": "2.10.18"}
    add(surveyor, "nats_core_info", core)
    add(surveyor, "nats_core_connection_count", core, 12 * ones)
    sidecar = metrics.exporter("prometheus-nats-exporter")
    pne = {
        "namespace": "daedalus",
        "pod": "daedalus-nats-0",
        "container": "prom-exporter",
        "endpoint": "prom-metrics",
        "instance": "10.244.1.7:7777",
        "job": "daedalus/daedalus-nats",
        "server_id": "NDJWE4SO2E5S7TCHFRHSUBBXWDF6BC5GKN6ZCFQBXMVSZKJ7MXGNZG5C",
        "server_name": "daedalus-nats-0",
        "cluster": "daedalus-nats",
        "domain": "",
        "meta_leader": "daedalus-nats-0",
        "is_meta_leader": "true",
        "account": "$G",
        "account_name": "$G",
        "account_id": "$G",
        "stream_leader": "daedalus-nats-0",
        "is_stream_leader": "true",
        "consumer_leader": "daedalus-nats-0",
        "is_consumer_leader": "true",
        "consumer_desc": "",
    }
    for stream in (settings.nats_stream, "AGENT_RESULTS", "AGENT_STATUS"):
        own = {**pne, "stream_name": stream, "stream_raft_group": f"S-{stream}"}
        add(sidecar, "nats_stream_total_messages", own, 5 * ones)
        add(sidecar, "nats_stream_consumer_count", own)
    for agent in settings.agent_types:
        own = {
            **pne,
            "stream_name": settings.nats_stream,
            "stream_raft_group": "S-T",
            "consumer_name": agent,
        }
        add(sidecar, "nats_consumer_num_pending", own, 2 * ones)

    # KEDA 2.13 (older than the values' 2.14): the per-scaler counter is keda_scaler_errors,
    # there is no keda_scaler_detail_errors_total, and keda_build_info is not scraped.
    keda = load_exporter("keda-operator", (2, 13))
    keda_values = {**targets["keda-operator"], "exported_namespace": "daedalus"}
    add(keda, "keda_scaler_errors_total", keda_values, 0 * ones)
    for agent in ("copilot", "claude"):
        own = {**keda_values, "scaledObject": f"daedalus-{agent}"}
        add(keda, "keda_scaler_errors", own, 0 * ones)
        add(keda, "keda_scaler_active", own)

    prom = metrics.exporter("prometheus")
    collector = targets["otel-collector"]
    add(prom, "up", {k: collector[k] for k in prom.target_labels})

    # Daedalus metrics: no cold-start histogram; the task counter without agent_type; the
    # duration histogram with agent types outside the set ("Copilot", a task id).
    daedalus = metrics.exporter("daedalus")
    worker = {
        "namespace": "daedalus",
        "service": "daedalus-copilot",
        "pod": "daedalus-copilot-b7x2k-9qzvd",
        "container": "proxy",
        "endpoint": "metrics",
        "instance": "10.244.1.30:9464",
        "job": "daedalus-copilot",
    }
    add(
        daedalus,
        "daedalus_tasks_total",
        {**worker, "status": "success"},
        np.cumsum(ones),
        drop=("agent_type",),
    )
    for agent in ("copilot", "Copilot", TASK_ID):
        own = {**worker, "agent_type": agent}
        for le in ("60", "600", "+Inf"):
            add(
                daedalus,
                "daedalus_task_duration_seconds_bucket",
                {**own, "le": le},
                np.cumsum(ones),
            )
        for suffix in ("_count", "_sum"):
            add(daedalus, f"daedalus_task_duration_seconds{suffix}", own, np.cumsum(ones))
    om_dir = work_dir / "openmetrics"
    write_blocks(out, om_dir)
    return om_dir


@pytest.fixture(scope="module")
def today(tmp_path_factory, catalogue):
    """A real Prometheus over the platform-today history; stopped even when a test fails."""
    stack = LocalStack(
        data_dir=tmp_path_factory.mktemp("today"), port=free_port(), rule_files=[REPO / RULE_FILE]
    )
    end = ANCHOR  # the pinned world's anchor: the same history on any date
    try:
        stack.up(history=lambda work_dir: platform_today(work_dir, catalogue, end))
        yield PrometheusSource(stack.endpoint(), retries=1), end - TODAY_HOURS * HOUR, end
    finally:
        stack.down()


@pytest.fixture(scope="module")
def today_report(today, catalogue):
    source, start, end = today
    return selector_report(source, catalogue, start, end)


@pytest.fixture(scope="module")
def clean(history_stack, catalogue):
    source, truth = history_stack
    return run_crosscheck(
        source, catalogue, truth.start, truth.end, (REPO / RUNBOOK_FILE).read_text()
    )


# --- clean case: the session's synthetic history ----------------------------------------------


def test_clean_every_selector_of_every_rule_and_dashboard_matches(clean, catalogue):
    report = clean.selectors
    assert set(report.loc[report.kind == "rule", "name"]) == {a.name for a in catalogue.alerts}
    dashboards = set(report.loc[report.kind == "dashboard", "name"])
    assert dashboards == {"Daedalus fleet overview"} | {
        f"Daedalus agent: {a}" for a in catalogue.settings.agent_types
    }
    assert report["matched"].all(), report.loc[~report.matched, ["selector", "detail"]]
    assert (report["series"] > 0).all() and (report["diagnosis"] == "ok").all()


def test_clean_exporters_are_surveyor_and_keda_2_14(clean):
    exporters = clean.exporters.set_index("exporter")
    assert exporters.loc["nats-surveyor", "identified_series"] > 0
    assert not exporters.loc["prometheus-nats-exporter", "present"]
    keda = exporters.loc["keda-operator"]
    assert keda["version"] == "2.14-2.16"
    assert keda["build_version"].startswith("2.14")
    assert keda["agrees"] is True
    rows = clean.selectors
    assert set(rows.loc[rows.metric.str.startswith("nats_"), "exporter"]) == {"nats-surveyor"}
    assert set(rows.loc[rows.expected_exporter == "keda-operator", "exporter_version"]) == {
        "2.14-2.16"
    }


def test_clean_agent_type_stays_within_the_set(clean, history_stack):
    _, truth = history_stack
    cardinality = clean.cardinality
    assert cardinality_verdict(cardinality) is Verdict.PASS
    assert cardinality.attrs["verdict"] is Verdict.PASS
    seen = cardinality[cardinality.seen]
    assert set(seen.agent_type) == set(truth.agent_types)
    assert seen.in_set.all() and seen.valid_subject.all() and (seen.series > 0).all()


def test_clean_noise_counts_one_fired_episode_per_incident(clean, history_stack):
    _, truth = history_stack
    incidents = [i for i in truth.incidents if i.kind == "alert"]
    noise = clean.noise.set_index("alert")
    assert set(noise.index) == {i.alert for i in incidents}
    for incident in incidents:
        row = noise.loc[incident.alert]
        assert row.fired == sum(i.alert == incident.alert for i in incidents), incident.alert
        assert row.label_sets == 1
        first = row.first_fired.timestamp()
        assert incident.start <= first <= incident.end, incident.alert
        assert 0 < row.longest_s <= row.firing_s
        # Firing ends at most a rate window and a lookback after the incident.
        assert first + row.firing_s <= incident.end + 20 * 60, incident.alert


def test_clean_runbook_is_complete(clean, catalogue):
    runbook = clean.runbook
    assert list(runbook.alert) == [a.name for a in catalogue.alerts]
    assert runbook.complete.all(), runbook.loc[~runbook.complete, ["alert", "missing"]]


def test_clean_data_has_no_platform_mismatch_and_passes(clean):
    assert clean.mismatches.empty
    summary = clean.summary
    assert summary["verdict"] == "pass" and summary["reasons"] == []
    assert summary["selectors"]["rules_unmatched"] == []
    assert summary["agent_type"]["outside_set"] == []
    assert json.loads(json.dumps(summary)) == summary


# --- mismatch case: the platform today -------------------------------------------------------


def rule_row(report, alert, metric=None):
    rows = report[(report.kind == "rule") & (report.name == alert)]
    if metric:
        rows = rows[rows.metric == metric]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def mismatch(frame, kind):
    rows = frame[frame.mismatch == kind]
    assert len(rows) == 1, f"{kind} not flagged once: {list(frame.mismatch)}"
    return rows.iloc[0]


@pytest.fixture(scope="module")
def today_frames(today, today_report, catalogue):
    source, start, end = today
    exporters = exporter_report(source, catalogue, start, end)
    cardinality = agent_type_cardinality(source, catalogue.settings, start, end)
    mismatches = platform_mismatches(today_report, catalogue, exporters, cardinality)
    return exporters, cardinality, mismatches


def test_worker_prefix_mismatch(today_report, today_frames):
    for alert in ("WorkerImagePullBackOff", "WorkerCrashLoopBackOff"):
        row = rule_row(today_report, alert)
        assert not row.matched and row.diagnosis == "value_missing" and row.label == "pod"
        assert "daedalus-copilot-*" in row["values"] and "daedalus-claude-*" in row["values"]
    found = mismatch(today_frames[2], "worker-prefix")
    assert found.values_key == "workers.podPrefix" and found.suggested == "daedalus-"
    assert set(found.alerts) == {"WorkerImagePullBackOff", "WorkerCrashLoopBackOff"}
    assert any(p.endswith("/ Active workers") for p in found.panels)
    assert rule_row(today_report, "WorkerCrashLoopBackOff").selector in found.selectors


def test_missing_orchestrator_deployment_fires_the_absent_leg(
    today, today_report, today_frames, catalogue
):
    row = rule_row(today_report, "OrchestratorDown")
    assert not row.matched and row.diagnosis == "value_missing" and row.label == "deployment"
    assert row["values"] == ["daedalus-codex"] and "absent" in row.functions
    found = mismatch(today_frames[2], "orchestrator-deployment")
    assert found.fix == "platform" and "absent() leg" in found.evidence
    assert found.alerts == ["OrchestratorDown"]
    source, start, end = today
    noise = alert_noise(source, catalogue, start, end).set_index("alert")
    assert noise.loc["OrchestratorDown", "fired"] == 1
    assert noise.loc["OrchestratorDown", "firing_s"] >= (TODAY_HOURS - 1) * HOUR
    assert noise.drop(index="OrchestratorDown")["fired"].sum() == 0


def test_keda_older_than_values_and_a_selector_matching_nothing_at_all(today_report, today_frames):
    row = rule_row(today_report, "KEDAScalerError")
    assert not row.matched and row.series == 0 and row.diagnosis == "no_series"
    assert row.metric == "keda_scaler_detail_errors_total" and row.exporter_version == "2.13"
    keda = today_frames[0].set_index("exporter").loc["keda-operator"]
    assert keda["version"] == "2.13" and keda["build_version"] == "" and keda["agrees"] is False
    found = mismatch(today_frames[2], "keda-version")
    assert found.values_key == "keda.version" and found.suggested == "2.13"
    assert found.selectors == [row.selector] and "keda_scaler_errors" in found.change


def test_nats_metrics_in_the_sidecar_naming_and_surveyor_without_jsz(today_report, today_frames):
    for alert, metric in (
        ("NATSConsumerLagUnbounded", "nats_consumer_num_pending"),
        ("NATSStreamUnhealthy", "nats_stream_total_messages"),
    ):
        row = rule_row(today_report, alert, metric)
        assert row.diagnosis == "label_missing" and row.label == "stream"
        assert "stream_name" in row.similar and "stream_name" in row["values"]
        assert row.exporter == "prometheus-nats-exporter"
    exporters = today_frames[0].set_index("exporter")
    assert exporters.loc["nats-surveyor", "present"]
    assert exporters.loc["nats-surveyor", "identified_series"] == 0
    assert exporters.loc["prometheus-nats-exporter", "identified_series"] > 0
    jsz = mismatch(today_frames[2], "nats-surveyor-jsz-off")
    naming = mismatch(today_frames[2], "nats-exporter-naming")
    assert "without --jsz" in jsz.evidence and "stream_name" in naming.evidence
    for found in (jsz, naming):
        assert set(found.alerts) == {"NATSConsumerLagUnbounded", "NATSStreamUnhealthy"}


def test_daedalus_metrics_missing_unlabelled_or_outside_the_set(today_report, today_frames):
    dashboards = today_report[today_report.kind == "dashboard"]
    cold = dashboards[dashboards.metric == "daedalus_cold_start_seconds_bucket"]
    assert (cold.diagnosis == "no_series").all() and not cold.empty
    tasks = dashboards[dashboards.metric == "daedalus_tasks_total"]
    assert (tasks.diagnosis == "label_missing").all() and (tasks.label == "agent_type").all()
    durations = dashboards[dashboards.metric == "daedalus_task_duration_seconds_bucket"]
    claude = durations[durations.selector.str.contains('agent_type="claude"')].iloc[0]
    assert claude.diagnosis == "value_missing"
    assert {"Copilot", TASK_ID, "copilot"} == set(claude["values"])
    assert durations[durations.selector.str.contains('agent_type="copilot"')].matched.all()
    mismatches = today_frames[2]
    assert set(mismatch(mismatches, "daedalus-metrics-missing").selectors) == set(cold.selector)
    assert set(mismatch(mismatches, "agent-type-label-missing").selectors) == set(tasks.selector)
    unbounded = mismatch(mismatches, "agent-type-unbounded")
    assert "'Copilot'" in unbounded.evidence and TASK_ID in unbounded.evidence
    assert claude.selector in unbounded.selectors


def test_agent_type_outside_the_set_is_unbounded(today_frames, catalogue):
    cardinality = today_frames[1].set_index("agent_type")
    assert cardinality_verdict(today_frames[1]) is Verdict.FAIL
    outside = cardinality[cardinality.seen & ~cardinality.in_set].drop(index="")
    assert set(outside.index) == {"Copilot", TASK_ID}
    assert not outside.loc["Copilot", "valid_subject"] and "case" in outside.loc["Copilot", "note"]
    assert outside.loc[TASK_ID, "valid_subject"] and "id" in outside.loc[TASK_ID, "note"]
    assert cardinality.loc["", "series"] == 1  # the task counter without agent_type
    never = cardinality[cardinality.in_set & ~cardinality.seen]
    assert set(never.index) == {"claude", "codex"}


def test_every_unmatched_rule_selector_is_a_named_mismatch(today_report, today_frames):
    mismatches = today_frames[2]
    assert "selector-unmatched" not in set(mismatches.mismatch)
    explained = {s for selectors in mismatches.selectors for s in selectors}
    failing = today_report[(today_report.kind == "rule") & ~today_report.matched]
    assert set(failing.selector) <= explained
    assert set(rule_row(today_report, "OTelCollectorDown")[["matched", "diagnosis"]]) == {
        True,
        "ok",
    }


def test_today_summary_fails_on_rule_selectors_and_agent_type(today_report, today_frames):
    exporters, cardinality, mismatches = today_frames
    summary = crosscheck_summary(
        today_report, cardinality, mismatches=mismatches, exporters=exporters
    )
    assert summary["verdict"] == "fail"
    assert any("rule selector" in r for r in summary["reasons"])
    assert any("agent_type is unbounded" in r for r in summary["reasons"])
    unmatched_rules = {r["selector"]: r for r in summary["selectors"]["rules_unmatched"]}
    keda = rule_row(today_report, "KEDAScalerError").selector
    assert unmatched_rules[keda]["diagnosis"] == "no_series"
    assert json.dumps(summary)


def test_a_window_without_data_is_inconclusive_and_flags_nothing(today, catalogue):
    source, start, _ = today
    before = (start - 2 * 86400, start - 86400)
    report = selector_report(source, catalogue, *before)
    assert (report.diagnosis == "no_series").all()
    cardinality = agent_type_cardinality(source, catalogue.settings, *before)
    assert cardinality_verdict(cardinality) is Verdict.INCONCLUSIVE
    assert platform_mismatches(report, catalogue).empty
    summary = crosscheck_summary(report, cardinality)
    assert summary["verdict"] == "inconclusive" and summary["has_data"] is False


def test_an_absent_state_does_not_fail_but_drift_does(clean):
    report = clean.selectors.copy()
    rule = report.index[report.kind == "rule"][0]
    report.loc[rule, ["matched", "diagnosis"]] = [False, "state_absent"]
    assert crosscheck_summary(report)["verdict"] == "pass"
    report.loc[rule, "diagnosis"] = "value_missing"
    assert crosscheck_summary(report)["verdict"] == "fail"


# --- pure parts: diagnosis, name shapes, KEDA versions, selector inventory --------------------


def series_frame(*label_sets):
    frame = pd.DataFrame(label_sets).fillna("")
    return frame.assign(series=[str(d) for d in label_sets])


def only(expr):
    (sel,) = selectors(expr)
    return sel


def test_diagnose_names_the_missing_label_and_its_look_alikes():
    frame = series_frame({"stream_name": "AGENT_TASKS", "consumer_name": "copilot"})
    found = diagnose(only('nats_consumer_num_pending{stream="AGENT_TASKS"}'), frame)
    assert found.diagnosis == "label_missing" and found.label == "stream"
    assert found.similar[0] == "stream_name" and "consumer_name" in found.values


def test_diagnose_lists_existing_values_among_the_other_matchers():
    frame = series_frame(
        {"namespace": "daedalus", "pod": "daedalus-copilot-b7x2k-9qzvd"},
        {"namespace": "daedalus", "pod": "daedalus-copilot-c4d5f-h6j7k"},
        {"namespace": "team-b", "pod": "billing-0"},
    )
    found = diagnose(only('x{namespace="daedalus", pod=~"daedalus-worker-.*"}'), frame)
    assert found.diagnosis == "value_missing" and found.label == "pod"
    assert found.values == ("daedalus-copilot-*",)  # billing-0 is in another namespace
    assert 'namespace="daedalus"' in found.detail


def test_diagnose_conflict_state_and_the_empty_string_semantics():
    frame = series_frame(
        {"namespace": "a", "deployment": "x", "reason": "ContainerCreating"},
        {"namespace": "b", "deployment": "y", "reason": "ContainerCreating"},
    )
    conflict = diagnose(only('m{namespace="a", deployment="y"}'), frame)
    assert conflict.diagnosis == "conflict" and conflict.label in ("namespace", "deployment")
    state = diagnose(only('m{namespace="a", reason="ImagePullBackOff"}'), frame)
    assert state.diagnosis == "state_absent" and state.values == ("ContainerCreating",)
    drift_first = diagnose(only('m{namespace="c", reason="ImagePullBackOff"}'), frame)
    assert drift_first.diagnosis == "value_missing" and drift_first.label == "namespace"
    # A matcher that accepts "" is satisfied by a missing label: no diagnosis of that label.
    assert diagnose(only('m{zone=""}'), frame).diagnosis == "ok"
    assert diagnose(only('m{namespace!="a"}'), frame).diagnosis == "ok"
    assert diagnose(only('m{namespace="a"}'), series_frame()).diagnosis == "no_series"


def test_diagnose_conflicts_pairwise_and_among_several():
    rows = [{"a": "1", "b": "1", "c": "0"}, {"a": "0", "b": "1", "c": "1"}]
    found = diagnose(only('m{a="1", b="1", c="1"}'), series_frame(*rows))
    assert found.diagnosis == "conflict" and found.label == "a"
    assert found.values == ("0",)  # a's values among the series with b="1", c="1"
    # Every series misses exactly two of four matchers: no single one is to blame.
    pairs = ["0011", "1100", "0101", "1010", "0110", "1001"]
    rows = [dict(zip("abcd", bits, strict=True)) for bits in pairs]
    found = diagnose(only('m{a="1", b="1", c="1", d="1"}'), series_frame(*rows))
    assert found.diagnosis == "conflict" and set(found.values) == {"0", "1"}


def test_name_shape_folds_generated_suffixes_only():
    assert name_shape("daedalus-copilot-b7x2k-9qzvd") == "daedalus-copilot-*"
    assert name_shape("daedalus-orchestrator-6d8f9c7b5-qwrtz") == "daedalus-orchestrator-*"
    assert name_shape("daedalus-nats-0") == "daedalus-nats-0"
    assert name_shape("daedalus-codex") == "daedalus-codex"
    assert name_shape(TASK_ID) == TASK_ID


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        (
            {
                "keda_scaler_detail_errors_total": {"triggerIndex"},
                "keda_scaler_errors_total": set(),
            },
            "2.14-2.16",
        ),
        ({"keda_scaler_errors_total": set()}, "2.10-2.16"),
        ({"keda_scaler_errors": {"triggerIndex", "type"}}, "2.13"),
        ({"keda_scaler_errors": {"scalerIndex"}, "keda_build_info": {"version"}}, "2.11-2.12"),
        ({"keda_scaler_detail_errors_total": {"triggerIndex"}}, "2.14+"),
        ({"keda_scaler_detail_errors_total": set(), "keda_scaler_errors": set()}, "2.14-2.16"),
    ],
)
def test_keda_version_range_from_names_and_labels(observed, expected):
    versions = keda_versions({k: frozenset(v) for k, v in observed.items()})
    assert version_range_text(versions) == expected


def test_contradicting_keda_evidence_gives_no_version():
    observed = {
        "keda_scaler_errors": frozenset({"scalerIndex"}),
        "keda_scaled_job_errors": frozenset(),
    }
    assert keda_versions(observed) == [] and version_range_text([]) == ""


def test_selector_inventory_covers_every_alert_and_each_binding(catalogue):
    uses = selector_uses(catalogue)
    rules = [u for u in uses if u.kind == "rule"]
    assert {u.name for u in rules} == {a.name for a in catalogue.alerts}
    orchestrator = [u for u in rules if u.name == "OrchestratorDown"]
    assert {u.functions for u in orchestrator} == {("absent",), ()}
    fleet = {u.binding for u in uses if u.name == "Daedalus fleet overview"}
    assert fleet == {f"agent_type={a}" for a in catalogue.settings.agent_types} | {
        "agent_type=" + "|".join(catalogue.settings.agent_types)
    }
