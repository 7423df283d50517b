"""Release settings: one frozen object loaded from the values file.

Defaults live in ``obslib/values.yaml`` (documented there). A user file with the same shape
overrides any subset of keys; unknown keys and invalid values fail loudly with a
``ConfigError`` that names the file and the key.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from obslib.errors import ConfigError

DEFAULTS_PATH = Path(__file__).with_name("values.yaml")
VALUES_ENV = "OBSLIB_VALUES"

# The platform's task-subject rule (internal/queue): a subject must match this pattern.
TASK_SUBJECT_PREFIX = "agent.tasks."
TASK_SUBJECT_RE = re.compile(r"^agent\.tasks\.[a-z]([a-z0-9](-[a-z0-9]+)*)*$")
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


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the values file ({exc.strerror}).") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}). Fix the syntax.") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, not a list or value.")
    return data


def _merge(base: dict[str, Any], override: dict[str, Any], where: str, origin: str) -> None:
    """Merge ``override`` into ``base`` in place, refusing keys the defaults do not have."""
    for key, value in override.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in base:
            allowed = ", ".join(sorted(base)) or "(none)"
            raise ConfigError(f"{origin}: unknown key '{path}'. Allowed here: {allowed}.")
        if path == "alerting.receiver.config":
            base[key] = value  # validated per receiver type below
        elif isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: '{path}' must be a mapping.")
            _merge(base[key], value, path, origin)
        else:
            base[key] = value


def _text(
    values: dict[str, Any], path: str, origin: str, pattern: re.Pattern[str] | None = None
) -> str:
    node: Any = values
    for part in path.split("."):
        node = node[part]
    if not isinstance(node, str) or not node:
        raise ConfigError(f"{origin}: '{path}' must be a non-empty string, got {node!r}.")
    if pattern is not None and not pattern.match(node):
        raise ConfigError(
            f"{origin}: '{path}' value {node!r} is not valid (must match {pattern.pattern})."
        )
    return node


def validate_agent_types(agent_types: Any, origin: str = "values") -> tuple[str, ...]:
    """Check that agent types form a bounded set of valid, unique task-subject suffixes."""
    if not isinstance(agent_types, list) or not agent_types:
        raise ConfigError(f"{origin}: 'agentTypes' must be a non-empty list of agent type names.")
    seen: set[str] = set()
    for name in agent_types:
        if not isinstance(name, str) or not TASK_SUBJECT_RE.match(TASK_SUBJECT_PREFIX + name):
            raise ConfigError(
                f"{origin}: agent type {name!r} does not make a valid task subject "
                f"'{TASK_SUBJECT_PREFIX}{name}' (must match {TASK_SUBJECT_RE.pattern}): use lowercase "
                "letters and digits, single hyphens between them, starting with a letter."
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
        allowed = ", ".join(RECEIVER_DEFAULTS)
        raise ConfigError(
            f"{origin}: alerting.receiver.type {rtype!r} is not one of {allowed} "
            "(the receiver types an AlertmanagerConfig can route to for Daedalus)."
        )
    config = values["alerting"]["receiver"].get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{origin}: alerting.receiver.config must be a mapping.")
    defaults = RECEIVER_DEFAULTS[rtype]
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        allowed = ", ".join(defaults) or "(none)"
        raise ConfigError(
            f"{origin}: alerting.receiver.config key(s) {', '.join(unknown)} are not valid for "
            f"receiver type {rtype!r}. Allowed: {allowed}."
        )
    merged = {**defaults, **{k: str(v) for k, v in config.items()}}
    return Receiver(type=rtype, config=merged)


def _keda_version(values: dict[str, Any], origin: str) -> tuple[int, int]:
    raw = str(values["keda"]["version"]).lstrip("v")
    match = _VERSION_RE.match(raw)
    if not match:
        raise ConfigError(f"{origin}: keda.version {raw!r} must look like 2.14 or 2.14.0.")
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
        raise ConfigError(f"{origin}: keda.honorLabels must be true or false, got {honor!r}.")
    for key in ("runbook.baseUrl", "runbook.ticketUrl"):
        url = _text(values, key, origin)
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{origin}: '{key}' must be an http(s) URL, got {url!r}.")
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
    values = _read_yaml(DEFAULTS_PATH)
    chosen = path if path is not None else os.environ.get(VALUES_ENV) or None
    if chosen is None:
        return values, "defaults"
    override_path = Path(chosen)
    _merge(values, copy.deepcopy(_read_yaml(override_path)), "", str(override_path))
    return values, str(override_path)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load settings from the defaults, overridden by ``path`` or ``$OBSLIB_VALUES`` if given."""
    values, origin = load_values(path)
    return settings_from_values(values, origin)
