"""The embedded default: the backends reports use when no cluster is configured.

Prometheus: unless ``OBSLIB_PROMETHEUS_URL`` is set, the local stack (a real Prometheus over 14
days of synthetic history, started or reused), which also scrapes the reference pipeline's
``/metrics``. Traces and logs: unless ``OBSLIB_TEMPO_URL`` is set, one run of the reference
pipeline exporting to the test OTLP collector, whose files the notebooks read. The run also
provides the Phase-5 sentinel task and its trace id.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from obslib import clock
from obslib.settings import Settings
from obslib.sources.endpoint import is_configured

log = logging.getLogger(__name__)
FLEET_METRICS_PORT_ENV = "OBSLIB_FLEET_METRICS_PORT"
FLEET_METRICS_PORT = 19091
HISTORY_DAYS = 14
# Faults injected into the embedded run, so the audit report shows what a break looks like;
# the audit must find exactly these tasks (the fleet run's ground truth says which).
DEMO_FAULTS = ("stdio_context=0.05", "nats_headers=0.05", "envelope_trace_id=0.03")


@dataclass
class ReportContext:
    """Which backends the reports read, and the parameters that follow from them."""

    prometheus: str  # "configured" or "embedded"
    traces: str  # "tempo" or "otlp-files"
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def for_notebook(self, name: str) -> dict[str, Any]:
        """Default parameters of notebook ``name`` (the caller's own override them)."""
        return dict(self.parameters.get(name, {}))


def _fleet_port() -> int:
    return int(os.environ.get(FLEET_METRICS_PORT_ENV, FLEET_METRICS_PORT))


def _windows(
    ctx: ReportContext, history_start: pd.Timestamp, history_end: pd.Timestamp, now: pd.Timestamp
) -> None:
    recent = {"start": (history_end - pd.Timedelta(hours=21)).isoformat(), "end": now.isoformat()}
    whole = {"start": history_start.isoformat(), "end": history_end.isoformat()}
    for name in ("fleet_overview", "observability_crosscheck", "phase5_acceptance"):
        ctx.parameters.setdefault(name, {}).update(recent)
    ctx.parameters.setdefault("slo_baseline", {}).update(whole)


def _synthetic_outputs(ctx: ReportContext, out_dir: Path) -> None:
    # Proposals drawn from synthetic history must not land in rules/proposed/.
    ctx.parameters.setdefault("slo_baseline", {})["proposed_rules_dir"] = str(
        out_dir / "proposed-rules"
    )


@contextmanager
def report_backends(
    settings: Settings,
    out_dir: Path,
    *,
    tasks: int = 60,
    seed: int = 1,
    faults: tuple[str, ...] = DEMO_FAULTS,
) -> Iterator[ReportContext]:
    """Bring up what is not configured, yield the report context, and stop what was started."""
    ctx = ReportContext(
        prometheus="configured" if is_configured("prometheus") else "embedded",
        traces="tempo" if is_configured("tempo") else "otlp-files",
    )
    with ExitStack() as stack:
        metrics = None
        if ctx.prometheus == "embedded" or ctx.traces == "otlp-files":
            from obslib.fleet import FleetMetrics

            metrics = stack.enter_context(FleetMetrics(settings.agent_types))
        if ctx.prometheus == "embedded":
            _start_stack(settings, ctx, metrics)
            _synthetic_outputs(ctx, out_dir)
        if ctx.traces == "otlp-files":
            _run_fleet(settings, out_dir, ctx, metrics, tasks, seed, faults, stack)
        yield ctx


def _start_stack(settings: Settings, ctx: ReportContext, metrics: Any) -> None:
    from obslib.stack import LocalStack
    from obslib.synth import load_ground_truth, write_history
    from obslib.synth.scenario import default_end

    port = _fleet_port()
    metrics.serve(port=port)
    stack = LocalStack(scrape_targets=[f"127.0.0.1:{port}"])
    now = clock.now()
    end = default_end(now.timestamp())
    status = stack.up(
        history=lambda work_dir: write_history(settings, work_dir, end=end, days=HISTORY_DAYS)
    )
    ctx.notes.append(f"Prometheus: the embedded local stack at {status.url} (synthetic history).")
    truth_path = stack.history_dir / "ground-truth.json"
    if truth_path.exists():
        truth = load_ground_truth(truth_path)
        _windows(
            ctx,
            pd.Timestamp(truth.start, unit="s", tz="UTC"),
            pd.Timestamp(truth.end, unit="s", tz="UTC"),
            now,
        )


def _run_fleet(
    settings: Settings,
    out_dir: Path,
    ctx: ReportContext,
    metrics: Any,
    tasks: int,
    seed: int,
    faults: tuple[str, ...],
    stack: ExitStack,
) -> None:
    from obslib.collector import OtlpCollector
    from obslib.fleet import FaultPlan, run_fleet

    telemetry = out_dir / "telemetry"
    shutil.rmtree(telemetry, ignore_errors=True)  # the collector appends: start from an empty run
    collector = stack.enter_context(OtlpCollector(out_dir=telemetry / "collector"))
    run = run_fleet(
        settings,
        tasks=tasks,
        collector_endpoint=collector.endpoint,
        out_dir=telemetry / "fleet",
        concurrency=min(tasks, 20),
        faults=FaultPlan.parse(list(faults)),
        seed=seed,
        metrics=metrics,
    )
    collector.wait_for_spans(sum(run.spans_exported.values()), timeout_s=30)
    clean = [t for t in run.task_ids if not run.faults.get(t) and run.states.get(t)]
    sentinel = clean[0] if clean else ""
    ctx.notes.append(
        f"Traces and logs: the reference pipeline ran {len(run.task_ids)} tasks "
        f"(faults injected: {', '.join(faults) or 'none'}) into the test OTLP collector."
    )
    files = {"traces_path": str(collector.traces_path), "logs_path": str(collector.logs_path)}
    fleet_run = str(telemetry / "fleet" / "fleet-run.json")
    ctx.parameters.setdefault("trace_audit", {}).update({**files, "fleet_run": fleet_run})
    ctx.parameters.setdefault("phase5_acceptance", {}).update(
        {
            "traces_path": files["traces_path"],
            "sentinel_task_id": sentinel,
            "trace_id": run.expected_trace_ids.get(sentinel, ""),
        }
    )
