"""SLO baselines from the fetched counts: quantiles and error rates, each with its uncertainty.

:func:`summarise` turns :mod:`.counts` into one row per period, agent type and SLI: p50/p95/p99
as ``histogram_quantile`` computes them, each with its bucket interval (the estimation error)
and an approximate 99% sampling interval, and the error rate with its Wilson interval.
:func:`latency_baseline` does both for one window. A period without any sample has NaN
quantiles, never zeros.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from obslib.analysis.slo.counts import ERROR_SLI, LATENCY_SLIS, bucket_counts, task_counts
from obslib.catalogue.contract import (
    STATUS_CANCELED,
    STATUS_FAILURE,
    STATUS_SUCCESS,
    STATUSES,
    TASKS,
)
from obslib.settings import Settings
from obslib.sources.prometheus import PrometheusSource, TimeLike

QUANTILES = (0.5, 0.95, 0.99)
Z = 2.576  # two-sided 99% normal quantile, for the sampling intervals
# Below this many observations beyond a quantile (or failures) an estimate is "thin".
THIN_TAIL = 10
_KEYS = ["period_start", "period_end", "agent_type"]


def _quantile_columns(q: float) -> list[str]:
    name = f"p{round(q * 100)}"
    return [name, f"{name}_lower", f"{name}_upper", f"{name}_ci_lower", f"{name}_ci_upper"]


def summary_columns(quantiles: Sequence[float] = QUANTILES) -> dict[str, str]:
    """Columns of :func:`summarise` (and of the baseline), one row per period, agent type, SLI.

    ``pXX`` is the quantile as ``histogram_quantile`` interpolates it, ``pXX_lower``/``_upper``
    the bounds of the bucket it falls in (its estimation error), ``pXX_ci_lower``/``_upper``
    an approximate 99% sampling interval (binomial interval of the rank, interpolated the
    same way; infinite when it reaches the +Inf bucket).
    """
    columns = {
        "period_start": "datetime64[ns, UTC]",
        "period_end": "datetime64[ns, UTC]",
        "agent_type": "str",
        "sli": "str",  # cold_start | task_duration | error_rate
        "metric": "str",
        "observations": "float64",  # latency observations, or tasks that succeeded or failed
        "evidence": "str",  # none | thin | ok
    }
    for q in quantiles:
        columns |= dict.fromkeys(_quantile_columns(q), "float64")
    return columns | {
        "successes": "float64",
        "failures": "float64",
        "canceled": "float64",  # not an error: excluded from the error rate
        "error_rate": "float64",  # failures / (successes + failures)
        "error_rate_ci_lower": "float64",  # Wilson 99% interval
        "error_rate_ci_upper": "float64",
    }


def _at_rank(
    cum: np.ndarray, bounds: np.ndarray, q: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantile ``q`` (one per row) of each row of cumulative counts, and its bucket interval.

    Prometheus's rule: find the first bucket whose count reaches ``q * total`` and interpolate
    linearly inside it (from 0 for the first bucket). In the +Inf bucket the estimate is the
    highest finite bound and the interval reaches infinity.
    """
    rows = np.arange(len(cum))
    total = cum[:, -1]
    rank = q * total
    idx = (cum >= rank[:, None]).argmax(axis=1)
    upper = bounds[idx]
    lower = np.where(idx > 0, bounds[np.maximum(idx - 1, 0)], 0.0)
    below = np.where(idx > 0, cum[rows, np.maximum(idx - 1, 0)], 0.0)
    inside = cum[rows, idx] - below
    share = np.divide(rank - below, inside, out=np.ones_like(rank), where=inside > 0)
    value = np.where(np.isinf(upper), lower, lower + (upper - lower) * share)
    missing = ~(total > 0) | np.isnan(q)
    nan = np.full(len(cum), np.nan)
    return (
        np.where(missing, nan, value),
        np.where(missing, nan, lower),
        np.where(missing, nan, upper),
    )


def _cumulative_matrix(group: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of cumulative counts (one per key), monotonic, with all-NaN rows kept as NaN."""
    wide = group.groupby([*keys, "le"], sort=False)["count"].sum(min_count=1).unstack("le")
    wide = wide.reindex(columns=sorted(wide.columns))
    empty = wide.isna().all(axis=1).to_numpy()
    cum = np.maximum.accumulate(wide.ffill(axis=1).fillna(0.0).to_numpy(), axis=1)
    cum[empty] = np.nan
    return wide.index.to_frame(index=False), cum


def latency_quantiles(
    buckets: pd.DataFrame, quantiles: Sequence[float] = QUANTILES
) -> pd.DataFrame:
    """Quantiles of each period, agent type and histogram in a ``bucket_counts`` frame."""
    keys = [*_KEYS, "metric"]
    parts = []
    for metric, group in buckets.groupby("metric", sort=False):
        index, cum = _cumulative_matrix(group, keys)
        bounds = np.asarray(sorted(group["le"].unique()), dtype=float)
        n = cum[:, -1]
        out = index.assign(observations=n)
        for q in quantiles:
            name, lo, hi, ci_lo, ci_hi = _quantile_columns(q)
            out[name], out[lo], out[hi] = _at_rank(cum, bounds, np.full(len(cum), q))
            with np.errstate(invalid="ignore", divide="ignore"):
                spread = Z * np.sqrt(q * (1 - q) / n)
            out[ci_lo] = _at_rank(cum, bounds, np.clip(q - spread, 0, 1))[0]
            value, _, upper = _at_rank(cum, bounds, np.clip(q + spread, 0, 1))
            # Past the last rank, or in the +Inf bucket, the sample cannot bound the quantile.
            unbounded = np.isinf(upper) | (q + spread > 1)
            out[ci_hi] = np.where(np.isnan(value), np.nan, np.where(unbounded, np.inf, value))
        sli = next(k for k, spec in LATENCY_SLIS.items() if spec.name == metric)
        parts.append(out.assign(sli=sli))
    return pd.concat(parts, ignore_index=True)


def error_rates(tasks: pd.DataFrame) -> pd.DataFrame:
    """Error rate per period and agent type of a ``task_counts`` frame (canceled is no error)."""
    wide = tasks.groupby([*_KEYS, "status"], sort=False)["count"].sum(min_count=1)
    wide = wide.unstack("status").reindex(columns=list(STATUSES)).reset_index()
    ok, bad = wide[STATUS_SUCCESS].to_numpy(float), wide[STATUS_FAILURE].to_numpy(float)
    n = ok + bad
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = bad / n
        centre = (rate + Z**2 / (2 * n)) / (1 + Z**2 / n)
        half = Z * np.sqrt(rate * (1 - rate) / n + Z**2 / (4 * n**2)) / (1 + Z**2 / n)
    return wide[_KEYS].assign(
        sli=ERROR_SLI,
        metric=TASKS.name,
        observations=n,
        successes=ok,
        failures=bad,
        canceled=wide[STATUS_CANCELED].to_numpy(float),
        error_rate=np.where(n > 0, rate, np.nan),
        error_rate_ci_lower=np.where(n > 0, np.clip(centre - half, 0, 1), np.nan),
        error_rate_ci_upper=np.where(n > 0, np.clip(centre + half, 0, 1), np.nan),
    )


def summarise(
    buckets: pd.DataFrame, tasks: pd.DataFrame, quantiles: Sequence[float] = QUANTILES
) -> pd.DataFrame:
    """One row per period, agent type and SLI (``summary_columns()``), from fetched counts.

    ``evidence`` is ``none`` without observations, ``thin`` with fewer than ``THIN_TAIL``
    observations beyond the highest quantile (or fewer than ``THIN_TAIL`` failures, for the
    error rate: its relative error is then large), ``ok`` otherwise.
    """
    frame = pd.concat(
        [latency_quantiles(buckets, quantiles), error_rates(tasks)], ignore_index=True
    )
    columns = summary_columns(quantiles)
    frame = frame.reindex(columns=list(columns))
    n = frame.observations.fillna(0)
    beyond = np.where(frame.sli == ERROR_SLI, frame.failures.fillna(0), n * (1 - max(quantiles)))
    frame["evidence"] = np.select([n <= 0, beyond < THIN_TAIL], ["none", "thin"], "ok")
    frame["metric"] = frame.metric.fillna("")
    sli_order = {sli: i for i, sli in enumerate([*LATENCY_SLIS, ERROR_SLI])}
    agent_order = {
        a: i for i, a in enumerate(dict.fromkeys([*buckets.agent_type, *tasks.agent_type]))
    }
    frame = (
        frame.assign(_a=frame.agent_type.map(agent_order), _s=frame.sli.map(sli_order))
        .sort_values(["period_start", "_a", "_s"], kind="stable")
        .drop(columns=["_a", "_s"])
    )
    return frame.reset_index(drop=True).astype({k: v for k, v in columns.items() if v == "float64"})


def latency_baseline(
    source: PrometheusSource, settings: Settings, start: TimeLike, end: TimeLike
) -> pd.DataFrame:
    """p50/p95/p99 and error rate per agent type over one window (``summary_columns()``).

    Three rows per agent type: ``cold_start`` (``daedalus_cold_start_seconds``),
    ``task_duration`` (``daedalus_task_duration_seconds``, task to artifact) and
    ``error_rate`` (``daedalus_tasks_total``: failure / (success + failure)). Quantiles come
    from the increase of every bucket over the whole window, so a counter reset inside it
    is absorbed by ``increase()``. No data gives NaN rows with evidence ``none``.
    """
    return summarise(
        bucket_counts(source, settings, start, end), task_counts(source, settings, start, end)
    )
