"""The reference pipeline: an executable model of the Pass-1 hop chain, built from real parts.

Mattermost-style ingress -> orchestrator -> NATS JetStream (``agent.tasks.<agent_type>``) ->
worker proxy (durable consumer per agent type) -> agent CLI subprocess over ACP (the protocol's
Python SDK, JSON-RPC on stdio) -> result on ``agent.results.<taskId>`` -> orchestrator collector. Each service exports
its spans and logs over OTLP/HTTP with the OpenTelemetry SDK, the Daedalus metric contract is
served on ``/metrics``, and faults can be injected per share of tasks. Entry point:
:func:`run_fleet`.

The names below are imported on first use, so the agent CLI subprocess
(``python -m obslib.fleet.agent_cli``) does not pay for NATS and the pipeline at start-up.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FAULT_NAMES": "obslib.fleet.faults",
    "FaultPlan": "obslib.fleet.faults",
    "FleetMetrics": "obslib.fleet.metrics",
    "FleetRun": "obslib.fleet.pipeline",
    "NatsServer": "obslib.fleet.nats_server",
    "run_fleet": "obslib.fleet.pipeline",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'obslib.fleet' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
