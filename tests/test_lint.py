"""The PromQL lint: the automated form of the spec's two cross-checks."""

import copy

import pytest

from obslib.catalogue.exporters import MetricCatalogue
from obslib.emit import lint_artifacts
from obslib.emit.dashboards import render_dashboard
from obslib.emit.rules import render_rule_file
from obslib.lint import lint_dashboard, lint_expression, lint_rules
from obslib.promql import interpolate, output_labels, selectors, variables_in

KEDA_214 = MetricCatalogue.for_keda((2, 14))


def messages(expr: str, metrics: MetricCatalogue = KEDA_214) -> str:
    return "\n".join(p.message for p in lint_expression(expr, metrics, "test"))


def test_emitted_rules_and_dashboards_are_clean(catalogue):
    assert lint_artifacts(catalogue) == []


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # Finding 2: a counter nats-surveyor never had.
        (
            "rate(nats_jetstream_consumer_acks_total[10m]) == 0",
            "nats_jetstream_consumer_acks_total is not emitted",
        ),
        # CC2-2: the metric name the original rule used.
        (
            'nats_jetstream_consumer_num_pending{stream="AGENT_TASKS"} > 100',
            "does not exist: no exporter emits it",
        ),
        # CC2-3: three fictional stream metrics.
        (
            "nats_jetstream_stream_messages_lost_total > 0",
            "nats_jetstream_stream_messages_lost_total does not exist",
        ),
        (
            "nats_jetstream_stream_storage_bytes / nats_jetstream_stream_max_bytes > 0.9",
            "nats_jetstream_stream_max_bytes does not exist",
        ),
        (
            "nats_jetstream_stream_storage_bytes > 0",
            "nats_jetstream_stream_storage_bytes is not emitted",
        ),
        # CC2-2: the consumer label is consumer_name.
        ('nats_consumer_num_pending{consumer="copilot"} > 100', "has no label consumer"),
        # Finding 5 note: surveyor's stream label is `stream`, not stream_name (PNE's).
        (
            'nats_stream_total_messages{stream_name="AGENT_TASKS"} > 0',
            "has no label stream_name (stream_name is prometheus-nats-exporter's label)",
        ),
        # The spec's queue-depth sketch: a metric and per-agent streams that do not exist.
        ('nats_jetstream_consumer_num_pending{stream=~"agent_copilot.*"}', "does not exist"),
        # CC2-5 as the spec wrote it: namespace is the KEDA operator's scrape namespace.
        (
            'rate(keda_scaler_errors_total{namespace="daedalus"}[5m]) > 0',
            "`namespace` is the keda-operator scrape",
        ),
        (
            'rate(keda_scaler_detail_errors_total{namespace="daedalus"}[5m]) > 0',
            "is `exported_namespace`",
        ),
        # Counters and gauges read the wrong way.
        ("kube_pod_container_status_restarts_total > 0", "is a counter: read it through rate()"),
        ('delta(kube_pod_container_status_restarts_total{pod=~"x.*"}[10m]) > 0', "is a counter"),
        ("rate(nats_consumer_num_pending[5m]) > 0", "is a gauge: rate()/increase() of a gauge"),
        ("daedalus_task_duration_seconds_bucket > 0", "is a counter"),
        ('daedalus_tasks_total{agent="copilot"}', "has no label agent"),
        ('{__name__=~"daedalus_.*"}', "selector without a metric name"),
        ("sum(rate(daedalus_tasks_total[5m])", "invalid PromQL"),
    ],
)
def test_spec_defects_and_misuse_are_rejected(expr, expected):
    assert expected in messages(expr)


def test_keda_metric_set_follows_the_version():
    legacy = "rate(keda_scaler_errors_total[5m]) > 0"
    assert messages(legacy, MetricCatalogue.for_keda((2, 14))) == ""
    assert "is not emitted" in messages(legacy, MetricCatalogue.for_keda((2, 17)))
    detail = 'rate(keda_scaler_detail_errors_total{exported_namespace="d"}[5m]) > 0'
    assert "is not emitted" in messages(detail, MetricCatalogue.for_keda((2, 13)))
    assert messages(detail, MetricCatalogue.for_keda((2, 17))) == ""
    old_labels = 'rate(keda_scaler_errors{exported_namespace="d", triggerIndex="0"}[5m]) > 0'
    assert "has no label triggerIndex" in messages(old_labels, MetricCatalogue.for_keda((2, 12)))
    assert messages(old_labels, MetricCatalogue.for_keda((2, 13))) == ""


def test_honor_labels_keeps_keda_namespace():
    metrics = MetricCatalogue.for_keda((2, 14), keda_honor_labels=True)
    assert (
        messages('rate(keda_scaler_detail_errors_total{namespace="daedalus"}[5m]) > 0', metrics)
        == ""
    )


def test_good_expressions_pass():
    assert (
        messages('max by (consumer_name) (nats_consumer_num_pending{stream="AGENT_TASKS"})') == ""
    )
    assert messages('absent(up{job="otel-collector"}) or up{job="otel-collector"} == 0') == ""


def test_alert_templates_may_only_read_labels_every_leg_has(catalogue):
    groups = copy.deepcopy(render_rule_file(catalogue)["groups"])
    rule = next(r for g in groups for r in g["rules"] if r["alert"] == "OTelCollectorDown")
    rule["annotations"]["description"] = "collector {{ $labels.instance }} is down"
    problems = [str(p) for p in lint_rules(groups, catalogue.metrics)]
    assert any("alert OTelCollectorDown" in p and "$labels.instance" in p for p in problems)


def test_rule_without_static_namespace_or_severity_is_rejected(catalogue):
    groups = copy.deepcopy(render_rule_file(catalogue)["groups"])
    rule = groups[0]["rules"][0]
    del rule["labels"]["namespace"]
    rule["labels"]["severity"] = "critical"
    del rule["annotations"]["runbook_url"]
    problems = "\n".join(str(p) for p in lint_rules(groups, catalogue.metrics))
    assert "no static namespace label" in problems
    assert "severity must be one of ['page', 'warn']" in problems
    assert "annotation runbook_url is missing" in problems


def test_output_labels_of_the_alert_shapes():
    labels_of = KEDA_214.labels_of
    absent_leg = 'absent(up{job="x"}) or up{job="x"} == 0'
    assert output_labels(absent_leg, labels_of) == {"job"}
    assert output_labels(
        "max by (pod, container) (kube_pod_container_status_waiting_reason) > 0", labels_of
    ) == {
        "pod",
        "container",
    }
    quantile = "histogram_quantile(0.9, sum by (le, agent_type) (rate(daedalus_cold_start_seconds_bucket[5m])))"
    assert output_labels(quantile, labels_of) == {"agent_type"}
    assert output_labels('label_replace(up, "a", "$1", "job", "(.*)")', labels_of) >= {"a", "job"}
    assert output_labels("nope_metric > 1", labels_of) is None


def test_interpolation_matches_grafana():
    assert (
        interpolate('x{a="$agent_type"}[$__rate_interval]', {"agent_type": "codex"})
        == 'x{a="codex"}[5m]'
    )
    assert interpolate('x{a=~"$agent_type"}', {"agent_type": ["a", "b"]}) == 'x{a=~"(a|b)"}'
    assert interpolate('"${agent_type:regex}"', {"agent_type": "a.b"}) == '"a\\.b"'
    assert variables_in('label_replace(x, "d", "$1", "s", "(.*)") $foo ${bar:regex} [[baz]]') == {
        "foo",
        "bar",
        "baz",
    }
    with pytest.raises(Exception, match="variable \\$missing is not defined"):
        interpolate("$missing", {})


def test_selectors_know_their_enclosing_functions():
    found = selectors('sum(rate(a_total{x="1"}[5m])) / absent(b)')
    assert [(s.metric, s.enclosing) for s in found] == [("a_total", ("rate",)), ("b", ("absent",))]


@pytest.fixture
def dashboard(catalogue):
    return render_dashboard(catalogue, "copilot")


def lint_texts(dashboard, catalogue):
    return "\n".join(str(p) for p in lint_dashboard(dashboard, catalogue.metrics))


def test_dashboard_lint_catches_structure_and_convention_breaks(dashboard, catalogue):
    assert lint_texts(dashboard, catalogue) == ""
    broken = copy.deepcopy(dashboard)
    panels = broken["panels"]
    panels[1]["id"] = panels[0]["id"]
    panels[2]["gridPos"] = dict(panels[0]["gridPos"])
    panels[3]["targets"][0]["expr"] = panels[3]["targets"][0]["expr"].replace(
        "$__rate_interval", "5m"
    )
    panels[4]["targets"][0]["expr"] += " + on() vector($undefined_var)"
    panels[5]["fieldConfig"]["defaults"]["unit"] = ""
    panels[5]["description"] = ""
    panels[0]["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}
    broken["templating"]["list"][0]["query"] = "$agent_type"
    text = lint_texts(broken, catalogue)
    assert "panel ids are not unique" in text
    assert "overlap" in text
    assert "rate() over a literal [5m]: use $__rate_interval" in text
    assert "uses undefined variable $undefined_var" in text
    assert "no unit" in text and "no description" in text
    assert "is not a template variable" in text
    assert "variable $datasource uses $agent_type before it is defined" in text


def test_dashboard_queries_are_linted_for_every_agent_type(catalogue):
    fleet = render_dashboard(catalogue)
    fleet["panels"][0]["targets"][0]["expr"] = (
        'sum(rate(daedalus_tasks_total{agent=~"$agent_type"}[$__rate_interval]))'
    )
    assert "has no label agent" in lint_texts(fleet, catalogue)
