"""The emitted dashboards: importable JSON with the spec's panels and Grafana's conventions."""

import json

import pytest
import yaml

from obslib.catalogue.panels import SLO_MARKER, legend_text
from obslib.emit.dashboards import FLEET_UID, agent_uid

SPEC_PANELS = [
    "Cold-start latency",
    "Queue depth",
    "Active workers",
    "Task throughput",
    "Task-to-artifact latency",
    "Error rate",
    "Top 10 slowest tasks (last hour)",
]
SLO_PANELS = {"Cold-start latency", "Task-to-artifact latency", "Error rate"}


def load(repo, name):
    return json.loads((repo / "dashboards" / name).read_text())


def all_dashboards(repo, catalogue):
    names = [f"{FLEET_UID}.json"] + [f"{agent_uid(a)}.json" for a in catalogue.settings.agent_types]
    return {name: load(repo, name) for name in names}


def test_one_dashboard_per_agent_type_and_a_fleet_overview(repo, catalogue):
    files = sorted(p.name for p in (repo / "dashboards").glob("*.json"))
    expected = sorted(
        [f"{FLEET_UID}.json"] + [f"daedalus-agent-{a}.json" for a in ("copilot", "claude", "codex")]
    )
    assert files == expected


def test_every_dashboard_has_the_spec_panels(repo, catalogue):
    for name, dash in all_dashboards(repo, catalogue).items():
        assert sorted(p["title"] for p in dash["panels"]) == sorted(SPEC_PANELS), name


def test_grafana_import_rules(repo, catalogue):
    for name, dash in all_dashboards(repo, catalogue).items():
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), name
        assert dash["uid"] == name.removesuffix(".json") and len(dash["uid"]) <= 40
        cells = set()
        for panel in dash["panels"]:
            g = panel["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24
            mine = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not cells & mine, f"{name}: {panel['title']} overlaps"
            cells |= mine
        names = [v["name"] for v in dash["templating"]["list"]]
        assert names == ["datasource", "tempo_datasource", "agent_type"]  # defined before use


def test_conventions_datasource_variables_units_descriptions_rate_interval(repo, catalogue):
    for dash in all_dashboards(repo, catalogue).values():
        for panel in dash["panels"]:
            assert panel["datasource"]["uid"] in ("${datasource}", "${tempo_datasource}")
            assert panel["fieldConfig"]["defaults"]["unit"]
            assert panel["description"]
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"]
                if "expr" in target and ("rate(" in target["expr"]):
                    assert "[$__rate_interval]" in target["expr"]
                    assert "[5m]" not in target["expr"]


def test_slo_marker_only_on_panels_that_gain_a_pass2_threshold(repo, catalogue):
    for dash in all_dashboards(repo, catalogue).values():
        marked = {p["title"] for p in dash["panels"] if SLO_MARKER in p["description"]}
        assert marked == SLO_PANELS
    assert SLO_MARKER == "SLO panels: baseline collection in progress"


def test_per_agent_dashboard_is_parameterised_by_its_agent_type(repo, catalogue):
    for agent in catalogue.settings.agent_types:
        dash = load(repo, f"{agent_uid(agent)}.json")
        var = dash["templating"]["list"][2]
        assert var["name"] == "agent_type" and var["current"]["value"] == agent and not var["multi"]
        for panel in dash["panels"]:
            for target in panel["targets"]:
                text = target.get("expr") or target.get("query")
                assert "$agent_type" in text, panel["title"]
                assert agent not in text.replace("agent_type", "")  # no hard-coded agent type


def test_fleet_overview_breaks_down_by_agent_type(repo, catalogue):
    dash = load(repo, f"{FLEET_UID}.json")
    var = dash["templating"]["list"][2]
    assert var["multi"] and var["current"]["value"] == list(catalogue.settings.agent_types)
    for panel in dash["panels"]:
        if panel["type"] == "timeseries":
            legends = [t["legendFormat"] for t in panel["targets"]]
            assert any("{{agent_type}}" in legend for legend in legends), panel["title"]


def test_queue_depth_reads_the_real_surveyor_metric_on_the_real_stream(repo, catalogue):
    for dash in all_dashboards(repo, catalogue).values():
        panel = next(p for p in dash["panels"] if p["title"] == "Queue depth")
        expr = panel["targets"][0]["expr"]
        assert "nats_consumer_num_pending{" in expr and 'stream="AGENT_TASKS"' in expr
        assert "nats_jetstream" not in expr and "agent_$agent_type" not in expr


def test_slowest_tasks_links_to_tempo_with_traceql(repo, catalogue):
    for dash in all_dashboards(repo, catalogue).values():
        panel = next(p for p in dash["panels"] if p["title"].startswith("Top 10 slowest"))
        assert panel["datasource"]["type"] == "tempo"
        target = panel["targets"][0]
        assert target["queryType"] == "traceql" and target["query"].startswith(
            "{ nestedSetParent < 0"
        )
        assert [t["id"] for t in panel["transformations"]] == ["sortBy", "limit"]
        assert panel["timeFrom"] == "1h"
        assert (
            panel["links"][0]["url"].startswith("/explore?")
            and "traceql" in panel["links"][0]["url"]
        )


def test_sidecar_configmaps_carry_each_dashboard(repo, catalogue):
    docs = [d for d in yaml.safe_load_all((repo / "dashboards/configmaps.yaml").read_text()) if d]
    dashboards = all_dashboards(repo, catalogue)
    assert len(docs) == len(dashboards)
    for doc in docs:
        assert doc["kind"] == "ConfigMap"
        assert doc["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert doc["metadata"]["namespace"] == "daedalus"
        ((name, body),) = doc["data"].items()
        assert json.loads(body) == dashboards[name]


@pytest.mark.parametrize("name", ["daedalus-fleet-overview.json", "daedalus-agent-claude.json"])
def test_dashboard_json_is_stable_text(repo, name):
    text = (repo / "dashboards" / name).read_text()
    assert text.endswith("\n") and json.loads(text)["schemaVersion"] >= 36


@pytest.mark.parametrize(
    ("template", "labels", "expected"),
    [
        ("{{agent_type}} p99", {"agent_type": "claude"}, "claude p99"),
        (
            "{{ agent_type }}/{{status}}",
            {"agent_type": "codex", "status": "failure"},
            "codex/failure",
        ),
        ("{{agent_type}} p99", {}, "p99"),  # a label the series lacks is left empty
        ("{{agent_type}}", {"job": "x"}, ""),
        ("all agent types", {"agent_type": "claude"}, "all agent types"),
    ],
)
def test_legend_text_fills_a_legend_format_as_grafana_does(template, labels, expected):
    assert legend_text(template, labels) == expected
