"""Render the alerting rules: a plain Prometheus rule file and a PrometheusRule resource."""

from __future__ import annotations

from typing import Any

from obslib.catalogue import Catalogue

RULE_NAME = "daedalus-alerts"


def render_rule_groups(c: Catalogue) -> list[dict[str, Any]]:
    """Rule groups in the Prometheus rule-file shape, one group per component family."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for alert in c.alerts:
        rule: dict[str, Any] = {"alert": alert.name, "expr": alert.expr}
        if alert.for_:
            rule["for"] = alert.for_
        rule["labels"] = {
            "severity": alert.severity,
            # Static: the AlertmanagerConfig sub-route matches on namespace, and absent() legs
            # and exporters in other namespaces would otherwise miss it (spec CC2-1, CC2 follow-up).
            "namespace": c.settings.namespace,
            "daedalus_component": alert.component,
        }
        rule["annotations"] = {
            "summary": alert.summary,
            "description": alert.description,
            "runbook_url": c.runbook_url(alert),
        }
        groups.setdefault(alert.group, []).append(rule)
    return [{"name": name, "rules": rules} for name, rules in groups.items()]


def render_rule_file(c: Catalogue) -> dict[str, Any]:
    """The ``groups:`` document promtool and a plain Prometheus read."""
    return {"groups": render_rule_groups(c)}


def render_prometheus_rule(c: Catalogue) -> dict[str, Any]:
    """The PrometheusRule kube-prometheus-stack's Prometheus selects (label ``release``)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": RULE_NAME,
            "namespace": c.settings.namespace,
            "labels": {
                "release": c.settings.kps_release,
                "app.kubernetes.io/part-of": "daedalus",
                "app.kubernetes.io/component": "observability",
            },
        },
        "spec": render_rule_file(c),
    }
