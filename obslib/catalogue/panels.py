"""The seven panels of the spec's dashboard table, for a per-agent-type and a fleet view.

Each panel is written once with two scopes: ``agent`` (one agent type, ``$agent_type`` is a
single value) and ``fleet`` (``$agent_type`` is a multi-value variable, every series broken
down by ``agent_type``). Rate windows use ``$__rate_interval``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from obslib.catalogue.contract import (
    AGENT_TYPE,
    COLD_START,
    STATUS_FAILURE,
    STATUS_SUCCESS,
    TASK_DURATION,
    TASKS,
)
from obslib.settings import Settings

SLO_MARKER = "SLO panels: baseline collection in progress"
AGENT_VAR = "$agent_type"
RATE = "$__rate_interval"
QUANTILES = (0.5, 0.95, 0.99)
# Tempo's search returns the first traces it finds, unordered: fetch this many root spans in the
# window, sort by duration in Grafana, keep ten.
SLOWEST_SEARCH_LIMIT = 500
_LEGEND_FIELD = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class Target:
    """One query of a panel: PromQL, or TraceQL for ``traces`` panels."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class PanelSpec:
    """A panel of both dashboards."""

    key: str
    title: str
    description: str
    unit: str
    agent: tuple[Target, ...]
    fleet: tuple[Target, ...]
    grid: tuple[int, int, int, int]  # x, y, w, h on Grafana's 24-column grid
    kind: str = "timeseries"  # timeseries | traces
    slo: bool = False  # will gain a Pass-2 threshold

    @property
    def full_description(self) -> str:
        """Description as shown in Grafana, with the SLO marker where it applies."""
        return f"{SLO_MARKER}. {self.description}" if self.slo else self.description


def legend_text(template: str, labels: Mapping[str, str]) -> str:
    """A legend format such as ``{{agent_type}} p99`` filled as Grafana fills it.

    Each ``{{label}}`` becomes the series' value of that label ("" when it lacks it); the
    result is stripped, so a template of fields the series lacks gives "".
    """
    return _LEGEND_FIELD.sub(lambda m: labels.get(m.group(1), ""), template).strip()


def _match(scope: str) -> str:
    return f'{AGENT_TYPE}="{AGENT_VAR}"' if scope == "agent" else f'{AGENT_TYPE}=~"{AGENT_VAR}"'


def _quantiles(metric: str, scope: str) -> tuple[Target, ...]:
    by = "le" if scope == "agent" else f"{AGENT_TYPE}, le"
    prefix = "" if scope == "agent" else "{{agent_type}} "
    return tuple(
        Target(
            f"histogram_quantile({q}, sum by ({by}) "
            f"(rate({metric}_bucket{{{_match(scope)}}}[{RATE}])))",
            f"{prefix}p{round(q * 100)}",
        )
        for q in QUANTILES
    )


def _tasks_rate(scope: str, extra: str = "", by: str = "") -> str:
    matchers = _match(scope) + (f", {extra}" if extra else "")
    grouping = f"sum by ({by}) " if by else "sum"
    return f"{grouping}(rate({TASKS.name}{{{matchers}}}[{RATE}]))"


def _error_ratio(scope: str, by: str = "") -> str:
    failed = _tasks_rate(scope, f'status="{STATUS_FAILURE}"', by)
    finished = _tasks_rate(scope, f'status=~"{STATUS_SUCCESS}|{STATUS_FAILURE}"', by)
    return f"{failed} / {finished}"


def panel_specs(s: Settings) -> tuple[PanelSpec, ...]:
    """The seven panels for one release."""
    stream = f'stream="{s.nats_stream}"'
    agent_jobs = f'namespace="{s.namespace}", job_name=~"{s.worker_prefix}{AGENT_VAR}-[^-]+"'
    roots = "nestedSetParent < 0"
    return (
        PanelSpec(
            key="cold-start",
            title="Cold-start latency",
            description=(
                "p50/p95/p99 of seconds from worker Job creation to the agent's first ACP "
                f"session ({COLD_START.name}). Phase 5 AC1 requires p99 below 1500 s."
            ),
            unit="s",
            agent=_quantiles(COLD_START.name, "agent"),
            fleet=_quantiles(COLD_START.name, "fleet"),
            grid=(0, 0, 12, 8),
            slo=True,
        ),
        PanelSpec(
            key="task-latency",
            title="Task-to-artifact latency",
            description=(
                "p50/p95/p99 of seconds from task publish to the result artifact reaching the "
                f"orchestrator ({TASK_DURATION.name})."
            ),
            unit="s",
            agent=_quantiles(TASK_DURATION.name, "agent"),
            fleet=_quantiles(TASK_DURATION.name, "fleet"),
            grid=(12, 0, 12, 8),
            slo=True,
        ),
        PanelSpec(
            key="throughput",
            title="Task throughput",
            description="Tasks finished per second, split by status (success, failure, canceled).",
            unit="ops",
            agent=(Target(_tasks_rate("agent", by="status"), "{{status}}"),),
            fleet=(
                Target(
                    _tasks_rate("fleet", by=f"{AGENT_TYPE}, status"), "{{agent_type}} {{status}}"
                ),
            ),
            grid=(0, 8, 8, 8),
        ),
        PanelSpec(
            key="error-rate",
            title="Error rate",
            description=(
                "Share of finished tasks that failed (failure / (success + failure)); canceled "
                "tasks are not errors. The spec's 5-minute rolling window is the floor: the "
                "window is $__rate_interval so zoomed-out views do not skip samples."
            ),
            unit="percentunit",
            agent=(Target(_error_ratio("agent"), "error rate"),),
            fleet=(
                Target(_error_ratio("fleet", by=AGENT_TYPE), "{{agent_type}}"),
                Target(_error_ratio("fleet"), "all agent types"),
            ),
            grid=(8, 8, 8, 8),
            slo=True,
        ),
        PanelSpec(
            key="queue-depth",
            title="Queue depth",
            description=(
                f"Messages pending for the agent type's KEDA consumer on stream {s.nats_stream} "
                "(nats-surveyor nats_consumer_num_pending; the consumer is named after the agent "
                "type). There is one task stream for all agent types, not one stream per type. "
                "Max over stream replicas, which each report the consumer."
            ),
            unit="short",
            agent=(
                Target(
                    "max by (consumer_name) (nats_consumer_num_pending"
                    f'{{{stream}, consumer_name="{AGENT_VAR}"}})',
                    "{{consumer_name}}",
                ),
            ),
            fleet=(
                Target(
                    "label_replace(max by (consumer_name) (nats_consumer_num_pending"
                    f'{{{stream}, consumer_name=~"{AGENT_VAR}"}}), '
                    '"agent_type", "$1", "consumer_name", "(.*)")',
                    "{{agent_type}}",
                ),
            ),
            grid=(16, 8, 8, 8),
        ),
        PanelSpec(
            key="active-workers",
            title="Active workers",
            description=(
                "Worker Jobs with an active pod (kube-state-metrics kube_job_status_active), "
                f"Jobs named {s.worker_prefix}<agent_type>-<suffix>."
            ),
            unit="short",
            agent=(Target(f"sum(kube_job_status_active{{{agent_jobs}}})", "active workers"),),
            fleet=(
                Target(
                    f"sum by ({AGENT_TYPE}) (label_replace(kube_job_status_active{{{agent_jobs}}}, "
                    f'"{AGENT_TYPE}", "$1", "job_name", "{s.worker_prefix}(.+)-[^-]+"))',
                    "{{agent_type}}",
                ),
            ),
            grid=(0, 16, 12, 8),
        ),
        PanelSpec(
            key="slowest-tasks",
            title="Top 10 slowest tasks (last hour)",
            description=(
                "The ten longest task traces of the last hour, from Tempo (TraceQL on root "
                f"spans, the first {SLOWEST_SEARCH_LIMIT} found, sorted by duration). Click a "
                "trace id to open the waterfall; the panel link opens the query in Explore."
            ),
            unit="ms",
            agent=(Target(f'{{ {roots} && span.{AGENT_TYPE} = "{AGENT_VAR}" }}'),),
            fleet=(Target(f'{{ {roots} && span.{AGENT_TYPE} =~ "${{agent_type:regex}}" }}'),),
            grid=(12, 16, 12, 8),
            kind="traces",
        ),
    )


def panel_by_key(panels: tuple[PanelSpec, ...], key: str) -> PanelSpec:
    """Look a panel up by its key."""
    for panel in panels:
        if panel.key == key:
            return panel
    raise KeyError(key)
