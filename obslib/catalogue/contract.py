"""The Daedalus metric contract: what the platform is expected to emit.

The Go platform defines no metrics today (``reference/daedalus-platform.md``); the spec names
three. This module fixes their names, types, labels and buckets once. Buckets are chosen so
that every threshold that matters is a bucket bound: a latency SLI is a bucket ratio, and
``histogram_quantile`` is only exact at a bound (between bounds its error is up to the width).

Every child ``(agent_type, status)`` is expected to be initialised at 0 when a worker starts, so
error-rate ratios exist before the first failure.
"""

from __future__ import annotations

from dataclasses import dataclass

AGENT_TYPE = "agent_type"
STATUS = "status"

# Terminal outcomes of a task as the `status` label spells them (a bounded set):
# success = A2A state completed; failure = failed or rejected; canceled = canceled by a user.
STATUS_SUCCESS = "success"
STATUS_FAILURE = "failure"
STATUS_CANCELED = "canceled"
STATUSES = (STATUS_SUCCESS, STATUS_FAILURE, STATUS_CANCELED)

# Phase 5 AC1: a clean deploy reaches a working platform in under 25 minutes.
AC1_COLD_START_LIMIT_S = 1500.0

# Cold start: pod scheduled -> image pulled -> agent ready. Seconds for a warm node, minutes for
# a fresh node and image; AC1's 1500 s is a bound, and the buckets reach past it.
COLD_START_BUCKETS = (
    1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 240.0, 300.0, 450.0,
    600.0, 900.0, 1200.0, 1500.0, 1800.0, 2400.0, 3600.0,
)  # fmt: skip

# Task to artifact: from task publish to result received. Coding tasks run for minutes.
TASK_DURATION_BUCKETS = (
    5.0, 10.0, 15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 240.0, 300.0, 450.0, 600.0, 900.0,
    1200.0, 1800.0, 2700.0, 3600.0, 5400.0, 7200.0,
)  # fmt: skip


@dataclass(frozen=True)
class MetricSpec:
    """One metric of the Daedalus contract."""

    name: str
    type: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    help: str
    unit: str = ""
    buckets: tuple[float, ...] = ()

    @property
    def series_names(self) -> tuple[str, ...]:
        """Names of the series this metric is exposed as."""
        if self.type == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


COLD_START = MetricSpec(
    name="daedalus_cold_start_seconds",
    type="histogram",
    labels=(AGENT_TYPE,),
    help="Seconds from a worker Job's creation until its agent accepted the first ACP session.",
    unit="s",
    buckets=COLD_START_BUCKETS,
)
TASKS = MetricSpec(
    name="daedalus_tasks_total",
    type="counter",
    labels=(AGENT_TYPE, STATUS),
    help="Tasks that reached a terminal state, by agent type and status (success|failure|canceled).",
)
TASK_DURATION = MetricSpec(
    name="daedalus_task_duration_seconds",
    type="histogram",
    labels=(AGENT_TYPE,),
    help="Seconds from task publish until its result artifact reached the orchestrator.",
    unit="s",
    buckets=TASK_DURATION_BUCKETS,
)

CONTRACT: tuple[MetricSpec, ...] = (COLD_START, TASKS, TASK_DURATION)
