"""Render Grafana dashboards (hand-built JSON models) and their sidecar ConfigMaps.

Why hand-built JSON and not ``grafana-foundation-sdk``: see the README ("Dashboards"). In short,
seven panels in two scopes are a few dozen lines of plain dicts that read like the JSON Grafana
shows, while the SDK ties the build to one Grafana minor's schema and adds a dependency whose
version carries an epoch that must be pinned and bumped with the cluster's Grafana.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from obslib.catalogue import Catalogue
from obslib.catalogue.panels import SLOWEST_SEARCH_LIMIT, PanelSpec, Target

SCHEMA_VERSION = 39
PROMETHEUS_DS = {"type": "prometheus", "uid": "${datasource}"}
TEMPO_DS = {"type": "tempo", "uid": "${tempo_datasource}"}
FLEET_UID = "daedalus-fleet-overview"
TAG = "daedalus"


def agent_uid(agent_type: str) -> str:
    """Dashboard uid (and file stem) of one agent type's dashboard."""
    return f"daedalus-agent-{agent_type}"


def _datasource_variable(name: str, label: str, plugin: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "datasource",
        "query": plugin,
        "hide": 0,
        "current": {},
        "options": [],
        "refresh": 1,
        "regex": "",
    }


def _agent_variable(values: list[str], fleet: bool) -> dict[str, Any]:
    options = [{"text": v, "value": v, "selected": True} for v in values]
    variable: dict[str, Any] = {
        "name": "agent_type",
        "label": "Agent type",
        "type": "custom",
        "query": ",".join(values),
        "options": options,
        "current": {
            "text": values if fleet else values[0],
            "value": values if fleet else values[0],
        },
        "multi": fleet,
        "includeAll": False,
        # A per-agent-type dashboard pins its value; switch types through the dashboard links.
        "hide": 0 if fleet else 2,
    }
    return variable


def _tempo_target(query: str) -> dict[str, Any]:
    return {
        "refId": "A",
        "datasource": TEMPO_DS,
        "queryType": "traceql",
        "query": query,
        "limit": SLOWEST_SEARCH_LIMIT,
        "tableType": "traces",
    }


def _explore_url(query: str) -> str:
    pane = {
        "datasource": TEMPO_DS["uid"],
        "queries": [_tempo_target(query)],
        "range": {"from": "now-1h", "to": "now"},
    }
    panes = quote(json.dumps({"slowest": pane}, separators=(",", ":")), safe="${}:,")
    return f"/explore?schemaVersion=1&panes={panes}"


def _timeseries(panel: PanelSpec, targets: tuple[Target, ...]) -> dict[str, Any]:
    return {
        "type": "timeseries",
        "datasource": PROMETHEUS_DS,
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": PROMETHEUS_DS,
                "expr": t.expr,
                "legendFormat": t.legend,
                "range": True,
            }
            for i, t in enumerate(targets)
        ],
        "fieldConfig": {"defaults": {"unit": panel.unit, "min": 0}, "overrides": []},
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "calcs": ["mean", "max", "lastNotNull"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def _traces_table(panel: PanelSpec, targets: tuple[Target, ...]) -> dict[str, Any]:
    query = targets[0].expr
    return {
        "type": "table",
        "datasource": TEMPO_DS,
        "timeFrom": "1h",
        "targets": [_tempo_target(query)],
        "transformations": [
            {
                "id": "sortBy",
                "options": {"fields": {}, "sort": [{"field": "Duration", "desc": True}]},
            },
            {"id": "limit", "options": {"limitField": 10}},
        ],
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "links": [
            {
                "title": "Open this TraceQL query in Explore",
                "url": _explore_url(query),
                "targetBlank": True,
            }
        ],
        "options": {"showHeader": True, "sortBy": [{"displayName": "Duration", "desc": True}]},
    }


def render_panel(panel: PanelSpec, panel_id: int, scope: str) -> dict[str, Any]:
    """One Grafana panel model for ``scope`` ``agent`` or ``fleet``."""
    targets = panel.agent if scope == "agent" else panel.fleet
    body = _traces_table(panel, targets) if panel.kind == "traces" else _timeseries(panel, targets)
    x, y, w, h = panel.grid
    return {
        "id": panel_id,
        "title": panel.title,
        "description": panel.full_description,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        **body,
    }


def render_dashboard(c: Catalogue, agent_type: str | None = None) -> dict[str, Any]:
    """The fleet overview (``agent_type=None``) or one agent type's dashboard."""
    fleet = agent_type is None
    scope = "fleet" if fleet else "agent"
    agent_values = list(c.settings.agent_types) if fleet else [agent_type]
    return {
        "uid": FLEET_UID if fleet else agent_uid(agent_type),  # type: ignore[arg-type]
        "title": "Daedalus fleet overview" if fleet else f"Daedalus agent: {agent_type}",
        "description": (
            "Every agent type side by side, broken down by agent_type."
            if fleet
            else f"One agent type ({agent_type}); the panels of the fleet overview for it alone."
        ),
        "tags": [TAG, "daedalus-fleet" if fleet else "daedalus-agent"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "links": [
            {
                "title": "Daedalus dashboards",
                "type": "dashboards",
                "tags": [TAG],
                "asDropdown": True,
                "keepTime": True,
                "includeVars": False,
            }
        ],
        "annotations": {"list": []},
        "templating": {
            "list": [
                _datasource_variable("datasource", "Prometheus", "prometheus"),
                _datasource_variable("tempo_datasource", "Tempo", "tempo"),
                _agent_variable(agent_values, fleet),  # type: ignore[arg-type]
            ]
        },
        "panels": [render_panel(p, i + 1, scope) for i, p in enumerate(c.panels)],
    }


def dashboard_models(c: Catalogue) -> dict[str, dict[str, Any]]:
    """Every dashboard by file name: the fleet overview, then one per agent type."""
    models = {f"{FLEET_UID}.json": render_dashboard(c)}
    for agent_type in c.settings.agent_types:
        models[f"{agent_uid(agent_type)}.json"] = render_dashboard(c, agent_type)
    return models


def render_configmaps(c: Catalogue, models: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """ConfigMaps kube-prometheus-stack's Grafana sidecar loads (label ``grafana_dashboard: "1"``)."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"{model['uid']}-dashboard",
                "namespace": c.settings.namespace,
                "labels": {
                    "grafana_dashboard": "1",
                    "app.kubernetes.io/part-of": "daedalus",
                    "app.kubernetes.io/component": "observability",
                },
                # Only honoured when the sidecar sets folderAnnotation: grafana_folder and
                # provider.foldersFromFilesStructure: true (see README).
                "annotations": {"grafana_folder": c.settings.grafana_folder},
            },
            "data": {name: json.dumps(model, indent=2, ensure_ascii=False)},
        }
        for name, model in models.items()
    ]
