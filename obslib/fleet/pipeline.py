"""``run_fleet``: the whole reference pipeline for one batch of tasks.

The pieces run on one asyncio loop (NATS, the agent pipes), with the OpenTelemetry batch
processors exporting on their own threads: a nats-server (started here unless ``nats_url``
is given), the orchestrator and its collector, one worker proxy per agent type with one agent
CLI process each. At the end every provider is flushed and shut down, each agent process
reports what it exported, and the run's ground truth is written to ``<out_dir>/fleet-run.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats

from obslib.catalogue.hops import SERVICE_AGENT_PREFIX, SERVICE_ORCHESTRATOR, SERVICE_PROXY
from obslib.errors import ConfigError
from obslib.fleet.agent_process import AgentProcess, AgentReport
from obslib.fleet.envelope import PlannedTask, plan_tasks
from obslib.fleet.faults import FaultBook, FaultPlan
from obslib.fleet.metrics import FleetMetrics
from obslib.fleet.nats_server import NatsServer, ensure_streams
from obslib.fleet.orchestrator import Orchestrator, TaskOutcome
from obslib.fleet.proxy import Worker
from obslib.fleet.telemetry import DEFAULT_QUEUE_SIZE, ServiceTelemetry
from obslib.settings import Settings

RUN_FILE = "fleet-run.json"


@dataclass(frozen=True)
class FleetRun:
    """What one run did: the ground truth an audit of its telemetry is checked against.

    Attributes:
        task_ids: task ids in submission order.
        agent_types: task id -> agent type.
        expected_trace_ids: task id -> trace id of its ingress root span.
        envelope_trace_ids: task id -> ``metadata.trace_id`` of its result ("" if none came).
        states: task id -> A2A state of its result ("" if none came in time).
        faults: task id -> names of the faults applied to it (empty tuple: none).
        fault_plan: the plan the faults were drawn from.
        spans_exported: service.name -> spans its SDK exporter delivered successfully.
        spans_lost: service.name -> spans that ended but were never exported (a full batch
            queue, a failed export); withheld spans of the span_dropped fault are not lost.
        duration_s: wall time of the run.
        metrics_url: the ``/metrics`` URL, when the caller's metrics server outlives the run.
        out_dir: where logs, the metrics snapshot and ``fleet-run.json`` were written.
        seed: the seed of prompts and fault draws.
    """

    task_ids: tuple[str, ...]
    agent_types: Mapping[str, str]
    expected_trace_ids: Mapping[str, str]
    envelope_trace_ids: Mapping[str, str]
    states: Mapping[str, str]
    faults: Mapping[str, tuple[str, ...]]
    fault_plan: FaultPlan
    spans_exported: Mapping[str, int]
    spans_lost: Mapping[str, int]
    duration_s: float
    metrics_url: str | None
    out_dir: Path
    seed: int
    agent_reports: Mapping[str, AgentReport] = field(default_factory=dict)

    @property
    def lost(self) -> tuple[str, ...]:
        """Tasks whose result never reached the collector."""
        return tuple(t for t in self.task_ids if not self.states.get(t))

    def tasks_with(self, fault: str) -> tuple[str, ...]:
        """Tasks that got ``fault``."""
        return tuple(t for t in self.task_ids if fault in self.faults.get(t, ()))

    def describe(self) -> str:
        """A few lines for a person: tasks, states, faults, spans, where the output went."""
        states: dict[str, int] = {}
        for task_id in self.task_ids:
            state = self.states.get(task_id) or "no result"
            states[state] = states.get(state, 0) + 1
        lines = [
            f"{len(self.task_ids)} task(s) in {self.duration_s:.1f} s: "
            + ", ".join(f"{n} {state}" for state, n in sorted(states.items())),
            "spans exported: "
            + ", ".join(f"{service} {n}" for service, n in sorted(self.spans_exported.items())),
            f"spans lost before export: {sum(self.spans_lost.values())}",
        ]
        for name in self.fault_plan.shares():
            lines.append(f"fault {name}: {len(self.tasks_with(name))} task(s)")
        lines.append(f"ground truth, logs and metrics snapshot: {self.out_dir}")
        if self.metrics_url:
            lines.append(f"metrics: {self.metrics_url}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``fleet-run.json`` holds)."""
        return {
            "task_ids": list(self.task_ids),
            "agent_types": dict(self.agent_types),
            "expected_trace_ids": dict(self.expected_trace_ids),
            "envelope_trace_ids": dict(self.envelope_trace_ids),
            "states": dict(self.states),
            "faults": {k: list(v) for k, v in self.faults.items()},
            "fault_plan": self.fault_plan.to_dict(),
            "spans_exported": dict(self.spans_exported),
            "spans_lost": dict(self.spans_lost),
            "duration_s": self.duration_s,
            "metrics_url": self.metrics_url,
            "seed": self.seed,
        }


def run_fleet(
    settings: Settings,
    *,
    tasks: int,
    collector_endpoint: str,
    out_dir: Path,
    concurrency: int,
    faults: FaultPlan,
    seed: int,
    metrics: FleetMetrics | None = None,
    nats_url: str | None = None,
    task_timeout_s: float = 60.0,
) -> FleetRun:
    """Run ``tasks`` tasks through the reference pipeline, exporting to ``collector_endpoint``.

    Args:
        settings: release settings (agent types, namespace, task stream and subjects).
        tasks: how many tasks; they are spread round-robin over ``settings.agent_types``.
        collector_endpoint: OTLP/HTTP base URL (spans to ``/v1/traces``, logs to ``/v1/logs``).
        out_dir: receives ``logs/<service>.jsonl``, ``metrics.prom`` and ``fleet-run.json``.
        concurrency: tasks in flight at once (and per worker).
        faults: the faults to inject and their shares.
        seed: seeds prompts and fault draws.
        metrics: metrics the caller owns, e.g. served on ``/metrics`` for Prometheus to scrape
            during and after the run (its URL goes into the run); None: a private registry
            that is not served. Either way the final exposition goes to ``metrics.prom``.
        nats_url: an already running nats-server with JetStream; None starts one here.
        task_timeout_s: how long the orchestrator waits for each task's result.
    """
    if tasks < 1 or concurrency < 1:
        raise ConfigError(
            f"fleet: tasks and concurrency must be at least 1, got {tasks}, {concurrency}."
        )
    started = time.monotonic()
    out_dir = out_dir.resolve()
    (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    plan = plan_tasks(settings.agent_types, tasks, seed)
    agent_of = {t.task_id: t.agent_type for t in plan}
    book = FaultBook(plan=faults, assigned=faults.assign(agent_of, seed), agent_types=agent_of)
    own_metrics = metrics is None
    fleet_metrics = metrics if metrics is not None else FleetMetrics(settings.agent_types)
    spec = _RunSpec(
        settings,
        plan,
        book,
        fleet_metrics,
        collector_endpoint,
        out_dir,
        concurrency,
        task_timeout_s,
    )
    with contextlib.ExitStack() as stack:
        url = nats_url or stack.enter_context(NatsServer()).url
        outcomes, reports, exported, lost = _run_services(spec, url)
    fleet_metrics.write_snapshot(out_dir / "metrics.prom")
    for report in reports.values():
        exported[report.service] = report.spans_exported
        lost[report.service] = report.spans_lost
    run = FleetRun(
        task_ids=tuple(t.task_id for t in plan),
        agent_types=agent_of,
        expected_trace_ids={o.task_id: o.trace_id for o in outcomes},
        envelope_trace_ids={o.task_id: o.envelope_trace_id for o in outcomes},
        states={o.task_id: o.state for o in outcomes},
        faults=dict(book.assigned),
        fault_plan=faults,
        spans_exported=exported,
        spans_lost=lost,
        duration_s=time.monotonic() - started,
        metrics_url=None if own_metrics else fleet_metrics.url,
        out_dir=out_dir,
        seed=seed,
        agent_reports=reports,
    )
    (out_dir / RUN_FILE).write_text(json.dumps(run.to_dict(), indent=2) + "\n")
    return run


@dataclass(frozen=True)
class _RunSpec:
    """Everything the services of one run share."""

    settings: Settings
    plan: list[PlannedTask]
    book: FaultBook
    metrics: FleetMetrics
    endpoint: str
    out_dir: Path
    concurrency: int
    task_timeout_s: float


def queue_size(concurrency: int) -> int:
    """Batch-queue size for ``concurrency`` tasks in flight.

    A service ends up to three spans per task within a second when every task starts at once,
    while the exporter thread competes for the same interpreter: the SDK's default 2,048 dropped
    spans above ~680 tasks in flight (benchmarks/README.md). Eight slots per task leave margin.
    """
    return max(DEFAULT_QUEUE_SIZE, 8 * concurrency)


def _run_services(
    spec: _RunSpec, nats_url: str
) -> tuple[list[TaskOutcome], dict[str, AgentReport], dict[str, int], dict[str, int]]:
    """Run the asyncio part with the in-process services' telemetry, then flush it."""
    services: dict[str, ServiceTelemetry] = {}
    try:
        for name in (SERVICE_ORCHESTRATOR, SERVICE_PROXY):
            services[name] = ServiceTelemetry(
                name,
                endpoint=spec.endpoint,
                namespace=spec.settings.namespace,
                log_path=spec.out_dir / "logs" / f"{name}.jsonl",
                faults=spec.book.span_faults(name),
                queue_size=queue_size(spec.concurrency),
            )
        outcomes, reports = asyncio.run(_drive(spec, nats_url, services))
    finally:
        for telemetry in services.values():
            telemetry.shutdown()  # flushes: every span ended so far is exported here
    exported = {name: tel.spans_exported for name, tel in services.items()}
    lost = {name: tel.spans_lost for name, tel in services.items()}
    return outcomes, reports, exported, lost


async def _drive(
    spec: _RunSpec, nats_url: str, services: dict[str, ServiceTelemetry]
) -> tuple[list[TaskOutcome], dict[str, AgentReport]]:
    settings = spec.settings
    nc = await nats.connect(nats_url, name="obslib-fleet", max_reconnect_attempts=3)
    agents: list[AgentProcess] = []
    orchestrator: Orchestrator | None = None
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings.nats_stream)
        orchestrator = Orchestrator(
            nc=nc,
            js=js,
            settings=settings,
            telemetry=services[SERVICE_ORCHESTRATOR],
            faults=spec.book,
            metrics=spec.metrics,
        )
        await orchestrator.start()
        for agent_type in settings.agent_types:
            agents.append(await _spawn_agent(spec, agent_type))
        await asyncio.gather(*(agent.initialize() for agent in agents))
        workers = [
            Worker(
                agent.agent_type,
                js=js,
                stream=settings.nats_stream,
                task_subject=settings.task_subject(agent.agent_type),
                telemetry=services[SERVICE_PROXY],
                agent=agent,
                faults=spec.book,
                metrics=spec.metrics,
                concurrency=spec.concurrency,
                cwd=str(spec.out_dir),
            )
            for agent in agents
        ]
        for worker in workers:
            await worker.subscribe()
        stop = asyncio.Event()
        running = [asyncio.get_running_loop().create_task(w.run(stop)) for w in workers]
        slots = asyncio.Semaphore(spec.concurrency)
        submit = orchestrator.submit

        async def one(task: PlannedTask) -> TaskOutcome:
            async with slots:
                return await submit(task, spec.task_timeout_s)

        try:
            outcomes = await asyncio.gather(*(one(task) for task in spec.plan))
        finally:
            stop.set()
            await asyncio.gather(*running, return_exceptions=True)
        # Closing an agent asks it to flush its spans and report what it exported, then ends it.
        closing, agents = agents, []
        closed = await asyncio.gather(*(a.close() for a in closing), return_exceptions=True)
        reports = {}
        for agent, report in zip(closing, closed, strict=True):
            if isinstance(report, BaseException):
                raise report
            reports[agent.agent_type] = report
        return list(outcomes), reports
    finally:
        for agent in agents:  # left only when something failed: do not leave processes behind
            await agent.abort()
        if orchestrator is not None:
            await orchestrator.close()
        await nc.close()


async def _spawn_agent(spec: _RunSpec, agent_type: str) -> AgentProcess:
    service = f"{SERVICE_AGENT_PREFIX}{agent_type}"
    faults = spec.book.span_faults(service)
    faults_file = None
    if faults:
        faults_file = spec.out_dir / "faults" / f"{service}.json"
        faults_file.parent.mkdir(parents=True, exist_ok=True)
        faults_file.write_text(faults.to_json())
    return await AgentProcess.spawn(
        agent_type,
        otlp_endpoint=spec.endpoint,
        namespace=spec.settings.namespace,
        log_dir=spec.out_dir / "logs",
        faults_file=faults_file,
        stderr_path=spec.out_dir / "stderr" / f"{service}.log",
        extra_args=("--queue-size", str(queue_size(spec.concurrency))),
    )
