"""Stability of the baseline: the same figures day by day and week by week, compared and flagged.

A baseline is only worth a threshold when it holds still: :func:`stability` summarises every
day (and week) of the window and flags a period whose quantile or error rate grew by a factor
clear of sampling noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from obslib.analysis.slo.baseline import QUANTILES, Z, summarise
from obslib.analysis.slo.counts import DAY_S, bucket_counts, task_counts
from obslib.settings import Settings
from obslib.sources.prometheus import PrometheusSource, TimeLike

# A quantile that grows by this factor from one period to the next is flagged (a quarter
# slower), if the growth is also clear of sampling noise (see stability_from_counts). It sits
# well below the doubling the spec's rate-of-change alert fires on, so a trend shows here first.
LATENCY_FACTOR = 1.25
ERROR_FACTOR = 3.0  # the spec's rate-of-change alert: "error rate up 3x"


def _weekly(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Daily counts summed into weeks ending with the last day (the first may be short)."""
    week = (frame.period_end.max() - frame.period_end) // pd.Timedelta(days=7)
    grouped = frame.assign(_week=week).groupby(["_week", "agent_type", *keys], sort=False)
    out = grouped.agg(period_start=("period_start", "min"), period_end=("period_end", "max"))
    out["count"] = grouped["count"].sum(min_count=1)  # a week without any sample stays NaN
    return out.reset_index().drop(columns="_week")


def _compare(
    frame: pd.DataFrame, quantiles: Sequence[float], latency_factor: float, error_factor: float
) -> pd.DataFrame:
    frame = frame.sort_values(["granularity", "agent_type", "sli", "period_start"], kind="stable")
    previous = frame.groupby(["granularity", "agent_type", "sli"], sort=False).shift(1)
    worse = pd.DataFrame(index=frame.index)
    better = pd.DataFrame(index=frame.index)
    checks = [(f"p{round(q * 100)}", latency_factor) for q in quantiles]
    for name, factor in [*checks, ("error_rate", error_factor)]:
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = frame[name] / previous[name]
            z = _z(frame, previous, name, log=name != "error_rate")
        frame[f"{name}_ratio"] = ratio
        worse[name] = (ratio >= factor) & (z >= Z)
        better[name] = (ratio <= 1 / factor) & (z <= -Z)
    frame["flagged"] = worse.any(axis=1)
    frame["flagged_by"] = _names(worse)
    frame["improved_by"] = _names(better)
    return frame


def _z(frame: pd.DataFrame, previous: pd.DataFrame, name: str, log: bool) -> pd.Series:
    """How many standard errors ``name`` moved; each error is read off the 99% interval."""
    scale = np.log if log else np.asarray  # quantiles compare as ratios, rates as differences

    def se(f: pd.DataFrame) -> pd.Series:
        return (scale(f[f"{name}_ci_upper"]) - scale(f[f"{name}_ci_lower"])) / (2 * Z)

    return (scale(frame[name]) - scale(previous[name])) / np.sqrt(
        se(frame) ** 2 + se(previous) ** 2
    )


def _names(flags: pd.DataFrame) -> pd.Series:
    text = pd.Series("", index=flags.index)
    for name in flags.columns:
        text = text + np.where(flags[name], f"{name},", "")
    return text.str.rstrip(",")


def stability_from_counts(
    buckets: pd.DataFrame,
    tasks: pd.DataFrame,
    *,
    latency_factor: float = LATENCY_FACTOR,
    error_factor: float = ERROR_FACTOR,
    quantiles: Sequence[float] = QUANTILES,
) -> pd.DataFrame:
    """Day-by-day (and week-by-week) summaries with period-over-period ratios and flags.

    Args:
        buckets: daily ``bucket_counts`` (``period=DAY_S``).
        tasks: daily ``task_counts``.
        latency_factor: a quantile is flagged when it grows by at least this factor.
        error_factor: the error rate is flagged when it grows by at least this factor.
        quantiles: quantiles to compare.

    Returns:
        ``summary_columns()`` plus ``granularity`` (``day``, and ``week`` when the days span two
        weeks or more), ``<quantity>_ratio`` against the previous period of the same
        granularity, ``flagged`` (any quantity got worse), ``flagged_by`` and ``improved_by``
        (comma-separated quantities). A move counts only when its ratio reaches the factor
        *and* it is clear of sampling noise: the change (of the logarithm, for quantiles)
        is at least ``Z`` standard errors, each period's error read off its 99% interval.
        The p99 of a thin day, whose interval reaches +Inf, never raises a flag. Periods
        without data are NaN and flag nothing.
    """
    parts = [summarise(buckets, tasks, quantiles).assign(granularity="day")]
    span = buckets.period_end.max() - buckets.period_start.min()
    if span >= pd.Timedelta(days=14):
        weeks = summarise(_weekly(buckets, ["metric", "le"]), _weekly(tasks, ["status"]), quantiles)
        parts.append(weeks.assign(granularity="week"))
    frame = pd.concat(parts, ignore_index=True)
    frame = _compare(frame, quantiles, latency_factor, error_factor)
    first = ["granularity", *frame.columns.drop("granularity")]
    return frame[first].sort_index().reset_index(drop=True)


def stability(
    source: PrometheusSource,
    settings: Settings,
    start: TimeLike,
    end: TimeLike,
    *,
    latency_factor: float = LATENCY_FACTOR,
    error_factor: float = ERROR_FACTOR,
) -> pd.DataFrame:
    """Quantiles and error rates per day (and per week), compared and flagged.

    Days end at ``end`` (``[end - (k+1) days, end - k days)``, the first one cut at
    ``start``); pass a midnight ``end`` for calendar days. See
    :func:`stability_from_counts` for the columns and the flagging rule.
    """
    return stability_from_counts(
        bucket_counts(source, settings, start, end, DAY_S),
        task_counts(source, settings, start, end, DAY_S),
        latency_factor=latency_factor,
        error_factor=error_factor,
    )
