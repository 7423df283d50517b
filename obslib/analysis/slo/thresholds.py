"""Pass-2 thresholds from an SLO baseline: a latency threshold and an error-rate objective.

:func:`propose_thresholds` picks, per agent type, the latency threshold (a bucket bound of the
contract at or above the observed p99 with headroom, so the SLI is an exact bucket ratio) and
the error-rate objective, each with the evidence behind it. :mod:`.proposed_rules` turns them
into draft alerting rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from obslib.analysis.slo.counts import ERROR_SLI, LATENCY_SLIS

# Latency: the threshold is the observed p99 times this, snapped up to a bucket bound. A day's
# p99 wanders by some 20% on its own; snapping then adds up to one bucket more.
HEADROOM = 1.2
LATENCY_OBJECTIVE = 0.99  # the threshold is drawn from the p99, so 99% must be at or below it
# Error rate: the allowed rate is the observed one times this, rounded up (see _ceil_nice).
ERROR_HEADROOM = 2.0

THRESHOLD_COLUMNS: dict[str, str] = {
    "period_start": "datetime64[ns, UTC]",
    "period_end": "datetime64[ns, UTC]",
    "agent_type": "str",
    "sli": "str",  # cold_start | task_duration | error_rate
    "metric": "str",
    "status": "str",  # proposed | inconclusive | beyond-buckets
    "reason": "str",
    "evidence": "str",  # from the baseline: none | thin | ok
    "observations": "float64",
    "objective": "float64",  # share of good events the proposed SLO asks for
    "observed_p99_s": "float64",
    "p99_lower_s": "float64",  # the bucket the observed p99 falls in
    "p99_upper_s": "float64",
    "estimation_error_s": "float64",  # that bucket's width: histogram_quantile's error
    "p99_ci_lower_s": "float64",  # the baseline's ~99% sampling interval of the p99
    "p99_ci_upper_s": "float64",  # (+inf when the sample cannot bound it from above)
    "threshold_s": "float64",  # a bucket bound: the latency SLI is an exact bucket ratio
    "sli_at_threshold": "float64",  # share of the window's observations <= threshold
    "observed_error_rate": "float64",
    "failures": "float64",
    "allowed_error_rate": "float64",  # 1 - objective, for the error-rate SLO
    "window_burn_rate": "float64",  # how fast the baseline window itself spent the budget
}
_KEYS = ["period_start", "period_end", "agent_type", "metric"]


def _ceil_nice(x: np.ndarray) -> np.ndarray:
    """Round up to two significant digits: 0.0421 -> 0.043, 0.128 -> 0.13."""
    with np.errstate(invalid="ignore", divide="ignore"):
        step = 10.0 ** (np.floor(np.log10(x)) - 1)
        return np.round(np.ceil(x / step - 1e-9) * step, 12)


def _latency(
    rows: pd.DataFrame,
    buckets: pd.DataFrame,
    headroom: float,
    objective: float,
    bounds: Mapping[str, Sequence[float]],
) -> pd.DataFrame:
    """Latency thresholds: the smallest bound at or above ``p99 * headroom``."""
    quantile = f"p{round(objective * 100)}"
    if quantile not in rows:
        raise ValueError(f"the baseline has no {quantile} column for objective {objective}")
    target = rows[quantile].to_numpy(float) * headroom
    threshold = np.full(len(rows), np.nan)
    for metric in rows.metric.unique():
        mine = (rows.metric == metric).to_numpy()
        known = np.asarray(sorted(bounds[metric]), dtype=float)
        at = np.searchsorted(known, target[mine], side="left")
        threshold[mine] = np.where(at < len(known), known[np.minimum(at, len(known) - 1)], np.nan)
    out = rows.assign(
        observed_p99_s=rows[quantile],
        p99_lower_s=rows[f"{quantile}_lower"],
        p99_upper_s=rows[f"{quantile}_upper"],
        p99_ci_lower_s=rows[f"{quantile}_ci_lower"],
        p99_ci_upper_s=rows[f"{quantile}_ci_upper"],
        threshold_s=threshold,
        objective=objective,
    )
    at_bound = buckets.rename(columns={"le": "threshold_s", "count": "_at"})
    total = buckets[np.isinf(buckets["le"])].drop(columns="le").rename(columns={"count": "_total"})
    out = out.merge(at_bound, how="left", on=[*_KEYS, "threshold_s"]).merge(
        total, how="left", on=_KEYS
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        out["sli_at_threshold"] = np.clip(out._at / out._total, 0, 1)
    out["estimation_error_s"] = out.p99_upper_s - out.p99_lower_s
    out["window_burn_rate"] = (1 - out.sli_at_threshold) / (1 - objective)
    none = out.evidence.eq("none") | out.observed_p99_s.isna()
    beyond = np.isinf(out.p99_upper_s) | out.threshold_s.isna()
    out["status"] = np.select([none, beyond], ["inconclusive", "beyond-buckets"], "proposed")
    out["objective"] = np.where(none | beyond, np.nan, objective)  # no threshold, no objective
    out["reason"] = np.select(
        [none, beyond],
        [
            "no observations in the window",
            f"p99 x {headroom:g} lies beyond the largest finite bucket bound: add buckets first",
        ],
        f"smallest bucket bound at or above the observed p99 x {headroom:g}",
    )
    return out


def _errors(rows: pd.DataFrame, headroom: float) -> pd.DataFrame:
    """Error-rate objectives: ``observed * headroom`` rounded up, at least ``3 / n`` observed."""
    n, failures = rows.observations.to_numpy(float), rows.failures.to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        # No failure seen: 3/n is the 95% upper bound of the rate ("rule of three").
        basis = np.where(failures > 0, rows.error_rate.to_numpy(float), 3 / n)
        allowed = _ceil_nice(basis * headroom)
    allowed = np.where((n > 0) & (allowed < 1), allowed, np.nan)
    none = ~(n > 0)
    return rows.assign(
        observed_error_rate=rows.error_rate,
        allowed_error_rate=allowed,
        objective=1 - allowed,
        sli_at_threshold=1 - rows.error_rate,
        window_burn_rate=rows.error_rate / allowed,
        status=np.where(none | np.isnan(allowed), "inconclusive", "proposed"),
        reason=np.where(
            none | np.isnan(allowed),
            "no task succeeded or failed in the window",
            f"observed rate (at least 3/n) x {headroom:g}, rounded up",
        ),
    )


def propose_thresholds(
    baseline: pd.DataFrame,
    buckets: pd.DataFrame,
    *,
    headroom: float = HEADROOM,
    error_headroom: float = ERROR_HEADROOM,
    objective: float = LATENCY_OBJECTIVE,
    bounds: Mapping[str, Sequence[float]] | None = None,
) -> pd.DataFrame:
    """Proposed Pass-2 thresholds per agent type and SLI (``THRESHOLD_COLUMNS``).

    Latency (cold start, task to artifact): the threshold is the smallest bucket bound of the
    contract at or above the observed p99 times ``headroom``, so the SLI "share of
    observations at or below the threshold" is an exact bucket ratio and the objective is
    ``objective`` (99%). The row carries the bucket the observed p99 falls in (its width is
    ``histogram_quantile``'s estimation error), the SLI the baseline window reached at that
    threshold, and the burn rate that window would have had. A p99 in the +Inf bucket, or
    one whose target exceeds the largest bound, cannot be given a threshold
    (``beyond-buckets``).

    Error rate: the allowed rate is the observed rate (at least ``3/n``, the 95% upper bound
    when nothing failed) times ``error_headroom``, rounded up to two significant
    digits; the objective is one minus that.

    Args:
        baseline: a one-window :func:`~obslib.analysis.slo.baseline.latency_baseline` frame.
        buckets: the :func:`~obslib.analysis.slo.counts.bucket_counts` of the same window.
        headroom: latency headroom factor (> 1).
        error_headroom: error-rate headroom factor (> 1).
        objective: latency objective; the baseline needs its quantile column (``p99``).
        bounds: bucket bounds per histogram name; default the contract's.
    """
    if headroom < 1 or error_headroom < 1:
        raise ValueError("headroom factors must be at least 1")
    bounds = bounds or {spec.name: spec.buckets for spec in LATENCY_SLIS.values()}
    latency = baseline[baseline.sli.isin(list(LATENCY_SLIS))].reset_index(drop=True)
    errors = baseline[baseline.sli == ERROR_SLI].reset_index(drop=True)
    frame = pd.concat(
        [
            _latency(latency, buckets, headroom, objective, bounds),
            _errors(errors, error_headroom),
        ],
        ignore_index=True,
    )
    frame = frame.reindex(columns=list(THRESHOLD_COLUMNS))
    agents = {a: i for i, a in enumerate(dict.fromkeys(baseline.agent_type))}
    frame = frame.iloc[np.lexsort((frame.agent_type.map(agents), frame.period_start))]
    return frame.reset_index(drop=True).astype(
        {k: v for k, v in THRESHOLD_COLUMNS.items() if v == "float64"}
    )
