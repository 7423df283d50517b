"""The embedded default for a headless run of every report: what to bring up, what to pass.

Prometheus: unless ``OBSLIB_PROMETHEUS_URL`` is set, the local stack (a real Prometheus over 14
days of synthetic history, started or reused), which also scrapes the reference pipeline's
``/metrics``. Traces and logs: unless ``OBSLIB_TEMPO_URL`` is set, a fresh run of the reference
pipeline exporting to the test OTLP collector (kept where :mod:`obslib.reports.inputs` finds
it, so notebooks opened later read the same run). The run also provides the Phase-5 sentinel
task and its trace id. Which backend is which is decided in :mod:`obslib.reports.inputs`; this
module only starts what a whole run needs and hands the notebooks explicit parameters.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from obslib import clock
from obslib.reports import inputs
from obslib.settings import Settings
from obslib.sources.endpoint import is_configured

log = logging.getLogger(__name__)
FLEET_METRICS_PORT_ENV = "OBSLIB_FLEET_METRICS_PORT"
FLEET_METRICS_PORT = 19091


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
def report_backends(settings: Settings, out_dir: Path) -> Iterator[ReportContext]:
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
            _run_fleet(settings, ctx, metrics)
        yield ctx


def _start_stack(settings: Settings, ctx: ReportContext, metrics: Any) -> None:
    from obslib.synth import load_ground_truth

    port = _fleet_port()
    metrics.serve(port=port)
    stack = inputs.embedded_stack(settings, scrape_targets=[f"127.0.0.1:{port}"])
    ctx.notes.append(
        f"Prometheus: the embedded local stack at {stack.status().url} (synthetic history)."
    )
    truth_path = stack.history_dir / "ground-truth.json"
    if truth_path.exists():
        truth = load_ground_truth(truth_path)
        _windows(
            ctx,
            pd.Timestamp(truth.start, unit="s", tz="UTC"),
            pd.Timestamp(truth.end, unit="s", tz="UTC"),
            clock.now(),
        )


def _run_fleet(settings: Settings, ctx: ReportContext, metrics: Any) -> None:
    run = inputs.reference_run(settings, fresh=True, metrics=metrics)
    truth = run.ground_truth
    sentinel, trace_id = run.sentinel()
    ctx.notes.append(
        f"Traces and logs: the reference pipeline ran {len(truth['task_ids'])} tasks (faults "
        f"injected: {', '.join(inputs.DEMO_FAULTS) or 'none'}) into the test OTLP collector."
    )
    files = {"traces_path": str(run.traces_path), "logs_path": str(run.logs_path)}
    ctx.parameters.setdefault("trace_audit", {}).update(
        {**files, "fleet_run": str(run.fleet_run_path)}
    )
    ctx.parameters.setdefault("phase5_acceptance", {}).update(
        {"traces_path": files["traces_path"], "sentinel_task_id": sentinel, "trace_id": trace_id}
    )
