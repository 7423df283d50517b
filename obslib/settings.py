"""Release settings: one frozen object loaded from the values file.

Defaults live in ``obslib/values.yaml`` (documented there). A user file with the same shape
overrides any subset of keys; unknown keys, values of the wrong type and invalid values fail
loudly with a ``ConfigError`` that names the file, the key and what is allowed, quoting at most a
short excerpt of the value.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obslib.errors import ConfigError
from obslib.values_file import cut, excerpt, kind, read_values_file

DEFAULTS_PATH = Path(__file__).with_name("values.yaml")
VALUES_ENV = "OBSLIB_VALUES"

# The platform's task-subject rule (internal/queue): a subject must match this pattern.
TASK_SUBJECT_PREFIX = "agent.tasks."
TASK_SUBJECT_RE = re.compile(rf"^{re.escape(TASK_SUBJECT_PREFIX)}[a-z]([a-z0-9](-[a-z0-9]+)*)*$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_STREAM_RE = re.compile(r"^[^\s.*>/\\]+$")
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)(?:\.\d+)?$")
_LABEL_VALUE_RE = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.]*$")
_LABEL_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Receiver types an AlertmanagerConfig can express, with their per-type defaults. Mattermost
# and GitHub have no receiver of their own in the AMC CRD: Mattermost takes Slack-format
# incoming-webhook payloads (slackConfigs), GitHub needs a webhook relay (webhookConfigs).
RECEIVER_DEFAULTS: dict[str, dict[str, str]] = {
    "null": {},
    "mattermost": {"secretName": "mattermost-webhook-url", "secretKey": "url", "channel": ""},
    "github": {"secretName": "github-receiver-url", "secretKey": "url"},
    "pagerduty": {"secretName": "pagerduty-routing-key", "secretKey": "routing-key"},
}
MIN_KEDA_VERSION = (2, 10)
RECEIVER_CONFIG = "alerting.receiver.config"
# What each receiver config key holds: a Kubernetes Secret name (a DNS subdomain), a key in
# that Secret's data, a Mattermost channel name.
RECEIVER_CONFIG_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "secretName": (
        re.compile(
            r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
        ),
        "a Kubernetes Secret name (lowercase letters, digits, '-' and '.', at most 253)",
    ),
    "secretKey": (
        re.compile(r"^[-._a-zA-Z0-9]{1,253}$"),
        "a key of the Secret's data (letters, digits, '-', '_' and '.', at most 253)",
    ),
    "channel": (re.compile(r"^[^\x00-\x1f]{0,64}$"), "a channel name (at most 64 characters)"),
}

# Bounds on the agent types. Each type gets its own dashboard, ConfigMap entry and a series per
# metric on every fleet panel: agent_type must stay a small, known set (the spec's open question
# on its cardinality). The length bound keeps the dashboard uid `daedalus-agent-<type>` within
# Grafana's 40 characters.
MAX_AGENT_TYPES = 32
MAX_AGENT_TYPE_LENGTH = 25

# What a leaf key allows, where "a string" or "a list" alone would not say enough.
TYPE_HINTS = {
    "agentTypes": f"a list of at most {MAX_AGENT_TYPES} agent type names",
    "keda.version": "a version string in quotes, such as '2.14' (unquoted, 2.10 reads as 2.1)",
    "keda.honorLabels": "true or false",
    "alerting.receiver.type": f"one of {', '.join(RECEIVER_DEFAULTS)}",
}


@dataclass(frozen=True)
class Receiver:
    """The Alertmanager receiver every alert routes to."""

    type: str
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    """Release settings, validated. Build with :func:`load_settings`."""

    namespace: str
    agent_types: tuple[str, ...]
    worker_prefix: str
    orchestrator_deployment: str
    otel_collector_job: str
    nats_stream: str
    keda_version: tuple[int, int]
    keda_honor_labels: bool
    kps_release: str
    grafana_folder: str
    runbook_base_url: str
    ticket_url: str
    receiver: Receiver
    source: str = "defaults"
    log_namespace_label: str = "namespace"  # Loki label naming the namespace (logs.namespaceLabel)

    @property
    def worker_pod_regex(self) -> str:
        """Regex matching every worker pod or Job name of the release."""
        return f"{self.worker_prefix}.*"

    def worker_job_regex(self, agent_type: str) -> str:
        """Regex matching the worker Jobs of one agent type (``<prefix><type>-<suffix>``)."""
        return f"{self.worker_prefix}{agent_type}-[^-]+"

    @property
    def keda_namespace_label(self) -> str:
        """Label that carries a ScaledObject's namespace on KEDA series, as scraped."""
        return "namespace" if self.keda_honor_labels else "exported_namespace"

    @property
    def keda_version_text(self) -> str:
        """KEDA version as written in values, e.g. ``2.14``."""
        return f"{self.keda_version[0]}.{self.keda_version[1]}"

    def task_subject(self, agent_type: str) -> str:
        """NATS subject tasks for ``agent_type`` are published on."""
        return f"{TASK_SUBJECT_PREFIX}{agent_type}"


def _allowed(keys: Any) -> str:
    return ", ".join(sorted(keys)) or "(none)"


def _check_key(key: Any, where: str, allowed: Any, origin: str) -> str:
    """The dotted path of ``key`` under ``where``; refuse a key that is not an allowed name."""
    place = f"under '{where}'" if where else "at the top level"
    if not isinstance(key, str):
        raise ConfigError(
            f"{origin}: key {excerpt(key)} {place} is {kind(key)}, not a name. "
            f"Allowed here: {_allowed(allowed)}."
        )
    path = f"{where}.{key}" if where else key
    if key not in allowed:
        raise ConfigError(
            f"{origin}: unknown key '{cut(path, 80)}'. Allowed here: {_allowed(allowed)}."
        )
    return path


def _wrong_type(origin: str, path: str, allowed: str, value: Any) -> ConfigError:
    return ConfigError(f"{origin}: '{path}' must be {allowed}, got {kind(value)} {excerpt(value)}.")


def _check_type(path: str, value: Any, default: Any, origin: str) -> None:
    """Refuse a leaf value whose YAML type differs from the documented default's."""
    if path == "alerting.receiver.type":
        ok = value is None or isinstance(value, str)  # `type: null` is the null receiver too
    elif isinstance(default, bool):
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, type(default)) and not isinstance(value, bool)
    if not ok:
        allowed = TYPE_HINTS.get(path) or ("a string" if isinstance(default, str) else "a list")
        raise _wrong_type(origin, path, allowed, value)


def _merge(base: dict[str, Any], override: dict[str, Any], where: str, origin: str) -> None:
    """Merge ``override`` into ``base`` in place, refusing keys and types the defaults lack."""
    for key, value in override.items():
        path = _check_key(key, where, base, origin)
        if path == RECEIVER_CONFIG:
            base[key] = value  # its keys depend on the receiver type: checked in _receiver
        elif isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise _wrong_type(origin, path, f"a mapping of {_allowed(base[key])}", value)
            _merge(base[key], value, path, origin)
        else:
            _check_type(path, value, base[key], origin)
            base[key] = value


def _text(
    values: dict[str, Any], path: str, origin: str, pattern: re.Pattern[str] | None = None
) -> str:
    node: Any = values
    for part in path.split("."):
        node = node[part]
    if not isinstance(node, str) or not node:
        raise _wrong_type(origin, path, "a non-empty string", node)
    if pattern is not None and not pattern.match(node):
        raise ConfigError(
            f"{origin}: '{path}' value {excerpt(node)} is not valid (must match {pattern.pattern})."
        )
    return node


def validate_agent_types(agent_types: Any, origin: str = "values") -> tuple[str, ...]:
    """Check that agent types form a bounded set of valid, unique task-subject suffixes."""
    if not isinstance(agent_types, list) or not agent_types:
        raise ConfigError(
            f"{origin}: 'agentTypes' must be a non-empty list of agent type names, got "
            f"{kind(agent_types)} {excerpt(agent_types)}."
        )
    if len(agent_types) > MAX_AGENT_TYPES:
        raise ConfigError(
            f"{origin}: 'agentTypes' lists {len(agent_types)} agent types; at most "
            f"{MAX_AGENT_TYPES} are allowed (each gets its own dashboard and series on every "
            "panel: agent_type must stay a small, known set)."
        )
    seen: set[str] = set()
    for name in agent_types:
        if isinstance(name, str) and len(name) > MAX_AGENT_TYPE_LENGTH:
            raise ConfigError(
                f"{origin}: agent type {excerpt(name)} is {len(name)} characters long; at most "
                f"{MAX_AGENT_TYPE_LENGTH} are allowed (its dashboard uid daedalus-agent-<type> "
                "must fit Grafana's 40-character limit)."
            )
        if not isinstance(name, str) or not TASK_SUBJECT_RE.match(TASK_SUBJECT_PREFIX + name):
            shown = excerpt(name)
            raise ConfigError(
                f"{origin}: agent type {shown} does not make a valid task subject"
                + (f" '{TASK_SUBJECT_PREFIX}{name}'" if isinstance(name, str) else "")
                + f" (must match {TASK_SUBJECT_RE.pattern}): use lowercase letters and digits, "
                "single hyphens between them, starting with a letter."
            )
        if name in seen:
            raise ConfigError(f"{origin}: agent type {name!r} is listed twice in 'agentTypes'.")
        seen.add(name)
    return tuple(agent_types)


def _receiver(values: dict[str, Any], origin: str) -> Receiver:
    rtype = values["alerting"]["receiver"]["type"]
    if rtype is None:
        rtype = "null"  # YAML `type: null` means the null receiver too
    if rtype not in RECEIVER_DEFAULTS:
        raise ConfigError(
            f"{origin}: alerting.receiver.type {excerpt(rtype)} is not one of "
            f"{', '.join(RECEIVER_DEFAULTS)} "
            "(the receiver types an AlertmanagerConfig can route to for Daedalus)."
        )
    config = values["alerting"]["receiver"].get("config")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise _wrong_type(origin, RECEIVER_CONFIG, "a mapping", config)
    defaults = RECEIVER_DEFAULTS[rtype]
    for key, value in config.items():
        if not isinstance(key, str) or key not in defaults:
            allowed = ", ".join(defaults) or "(none)"
            raise ConfigError(
                f"{origin}: {RECEIVER_CONFIG} key {excerpt(key)} is not valid for receiver "
                f"type {rtype!r}. Allowed: {allowed}."
            )
        rule, what = RECEIVER_CONFIG_RULES[key]
        if not isinstance(value, str) or not rule.match(value):
            raise _wrong_type(origin, f"{RECEIVER_CONFIG}.{key}", what, value)
    return Receiver(type=rtype, config={**defaults, **config})


def _keda_version(values: dict[str, Any], origin: str) -> tuple[int, int]:
    raw = values["keda"]["version"]
    if not isinstance(raw, str):
        raise _wrong_type(origin, "keda.version", TYPE_HINTS["keda.version"], raw)
    raw = raw.lstrip("v")
    match = _VERSION_RE.match(raw)
    if not match:
        raise ConfigError(f"{origin}: keda.version {excerpt(raw)} must look like 2.14 or 2.14.0.")
    version = (int(match.group(1)), int(match.group(2)))
    if version < MIN_KEDA_VERSION:
        raise ConfigError(
            f"{origin}: keda.version {raw} is older than the oldest supported "
            f"{MIN_KEDA_VERSION[0]}.{MIN_KEDA_VERSION[1]}."
        )
    return version


def settings_from_values(values: dict[str, Any], origin: str = "values") -> Settings:
    """Build validated :class:`Settings` from a fully merged values mapping."""
    honor = values["keda"]["honorLabels"]
    if not isinstance(honor, bool):
        raise _wrong_type(origin, "keda.honorLabels", TYPE_HINTS["keda.honorLabels"], honor)
    for key in ("runbook.baseUrl", "runbook.ticketUrl"):
        url = _text(values, key, origin)
        if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
            raise ConfigError(
                f"{origin}: '{key}' must be an http(s) URL without spaces, got {excerpt(url)}."
            )
    return Settings(
        namespace=_text(values, "namespace", origin, _DNS_LABEL_RE),
        agent_types=validate_agent_types(values["agentTypes"], origin),
        worker_prefix=_text(
            values, "workers.podPrefix", origin, re.compile(r"^[a-z0-9][-a-z0-9]*$")
        ),
        orchestrator_deployment=_text(values, "orchestrator.deployment", origin, _DNS_LABEL_RE),
        otel_collector_job=_text(values, "otelCollector.job", origin),
        nats_stream=_text(values, "keda.natsStream", origin, _STREAM_RE),
        keda_version=_keda_version(values, origin),
        keda_honor_labels=honor,
        kps_release=_text(values, "kubePrometheusStack.release", origin, _LABEL_VALUE_RE),
        grafana_folder=_text(values, "grafana.folder", origin),
        runbook_base_url=values["runbook"]["baseUrl"],
        ticket_url=values["runbook"]["ticketUrl"],
        receiver=_receiver(values, origin),
        source=origin,
        log_namespace_label=_text(values, "logs.namespaceLabel", origin, _LABEL_NAME_RE),
    )


def load_values(path: str | os.PathLike[str] | None = None) -> tuple[dict[str, Any], str]:
    """Return the merged values mapping and a name for where it came from."""
    values = read_values_file(DEFAULTS_PATH)
    chosen = path if path is not None else os.environ.get(VALUES_ENV) or None
    if chosen is None:
        return values, "defaults"
    override_path = Path(chosen)
    _merge(values, read_values_file(override_path), "", str(override_path))
    return values, str(override_path)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load settings from the defaults, overridden by ``path`` or ``$OBSLIB_VALUES`` if given."""
    values, origin = load_values(path)
    return settings_from_values(values, origin)
