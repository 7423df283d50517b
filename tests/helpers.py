"""Helpers several test modules share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from obslib.collector import OtlpCollector
from obslib.fleet import FaultPlan, FleetRun, run_fleet
from obslib.settings import Settings, load_settings


@dataclass(frozen=True)
class CollectedRun:
    """A reference-pipeline run and everything the test collector received from it."""

    fleet: FleetRun
    spans: pd.DataFrame
    traces_path: Path
    logs_path: Path
    fleet_run_path: Path


def collected_run(
    out_dir: Path,
    tasks: int,
    faults: FaultPlan | None = None,
    *,
    seed: int = 1,
    concurrency: int | None = None,
    settings: Settings | None = None,
) -> CollectedRun:
    """Run the reference pipeline into a test collector (stopped on return) and collect it all."""
    with OtlpCollector(out_dir=out_dir / "collector") as collector:
        fleet = run_fleet(
            settings or load_settings(None),
            tasks=tasks,
            collector_endpoint=collector.endpoint,
            out_dir=out_dir / "fleet",
            concurrency=concurrency or tasks,
            faults=faults or FaultPlan(),
            seed=seed,
        )
        assert collector.wait_for_spans(sum(fleet.spans_exported.values()), timeout_s=30)
        return CollectedRun(
            fleet,
            collector.spans_frame(),
            collector.traces_path,
            collector.logs_path,
            out_dir / "fleet" / "fleet-run.json",
        )
