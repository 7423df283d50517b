"""SLO baseline, stability, proposed thresholds and draft Pass-2 rules.

Against the real Prometheus of ``history_stack`` (3 days of synthetic history, seed 5) and its
ground truth, and the real promtool for the drafted rules.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

from obslib.analysis.slo.baseline import QUANTILES, latency_baseline, summarise
from obslib.analysis.slo.counts import DAY_S, LATENCY_SLIS, bucket_counts, task_counts
from obslib.analysis.slo.proposed_rules import (
    PROPOSED_FILE,
    render_proposed_rules,
    write_proposed_rules,
)
from obslib.analysis.slo.stability import stability, stability_from_counts
from obslib.analysis.slo.thresholds import ERROR_HEADROOM, HEADROOM, propose_thresholds
from obslib.catalogue.contract import COLD_START, STATUSES, TASK_DURATION
from obslib.lint import lint_rules
from obslib.synth.exporter_series import labeler
from obslib.synth.scenario import agent_profile

BOUNDS = {spec.name: np.asarray(spec.buckets) for spec in (COLD_START, TASK_DURATION)}


def utc(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def bucket_of(value: float, bounds: np.ndarray) -> tuple[float, float]:
    """The bucket (lower, upper] a value falls in; +inf above the last bound."""
    if np.isinf(value):
        return float(bounds[-1]), np.inf
    i = int(np.searchsorted(bounds, value, side="left"))
    lower = 0.0 if i == 0 else float(bounds[i - 1])
    return lower, float(bounds[i]) if i < len(bounds) else np.inf


@pytest.fixture(scope="module")
def window(history_stack):
    """From the history's start to the first incident that changes latencies."""
    _, truth = history_stack
    changes = [i for i in truth.incidents if i.kind != "alert"]
    return truth.start, min(i.start for i in changes)


@pytest.fixture(scope="module")
def counts(history_stack, window, catalogue):
    source, _ = history_stack
    settings = catalogue.settings
    return bucket_counts(source, settings, *window), task_counts(source, settings, *window)


@pytest.fixture(scope="module")
def baseline(counts):
    return summarise(*counts)


@pytest.fixture(scope="module")
def thresholds(baseline, counts):
    return propose_thresholds(baseline, counts[0])


def rank_buckets(buckets, agent: str, metric: str, q: float, sigmas: float = 4.0):
    """Where sampling can put the q-quantile: from the bucket holding rank q - 4 sigma to the
    bucket holding rank q + 4 sigma (binomial sigma of the rank; +inf past the last rank)."""
    mine = buckets[(buckets.agent_type == agent) & (buckets.metric == metric)].sort_values("le")
    bounds, cumulative = mine["le"].to_numpy(), mine["count"].to_numpy()
    n = cumulative[-1]
    spread = sigmas * np.sqrt(q * (1 - q) / n)
    first = int(np.argmax(cumulative >= (q - spread) * n))
    low = 0.0 if first == 0 else bounds[first - 1]
    high = np.inf if q + spread > 1 else bounds[int(np.argmax(cumulative >= (q + spread) * n))]
    return low, high


def test_quantiles_match_the_true_profiles_within_their_buckets(baseline, counts, history_stack):
    _, truth = history_stack
    checked = 0
    for agent in truth.agent_types:
        profile = truth.profiles[agent]
        # The scenario's profiles are the ones the history was drawn from.
        assert agent_profile(agent).work.quantile(0.99) == pytest.approx(profile["work_s"]["p99"])
        expected = {
            "cold_start": profile["cold_start_s"],
            "task_duration": profile["task_duration_s"],
        }
        for sli, spec in LATENCY_SLIS.items():
            row = baseline[(baseline.agent_type == agent) & (baseline.sli == sli)].iloc[0]
            assert row.observations > 50
            for q in QUANTILES:
                name = f"p{round(q * 100)}"
                true_value = expected[sli][name]
                # The estimate's bucket is its error; sampling can move the estimate to the
                # buckets that hold ranks four sigma away, so the truth lies within those.
                lower, upper = row[f"{name}_lower"], row[f"{name}_upper"]
                assert lower < row[name] <= upper
                assert bucket_of(row[name], BOUNDS[spec.name]) == (lower, upper)
                low, high = rank_buckets(counts[0], agent, spec.name, q)
                assert low <= lower and upper <= high
                assert (
                    low <= row[f"{name}_ci_lower"] <= row[name] <= row[f"{name}_ci_upper"] <= high
                )
                assert low <= true_value <= high, (agent, sli, name, true_value, low, high)
                checked += 1
    assert checked == len(truth.agent_types) * 2 * len(QUANTILES)


def test_quantiles_equal_prometheus_histogram_quantile(baseline, history_stack, window, catalogue):
    source, _ = history_stack
    seconds = window[1] - window[0]
    scope = f'namespace="{catalogue.settings.namespace}"'
    for sli, spec in LATENCY_SLIS.items():
        for q in QUANTILES:
            query = (
                f"histogram_quantile({q}, sum by (agent_type, le) "
                f"(increase({spec.name}_bucket{{{scope}}}[{seconds}s])))"
            )
            theirs = source.query(query, at=window[1]).set_index("agent_type")["value"]
            ours = baseline[baseline.sli == sli].set_index("agent_type")[f"p{round(q * 100)}"]
            assert len(theirs) == 3
            pd.testing.assert_series_equal(ours[theirs.index], theirs, check_names=False)


def test_error_rates_match_the_truth_across_the_counter_reset(history_stack, catalogue):
    source, truth = history_stack
    # The orchestrator's outage inside this window reset its counters.
    resets = source.query(f"resets(daedalus_tasks_total[{truth.end - truth.start}s])", at=truth.end)
    succeeded = resets[resets.status == "success"]
    assert len(succeeded) == len(truth.agent_types) and (succeeded["value"] > 0).all()
    rows = latency_baseline(source, catalogue.settings, truth.start, truth.end)
    errors = rows[rows.sli == "error_rate"].set_index("agent_type")
    for agent in truth.agent_types:
        row = errors.loc[agent]
        # Every task that ended is counted once: a reset neither loses nor doubles any.
        ended = row.successes + row.failures + row.canceled
        assert ended == pytest.approx(truth.tasks[agent], rel=0.02)
        assert row.observations == pytest.approx(row.successes + row.failures)
        p = truth.profiles[agent]["error_rate"]
        tolerance = 4 * np.sqrt(p * (1 - p) / row.observations)  # binomial, four sigma
        assert abs(row.error_rate - p) <= tolerance, (agent, row.error_rate, p, tolerance)
        assert row.error_rate_ci_lower <= p <= row.error_rate_ci_upper


def test_thresholds_are_bucket_bounds_at_or_above_the_p99(thresholds, counts):
    buckets = counts[0]
    latency = thresholds[thresholds.sli != "error_rate"]
    assert len(latency) == 6 and (latency.status == "proposed").all()
    for row in latency.itertuples():
        bounds = BOUNDS[row.metric]
        assert row.threshold_s in bounds
        assert row.threshold_s >= row.observed_p99_s * HEADROOM
        below = bounds[bounds < row.threshold_s]
        assert below.size == 0 or below[-1] < row.observed_p99_s * HEADROOM  # the smallest
        lower, upper = bucket_of(row.observed_p99_s, bounds)
        assert (row.p99_lower_s, row.p99_upper_s) == (lower, upper)
        assert row.estimation_error_s == upper - lower
        mine = buckets[(buckets.agent_type == row.agent_type) & (buckets.metric == row.metric)]
        at = mine.loc[mine["le"] == row.threshold_s, "count"].item()
        total = mine.loc[np.isinf(mine["le"]), "count"].item()
        assert row.sli_at_threshold == pytest.approx(at / total)
        assert row.sli_at_threshold >= 0.99
        assert row.window_burn_rate == pytest.approx((1 - at / total) / 0.01)
    errors = thresholds[thresholds.sli == "error_rate"]
    assert (errors.status == "proposed").all()
    assert (errors.allowed_error_rate >= errors.observed_error_rate * ERROR_HEADROOM).all()
    assert (errors.allowed_error_rate < 1).all()
    assert np.allclose(errors.objective, 1 - errors.allowed_error_rate)


def test_stability_flags_the_latency_regression_only_for_its_agent_type(history_stack, catalogue):
    source, truth = history_stack
    regression = truth.incident("latency-regression")
    slow = truth.incident("slow-cold-starts")
    # After the slow cold starts: the regression is the only change left.
    frame = stability(source, catalogue.settings, slow.end, truth.end)
    flagged = frame[frame.flagged]
    assert len(flagged) >= 1
    assert set(flagged.agent_type) == {regression.agent_type}
    assert set(flagged.sli) == {"task_duration"}
    assert (flagged.period_end > utc(regression.start)).all()
    # Over the whole history no other agent type is flagged where the regression holds (the
    # slow cold starts the day before may hide the regression itself behind their own rise).
    frame = stability(source, catalogue.settings, truth.start, truth.end)
    hit = frame[(frame.period_end > utc(regression.start)) & frame.flagged]
    assert set(hit.agent_type) <= {regression.agent_type}


def test_days_without_data_are_nan_and_flag_nothing(history_stack, catalogue):
    source, truth = history_stack
    frame = stability(source, catalogue.settings, truth.start - DAY_S, truth.start + DAY_S)
    before = frame[frame.period_end <= utc(truth.start)]
    after = frame[frame.period_start >= utc(truth.start)]
    assert len(before) == len(after) == 9  # three agent types, three SLIs
    values = ["observations", "p50", "p99", "error_rate", "failures", "p50_ratio"]
    assert before[values].isna().all().all()
    assert (before.evidence == "none").all() and not frame.flagged.any()
    assert after.observations.notna().all() and (after.observations > 0).all()
    assert after.p50_ratio.isna().all()  # nothing to compare the first day with


def test_an_empty_window_gives_inconclusive_rows_and_no_burn_rules(history_stack, catalogue):
    source, truth = history_stack
    start, end = truth.start - 3 * DAY_S, truth.start - DAY_S
    buckets = bucket_counts(source, catalogue.settings, start, end)
    empty = summarise(buckets, task_counts(source, catalogue.settings, start, end))
    assert len(empty) == 9 and (empty.evidence == "none").all()
    assert empty.select_dtypes("float64").isna().all().all()  # NaN, never 0
    proposed = propose_thresholds(empty, buckets)
    assert (proposed.status == "inconclusive").all()
    assert proposed[["threshold_s", "allowed_error_rate", "objective"]].isna().all().all()
    names = [
        r["alert"] for g in render_proposed_rules(catalogue, proposed)["groups"] for r in g["rules"]
    ]
    assert names == ["ColdStartP99Doubled", "TaskLatencyP99Doubled", "TaskErrorRateTripled"]


def daily_counts(days: int, slow_from: int, missing: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily cumulative cold-start buckets of one agent type; latency doubles from a day on."""
    rng = np.random.default_rng(3)
    starts = pd.to_datetime(np.arange(days) * DAY_S * 10**9, utc=True)
    bounds = np.append(COLD_START.buckets, np.inf)
    rows, tasks = [], []
    for day, start in enumerate(starts):
        values = rng.lognormal(np.log(40 * (2 if day >= slow_from else 1)), 0.5, 3000)
        cumulative = np.searchsorted(np.sort(values), bounds, side="right").astype(float)
        if day == missing:
            cumulative[:] = np.nan
        end = start + pd.Timedelta(days=1)
        rows.append(
            pd.DataFrame(
                {"period_start": start, "period_end": end, "le": bounds, "count": cumulative}
            )
        )
        tasks.append(
            pd.DataFrame(
                {
                    "period_start": start,
                    "period_end": end,
                    "status": STATUSES,
                    "count": [2900.0, 60.0, 40.0],
                }
            )
        )
    common = {"agent_type": "copilot"}
    buckets = pd.concat(rows).assign(metric=COLD_START.name, **common)
    return buckets, pd.concat(tasks).assign(**common)


def test_weeks_are_compared_when_the_window_spans_two_weeks():
    frame = stability_from_counts(*daily_counts(days=21, slow_from=14, missing=3))
    cold = frame[frame.sli == "cold_start"]
    weeks = cold[cold.granularity == "week"].reset_index(drop=True)
    assert len(weeks) == 3
    assert weeks.observations.tolist() == [6 * 3000.0, 7 * 3000.0, 7 * 3000.0]  # day 3 is NaN
    assert weeks.flagged.tolist() == [False, False, True]
    assert weeks.p50_ratio[2] == pytest.approx(2, rel=0.2)
    days = cold[cold.granularity == "day"].reset_index(drop=True)
    assert days.observations.isna().tolist() == [d == 3 for d in range(21)]
    assert days.index[days.flagged].tolist() == [14]  # the day the latency doubled
    short = stability_from_counts(*daily_counts(days=13, slow_from=20, missing=-1))
    assert set(short.granularity) == {"day"} and not short.flagged.any()


def test_written_rules_pass_promtool_and_lint(tmp_path, promtool, catalogue, thresholds, repo):
    path = write_proposed_rules(tmp_path / "rules" / "proposed", catalogue, thresholds)
    assert path == tmp_path / "rules" / "proposed" / PROPOSED_FILE
    text = path.read_text()
    assert text.startswith("# INACTIVE Pass-2 proposal")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    groups = yaml.safe_load(text)["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
    assert lint_rules(groups, catalogue.metrics) == []
    burn = [r for r in rules if r["alert"].endswith("BudgetBurn")]
    assert len(burn) >= 3 * 2  # every SLI, at least its slow-burn windows
    for rule in rules:
        assert rule["labels"]["pass2_draft"] == "true"
        assert rule["labels"]["namespace"] == catalogue.settings.namespace
        assert rule["labels"]["severity"] in ("page", "warn")
        assert rule["labels"]["daedalus_component"]
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
    active = (repo / "rules/daedalus-alerts.yaml").read_text()
    assert not {r["alert"] for r in rules} & {a.name for a in catalogue.alerts}
    assert "pass2" not in active


def test_cold_start_burn_alerts_fire_during_the_slow_cold_starts(
    history_stack, catalogue, thresholds
):
    source, truth = history_stack
    slow = truth.incident("slow-cold-starts")
    groups = render_proposed_rules(catalogue, thresholds)["groups"]
    cold = next(g for g in groups if g["name"] == "daedalus-pass2-cold-start")
    fired = set()
    for rule in (r for r in cold["rules"] if r["alert"] == "ColdStartLatencyBudgetBurn"):
        frame = source.query_range(rule["expr"], slow.start, slow.end, 300)
        fired |= set(frame.get("agent_type", []))
    assert fired and fired <= set(truth.agent_types)


def series_text(labels: dict[str, str]) -> str:
    name = labels.pop("__name__")
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def histogram_series(
    catalogue, agent: str, fast: float, slow: float, slow_per_step: np.ndarray, spec=COLD_START
):
    """Histogram series of one agent type, labelled as the exporter labels them.

    Each step has two observations: one of ``fast`` seconds, and one of ``slow`` seconds where
    ``slow_per_step`` is 1 (else a second ``fast``).
    """
    label = labeler(catalogue.metrics, catalogue.settings)
    slow_per_step = np.asarray(slow_per_step)
    out = []
    for bound in [*spec.buckets, np.inf]:
        per_step = np.where(
            slow_per_step == 1, (fast <= bound) + (slow <= bound), 2 * (fast <= bound)
        )
        values = np.concatenate([[0], np.cumsum(per_step)])
        le = "+Inf" if np.isinf(bound) else f"{bound:g}"
        name = f"{spec.name}_bucket"
        labels = {"__name__": name, **label(name, {"agent_type": agent, "le": le})}
        out.append({"series": series_text(labels), "values": " ".join(f"{v:g}" for v in values)})
    name = f"{spec.name}_count"
    labels = {"__name__": name, **label(name, {"agent_type": agent})}
    values = np.arange(len(slow_per_step) + 1) * 2
    out.append({"series": series_text(labels), "values": " ".join(f"{v:g}" for v in values)})
    return out


def only_rules(path, name: str) -> tuple[str, list[dict]]:
    """A rule file next to ``path`` with only the rules called ``name`` (promtool runs faster)."""
    groups = yaml.safe_load(path.read_text())["groups"]
    rules = [r for g in groups for r in g["rules"] if r["alert"] == name]
    subset = path.with_name(f"{name}.yaml")
    subset.write_text(yaml.safe_dump({"groups": [{"name": "subset", "rules": rules}]}))
    return subset.name, rules


def run_promtool_tests(promtool, directory, tests) -> None:
    (directory / "test.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", "test.yaml"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def alerts_sample(rule: dict, **labels: str) -> str:
    firing = {"alertname": rule["alert"], "alertstate": "firing", **labels, **rule["labels"]}
    return "ALERTS{" + ", ".join(f'{k}="{v}"' for k, v in sorted(firing.items())) + "}"


def test_burn_rate_alert_fires_above_the_threshold_and_not_below(
    tmp_path, promtool, catalogue, thresholds
):
    path = write_proposed_rules(tmp_path, catalogue, thresholds)
    row = thresholds.set_index(["agent_type", "sli"]).loc[("copilot", "cold_start")]
    bounds = BOUNDS[COLD_START.name]
    at = int(np.searchsorted(bounds, row.threshold_s))
    assert 0 < at < len(bounds) - 1
    fast, slow = bounds[at - 1], bounds[at + 1]  # one bucket below and above the threshold
    steps = 180  # one-minute steps
    rule_file, rules = only_rules(path, "ColdStartLatencyBudgetBurn")
    rule = next(r for r in rules if r["labels"]["long_window"] == "1h")
    sample = alerts_sample(rule, agent_type="copilot", slo_threshold=f"{row.threshold_s:g}s")
    query = 'ALERTS{alertname="ColdStartLatencyBudgetBurn", long_window="1h"}'
    half_slow = np.arange(steps) >= 60  # from 1h on, one of each step's two is slow
    tests = {
        "rule_files": [rule_file],
        "evaluation_interval": "1m",
        "tests": [
            {  # every cold start inside the threshold: silent
                "interval": "1m",
                "input_series": histogram_series(catalogue, "copilot", fast, slow, np.zeros(steps)),
                "alert_rule_test": [
                    {"eval_time": f"{t}m", "alertname": rule["alert"], "exp_alerts": []}
                    for t in (30, 90, 170)
                ],
            },
            {  # half of them slower than the threshold from 1h on: 25% of the last hour pages
                "interval": "1m",
                "input_series": histogram_series(catalogue, "copilot", fast, slow, half_slow),
                "promql_expr_test": [
                    {"expr": query, "eval_time": "55m", "exp_samples": []},
                    {
                        "expr": query,
                        "eval_time": "90m",
                        "exp_samples": [{"labels": sample, "value": 1}],
                    },
                ],
            },
        ],
    }
    run_promtool_tests(promtool, tmp_path, tests)


def test_p99_doubled_week_over_week_fires_and_a_steady_week_does_not(
    tmp_path, promtool, catalogue, thresholds
):
    path = write_proposed_rules(tmp_path, catalogue, thresholds)
    rule_file, (rule,) = only_rules(path, "TaskLatencyP99Doubled")
    steps = 8 * 24 * 3  # eight days of 20-minute steps, two tasks a step (144 a day)
    # From day 7 on, one task of each step takes 450 s instead of 90 s: the p99 grows fivefold.
    slower = np.arange(steps) >= 7 * 24 * 3
    query = 'ALERTS{alertname="TaskLatencyP99Doubled"}'

    def case(mask):
        series = histogram_series(catalogue, "claude", 90.0, 450.0, mask, spec=TASK_DURATION)
        return {"interval": "20m", "input_series": series}

    tests = {
        "rule_files": [rule_file],
        "evaluation_interval": "20m",
        "tests": [
            {
                **case(np.zeros(steps)),
                "alert_rule_test": [
                    {"eval_time": "8d", "alertname": rule["alert"], "exp_alerts": []}
                ],
            },
            {
                **case(slower),
                "promql_expr_test": [
                    {"expr": query, "eval_time": "6d23h", "exp_samples": []},
                    {
                        "expr": query,
                        "eval_time": "8d",
                        "exp_samples": [
                            {"labels": alerts_sample(rule, agent_type="claude"), "value": 1}
                        ],
                    },
                ],
            },
        ],
    }
    run_promtool_tests(promtool, tmp_path, tests)
