"""Simulated tasks of one agent type, and the series they leave behind.

Each task arrives (Poisson, shaped by the daily load), waits for its worker's cold start, runs,
and ends in success, failure or cancellation. From the tasks come the Daedalus metric contract
(cold-start and task-duration histograms, the task counter), the worker Jobs and pods that
kube-state-metrics reports, and the queue depth nats-surveyor reports.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from obslib.catalogue.contract import COLD_START, STATUSES, TASK_DURATION, TASKS
from obslib.synth.openmetrics import Series
from obslib.synth.scenario import SLOW_COLD_START, AgentProfile, Incident, Timeline, load_shape

# Completes an object's own labels with the scrape's, for a series name (see synth.labels).
Labeler = Callable[[str, dict[str, str]], dict[str, str]]
JOB_TTL_S = 300  # finished Jobs linger this long before the TTL controller deletes them
# A worker's proxy keeps pulling tasks and exits after this long without one (its Job then
# completes). Pods so serve several tasks at busy hours and churn when the load drops.
WORKER_IDLE_S = 15 * 60
_NAME_CHARS = np.array(list("bcdfghjklmnpqrstvwxz2456789"))


@dataclass(frozen=True)
class Tasks:
    """The simulated tasks of one agent type (arrays of equal length, times in unix seconds)."""

    agent_type: str
    arrival: np.ndarray
    ready: np.ndarray  # worker's agent accepted its first ACP session
    done: np.ndarray  # result reached the orchestrator
    status: np.ndarray  # index into STATUSES

    def __len__(self) -> int:
        return len(self.arrival)


def random_suffix(rng: np.random.Generator, n: int, length: int = 5) -> list[str]:
    """Kubernetes-style random name suffixes."""
    picks = _NAME_CHARS[rng.integers(0, len(_NAME_CHARS), size=(n, length))]
    return ["".join(row) for row in picks]


def simulate(
    profile: AgentProfile, timeline: Timeline, regressions: list[Incident], rng: np.random.Generator
) -> Tasks:
    """Draw the tasks of one agent type over the timeline, slowed where a regression holds."""
    grid = timeline.grid
    counts = rng.poisson(profile.tasks_per_minute * timeline.step / 60 * load_shape(grid))
    arrival = np.repeat(grid, counts) + rng.uniform(0, timeline.step, int(counts.sum()))
    n = len(arrival)
    cold = profile.cold_start.sample(rng, n)
    work = profile.work.sample(rng, n)
    for regression in regressions:
        hit = (arrival >= regression.start) & (arrival < regression.end)
        if regression.kind == "latency-regression" and regression.agent_type == profile.agent_type:
            work[hit] *= regression.factor
        elif regression.kind == "cold-start-regression":
            cold[hit] = SLOW_COLD_START.sample(rng, int(hit.sum()))
    ready = arrival + cold
    done = ready + work
    p_fail, p_cancel = profile.failure_share, profile.canceled_share
    status = rng.choice(len(STATUSES), size=n, p=[1 - p_fail - p_cancel, p_fail, p_cancel])
    return Tasks(profile.agent_type, arrival, ready, done, status)


def _cumulative_at_scrapes(
    times: np.ndarray, weights: np.ndarray, timeline: Timeline
) -> np.ndarray:
    """Running total of ``weights`` as each scrape sees it (an event at t shows from the next scrape)."""
    idx = np.ceil((times - timeline.start) / timeline.step).astype(np.int64)
    keep = idx < len(timeline.grid)
    per_scrape = np.bincount(idx[keep], weights=weights[keep], minlength=len(timeline.grid))
    return np.cumsum(per_scrape)


def _with_outage(
    values: np.ndarray, timeline: Timeline, outage: Incident | None
) -> tuple[np.ndarray, np.ndarray]:
    """Drop samples while the orchestrator is down; its counters restart from zero afterwards."""
    t = timeline.grid
    if outage is None:
        return t, values
    before = t < outage.start
    after = t >= outage.end
    values = values.copy()
    if before.any():
        values[after] -= values[before][-1]
    keep = before | after
    return t[keep], values[keep]


def contract_series(
    tasks: Tasks, timeline: Timeline, outage: Incident | None, label: Labeler
) -> list[Series]:
    """The Daedalus metric contract for one agent type, as the orchestrator's /metrics reports it."""
    out: list[Series] = []
    base = {"agent_type": tasks.agent_type}
    for metric, observed_at, value in (
        (COLD_START, tasks.ready, tasks.ready - tasks.arrival),
        (TASK_DURATION, tasks.done, tasks.done - tasks.arrival),
    ):
        bucket = np.searchsorted(np.asarray(metric.buckets), value, side="left")  # le is inclusive
        bounds = [*(f"{b:g}" for b in metric.buckets), "+Inf"]
        for i, le in enumerate(bounds):
            cum = _cumulative_at_scrapes(observed_at, (bucket <= i).astype(float), timeline)
            t, v = _with_outage(cum, timeline, outage)
            name = f"{metric.name}_bucket"
            out.append(Series(name, label(name, {**base, "le": le}), t, v))
        for suffix, weights in (("_sum", value), ("_count", np.ones_like(value))):
            t, v = _with_outage(
                _cumulative_at_scrapes(observed_at, weights, timeline), timeline, outage
            )
            out.append(Series(metric.name + suffix, label(metric.name + suffix, base), t, v))
    for code, status in enumerate(STATUSES):
        cum = _cumulative_at_scrapes(tasks.done, (tasks.status == code).astype(float), timeline)
        t, v = _with_outage(cum, timeline, outage)
        out.append(Series(TASKS.name, label(TASKS.name, {**base, "status": status}), t, v))
    return out


def _span(start: float, end: float, timeline: Timeline) -> np.ndarray:
    """Scrape timestamps within [start, end)."""
    grid = timeline.grid
    return grid[np.searchsorted(grid, start, side="left") : np.searchsorted(grid, end, side="left")]


def assign_workers(tasks: Tasks, idle_s: float) -> np.ndarray:
    """The worker each task runs on: workers numbered in the order they start.

    A worker serves one task at a time and takes the next task while it has been idle for less
    than ``idle_s``; its proxy exits after that long without one. When several are idle, the one
    idle longest takes the task (JetStream serves waiting pull requests in order). A task no
    idle worker can take starts a new worker (a new Job from the ScaledJob).
    """
    worker = np.empty(len(tasks), dtype=np.int64)
    idle: list[tuple[float, int]] = []  # (idle since, worker), oldest first
    busy: list[tuple[float, int]] = []  # (done at, worker), soonest first
    started = 0
    for i in np.argsort(tasks.arrival, kind="stable"):
        arrival = tasks.arrival[i]
        while busy and busy[0][0] <= arrival:
            heapq.heappush(idle, heapq.heappop(busy))
        while idle and arrival - idle[0][0] >= idle_s:
            heapq.heappop(idle)  # that worker has exited
        if idle:
            _, worker[i] = heapq.heappop(idle)
        else:
            worker[i], started = started, started + 1
        heapq.heappush(busy, (float(tasks.done[i]), int(worker[i])))
    return worker


def worker_series(
    tasks: Tasks,
    timeline: Timeline,
    job_prefix: str,
    namespace: str,
    label: Labeler,
    rng: np.random.Generator,
    idle_s: float = WORKER_IDLE_S,
) -> list[Series]:
    """kube-state-metrics series of the worker Jobs (one pod each) the tasks ran on.

    Workers are shared as :func:`assign_workers` says: a pod lives from its first task's
    arrival until ``idle_s`` after its last task is done, so pods come and go with the
    load (new names every day) without one pod per task. Names are drawn for every task, as
    many draws as tasks, so the random stream the rest of the history is drawn from does not
    depend on how tasks share workers; a worker takes the names drawn for its first task.
    """
    jobs = random_suffix(rng, len(tasks))
    pods = random_suffix(rng, len(tasks))
    uids = [f"{int(rng.integers(0, 2**63)):016x}{i:016x}" for i in range(len(tasks))]
    worker = assign_workers(tasks, idle_s)
    order = np.argsort(tasks.arrival, kind="stable")
    first = order[np.unique(worker[order], return_index=True)[1]]  # each worker's first task
    last_done = np.full(len(first), -np.inf)
    np.maximum.at(last_done, worker, tasks.done)
    out: list[Series] = []
    for w, i in enumerate(first):
        job = f"{job_prefix}{tasks.agent_type}-{jobs[i]}"
        pod = f"{job}-{pods[i]}"
        h = uids[i]
        uid = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"
        exits = last_done[w] + idle_s
        running = _span(tasks.arrival[i], exits, timeline)
        lingering = _span(exits, exits + JOB_TTL_S, timeline)
        t = np.concatenate([running, lingering])
        v = np.concatenate([np.ones(len(running)), np.zeros(len(lingering))])
        name = "kube_job_status_active"
        out.append(Series(name, label(name, {"namespace": namespace, "job_name": job}), t, v))
        pod_labels = {"namespace": namespace, "pod": pod, "uid": uid}
        name = "kube_pod_container_status_restarts_total"
        for container in ("proxy", "agent"):
            labels = label(name, {**pod_labels, "container": container})
            out.append(Series(name, labels, running, np.zeros(len(running))))
        creating = _span(tasks.arrival[i], tasks.ready[i], timeline)
        if len(creating):
            name = "kube_pod_container_status_waiting_reason"
            labels = label(
                name, {**pod_labels, "container": "agent", "reason": "ContainerCreating"}
            )
            out.append(Series(name, labels, creating, np.ones(len(creating))))
    return out


def queue_depth(tasks: Tasks, timeline: Timeline) -> tuple[np.ndarray, np.ndarray]:
    """Pending (published, not yet picked up) and ack-pending (running) tasks at each scrape."""
    ones = np.ones(len(tasks))
    published = _cumulative_at_scrapes(tasks.arrival, ones, timeline)
    picked = _cumulative_at_scrapes(tasks.ready, ones, timeline)
    finished = _cumulative_at_scrapes(tasks.done, ones, timeline)
    return published - picked, picked - finished
