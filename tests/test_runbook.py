"""The runbook: one complete section per alert, anchors that resolve, real panel references."""

import re

import yaml

from obslib.analysis.crosscheck.runbook import check_runbook
from obslib.emit.runbook import github_anchor


def sections(text):
    parts = re.split(r"^## ", text, flags=re.M)[1:]
    return {part.splitlines()[0].strip(): part for part in parts}


def test_every_runbook_url_resolves_to_a_section_and_back(repo):
    rules = yaml.safe_load((repo / "rules/daedalus-alerts.yaml").read_text())
    text = (repo / "runbooks/runbook.md").read_text()
    found = {github_anchor(heading): body for heading, body in sections(text).items()}
    alerts = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            url = rule["annotations"]["runbook_url"]
            base, anchor = url.split("#")
            assert base.startswith("https://") and anchor
            assert anchor in found, f"{rule['alert']}: no section #{anchor}"
            assert f"`{rule['alert']}`" in found[anchor]
            alerts[anchor] = rule["alert"]
    assert set(found) - set(alerts) == {"switching-the-alert-receiver"}


def test_anchors_are_the_spec_table_anchors(repo):
    rules = yaml.safe_load((repo / "rules/daedalus-alerts.yaml").read_text())
    anchors = {
        r["alert"]: r["annotations"]["runbook_url"].split("#")[1]
        for g in rules["groups"]
        for r in g["rules"]
    }
    assert anchors == {
        "WorkerImagePullBackOff": "worker-image-pull-backoff",
        "WorkerCrashLoopBackOff": "worker-crashloop",
        "NATSConsumerLagUnbounded": "nats-consumer-lag",
        "KEDAScalerError": "keda-scaler-error",
        "OTelCollectorDown": "otel-collector-down",
        "OrchestratorDown": "orchestrator-down",
        "NATSStreamUnhealthy": "nats-stream-unhealthy",
    }


def test_each_section_follows_the_template_and_names_a_real_panel(repo, catalogue):
    report = check_runbook((repo / "runbooks/runbook.md").read_text(), catalogue)
    assert sorted(report["alert"]) == sorted(a.name for a in catalogue.alerts)
    assert report["complete"].all(), report[~report["complete"]][["alert", "missing"]].to_string()
    assert set(report["panel"]) <= {p.title for p in catalogue.panels}
    for alert in catalogue.alerts:
        assert alert.expr in sections((repo / "runbooks/runbook.md").read_text())[alert.anchor]


def test_deviation_from_the_spec_is_recorded_for_keda(repo):
    body = sections((repo / "runbooks/runbook.md").read_text())["keda-scaler-error"]
    assert "**Differs from the spec:**" in body
    assert "keda_scaler_errors_total carries no labels" in body
    assert "exported_namespace" in body and "2.17" in body


def test_receiver_switch_is_documented(repo):
    body = sections((repo / "runbooks/runbook.md").read_text())["switching-the-alert-receiver"]
    assert "alerting:\n  receiver:\n    type: pagerduty" in body
    assert "kubectl -n daedalus create secret generic pagerduty-routing-key" in body
    for rtype in ("mattermost", "github", "pagerduty"):
        assert f"`{rtype}`" in body


def test_github_anchor():
    assert github_anchor("worker-image-pull-backoff") == "worker-image-pull-backoff"
    assert github_anchor("Switching the alert receiver!") == "switching-the-alert-receiver"
