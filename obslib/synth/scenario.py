"""The scenario of a synthetic history: its time grid, load, agent profiles and incidents.

Everything is deterministic for a seed. Incidents are scripted, one per Pass-1 alert plus a
latency regression in one agent type and a window of slow cold starts, and written to a ground-truth file so alert backtests and
notebooks can check what they find against what was put there.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np

from obslib.settings import Settings

HOUR = 3600
DAY = 86400
# Backfilled data must stay out of the newest 3 hours, which belong to Prometheus's head block.
HEAD_BLOCK_MARGIN_S = 3 * HOUR


@dataclass(frozen=True)
class Timeline:
    """A regular scrape grid ``start, start+step, ... < end`` (unix seconds)."""

    start: int
    end: int
    step: int = 60

    @cached_property
    def grid(self) -> np.ndarray:
        """Scrape timestamps (one shared read-only array: series slice views of it)."""
        grid = np.arange(self.start, self.end, self.step, dtype=np.int64)
        grid.flags.writeable = False
        return grid


def default_end(now: float) -> int:
    """End of a history written at ``now``: the hour before the head block's 3 hours."""
    return int((now - HEAD_BLOCK_MARGIN_S) // HOUR * HOUR)


def load_shape(grid: np.ndarray) -> np.ndarray:
    """Relative task arrival rate at each timestamp: busy working hours, quiet nights and weekends."""
    hours = (grid % DAY) / HOUR
    working = np.exp(-0.5 * ((hours - 14.0) / 3.5) ** 2)  # peak mid-afternoon UTC
    weekday = ((grid // DAY + 4) % 7) < 5  # 1970-01-01 was a Thursday
    return (0.25 + 1.5 * working) * np.where(weekday, 1.0, 0.45)


@dataclass(frozen=True)
class LatencyProfile:
    """A log-normal latency with an optional slow tail (a second log-normal mixed in)."""

    median_s: float
    sigma: float
    tail_share: float = 0.0
    tail_median_s: float = 0.0
    tail_sigma: float = 0.5

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` latencies in seconds."""
        values = rng.lognormal(math.log(self.median_s), self.sigma, n)
        if self.tail_share:
            tail = rng.random(n) < self.tail_share
            values[tail] = rng.lognormal(
                math.log(self.tail_median_s), self.tail_sigma, int(tail.sum())
            )
        return values

    def cdf(self, x: float) -> float:
        """Share of latencies at or below ``x`` seconds."""

        def lognormal_cdf(median: float, sigma: float) -> float:
            return 0.5 * (1 + math.erf((math.log(x) - math.log(median)) / (sigma * math.sqrt(2))))

        body = lognormal_cdf(self.median_s, self.sigma)
        if not self.tail_share:
            return body
        return (1 - self.tail_share) * body + self.tail_share * lognormal_cdf(
            self.tail_median_s, self.tail_sigma
        )

    def quantile(self, q: float) -> float:
        """The true ``q`` quantile, by bisection on the CDF."""
        lo, hi = 1e-3, 1e6
        for _ in range(200):
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if self.cdf(mid) < q else (lo, mid)
        return math.sqrt(lo * hi)


@dataclass(frozen=True)
class AgentProfile:
    """How one agent type behaves: load, latencies, outcomes."""

    agent_type: str
    tasks_per_minute: float
    cold_start: LatencyProfile
    work: LatencyProfile  # from agent ready to result received
    failure_share: float
    canceled_share: float

    def task_duration_quantiles(
        self, quantiles: Sequence[float], samples: int = 1_000_000
    ) -> list[float]:
        """True quantiles of task to artifact (cold start + work), by Monte Carlo.

        The draw has its own fixed seed: the truth belongs to the profile, not to a history.
        """
        rng = np.random.default_rng(0)
        total = self.cold_start.sample(rng, samples) + self.work.sample(rng, samples)
        return [float(v) for v in np.quantile(total, list(quantiles))]


_KNOWN_PROFILES = {
    "copilot": (
        0.25,
        LatencyProfile(40, 0.55, 0.03, 420, 0.45),
        LatencyProfile(150, 0.7),
        0.02,
        0.010,
    ),
    "claude": (
        0.15,
        LatencyProfile(55, 0.50, 0.03, 480, 0.45),
        LatencyProfile(260, 0.65),
        0.03,
        0.015,
    ),
    "codex": (
        0.10,
        LatencyProfile(75, 0.60, 0.04, 540, 0.45),
        LatencyProfile(380, 0.75),
        0.05,
        0.010,
    ),
}


def agent_profile(agent_type: str) -> AgentProfile:
    """The profile of a default agent type, or a stable one derived from the name."""
    if agent_type in _KNOWN_PROFILES:
        rate, cold, work, failure, canceled = _KNOWN_PROFILES[agent_type]
        return AgentProfile(agent_type, rate, cold, work, failure, canceled)
    h = int(hashlib.sha256(agent_type.encode()).hexdigest(), 16)
    scale = 1 + (h % 100) / 100  # 1.0 .. 2.0
    return AgentProfile(
        agent_type,
        0.1 + (h % 7) / 50,
        LatencyProfile(40 * scale, 0.55, 0.03, 450, 0.45),
        LatencyProfile(200 * scale, 0.7),
        0.02 + (h % 5) / 100,
        0.01,
    )


@dataclass(frozen=True)
class Incident:
    """A scripted fault in the history, and how to recognise its alert."""

    id: str
    kind: str  # "alert", "latency-regression" or "cold-start-regression"
    alert: str  # the alert it must fire ("" for a regression)
    start: int
    end: int
    agent_type: str = ""
    labels: dict[str, str] = field(default_factory=dict)  # labels the firing alert carries
    detail: str = ""
    factor: float = 1.0  # latency multiplier of a regression

    def to_json(self) -> dict[str, object]:
        """JSON-ready form for the ground-truth file."""
        return asdict(self)


# Alert incidents: (id, alert, minutes it lasts, which agent type it hits by index).
_ALERT_INCIDENTS = (
    ("worker-image-pull", "WorkerImagePullBackOff", 20, 0),
    ("worker-crashloop", "WorkerCrashLoopBackOff", 40, -1),
    ("nats-consumer-lag", "NATSConsumerLagUnbounded", 60, 1),
    ("keda-scaler-error", "KEDAScalerError", 30, 0),
    ("otel-collector-down", "OTelCollectorDown", 20, 0),
    ("orchestrator-down", "OrchestratorDown", 15, 0),
    ("nats-stream-unhealthy", "NATSStreamUnhealthy", 30, 0),
)
REGRESSION_FACTOR = 2.2
REGRESSION_FROM = 0.7  # share of the window after which the regression holds
# A bad deploy: for 3 hours every worker's cold start takes about half an hour (Phase 5 AC1's
# 1500 s limit is broken), between the alert incidents so it trips none of them.
SLOW_COLD_START_AT = 0.355
SLOW_COLD_START = LatencyProfile(1900, 0.25)


def schedule(timeline: Timeline, settings: Settings) -> list[Incident]:
    """Spread the incidents over the window, far enough apart not to overlap."""
    span = timeline.end - timeline.start
    incidents = []
    types = settings.agent_types
    for i, (iid, alert, minutes, which) in enumerate(_ALERT_INCIDENTS):
        start = timeline.start + int(span * (0.08 + 0.8 * i / len(_ALERT_INCIDENTS)))
        start -= start % timeline.step
        incidents.append(
            Incident(
                id=iid,
                kind="alert",
                alert=alert,
                start=start,
                end=start + minutes * 60,
                agent_type=types[which % len(types)],
            )
        )
    slow_start = timeline.start + int(span * SLOW_COLD_START_AT)
    slow_start -= slow_start % timeline.step
    incidents.append(
        Incident(
            id="slow-cold-starts",
            kind="cold-start-regression",
            alert="",
            start=slow_start,
            end=slow_start + 3 * HOUR,
            detail=f"cold starts of every agent type take ~{SLOW_COLD_START.median_s:g} s (AC1 fails)",
        )
    )
    regression_start = timeline.start + int(span * REGRESSION_FROM)
    incidents.append(
        Incident(
            id="latency-regression",
            kind="latency-regression",
            alert="",
            start=regression_start - regression_start % timeline.step,
            end=timeline.end,
            agent_type=types[1 % len(types)],
            detail="task-to-artifact latency multiplied",
            factor=REGRESSION_FACTOR,
        )
    )
    return incidents
