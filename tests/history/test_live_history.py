"""Dashboards and alerts against a real Prometheus over the synthetic history (no Grafana)."""

from __future__ import annotations

import pytest

from obslib.analysis.slo.alert_replay import replay_alert, replay_alerts
from obslib.catalogue.alerts import AlertSpec
from obslib.emit.dashboards import dashboard_models
from obslib.lint import variable_bindings
from obslib.promql import interpolate
from tests.helpers import alerts_missed, alerts_outside_incidents


def test_every_dashboard_query_returns_series_for_each_agent_type(history_stack, catalogue):
    source, truth = history_stack
    start, end = truth.end - 6 * 3600, truth.end
    checked = 0
    for name, dashboard in dashboard_models(catalogue).items():
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                if "expr" not in target:
                    continue  # the Tempo panel is TraceQL, not Prometheus
                for binding in variable_bindings(dashboard):
                    query = interpolate(target["expr"], binding)
                    frame = source.query_range(query, start, end, 300)
                    assert frame["series"].nunique() >= 1, (
                        f"{name} / {panel['title']} / {binding}: {query}"
                    )
                    checked += 1
    assert checked >= 6 * 4 * 2  # six Prometheus panels, four dashboards, several bindings each


@pytest.fixture(scope="module")
def episodes(history_stack, catalogue):
    source, truth = history_stack
    return replay_alerts(source, catalogue.alerts, truth.start, truth.end)


def test_every_alert_fires_during_its_incident(episodes, history_stack, catalogue):
    _, truth = history_stack
    assert alerts_missed(episodes, truth, catalogue) == []


def test_no_alert_fires_outside_its_incidents(episodes, history_stack):
    _, truth = history_stack
    assert alerts_outside_incidents(episodes, truth) == []


def test_the_spec_keda_rule_would_never_fire(history_stack, catalogue):
    """The spec's KEDA expression matches a label-less counter on `namespace`: silent even in its incident."""
    source, truth = history_stack
    ours = catalogue.alert("KEDAScalerError")
    spec = AlertSpec(**{**ours.__dict__, "expr": ours.spec_expr})
    assert replay_alert(source, spec, truth.start, truth.end).empty
    assert replay_alert(source, ours, truth.start, truth.end)["fired"].any()


def test_replay_honours_for(history_stack, catalogue):
    """With `for` longer than the incident, the orchestrator outage would only ever be pending."""
    source, truth = history_stack
    ours = catalogue.alert("OrchestratorDown")
    slow = AlertSpec(**{**ours.__dict__, "for_": "1h"})
    episodes = replay_alert(source, slow, truth.start, truth.end)
    assert len(episodes) >= 1 and not episodes["fired"].any()
    assert episodes["firing_at"].isna().all()
