"""Fault injection: which tasks get which fault, and what each fault does to exported spans.

Each fault is one flag with a share of tasks. The tasks are drawn per fault from the run's seed
(``round(share * eligible)`` of them, at least one when the share is above 0), so a run is
repeatable and its assignments are the ground truth an audit is checked against. Faults are
drawn independently: one task can get several.

========================  ==================================================================
``stdio_context``         the proxy passes no trace context to the agent process (no ``_meta``
                          trace keys, nothing in its environment): agent-side spans start
                          new traces
``nats_headers``          the publisher sends no ``traceparent``/``tracestate``/``baggage``
                          headers on the hops in ``headers_dropped_on`` (default: the task
                          publish, so the worker's ``nats.consume`` starts a new trace)
``envelope_trace_id``     the proxy stamps a freshly generated trace id into the result
                          envelope's ``metadata.trace_id``
``span_dropped``          the span of hop ``dropped_hop`` (a key of ``hops.PASS1``) is created
                          but never exported, so its children point at a missing parent
``duplicate_span_ids``    ``acp.session.prompt`` gets the span id of ``acp.session.new``
``clock_skew``            every span of ``skewed_service`` is exported ``skew_seconds`` late
========================  ==================================================================
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from obslib.catalogue.hops import PASS1, SERVICE_AGENT_PREFIX, SERVICE_PROXY
from obslib.errors import ConfigError

STDIO_CONTEXT = "stdio_context"
NATS_HEADERS = "nats_headers"
ENVELOPE_TRACE_ID = "envelope_trace_id"
SPAN_DROPPED = "span_dropped"
DUPLICATE_SPAN_IDS = "duplicate_span_ids"
CLOCK_SKEW = "clock_skew"
FAULT_NAMES = (
    STDIO_CONTEXT,
    NATS_HEADERS,
    ENVELOPE_TRACE_ID,
    SPAN_DROPPED,
    DUPLICATE_SPAN_IDS,
    CLOCK_SKEW,
)
HEADER_HOPS = ("task_publish", "result_publish")
AGENT_SERVICES = "{agent}"  # as skewed_service: the agent process of whichever type runs the task


@dataclass(frozen=True)
class FaultPlan:
    """Shares of tasks (0 to 1) per fault, and the parameters of the faults that need one."""

    stdio_context: float = 0.0
    nats_headers: float = 0.0
    envelope_trace_id: float = 0.0
    span_dropped: float = 0.0
    duplicate_span_ids: float = 0.0
    clock_skew: float = 0.0
    dropped_hop: str = "task_consume"
    headers_dropped_on: tuple[str, ...] = ("task_publish",)
    skewed_service: str = SERVICE_PROXY
    skew_seconds: float = 120.0

    def __post_init__(self) -> None:
        for name in FAULT_NAMES:
            share = getattr(self, name)
            if not isinstance(share, int | float) or not 0.0 <= share <= 1.0:
                raise ConfigError(f"fault {name}: share must be between 0 and 1, got {share!r}.")
        keys = [hop.key for hop in PASS1.hops]
        if self.dropped_hop not in keys:
            raise ConfigError(
                f"fault span_dropped: hop {self.dropped_hop!r} is not a PASS1 hop key "
                f"({', '.join(keys)})."
            )
        unknown = sorted(set(self.headers_dropped_on) - set(HEADER_HOPS))
        if unknown or not self.headers_dropped_on:
            raise ConfigError(
                f"fault nats_headers: headers_dropped_on must name hops among "
                f"{', '.join(HEADER_HOPS)}, got {list(self.headers_dropped_on)}."
            )

    @classmethod
    def parse(cls, items: Iterable[str], **params: Any) -> FaultPlan:
        """A plan from ``NAME=SHARE`` strings (``-`` or ``_`` in names) plus fault parameters."""
        shares: dict[str, Any] = {}
        for item in items:
            name, sep, value = item.partition("=")
            key = name.strip().replace("-", "_")
            if not sep or key not in FAULT_NAMES:
                raise ConfigError(
                    f"fault {item!r}: write NAME=SHARE with NAME one of "
                    f"{', '.join(n.replace('_', '-') for n in FAULT_NAMES)}."
                )
            try:
                shares[key] = float(value)
            except ValueError as exc:
                raise ConfigError(f"fault {item!r}: SHARE must be a number from 0 to 1.") from exc
        return cls(**shares, **params)

    def shares(self) -> dict[str, float]:
        """Share per fault name, only the faults that are switched on."""
        return {name: getattr(self, name) for name in FAULT_NAMES if getattr(self, name) > 0}

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain JSON-ready data."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in fields(self)
        }

    def skewed_service_for(self, agent_type: str) -> str:
        """The service whose clock is skewed, for a task of ``agent_type``."""
        return self.skewed_service.replace(AGENT_SERVICES, f"{SERVICE_AGENT_PREFIX}{agent_type}")

    def assign(self, tasks: Mapping[str, str], seed: int) -> dict[str, tuple[str, ...]]:
        """Draw the tasks of each fault: task id -> sorted fault names (every task is a key).

        Args:
            tasks: task id -> agent type, in submission order.
            seed: the run's seed; the same seed and tasks give the same assignment.
        """
        chosen: dict[str, set[str]] = {task_id: set() for task_id in tasks}
        for name, share in self.shares().items():
            eligible = [t for t, agent in tasks.items() if self._eligible(name, agent)]
            count = max(1, round(share * len(eligible))) if eligible else 0
            rng = random.Random(f"{seed}:{name}")
            for task_id in rng.sample(eligible, min(count, len(eligible))):
                chosen[task_id].add(name)
        return {task_id: tuple(sorted(names)) for task_id, names in chosen.items()}

    def _eligible(self, name: str, agent_type: str) -> bool:
        # A skewed agent service of one type only touches that type's tasks.
        if name != CLOCK_SKEW or not self.skewed_service.startswith(SERVICE_AGENT_PREFIX):
            return True
        return self.skewed_service == f"{SERVICE_AGENT_PREFIX}{agent_type}"


def hop_key(name: str, attributes: Mapping[str, Any] | None) -> str:
    """The ``PASS1`` hop key of a span, from its name and attributes ("" when none matches)."""
    for hop in PASS1.hops:
        if hop.span != name:
            continue
        if hop.match_attribute:
            value = str((attributes or {}).get(hop.match_attribute, ""))
            if not value.startswith(hop.match_prefix):
                continue
        return hop.key
    return ""


@dataclass(frozen=True)
class SpanFaults:
    """What one service's exporter does to the spans of faulted tasks.

    Attributes:
        dropped: task id -> hop keys whose spans are not exported.
        skew_ns: task id -> nanoseconds added to every timestamp of its spans.
    """

    dropped: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    skew_ns: Mapping[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.dropped or self.skew_ns)

    def to_json(self) -> str:
        """Serialised for the agent process (``--faults FILE``)."""
        return json.dumps(
            {
                "dropped": {k: list(v) for k, v in self.dropped.items()},
                "skew_ns": dict(self.skew_ns),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> SpanFaults:
        """Read what :meth:`to_json` wrote."""
        data = json.loads(text)
        dropped = {k: tuple(v) for k, v in data.get("dropped", {}).items()}
        return cls(dropped=dropped, skew_ns={k: int(v) for k, v in data.get("skew_ns", {}).items()})


@dataclass(frozen=True)
class FaultBook:
    """A plan with its assignments: what each part of the pipeline asks before it acts."""

    plan: FaultPlan
    assigned: Mapping[str, tuple[str, ...]]  # task id -> fault names
    agent_types: Mapping[str, str]  # task id -> agent type

    def has(self, task_id: str, name: str) -> bool:
        """Whether task ``task_id`` got fault ``name``."""
        return name in self.assigned.get(task_id, ())

    def drops_headers(self, task_id: str, hop: str) -> bool:
        """Whether the publish at ``hop`` (``task_publish``/``result_publish``) sends no headers."""
        return self.has(task_id, NATS_HEADERS) and hop in self.plan.headers_dropped_on

    def span_faults(self, service: str) -> SpanFaults:
        """The span faults the exporter of ``service`` applies."""
        dropped: dict[str, tuple[str, ...]] = {}
        skew: dict[str, int] = {}
        for task_id, names in self.assigned.items():
            agent = self.agent_types.get(task_id, "")
            hop = self.plan.dropped_hop
            owner = PASS1.hop(hop).service_for(agent)
            if SPAN_DROPPED in names and owner == service:
                dropped[task_id] = (hop,)
            if CLOCK_SKEW in names and self.plan.skewed_service_for(agent) == service:
                skew[task_id] = round(self.plan.skew_seconds * 1e9)
        return SpanFaults(dropped=dropped, skew_ns=skew)
