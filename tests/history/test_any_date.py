"""Date independence: the history-dependent analyses hold at every anchor of the pinned world.

Eight histories (``tests/world.ANCHORS``: different hours, weekdays and weekends, month ends),
each with its own seed, share one real Prometheus. At each anchor the alert replay, the Phase-5
AC1 windows, the SLO baseline and the stability flags are run as the notebooks run them, and
each claim is only what the analysis promises:

* deterministic claims (an alert fires in its incident and never outside, AC1's verdicts on
  windows built for them, evidence labels) hold at every anchor;
* a 99% interval may miss one time in a hundred, so its misses across all anchors are bounded by
  the binomial tail of a true 99% interval, not forbidden;
* a flag needs a move of at least ``Z`` standard errors, so false flags are bounded the same way,
  while the scripted regression (2.2 times slower) is flagged at every anchor.
"""

from __future__ import annotations

import itertools
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from obslib.analysis.acceptance import check_ac1
from obslib.analysis.slo.alert_replay import replay_alerts
from obslib.analysis.slo.baseline import QUANTILES, THIN_TAIL, summarise
from obslib.analysis.slo.counts import LATENCY_SLIS, bucket_counts, task_counts
from obslib.analysis.slo.stability import stability
from obslib.emit import RULE_FILE
from obslib.settings import load_settings
from obslib.sources.prometheus import PrometheusSource
from obslib.stack import LocalStack
from obslib.synth import GroundTruth, load_ground_truth, write_history
from obslib.verdict import Verdict
from tests.conftest import REPO, free_port
from tests.helpers import alerts_missed, alerts_outside_incidents
from tests.world import ANCHOR_SEEDS, ANCHORS, HISTORY_DAYS

pytestmark = pytest.mark.slow
HOUR = 3600


def binomial_bound(trials: int, p: float, alpha: float = 1e-3) -> int:
    """The smallest k with P(X > k) < alpha for X ~ Binomial(trials, p)."""
    tail, k = 1.0, -1
    while tail >= alpha:
        k += 1
        tail -= math.comb(trials, k) * p**k * (1 - p) ** (trials - k)
    return k


def test_binomial_bound():
    assert binomial_bound(100, 0.0) == 0
    assert binomial_bound(10, 0.5, alpha=0.5) == 5  # P(X > 5) = 0.377
    assert binomial_bound(144, 0.01) == 6


@pytest.fixture(scope="module")
def anchored(tmp_path_factory):
    """One Prometheus over the eight anchors' histories, and each history's ground truth."""
    assert all(b - a > (HISTORY_DAYS + 1) * 86400 for a, b in itertools.pairwise(ANCHORS))
    settings = load_settings(None)

    def histories(work_dir: Path) -> Path:
        om_dir = work_dir / "openmetrics"
        om_dir.mkdir()
        for i, (end, seed) in enumerate(zip(ANCHORS, ANCHOR_SEEDS, strict=True)):
            own = write_history(settings, work_dir / f"h{i}", end=end, days=HISTORY_DAYS, seed=seed)
            for block in own.iterdir():  # block files are named by their start: none collide
                block.rename(om_dir / block.name)
            shutil.rmtree(own)
        return om_dir

    stack = LocalStack(
        data_dir=tmp_path_factory.mktemp("anchors"),
        port=free_port(),
        rule_files=[REPO / RULE_FILE],
    )
    try:
        stack.up(history=histories)
        truths = [load_ground_truth(stack.history_dir / f"h{i}") for i in range(len(ANCHORS))]
        yield PrometheusSource(stack.endpoint(), retries=1), truths
    finally:
        stack.down()


def clean_window(truth: GroundTruth) -> tuple[int, int]:
    """From the history's start to the first incident that changes latencies."""
    return truth.start, min(i.start for i in truth.incidents if i.kind != "alert")


def test_every_alert_fires_in_its_incident_and_never_outside_at_every_anchor(anchored, catalogue):
    source, truths = anchored
    for truth in truths:
        episodes = replay_alerts(source, catalogue.alerts, truth.start, truth.end)
        assert alerts_missed(episodes, truth, catalogue) == [], truth.end
        assert alerts_outside_incidents(episodes, truth) == [], truth.end


def test_ac1_verdicts_at_every_anchor(anchored, catalogue):
    source, truths = anchored
    for truth in truths:
        slow = truth.incident("slow-cold-starts")
        windows = {
            Verdict.PASS: (slow.start - 10 * HOUR, slow.start - 4 * HOUR),
            Verdict.FAIL: (slow.start, slow.end + HOUR),
            Verdict.INCONCLUSIVE: (truth.start - 8 * HOUR, truth.start - 2 * HOUR),
        }
        for expected, window in windows.items():
            result = check_ac1(source, *window, catalogue=catalogue)
            assert result.verdict is expected, (truth.end, expected, result.explanation)


@pytest.fixture(scope="module")
def baselines(anchored, catalogue):
    source, truths = anchored
    settings = catalogue.settings
    return [
        summarise(
            bucket_counts(source, settings, *clean_window(t)),
            task_counts(source, settings, *clean_window(t)),
        )
        for t in truths
    ]


def test_baseline_intervals_cover_the_truth_as_often_as_they_promise(anchored, baselines):
    _, truths = anchored
    checks = misses = 0
    missed = []
    for truth, baseline in zip(truths, baselines, strict=True):
        for row in baseline[baseline.sli.isin(list(LATENCY_SLIS))].itertuples():
            true = truth.profiles[row.agent_type][f"{row.sli}_s"]
            for q in QUANTILES:
                name = f"p{round(q * 100)}"
                lower, upper = getattr(row, f"{name}_ci_lower"), getattr(row, f"{name}_ci_upper")
                checks += 1
                if not lower <= true[name] <= upper:
                    misses += 1
                    missed.append((truth.end, row.agent_type, row.sli, name))
                # Inside one bucket, the interval also places the truth in the estimate's bucket.
                bucket = getattr(row, f"{name}_lower"), getattr(row, f"{name}_upper")
                if bucket[0] < lower and upper <= bucket[1] and lower <= true[name] <= upper:
                    assert bucket[0] < true[name] <= bucket[1]
        for row in baseline[baseline.sli == "error_rate"].itertuples():
            checks += 1
            p = truth.profiles[row.agent_type]["error_rate"]
            if not row.error_rate_ci_lower <= p <= row.error_rate_ci_upper:
                misses += 1
                missed.append((truth.end, row.agent_type, "error_rate"))
    assert checks == len(truths) * len(truths[0].agent_types) * (2 * len(QUANTILES) + 1)
    assert misses <= binomial_bound(checks, 0.01), missed


def test_thin_evidence_is_reported_as_such_at_every_anchor(baselines):
    for baseline in baselines:
        latency = baseline[baseline.sli.isin(list(LATENCY_SLIS))]
        assert (latency.observations > 0).all()
        thin = latency.observations * (1 - max(QUANTILES)) < THIN_TAIL
        assert (latency.evidence == np.where(thin, "thin", "ok")).all()
        # A thin p99 cannot be bounded from above: its interval says so.
        assert np.isinf(latency.loc[thin, "p99_ci_upper"]).all()
        errors = baseline[baseline.sli == "error_rate"]
        assert (errors.evidence == np.where(errors.failures < THIN_TAIL, "thin", "ok")).all()


def test_stability_flags_the_regression_at_every_anchor_and_little_else(anchored, catalogue):
    source, truths = anchored
    comparisons = false_flags = 0
    for truth in truths:
        regression = truth.incident("latency-regression")
        slow = truth.incident("slow-cold-starts")
        frame = stability(source, catalogue.settings, slow.end, truth.end)
        compared = frame[frame.p50_ratio.notna()]
        hit = compared[
            (compared.agent_type == regression.agent_type) & (compared.sli == "task_duration")
        ]
        assert hit.flagged.any(), truth.end  # 2.2 times slower: flagged wherever it is seen
        assert (
            hit.flagged <= (hit.period_end > pd.Timestamp(regression.start, unit="s", tz="UTC"))
        ).all()
        others = compared.drop(hit.index)
        comparisons += len(others) * 4  # p50, p95, p99 and the error rate
        false_flags += sum(len(f.split(",")) for f in others.flagged_by if f)
    # Each comparison flags by chance with probability at most 0.5% (one-sided, Z = 2.576).
    assert false_flags <= binomial_bound(comparisons, 0.005), false_flags
