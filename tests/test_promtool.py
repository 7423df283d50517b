"""The emitted rules proven by the real promtool: syntax, and unit tests that fire and stay silent."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from obslib.catalogue import build_catalogue
from obslib.catalogue.alerts import keda_scaler_errors_metric
from obslib.emit.rules import render_prometheus_rule, render_rule_file
from obslib.files import to_yaml
from obslib.settings import load_settings

RULE_TESTS = sorted((Path(__file__).parent / "rules").glob("*-test.yaml"))


def promtool_run(promtool, *args, cwd=None):
    return subprocess.run([promtool, *args], capture_output=True, text=True, cwd=cwd, check=False)


def test_promtool_checks_the_plain_rule_file(repo, promtool):
    result = promtool_run(promtool, "check", "rules", str(repo / "rules/daedalus-alerts.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_prometheusrule_carries_the_same_groups_and_the_release_label(repo, promtool, tmp_path):
    resource = yaml.safe_load((repo / "rules/prometheusrule.yaml").read_text())
    assert (
        resource["kind"] == "PrometheusRule"
        and resource["apiVersion"] == "monitoring.coreos.com/v1"
    )
    assert resource["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    plain = yaml.safe_load((repo / "rules/daedalus-alerts.yaml").read_text())
    assert resource["spec"] == plain
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(resource["spec"]))
    result = promtool_run(promtool, "check", "rules", str(spec_file))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests(promtool, test_file):
    result = promtool_run(promtool, "test", "rules", test_file.name, cwd=test_file.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_firing_and_silent_cases(catalogue):
    firing, silent = set(), set()
    for test_file in RULE_TESTS:
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {a.name for a in catalogue.alerts}
    assert firing == names
    assert silent == names


def test_unit_tests_cover_the_alerts_of_the_committed_rule_file(repo):
    for test_file in RULE_TESTS:
        rule_files = yaml.safe_load(test_file.read_text())["rule_files"]
        assert [(test_file.parent / f).resolve() for f in rule_files] == [
            (repo / "rules/daedalus-alerts.yaml").resolve()
        ]


# Label values for KEDA series, as the KEDA chart's ServiceMonitor stores them.
KEDA_VALUES = {
    "namespace": "keda",
    "metric": "s0-nats-jetstream-AGENT_TASKS",
    "scaledObject": "daedalus-worker-copilot",
    "scaler": "natsJetStreamScaler",
    "scalerIndex": "0",
    "triggerIndex": "0",
    "type": "scaledjob",
    "job": "keda-operator",
    "instance": "10.244.0.9:8080",
    "pod": "keda-operator-7c9f8d6b5-zx8cv",
    "service": "keda-operator",
    "endpoint": "metricsservice",
    "container": "keda-operator",
}


def keda_series(catalogue, object_namespace):
    metric = keda_scaler_errors_metric(catalogue.settings.keda_version)
    (definition,) = catalogue.metrics.lookup(metric)
    labels = {}
    for name in sorted(definition.labels):
        labels[name] = (
            object_namespace
            if name == catalogue.settings.keda_namespace_label
            else KEDA_VALUES[name]
        )
    text = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return metric, labels, f"{metric}{{{text}}}"


@pytest.mark.parametrize(
    ("version", "honor"),
    [
        ("2.10", False),
        ("2.13", False),
        ("2.14", False),
        ("2.16", False),
        ("2.17", False),
        ("2.20", False),
        ("2.14", True),
    ],
)
def test_keda_rule_fires_for_this_release_under_each_version(tmp_path, promtool, version, honor):
    values = tmp_path / "values.yaml"
    values.write_text(f"keda:\n  version: '{version}'\n  honorLabels: {str(honor).lower()}\n")
    catalogue = build_catalogue(load_settings(values))
    (tmp_path / "rules.yaml").write_text(to_yaml(render_rule_file(catalogue)))
    _, labels, ours = keda_series(catalogue, "daedalus")
    _, _, theirs = keda_series(catalogue, "team-b")
    expected = {k: v for k, v in labels.items() if k != "namespace"} | {
        "severity": "page",
        "namespace": "daedalus",
        "daedalus_component": "keda",
    }
    alert = catalogue.alert("KEDAScalerError")
    description = re.sub(
        r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], alert.description
    )
    annotations = {
        "summary": alert.summary,
        "description": description,
        "runbook_url": catalogue.runbook_url(alert),
    }
    unit = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": ours, "values": "0x3 1+2x12"}],
                "alert_rule_test": [
                    {"eval_time": "2m", "alertname": "KEDAScalerError", "exp_alerts": []},
                    {
                        "eval_time": "8m",
                        "alertname": "KEDAScalerError",
                        "exp_alerts": [{"exp_labels": expected, "exp_annotations": annotations}],
                    },
                ],
            },
            {
                "interval": "1m",
                "input_series": [{"series": theirs, "values": "0+3x20"}],
                "alert_rule_test": [
                    {"eval_time": "10m", "alertname": "KEDAScalerError", "exp_alerts": []}
                ],
            },
        ],
    }
    (tmp_path / "keda-test.yaml").write_text(yaml.safe_dump(unit, sort_keys=False))
    result = promtool_run(promtool, "test", "rules", "keda-test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheusrule_render_matches_committed(repo, catalogue):
    assert yaml.safe_load(
        (repo / "rules/prometheusrule.yaml").read_text()
    ) == render_prometheus_rule(catalogue)
