"""Hop profiles: the span trees a task's trace is expected to form, as data.

``PASS1`` is the full hop chain of the spec's work item 1 (the target tree in DESIGN.md): span
names reuse the platform's where it has them (``reference/daedalus-platform.md``) and the new
hops get bounded names in the same style. ``PLATFORM_TODAY`` is the tree the Go platform's own
integration test emits, so the same audit measures both.

Several hops share a span name (``nats.publish`` for tasks, results and status); a hop tells
them apart by the prefix of an attribute (``messaging.destination.name``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

# Spans carry the agent type under the metric label's name, and tasks publish to the subject
# prefix of the platform's task-subject rule; both are defined where those live.
from obslib.catalogue.contract import AGENT_TYPE as AGENT_TYPE
from obslib.settings import TASK_SUBJECT_PREFIX as TASK_SUBJECT_PREFIX

TASK_ID = "daedalus.task.id"
DESTINATION = "messaging.destination.name"
ENVELOPE_TRACE_ID = "daedalus.task.metadata.trace_id"
TASK_STATE = "daedalus.task.state"  # A2A state of the result, on the result-collection span

SERVICE_PREFIX = "daedalus-"  # every Daedalus service's name starts so
SERVICE_ORCHESTRATOR = f"{SERVICE_PREFIX}orchestrator"
SERVICE_PROXY = f"{SERVICE_PREFIX}proxy"
SERVICE_AGENT_PREFIX = f"{SERVICE_PREFIX}agent-"  # + agent type, the agent CLI process

SCOPE_QUEUE = "github.com/raykao/daedalus/internal/queue"
SCOPE_PROXY = "github.com/raykao/daedalus/internal/proxy"
SCOPE_ORCHESTRATOR = "github.com/raykao/daedalus/internal/orchestrator"

RESULT_SUBJECT_PREFIX = "agent.results."
STATUS_SUBJECT_PREFIX = "agent.status."


@dataclass(frozen=True)
class Hop:
    """One expected span of a task's trace."""

    key: str  # stable id of the hop, used in reports ("the chain breaks at <key>")
    span: str  # span name
    kind: str  # SERVER | CLIENT | PRODUCER | CONSUMER | INTERNAL
    service: str  # service.name; '{agent}' stands for the agent-side service of the agent type
    parent: str | None  # key of the parent hop; None for the root
    spec_hop: str  # the spec's wording for the hop
    match_attribute: str = ""  # attribute that tells same-named spans apart...
    match_prefix: str = ""  # ...by the prefix of its value
    count: int = 1  # how many such spans one task has

    def service_for(self, agent_type: str) -> str:
        """Expected service name for a task of ``agent_type``."""
        return self.service.replace("{agent}", f"{SERVICE_AGENT_PREFIX}{agent_type}")


@dataclass(frozen=True)
class HopProfile:
    """An expected span tree, root first, parents before children."""

    name: str
    description: str
    hops: tuple[Hop, ...]

    @property
    def root(self) -> Hop:
        """The hop whose span must be the trace's root."""
        return self.hops[0]

    def hop(self, key: str) -> Hop:
        """The hop with ``key``."""
        for hop in self.hops:
            if hop.key == key:
                return hop
        raise KeyError(key)

    def path_to(self, key: str) -> list[str]:
        """Hop keys from the root down to ``key``."""
        path = [key]
        while (parent := self.hop(path[-1]).parent) is not None:
            path.append(parent)
        return path[::-1]


PASS1 = HopProfile(
    name="pass1",
    description="The full Pass-1 hop chain: ingress to orchestrator collector, through the agent process.",
    hops=(
        Hop("ingress", "ingress.mattermost", "SERVER", SERVICE_ORCHESTRATOR, None, "Mattermost ingress"),
        Hop("dispatch", "orchestrator.dispatch", "INTERNAL", SERVICE_ORCHESTRATOR, "ingress", "orchestrator"),
        Hop("task_publish", "nats.publish", "PRODUCER", SERVICE_ORCHESTRATOR, "dispatch", "NATS publish",
            DESTINATION, TASK_SUBJECT_PREFIX),
        Hop("task_consume", "nats.consume", "CONSUMER", SERVICE_PROXY, "task_publish", "NATS consume"),
        Hop("proxy", "proxy.handle", "INTERNAL", SERVICE_PROXY, "task_consume", "worker proxy"),
        Hop("acp_new", "acp.session.new", "CLIENT", SERVICE_PROXY, "proxy", "ACP session/new"),
        Hop("agent_new", "agent.session.new", "SERVER", "{agent}", "acp_new", "ACP session/new (agent side)"),
        Hop("acp_prompt", "acp.session.prompt", "CLIENT", SERVICE_PROXY, "proxy", "ACP session/prompt"),
        Hop("agent_prompt", "agent.session.prompt", "SERVER", "{agent}", "acp_prompt",
            "ACP session/prompt (agent side)"),
        Hop("acp_update", "acp.session.update", "INTERNAL", SERVICE_PROXY, "acp_prompt", "ACP session/update stream"),
        Hop("result_publish", "nats.publish", "PRODUCER", SERVICE_PROXY, "proxy", "result publish",
            DESTINATION, RESULT_SUBJECT_PREFIX),
        Hop("result_collect", "collector.receive.result", "CONSUMER", SERVICE_ORCHESTRATOR, "result_publish",
            "orchestrator collector"),
    ),
)  # fmt: skip

PLATFORM_TODAY = HopProfile(
    name="platform-today",
    description=(
        "The tree the Go platform's integration test emits today: one binary (daedalus-proxy), "
        "no ingress, no agent-side spans, two status publishes."
    ),
    hops=(
        Hop("dispatch", "test.dispatch", "INTERNAL", SERVICE_PROXY, None, "test harness dispatch"),
        Hop("task_publish", "nats.publish", "PRODUCER", SERVICE_PROXY, "dispatch", "NATS publish",
            DESTINATION, TASK_SUBJECT_PREFIX),
        Hop("task_consume", "nats.consume", "CONSUMER", SERVICE_PROXY, "task_publish", "NATS consume"),
        Hop("proxy", "proxy.handle", "INTERNAL", SERVICE_PROXY, "task_consume", "worker proxy"),
        Hop("acp_new", "acp.session.new", "CLIENT", SERVICE_PROXY, "proxy", "ACP session/new"),
        Hop("acp_prompt", "acp.session.prompt", "CLIENT", SERVICE_PROXY, "proxy", "ACP session/prompt"),
        Hop("result_publish", "nats.publish", "PRODUCER", SERVICE_PROXY, "proxy", "result publish",
            DESTINATION, RESULT_SUBJECT_PREFIX),
        Hop("result_collect", "collector.receive.result", "CONSUMER", SERVICE_PROXY, "result_publish",
            "orchestrator collector"),
        Hop("status_publish", "nats.publish", "PRODUCER", SERVICE_PROXY, "proxy", "status publish",
            DESTINATION, STATUS_SUBJECT_PREFIX, count=2),
        Hop("status_collect", "collector.receive.status", "CONSUMER", SERVICE_PROXY, "status_publish",
            "orchestrator collector (status)", count=2),
    ),
)  # fmt: skip

PROFILES = {p.name: p for p in (PASS1, PLATFORM_TODAY)}


def sub_profile(profile: HopProfile, keys: Iterable[str], name: str | None = None) -> HopProfile:
    """``profile`` restricted to the hops ``keys``, each re-parented to its nearest kept ancestor.

    Use it to audit data that only covers part of a chain (the recorded Tempo traces have no
    ``acp.session.new`` hop, for instance) without calling the absent hops broken.

    Raises:
        ValueError: a key is unknown, or the kept hops do not form one tree.
    """
    keep = list(dict.fromkeys(keys))
    for key in keep:
        profile.hop(key)  # KeyError for an unknown key
    hops = []
    for hop in profile.hops:
        if hop.key not in keep:
            continue
        ancestors = [k for k in profile.path_to(hop.key)[:-1] if k in keep]
        hops.append(replace(hop, parent=ancestors[-1] if ancestors else None))
    if sum(h.parent is None for h in hops) != 1:
        raise ValueError(f"hops {keep} of profile {profile.name} do not share one root")
    label = name or f"{profile.name}[{','.join(h.key for h in hops)}]"
    return HopProfile(label, f"{profile.description} (hops {', '.join(keep)} only)", tuple(hops))
