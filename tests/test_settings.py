import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from obslib.catalogue import build_catalogue
from obslib.emit.dashboards import agent_uid, dashboard_models
from obslib.errors import ConfigError
from obslib.settings import DEFAULTS_PATH, MAX_AGENT_TYPE_LENGTH, MAX_AGENT_TYPES, load_settings


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
            "key 'url' is not valid for receiver type 'pagerduty'. Allowed: secretName, secretKey",
        ),
        ("keda:\n  version: latest\n", "keda.version 'latest' must look like 2.14"),
        ("keda:\n  version: '2.8'\n", "older than the oldest supported 2.10"),
        ("keda:\n  honorLabels: 'no'\n", "'keda.honorLabels' must be true or false"),
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


def write_bytes(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "values.yaml"
    path.write_bytes(data)
    return path


def refused(path: Path) -> str:
    """The message of the ConfigError loading ``path`` raises; it always names the file."""
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    return message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"namespace: caf\xe9\n", "not UTF-8 text (byte 0xe9 on line 1)"),
        (b"namespace: x\nkeda:\n  natsStream: \xff\n", "not UTF-8 text (byte 0xff on line 3)"),
        ("namespace: x\n".encode("utf-16"), "is UTF-16 (or UTF-32) text"),
        ("namespace: x\n".encode("utf-16-le"), "holds NUL bytes"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", "not UTF-8 text (byte 0x8b on line 1)"),
        (b"\x00\x01\x02\x03", "holds NUL bytes"),
    ],
    ids=["latin-1", "bad-byte-line-3", "utf-16-bom", "utf-16-no-bom", "gzip", "binary"],
)
def test_a_file_that_is_not_utf8_text_is_a_config_error(tmp_path, data, expected):
    message = refused(write_bytes(tmp_path, data))
    assert expected in message
    assert "must be UTF-8" in message


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    assert load_settings(write_bytes(tmp_path, b"\xef\xbb\xbfnamespace: agents\n")).namespace == (
        "agents"
    )


ALL_KEYS = (
    "agentTypes, alerting, grafana, keda, kubePrometheusStack, logs, namespace, orchestrator, "
    "otelCollector, runbook, workers"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "alerting:\n  receiver:\n    type: [pagerduty, github]\n",
            "'alerting.receiver.type' must be one of null, mattermost, github, pagerduty, "
            "got a list ['pagerduty', 'github']",
        ),
        (
            "alerting:\n  receiver:\n    type: {pagerduty: 1}\n",
            "'alerting.receiver.type' must be one of null, mattermost, github, pagerduty, "
            "got a mapping",
        ),
        ("1: x\n", f"key 1 at the top level is a number, not a name. Allowed here: {ALL_KEYS}."),
        ("keda:\n  true: x\n", "key True under 'keda' is true/false, not a name. Allowed here"),
        (
            "alerting:\n  receiver:\n    type: pagerduty\n    config: {1: x, secretKey: k}\n",
            "alerting.receiver.config key 1 is not valid for receiver type 'pagerduty'. "
            "Allowed: secretName, secretKey",
        ),
        ("agentTypes: [copilot, 7]\n", "agent type 7 does not make a valid task subject"),
        ("a: " + "9" * 5000 + "\n", "a value cannot be read"),
        ("namespace: 2024-13-45\n", "a value cannot be read (month must be in 1..12)"),
        ("[" * 20000 + "]" * 20000 + "\n", "nested too deeply"),
    ],
    ids=[
        "type-list",
        "type-mapping",
        "int-key",
        "bool-key",
        "int-key-in-receiver-config",
        "int-agent-type",
        "huge-int",
        "bad-date",
        "deep",
    ],
)
def test_values_of_the_wrong_shape_are_config_errors_naming_key_and_allowed(
    tmp_path, text, expected
):
    assert expected in refused(write(tmp_path, text))


def test_a_5000_character_agent_type_is_refused_with_the_bound(tmp_path):
    message = refused(write(tmp_path, f"agentTypes: [copilot, {'a' * 5000}]\n"))
    assert f"is 5000 characters long; at most {MAX_AGENT_TYPE_LENGTH} are allowed" in message
    assert len(message) < 400


def nested_aliases(levels: int, fan_out: int = 9) -> str:
    """A value of nested aliases: ``fan_out ** levels`` strings from a few hundred bytes."""
    names = [chr(ord("a") + i) for i in range(levels)]
    parts = [f"&{names[0]} [{', '.join(['lol'] * fan_out)}]"]
    parts += [
        f"&{names[i]} [{', '.join([f'*{names[i - 1]}'] * fan_out)}]" for i in range(1, levels)
    ]
    return "[" + ", ".join(parts) + "]"


@pytest.mark.parametrize(
    "text",
    [
        f"namespace: {nested_aliases(4)}\n",  # 6,561 strings: the old code quoted them all
        f"alerting:\n  receiver:\n    type: pagerduty\n    config: {{secretName: {nested_aliases(4)}}}\n",
        f"namespace: {nested_aliases(9)}\n",  # the probe's bomb: 387 million strings
        "keda: &k\n  natsStream: X\nworkers:\n  <<: *k\n",
        "namespace: &n agents\norchestrator:\n  deployment: *n\n",
    ],
    ids=["small-bomb", "small-bomb-in-receiver-config", "bomb", "merge-key", "plain-alias"],
)
def test_yaml_aliases_are_refused_with_a_short_message(tmp_path, text):
    path = write(tmp_path, text)
    assert path.stat().st_size < 400
    message = refused(path)
    assert "aliases" in message and "not allowed in a values file" in message
    assert len(message) < 400


def test_error_messages_quote_only_an_excerpt_of_a_large_value(tmp_path):
    big = "X" * 100_000
    for text in (
        f"namespace: {big}\n",
        f"namespace: [{', '.join(['item'] * 20_000)}]\n",
        f"keda:\n  version: '{big}'\n",
        f"runbook:\n  baseUrl: {big}\n",
        f"{big}: 1\n",
        f"alerting:\n  receiver:\n    type: {big}\n",
    ):
        message = refused(write(tmp_path, text))
        assert len(message) < 400, message[:200]


def test_an_oversized_values_file_is_refused_before_parsing(tmp_path):
    message = refused(write(tmp_path, "namespace: x\n" + "# padding\n" * 200_000))
    assert "too large for a values file" in message


@pytest.mark.parametrize(
    ("text", "key", "allowed"),
    [
        ("config: {secretName: {a: 1}}", "alerting.receiver.config.secretName", "Secret name"),
        ("config: {secretName: 12}", "alerting.receiver.config.secretName", "Secret name"),
        ("config: {secretName: Bad_Name}", "alerting.receiver.config.secretName", "Secret name"),
        ("config: {secretKey: [a]}", "alerting.receiver.config.secretKey", "key of the Secret"),
        ("config: {secretKey: null}", "alerting.receiver.config.secretKey", "key of the Secret"),
        ("config: [secretName]", "alerting.receiver.config", "a mapping"),
    ],
)
def test_receiver_config_values_are_type_checked(tmp_path, text, key, allowed):
    message = refused(write(tmp_path, f"alerting:\n  receiver:\n    type: pagerduty\n    {text}\n"))
    assert f"'{key}' must be" in message and allowed in message


def test_mattermost_channel_must_be_a_string(tmp_path):
    text = "alerting:\n  receiver:\n    type: mattermost\n    config: {channel: {a: 1}}\n"
    assert "'alerting.receiver.config.channel' must be a channel name" in refused(
        write(tmp_path, text)
    )


def value_keys(node: dict, where: str = "") -> list[str]:
    """Every dotted key of the defaults: sections, and the leaves under them."""
    keys = []
    for key, value in node.items():
        path = f"{where}.{key}" if where else key
        keys.append(path)
        if isinstance(value, dict) and path != "alerting.receiver.config":
            keys += value_keys(value, path)
    return keys


DEFAULTS = yaml.safe_load(DEFAULTS_PATH.read_text())
DEFAULT_KEYS = value_keys(DEFAULTS)


def default_at(path: str):
    node = DEFAULTS
    for part in path.split("."):
        node = node[part]
    return node


def nested(path: str, value: str) -> str:
    """A values text setting dotted ``path`` to the YAML flow ``value``."""
    text = value
    for part in reversed(path.split(".")):
        text = f"{{{part}: {text}}}"
    return text + "\n"


@pytest.mark.parametrize("key", DEFAULT_KEYS)
@pytest.mark.parametrize("value", ["{a: 1}", "[x]", "3", "true", "null"])
def test_every_key_is_type_checked(tmp_path, key, value):
    loaded = yaml.safe_load(value)
    if isinstance(loaded, type(default_at(key))) or (
        key in ("alerting.receiver.type", "alerting.receiver.config") and loaded is None
    ):
        return  # the right type for this key (null: the null receiver, no config)
    message = refused(write(tmp_path, nested(key, value)))
    assert f"'{key}' must be" in message
    assert len(message) < 400


def test_every_default_key_is_covered():
    assert len(DEFAULT_KEYS) == 25  # logs and logs.namespaceLabel among them
    assert {"alerting.receiver.config", "keda.version", "agentTypes"} <= set(DEFAULT_KEYS)


def test_keda_version_must_be_quoted_so_2_10_stays_2_10(tmp_path):
    message = refused(write(tmp_path, "keda:\n  version: 2.10\n"))
    assert "'keda.version' must be a version string in quotes" in message
    assert load_settings(write(tmp_path, "keda:\n  version: '2.10'\n")).keda_version == (2, 10)


def agent_names(count: int, length: int = 6) -> list[str]:
    return [f"t{i:0{length - 1}d}" for i in range(count)]


def test_agent_types_have_an_upper_bound_on_count(tmp_path):
    at_bound = load_settings(
        write(tmp_path, f"agentTypes: [{', '.join(agent_names(MAX_AGENT_TYPES))}]\n")
    )
    assert len(at_bound.agent_types) == MAX_AGENT_TYPES
    for count in (MAX_AGENT_TYPES + 1, 1000):
        message = refused(write(tmp_path, f"agentTypes: [{', '.join(agent_names(count))}]\n"))
        assert f"lists {count} agent types; at most {MAX_AGENT_TYPES} are allowed" in message
        assert len(message) < 400


def test_agent_types_have_an_upper_bound_on_length_that_fits_a_grafana_uid(tmp_path):
    longest = "a" * MAX_AGENT_TYPE_LENGTH
    settings = load_settings(write(tmp_path, f"agentTypes: [{longest}]\n"))
    assert len(agent_uid(longest)) <= 40  # Grafana refuses a longer dashboard uid
    models = dashboard_models(build_catalogue(settings))
    assert {m["uid"] for m in models.values()} >= {agent_uid(longest)}
    message = refused(write(tmp_path, f"agentTypes: [{longest}b]\n"))
    assert f"at most {MAX_AGENT_TYPE_LENGTH} are allowed" in message


def test_the_bounds_are_documented(repo):
    for doc in (repo / "obslib/values.yaml", repo / "README.md"):
        text = " ".join(doc.read_text().split())
        assert f"at most {MAX_AGENT_TYPES} agent types" in text, doc
        assert f"at most {MAX_AGENT_TYPE_LENGTH} characters" in text, doc


def iso(seconds: int) -> str:
    return pd.Timestamp(seconds, unit="s", tz="UTC").isoformat()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["--values", "OBSLIB_VALUES"])
def test_the_values_file_reaches_the_notebook_either_way(history_stack, tmp_path, how):
    """`--values FILE` and `OBSLIB_VALUES=FILE`, relative to the caller, reach the kernel."""
    source, truth = history_stack
    (tmp_path / "values").mkdir()
    (tmp_path / "values" / "two.yaml").write_text("agentTypes: [codex, claude]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSLIB_")}
    env["OBSLIB_PROMETHEUS_URL"] = source.endpoint.url
    command = [sys.executable, "-m", "obslib"]
    if how == "--values":
        command += ["--values", "values/two.yaml"]
    else:
        env["OBSLIB_VALUES"] = "values/two.yaml"
    window = ["-p", "start", iso(truth.end - 6 * 3600), "-p", "end", iso(truth.end)]
    out = tmp_path / "out"
    command += ["report", "fleet_overview", "--no-embedded", "--quiet", "--out", str(out)]
    result = subprocess.run(
        [*command, *window], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((out / "fleet_overview.results.json").read_text())
    assert results["verdict"] == "pass", results.get("error")
    by_agent = [p for p in results["summary"]["panels"].values() if p["latest"]]
    assert by_agent
    seen = {
        legend.split()[0]
        for panel in by_agent
        for legend in panel["latest"]
        if legend != "all agent types"  # the error-rate panel's fleet-wide line
    }
    assert seen == {"codex", "claude"}  # the history has copilot too: the file filtered it out
    assert "<strong>Agent types</strong> codex, claude" in (out / "fleet_overview.html").read_text()
