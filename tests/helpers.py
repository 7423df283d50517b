"""Helpers several test modules share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from obslib.collector import OtlpCollector
from obslib.fleet import FaultPlan, FleetRun, run_fleet
from obslib.settings import Settings, load_settings
from obslib.synth import GroundTruth

# After an incident ends, backfilled series have no staleness marker, so instant queries still
# see their last sample for Prometheus's 5-minute lookback: allow that much tail.
LOOKBACK_S = 300


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


def _utc(seconds: int) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def alerts_missed(episodes: pd.DataFrame, truth: GroundTruth, catalogue) -> list[str]:
    """Alert incidents of ``truth`` whose alert did not fire inside them with their labels."""
    problems = []
    for incident in (i for i in truth.incidents if i.kind == "alert"):
        alert = catalogue.alert(incident.alert)
        fired = episodes[(episodes.alert == alert.name) & episodes.fired]
        inside = fired[
            (fired.firing_at >= _utc(incident.start))
            & (fired.firing_at <= _utc(incident.end + LOOKBACK_S))
        ]
        if inside.empty:
            problems.append(f"{alert.name} did not fire during {incident.id}")
        problems += [
            f"{alert.name} fired without {incident.labels}: {labels}"
            for labels in inside["labels"]
            if not incident.labels.items() <= labels.items()
        ]
    return problems


def alerts_outside_incidents(episodes: pd.DataFrame, truth: GroundTruth) -> list[str]:
    """Fired episodes that began before, or ended well after, every incident of their alert."""
    windows: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] = {}
    for incident in (i for i in truth.incidents if i.kind == "alert"):
        windows.setdefault(incident.alert, []).append(
            (_utc(incident.start), _utc(incident.end + LOOKBACK_S))
        )
    return [
        f"{row.alert} fired outside its incident: {row.series} {row.firing_at}"
        for row in episodes[episodes.fired].itertuples()
        if not any(
            lo <= row.pending_at and row.resolved_at <= hi + pd.Timedelta("10min")
            for lo, hi in windows.get(row.alert, [])
        )
    ]
