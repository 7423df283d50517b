"""Deterministic synthetic fleet history, written as OpenMetrics for ``promtool`` to backfill.

``write_history(settings, out_dir, end=...)`` writes ``out_dir/openmetrics/block-*.om`` (one file per
2-hour block) and ``out_dir/ground-truth.json``: the window, the agent profiles' true latency
quantiles, and every scripted incident (what, when, which labels its alert carries).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from obslib.catalogue.exporters import MetricCatalogue
from obslib.errors import ConfigError
from obslib.settings import Settings
from obslib.synth import exporter_series as ex
from obslib.synth.openmetrics import Series, write_blocks
from obslib.synth.scenario import DAY, Incident, Timeline, agent_profile, schedule
from obslib.synth.tasks import contract_series, queue_depth, simulate, worker_series

GROUND_TRUTH = "ground-truth.json"
OPENMETRICS_DIR = "openmetrics"
QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class GroundTruth:
    """What a synthetic history contains, as written to ``ground-truth.json``."""

    start: int
    end: int
    step: int
    seed: int
    agent_types: tuple[str, ...]
    incidents: tuple[Incident, ...]
    profiles: dict[str, Any]
    tasks: dict[str, int]

    def incident(self, incident_id: str) -> Incident:
        """The incident with ``incident_id``."""
        return next(i for i in self.incidents if i.id == incident_id)


def load_ground_truth(path: str | Path) -> GroundTruth:
    """Read a ground-truth file (or the one in directory ``path``)."""
    path = Path(path)
    path = path / GROUND_TRUTH if path.is_dir() else path
    data = json.loads(path.read_text())
    return GroundTruth(
        start=data["start"],
        end=data["end"],
        step=data["step"],
        seed=data["seed"],
        agent_types=tuple(data["agent_types"]),
        incidents=tuple(Incident(**i) for i in data["incidents"]),
        profiles=data["profiles"],
        tasks=data["tasks"],
    )


def _profiles_json(settings: Settings) -> dict[str, Any]:
    out = {}
    names = [f"p{round(q * 100)}" for q in QUANTILES]
    for agent in settings.agent_types:
        p = agent_profile(agent)
        out[agent] = {
            "tasks_per_minute": p.tasks_per_minute,
            "cold_start_s": {f"p{round(q * 100)}": p.cold_start.quantile(q) for q in QUANTILES},
            "work_s": {f"p{round(q * 100)}": p.work.quantile(q) for q in QUANTILES},
            "task_duration_s": dict(zip(names, p.task_duration_quantiles(QUANTILES), strict=True)),
            "failure_share": p.failure_share,
            "canceled_share": p.canceled_share,
            "error_rate": p.failure_share / (1 - p.canceled_share),
        }
    return out


def generate(
    settings: Settings, days: float, seed: int, end: int, step: int
) -> tuple[list[Series], GroundTruth]:
    """Every series of the history ending at ``end`` (unix seconds), and its ground truth.

    The end is always given: the same seed and end give the same history on any date.
    """
    if days < 1:
        raise ConfigError(f"a synthetic history needs at least 1 day, got {days}")
    timeline = Timeline(start=int(end - days * DAY), end=end, step=step)
    rng = np.random.default_rng(seed)
    incidents = {i.id: i for i in schedule(timeline, settings)}
    metrics = MetricCatalogue.for_keda(settings.keda_version, settings.keda_honor_labels)
    label = ex.labeler(metrics, settings)
    outage = incidents["orchestrator-down"]

    series: list[Series] = []
    queues: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    counts: dict[str, int] = {}
    for agent in settings.agent_types:
        regressions = [incidents["latency-regression"], incidents["slow-cold-starts"]]
        tasks = simulate(agent_profile(agent), timeline, regressions, rng)
        counts[agent] = len(tasks)
        series += contract_series(tasks, timeline, outage, label)
        series += worker_series(
            tasks, timeline, settings.worker_prefix, settings.namespace, label, rng
        )
        queues[agent] = queue_depth(tasks, timeline)
    series += ex.orchestrator_series(timeline, outage, settings, label)
    series += ex.surveyor_series(
        timeline,
        queues,
        incidents["nats-consumer-lag"],
        incidents["nats-stream-unhealthy"],
        settings,
        label,
    )
    series += ex.keda_series(timeline, queues, incidents["keda-scaler-error"], settings, label)
    series += ex.collector_series(timeline, incidents["otel-collector-down"], settings, label)
    series += ex.up_series(timeline, outage, settings, label)
    pods, pod_labels = ex.incident_pods(
        timeline,
        incidents["worker-image-pull"],
        incidents["worker-crashloop"],
        settings,
        label,
        rng,
    )
    series += pods

    firing = {
        **pod_labels,
        "nats-consumer-lag": {
            "stream": settings.nats_stream,
            "consumer_name": incidents["nats-consumer-lag"].agent_type,
        },
        "keda-scaler-error": {
            "scaledObject": f"{settings.worker_prefix}{incidents['keda-scaler-error'].agent_type}"
        },
        "otel-collector-down": {"job": settings.otel_collector_job},
        "orchestrator-down": {"deployment": settings.orchestrator_deployment},
        "nats-stream-unhealthy": {"stream": settings.nats_stream},
    }
    labelled = tuple(replace(i, labels=firing.get(i.id, {})) for i in incidents.values())
    truth = GroundTruth(
        start=timeline.start,
        end=timeline.end,
        step=step,
        seed=seed,
        agent_types=settings.agent_types,
        incidents=labelled,
        profiles=_profiles_json(settings),
        tasks=counts,
    )
    return series, truth


def write_history(
    settings: Settings,
    out_dir: Path,
    *,
    end: int,
    days: float = 14,
    seed: int = 1,
    step: int = 60,
) -> Path:
    """Write the history's OpenMetrics files and ground truth; returns the OpenMetrics directory.

    ``end`` is unix seconds; for a history that ends near now, pass
    ``scenario.default_end(clock.now_seconds())`` (data stays clear of the head block).
    """
    series, truth = generate(settings, days, seed, end, step)
    om_dir = Path(out_dir) / OPENMETRICS_DIR
    write_blocks(series, om_dir)
    payload = {
        "start": truth.start,
        "end": truth.end,
        "step": truth.step,
        "seed": truth.seed,
        "agent_types": list(truth.agent_types),
        "incidents": [i.to_json() for i in truth.incidents],
        "profiles": truth.profiles,
        "tasks": truth.tasks,
    }
    (Path(out_dir) / GROUND_TRUTH).write_text(json.dumps(payload, indent=2) + "\n")
    return om_dir


__all__ = ["GroundTruth", "generate", "load_ground_truth", "write_history"]
