"""Render the AlertmanagerConfig that routes every Daedalus alert to one receiver.

The Prometheus Operator turns it into a first-level route of Alertmanager's root route, with an
injected ``namespace="<AMC namespace>"`` matcher (strategy OnNamespace), which is why every alert
carries a static ``namespace`` label. Only receiver types the AMC CRD has are used: Mattermost
through ``slackConfigs`` (Mattermost incoming webhooks accept Slack-format payloads), GitHub
through ``webhookConfigs`` to a relay that opens issues, PagerDuty through ``pagerdutyConfigs``.
Every endpoint and key is a reference to a Secret in the release namespace.
"""

from __future__ import annotations

from typing import Any

from obslib.catalogue import Catalogue

AMC_NAME = "daedalus-alerts"
_TITLE = "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.namespace }})"
_TEXT = "{{ range .Alerts }}{{ .Annotations.description }}\nRunbook: {{ .Annotations.runbook_url }}\n{{ end }}"


def _receiver(c: Catalogue) -> dict[str, Any]:
    r = c.settings.receiver
    secret = {"name": r.config.get("secretName", ""), "key": r.config.get("secretKey", "")}
    if r.type == "mattermost":
        slack: dict[str, Any] = {
            "apiURL": secret,
            "sendResolved": True,
            "title": _TITLE,
            "text": _TEXT,
        }
        if r.config.get("channel"):
            slack["channel"] = r.config["channel"]
        return {"name": "mattermost", "slackConfigs": [slack]}
    if r.type == "github":
        return {"name": "github", "webhookConfigs": [{"urlSecret": secret, "sendResolved": True}]}
    if r.type == "pagerduty":
        return {
            "name": "pagerduty",
            "pagerdutyConfigs": [
                {
                    "routingKey": secret,
                    "sendResolved": True,
                    "description": _TITLE,
                    "severity": '{{ if eq .CommonLabels.severity "page" }}critical{{ else }}warning{{ end }}',
                }
            ],
        }
    return {"name": "null"}  # a receiver with no integration: alerts are kept, nobody is notified


def render_alertmanager_config(c: Catalogue) -> dict[str, Any]:
    """The AlertmanagerConfig resource for the configured receiver."""
    receiver = _receiver(c)
    return {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "AlertmanagerConfig",
        "metadata": {
            "name": AMC_NAME,
            "namespace": c.settings.namespace,
            "labels": {
                "app.kubernetes.io/part-of": "daedalus",
                "app.kubernetes.io/component": "observability",
            },
        },
        "spec": {
            "route": {
                "receiver": receiver["name"],
                # Only the workbench's alerts: they all carry daedalus_component.
                "matchers": [{"name": "daedalus_component", "matchType": "=~", "value": ".+"}],
                "groupBy": ["alertname", "daedalus_component"],
                "groupWait": "30s",
                "groupInterval": "5m",
                "repeatInterval": "4h",
            },
            "receivers": [receiver],
        },
    }
