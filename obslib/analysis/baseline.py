"""SLO baselines from the metric contract: quantiles, error rates, their stability, thresholds.

The Pass-2 preparation. Everything starts from counter increases that Prometheus computes with
``increase()``, so an orchestrator restart (a counter reset) neither loses nor invents events:

* :func:`bucket_counts` / :func:`task_counts` fetch, per period, the increase of every
  histogram bucket and of every task status (one query per metric and period length).
* :func:`summarise` turns them into one row per period, agent type and SLI: p50/p95/p99 as
  ``histogram_quantile`` computes them, each with its bucket interval (the estimation error)
  and an approximate 99% sampling interval, and the error rate with its Wilson interval.
* :func:`latency_baseline`, :func:`stability` and :func:`propose_thresholds` are what the SLO
  baseline notebook calls.

Counts are increases, so they can be fractional (``increase`` extrapolates to the window's
edges). A period without any sample has NaN counts and NaN quantiles, never zeros.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from obslib.catalogue.contract import (
    COLD_START,
    STATUS_CANCELED,
    STATUS_FAILURE,
    STATUS_SUCCESS,
    STATUSES,
    TASK_DURATION,
    TASKS,
)
from obslib.settings import Settings
from obslib.sources.prometheus import PrometheusSource, TimeLike, to_seconds

DAY_S = 86_400
QUANTILES = (0.5, 0.95, 0.99)
Z = 2.576  # two-sided 99% normal quantile, for the sampling intervals
# Latency SLIs by name, and the histogram each is read from.
LATENCY_SLIS = {"cold_start": COLD_START, "task_duration": TASK_DURATION}
ERROR_SLI = "error_rate"
# Below this many observations beyond a quantile (or failures) an estimate is "thin".
THIN_TAIL = 10

BUCKET_COUNT_COLUMNS: dict[str, str] = {
    "period_start": "datetime64[ns, UTC]",
    "period_end": "datetime64[ns, UTC]",
    "agent_type": "str",
    "metric": "str",  # histogram name, e.g. daedalus_cold_start_seconds
    "le": "float64",  # bucket upper bound, +inf for the last
    "count": "float64",  # observations <= le in the period; NaN when there was no sample
}
TASK_COUNT_COLUMNS: dict[str, str] = {
    "period_start": "datetime64[ns, UTC]",
    "period_end": "datetime64[ns, UTC]",
    "agent_type": "str",
    "status": "str",  # success | failure | canceled
    "count": "float64",  # tasks that ended so in the period; NaN when there was no sample
}
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


# ---------------------------------------------------------------------------------------------
# Fetching: per-period increases from Prometheus


def _window(start: TimeLike, end: TimeLike) -> tuple[int, int]:
    start_s, end_s = round(to_seconds(start)), round(to_seconds(end))
    if end_s <= start_s:
        raise ValueError(f"the window must end after it starts: {start!r} .. {end!r}")
    return start_s, end_s


def _periods(start_s: int, end_s: int, period_s: int | None) -> pd.DataFrame:
    """Consecutive periods ending at ``end_s``; the first is shorter when the window is.

    Anchored at the end so the latest period, the one a reader looks at first, is complete.
    """
    period_s = period_s or end_s - start_s
    ends = np.arange(end_s, start_s, -period_s)[::-1]
    starts = np.maximum(ends - period_s, start_s)
    frame = pd.DataFrame({"period_start": starts, "period_end": ends})
    return frame.apply(lambda s: pd.to_datetime(s * 10**9, utc=True))  # ns, as sources give


def _increases(
    source: PrometheusSource, settings: Settings, series: str, label: str, periods: pd.DataFrame
) -> pd.DataFrame:
    """``sum by (agent_type, label) (increase(series[period]))`` at each period's end."""
    selector = f'{series}{{namespace="{settings.namespace}"}}'
    lengths = (periods.period_end - periods.period_start).dt.total_seconds().astype(int)
    ends = (periods.period_end - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    parts = []
    for length in lengths.unique():  # a range query for the full periods, one for a short one
        chosen = ends[lengths == length]
        query = f"sum by (agent_type, {label}) (increase({selector}[{length}s]))"
        if len(chosen) > 1:
            frame = source.query_range(query, int(chosen.min()), int(chosen.max()), int(length))
        else:
            frame = source.query(query, at=int(chosen.iloc[0]))
        frame = frame.reindex(columns=["timestamp", "value", "agent_type", label])
        frame = frame.fillna({"agent_type": "", label: ""})
        parts.append(frame.assign(period_start=frame.timestamp - pd.Timedelta(seconds=length)))
    found = pd.concat(parts, ignore_index=True)
    return found.rename(columns={"timestamp": "period_end", "value": "count"})


def _complete(
    found: pd.DataFrame, periods: pd.DataFrame, settings: Settings, values: pd.DataFrame
) -> pd.DataFrame:
    """Every period x agent type x ``values`` row, NaN where Prometheus returned nothing."""
    extra = sorted(set(found.agent_type) - set(settings.agent_types) - {""})
    agents = pd.DataFrame({"agent_type": [*settings.agent_types, *extra]})
    grid = periods.merge(agents, how="cross").merge(values, how="cross")
    return grid.merge(found, how="left", on=[*grid.columns])


def bucket_counts(
    source: PrometheusSource,
    settings: Settings,
    start: TimeLike,
    end: TimeLike,
    period: int | None = None,
) -> pd.DataFrame:
    """Cumulative bucket counts of both latency histograms, per period (``BUCKET_COUNT_COLUMNS``).

    ``period`` is in seconds (``None``: one period, the whole window); periods end at ``end``
    and the first is shorter when the window is not a multiple. Every configured
    agent type and contract bucket gets a row, NaN where the period has no sample.
    """
    periods = _periods(*_window(start, end), period)
    frames = []
    for spec in LATENCY_SLIS.values():
        found = _increases(source, settings, f"{spec.name}_bucket", "le", periods)
        found = found.assign(metric=spec.name, le=found["le"].replace("", "nan").astype(float))
        bounds = sorted({*spec.buckets, np.inf} | set(found["le"].dropna()))
        values = pd.DataFrame({"metric": spec.name, "le": bounds})
        frames.append(_complete(found, periods, settings, values))
    return pd.concat(frames, ignore_index=True)[list(BUCKET_COUNT_COLUMNS)]


def task_counts(
    source: PrometheusSource,
    settings: Settings,
    start: TimeLike,
    end: TimeLike,
    period: int | None = None,
) -> pd.DataFrame:
    """Tasks per terminal status and period (``TASK_COUNT_COLUMNS``); see :func:`bucket_counts`."""
    periods = _periods(*_window(start, end), period)
    found = _increases(source, settings, TASKS.name, "status", periods)
    statuses = pd.DataFrame({"status": sorted(set(STATUSES) | set(found.status) - {""})})
    return _complete(found, periods, settings, statuses)[list(TASK_COUNT_COLUMNS)]


# ---------------------------------------------------------------------------------------------
# Quantiles from cumulative buckets, as histogram_quantile computes them


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


# ---------------------------------------------------------------------------------------------
# Stability: the same numbers day by day and week by week

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
