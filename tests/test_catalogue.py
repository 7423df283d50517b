"""The catalogue: the metric contract, the alert table, one source of truth."""

from obslib.catalogue.contract import (
    AC1_COLD_START_LIMIT_S,
    COLD_START,
    CONTRACT,
    STATUSES,
    TASK_DURATION,
    TASKS,
)


def test_contract_names_types_and_labels():
    assert {(m.name, m.type, m.labels) for m in CONTRACT} == {
        ("daedalus_cold_start_seconds", "histogram", ("agent_type",)),
        ("daedalus_tasks_total", "counter", ("agent_type", "status")),
        ("daedalus_task_duration_seconds", "histogram", ("agent_type",)),
    }
    assert STATUSES == ("success", "failure", "canceled")
    assert TASKS.series_names == ("daedalus_tasks_total",)
    assert COLD_START.series_names[0] == "daedalus_cold_start_seconds_bucket"


def test_thresholds_that_matter_are_bucket_bounds():
    assert AC1_COLD_START_LIMIT_S in COLD_START.buckets
    assert max(COLD_START.buckets) > AC1_COLD_START_LIMIT_S
    for metric in (COLD_START, TASK_DURATION):
        assert list(metric.buckets) == sorted(set(metric.buckets))
        # Candidate Pass-2 thresholds (1, 2, 5, 10, 15, 30 minutes) are all bounds.
        for minutes in (1, 2, 5, 10, 15, 30):
            assert minutes * 60.0 in metric.buckets, (metric.name, minutes)


def test_alert_table_matches_the_spec(catalogue):
    table = {a.name: (a.severity, a.for_, a.anchor) for a in catalogue.alerts}
    assert table == {
        "WorkerImagePullBackOff": ("page", "2m", "worker-image-pull-backoff"),
        "WorkerCrashLoopBackOff": ("page", "10m", "worker-crashloop"),
        "NATSConsumerLagUnbounded": ("page", "", "nats-consumer-lag"),
        "KEDAScalerError": ("page", "", "keda-scaler-error"),
        "OTelCollectorDown": ("page", "5m", "otel-collector-down"),
        "OrchestratorDown": ("page", "2m", "orchestrator-down"),
        "NATSStreamUnhealthy": ("warn", "10m", "nats-stream-unhealthy"),
    }


def test_corrected_expressions_keep_the_spec_findings(catalogue):
    expr = {a.name: a.expr for a in catalogue.alerts}
    assert expr["WorkerCrashLoopBackOff"].endswith("[10m]) > 0")  # finding 1: > 0, not > 0.3
    assert (
        "absent(kube_deployment_status_replicas_available{" in expr["OrchestratorDown"]
    )  # finding 4
    assert 'namespace="daedalus"' in expr["OrchestratorDown"].split(" or ")[0]  # CC2-1
    assert expr["OTelCollectorDown"].startswith('absent(up{job="otel-collector"})')  # CC2-4
    assert "namespace" not in expr["OTelCollectorDown"]  # the collector lives elsewhere
    assert expr["NATSConsumerLagUnbounded"] == (
        'delta(nats_consumer_num_pending{stream="AGENT_TASKS"}[10m]) > 0 '
        'and nats_consumer_num_pending{stream="AGENT_TASKS"} > 100'
    )  # finding 2, CC2-2
    assert expr["NATSStreamUnhealthy"] == (
        'nats_stream_consumer_count{stream="AGENT_TASKS"} == 0 and nats_stream_total_messages{stream="AGENT_TASKS"} > 0'
    )  # CC2-3
    assert "keda_scaler_errors_total" not in expr["KEDAScalerError"]


def test_deviations_explain_themselves(catalogue):
    for alert in catalogue.alerts:
        if alert.spec_expr:
            assert alert.deviation and alert.spec_expr != alert.expr


def test_flat_api_resolves_every_entry_point():
    import obslib

    assert all(
        callable(getattr(obslib, name)) or isinstance(getattr(obslib, name), type)
        for name in obslib.__all__
    )
