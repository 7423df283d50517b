from pathlib import Path

import pytest

from obslib.errors import ConfigError
from obslib.settings import load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(text)
    return path


def test_defaults_are_the_documented_release(monkeypatch):
    monkeypatch.delenv("OBSLIB_VALUES", raising=False)
    s = load_settings()
    assert s.namespace == "daedalus"
    assert s.agent_types == ("copilot", "claude", "codex")
    assert s.nats_stream == "AGENT_TASKS"
    assert s.worker_prefix == "daedalus-worker-"
    assert s.orchestrator_deployment == "daedalus-orchestrator"
    assert s.otel_collector_job == "otel-collector"
    assert s.keda_version == (2, 14)
    assert s.kps_release == "kube-prometheus-stack"
    assert s.receiver.type == "null"
    assert s.keda_namespace_label == "exported_namespace"
    assert s.task_subject("claude") == "agent.tasks.claude"


def test_override_file_changes_only_its_keys(tmp_path):
    s = load_settings(write(tmp_path, "namespace: agents\nkeda:\n  version: '2.17'\n"))
    assert s.namespace == "agents"
    assert s.keda_version == (2, 17)
    assert s.nats_stream == "AGENT_TASKS"  # untouched default
    assert s.source == str(tmp_path / "values.yaml")


def test_values_file_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OBSLIB_VALUES", str(write(tmp_path, "agentTypes: [gemini]\n")))
    assert load_settings().agent_types == ("gemini",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("namespaces: x\n", "unknown key 'namespaces'"),
        (
            "keda:\n  stream: X\n",
            "unknown key 'keda.stream'. Allowed here: honorLabels, natsStream, version",
        ),
        (
            "agentTypes: [copilot, Claude]\n",
            "agent type 'Claude' does not make a valid task subject",
        ),
        ("agentTypes: [copilot, 'claude code']\n", "'agent.tasks.claude code'"),
        ("agentTypes: [copilot, copilot]\n", "agent type 'copilot' is listed twice"),
        ("agentTypes: [-x]\n", "agent type '-x'"),
        ("agentTypes: []\n", "must be a non-empty list"),
        (
            "alerting:\n  receiver:\n    type: slack\n",
            "'slack' is not one of null, mattermost, github, pagerduty",
        ),
        (
            "alerting:\n  receiver:\n    type: pagerduty\n    config: {url: x}\n",
            "key(s) url are not valid for receiver type 'pagerduty'. Allowed: secretName, secretKey",
        ),
        ("keda:\n  version: latest\n", "keda.version 'latest' must look like 2.14"),
        ("keda:\n  version: '2.8'\n", "older than the oldest supported 2.10"),
        ("keda:\n  honorLabels: 'no'\n", "keda.honorLabels must be true or false"),
        ("namespace: Daedalus_NS\n", "'namespace' value 'Daedalus_NS' is not valid"),
        ("runbook:\n  baseUrl: docs/runbook.md\n", "'runbook.baseUrl' must be an http(s) URL"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("namespace: [unclosed\n", "not valid YAML"),
    ],
)
def test_invalid_values_fail_loudly_naming_file_and_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert expected in str(err.value)
    assert str(path) in str(err.value)


def test_hyphenated_agent_types_are_valid_subjects(tmp_path):
    s = load_settings(write(tmp_path, "agentTypes: [claude-code, gpt5]\n"))
    assert s.agent_types == ("claude-code", "gpt5")


def test_missing_values_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the values file"):
        load_settings(tmp_path / "nope.yaml")


@pytest.mark.parametrize("rtype", ["mattermost", "github", "pagerduty"])
def test_receiver_switch_is_three_lines(tmp_path, rtype):
    s = load_settings(write(tmp_path, f"alerting:\n  receiver:\n    type: {rtype}\n"))
    assert s.receiver.type == rtype
    assert s.receiver.config["secretName"]  # a documented default secret, no endpoint in values
