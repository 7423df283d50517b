"""Pass-2 draft (inactive) alerting rules from proposed thresholds.

:func:`~obslib.analysis.slo.thresholds.propose_thresholds` picks a latency threshold and an
error-rate objective per agent type; :func:`render_proposed_rules` turns them into multi-window
multi-burn-rate alerts (the SRE workbook's windows for a 30-day objective) plus the spec's
rate-of-change alerts; :func:`write_proposed_rules` writes them to
``rules/proposed/pass2-slo.yaml``. The rules are drafts: they are not in the catalogue, not in
``rules/daedalus-alerts.yaml`` or the PrometheusRule, and each carries ``pass2_draft="true"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from obslib.analysis.slo.counts import ERROR_SLI, LATENCY_SLIS
from obslib.catalogue import Catalogue
from obslib.catalogue.contract import STATUS_FAILURE, STATUS_SUCCESS, TASKS
from obslib.errors import EmitError
from obslib.files import to_yaml, write_atomic
from obslib.lint import format_problems, lint_rules

PROPOSED_FILE = "pass2-slo.yaml"
# Burn-rate alerts need this many events in their long window (low traffic: one slow task in
# five minutes is no trend).
MIN_EVENTS = 10
# The week-over-week p99 comparison needs this many observations on both days.
MIN_QUANTILE_EVENTS = 100


@dataclass(frozen=True)
class BurnWindow:
    """One long/short window pair of a multi-window multi-burn-rate alert."""

    long: str
    short: str
    factor: float  # how many times faster than "exactly used up in 30 days"
    severity: str  # page | warn (the workbook's "ticket" is Pass 1's warn)


# The SRE workbook's pairs for a 30-day objective (reference/conventions.md).
BURN_WINDOWS = (
    BurnWindow("1h", "5m", 14.4, "page"),
    BurnWindow("6h", "30m", 6.0, "page"),
    BurnWindow("1d", "2h", 3.0, "warn"),
    BurnWindow("3d", "6h", 1.0, "warn"),
)


@dataclass(frozen=True)
class SloRules:
    """Names and words of the alerts drafted for one SLI."""

    sli: str
    component: str  # static daedalus_component label
    burn_alert: str
    change_alert: str
    events: str  # what one event is, in prose
    bad: str  # what makes an event bad, in prose (may read $labels.slo_threshold)


_SLOWER = "took longer than {{ $labels.slo_threshold }}"
SLO_RULES = (
    SloRules("cold_start", "worker", "ColdStartLatencyBudgetBurn", "ColdStartP99Doubled", "cold starts", _SLOWER),
    SloRules("task_duration", "tasks", "TaskLatencyBudgetBurn", "TaskLatencyP99Doubled", "tasks (publish to artifact)", _SLOWER),
    SloRules(ERROR_SLI, "tasks", "TaskErrorBudgetBurn", "TaskErrorRateTripled", "finished tasks",
             "failed (the proposed SLO allows {{ $labels.slo_threshold }})"),
)  # fmt: skip
_DECIDED = f'status=~"{STATUS_SUCCESS}|{STATUS_FAILURE}"'
_FAILED = f'status="{STATUS_FAILURE}"'


def _anchor(alert: str) -> str:
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in alert).lstrip("-")


def le_pattern(bound: float) -> str:
    """``le`` regex for a bound, as a PromQL string body: Go clients write 120, Prometheus 3 120.0."""
    text = f"{bound:g}"
    pattern = re.escape(text) if "." in text else rf"{text}(\.0)?"
    return pattern.replace("\\", "\\\\")  # PromQL strings escape backslashes


def _sum(expr: str, by: str = "agent_type") -> str:
    return f"sum by ({by}) ({expr})"


def _slow_share(metric: str, sel: str, bound: float, window: str) -> str:
    """Share of observations above ``bound`` (the latency SLI's bad events) over ``window``."""
    le = f'le=~"{le_pattern(bound)}"'
    good = _sum(f"rate({metric}_bucket{{{sel}, {le}}}[{window}])")
    return f"(1 - {good} / {_sum(f'rate({metric}_count{{{sel}}}[{window}])')})"


def _error_share(sel: str, window: str, offset: str = "") -> str:
    failed = _sum(f"rate({TASKS.name}{{{sel}, {_FAILED}}}[{window}]{offset})")
    decided = _sum(f"rate({TASKS.name}{{{sel}, {_DECIDED}}}[{window}]{offset})")
    return f"({failed} / {decided})"


def _events(sli: str, sel: str, window: str, offset: str = "") -> str:
    if sli == ERROR_SLI:
        return _sum(f"increase({TASKS.name}{{{sel}, {_DECIDED}}}[{window}]{offset})")
    return _sum(f"increase({LATENCY_SLIS[sli].name}_count{{{sel}}}[{window}]{offset})")


def _burn_leg(rules: SloRules, row: pd.Series, ns: str, w: BurnWindow, min_events: int) -> str:
    sel = f'namespace="{ns}", agent_type="{row.agent_type}"'
    budget = float(f"{1 - row.objective:.6g}")
    limit = f"({w.factor:g} * {budget:g})"
    if rules.sli == ERROR_SLI:
        long, short = _error_share(sel, w.long), _error_share(sel, w.short)
        label = f"{budget * 100:g}%"
    else:
        metric = LATENCY_SLIS[rules.sli].name
        long = _slow_share(metric, sel, row.threshold_s, w.long)
        short = _slow_share(metric, sel, row.threshold_s, w.short)
        label = f"{row.threshold_s:g}s"
    condition = (
        f"{long} > {limit}\n  and {short} > {limit}\n"
        f"  and {_events(rules.sli, sel, w.long)} >= {min_events}"
    )
    return f'label_replace(\n  {condition},\n  "slo_threshold", "{label}", "", ""\n)'


def _burn_rules(
    c: Catalogue,
    rules: SloRules,
    rows: pd.DataFrame,
    windows: Sequence[BurnWindow],
    min_events: int,
) -> list[dict[str, Any]]:
    out = []
    for w in windows:
        # A leg whose bar is 100% bad events or more can never fire: leave it out.
        reachable = rows[w.factor * (1 - rows.objective) < 1]
        if reachable.empty:
            continue
        legs = [
            _burn_leg(rules, row, c.settings.namespace, w, min_events)
            for row in reachable.itertuples()
        ]
        out.append(
            _rule(
                c,
                rules,
                rules.burn_alert,
                "\nor\n".join(legs),
                w.severity,
                f"{rules.events.capitalize()} of an agent type burn the proposed SLO's error "
                f"budget at more than {w.factor:g}x over {w.long} and {w.short} (Pass-2 draft).",
                f"{{{{ $value | humanizePercentage }}}} of the {rules.events} of agent type "
                f"{{{{ $labels.agent_type }}}} {rules.bad} over the last {w.long}, and over the "
                f"last {w.short} too: the error budget burns at more than {w.factor:g}x, so a "
                f"30-day budget would last under {30 / w.factor:.3g} days.",
                extra={"long_window": w.long, "short_window": w.short},
            )
        )
    return out


def _change_rule(c: Catalogue, rules: SloRules, min_events: int) -> dict[str, Any]:
    sel = f'namespace="{c.settings.namespace}"'
    if rules.sli == ERROR_SLI:
        failed = _sum(f"increase({TASKS.name}{{{sel}, {_FAILED}}}[1d])")
        expr = (
            f"{_error_share(sel, '1d')}\n  > 3 * {_error_share(sel, '1d', ' offset 1w')}\n"
            f"and {failed} >= {min_events}"
        )
        summary = "An agent type's task error rate has tripled week over week (Pass-2 draft)."
        text = "{{ $value | humanizePercentage }} of the finished tasks of agent type {{ $labels.agent_type }} failed over the last day, more than 3 times the rate of the same day a week earlier."
    else:
        bucket = f"{LATENCY_SLIS[rules.sli].name}_bucket{{{sel}}}"

        def p99(offset: str) -> str:
            return (
                f"histogram_quantile(0.99, {_sum(f'rate({bucket}[1d]{offset})', 'agent_type, le')})"
            )

        expr = (
            f"{p99('')}\n  > 2 * {p99(' offset 1w')}\n"
            f"and {_events(rules.sli, sel, '1d')} >= {MIN_QUANTILE_EVENTS}\n"
            f"and {_events(rules.sli, sel, '1d', ' offset 1w')} >= {MIN_QUANTILE_EVENTS}"
        )
        summary = (
            f"The p99 of an agent type's {rules.events} has doubled week over week (Pass-2 draft)."
        )
        text = (
            f"The p99 of the {rules.events} of agent type {{{{ $labels.agent_type }}}} over the last day is "
            "{{ $value | humanizeDuration }}, more than twice the p99 of the same day a week earlier."
        )
    return _rule(c, rules, rules.change_alert, expr, "warn", summary, text, for_="1h")


def _rule(
    c: Catalogue,
    rules: SloRules,
    name: str,
    expr: str,
    severity: str,
    summary: str,
    description: str,
    *,
    for_: str = "",
    extra: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr + "\n"}
    if for_:
        rule["for"] = for_
    rule["labels"] = {
        "severity": severity,
        "namespace": c.settings.namespace,
        "daedalus_component": rules.component,
        "pass2_draft": "true",
        **(extra or {}),
    }
    rule["annotations"] = {
        "summary": summary,
        "description": description,
        "runbook_url": f"{c.settings.runbook_base_url}#{_anchor(name)}",
    }
    return rule


def render_proposed_rules(
    catalogue: Catalogue,
    thresholds: pd.DataFrame,
    *,
    windows: Sequence[BurnWindow] = BURN_WINDOWS,
    min_events: int = MIN_EVENTS,
) -> dict[str, Any]:
    """The draft Pass-2 rule file (``{"groups": [...]}``), one group per SLI.

    Each group holds, per window pair, one burn-rate alert whose expression ORs one leg per
    agent type with a proposed threshold: the bad-event share over the long *and* the short
    window above ``factor x (1 - objective)``, with at least ``min_events`` events in the
    long window. Latency legs read the bucket at the agent type's threshold (a bucket ratio);
    a leg that cannot fire (``factor x budget >= 1``) is left out. Each group also holds the
    spec's rate-of-change alert (p99 doubled, or error rate tripled, day against the same day
    a week earlier, ``offset 1w``), which needs no threshold.
    """
    proposed = thresholds[thresholds.status == "proposed"]
    if proposed.duplicated(["agent_type", "sli"]).any():
        raise ValueError("thresholds of several windows: propose from one window at a time")
    groups = []
    for rules in SLO_RULES:
        rows = proposed[proposed.sli == rules.sli]
        body = _burn_rules(catalogue, rules, rows, windows, min_events)
        body.append(_change_rule(catalogue, rules, min_events))
        groups.append({"name": f"daedalus-pass2-{rules.sli.replace('_', '-')}", "rules": body})
    return {"groups": groups}


def _header(thresholds: pd.DataFrame) -> str:
    lines = [
        "INACTIVE Pass-2 proposal: draft SLO alerts derived from the SLO baseline. These rules are",
        "not part of rules/daedalus-alerts.yaml or the PrometheusRule and no Prometheus loads",
        'them; every rule carries pass2_draft="true". Review, then move them into the catalogue',
        "(with runbook sections for their anchors) to activate them.",
    ]
    if not thresholds.empty:
        lines.append(
            f"Baseline window: {thresholds.period_start.min():%Y-%m-%d %H:%M} .. "
            f"{thresholds.period_end.max():%Y-%m-%d %H:%M} UTC."
        )
    for row in thresholds.itertuples():
        if row.status != "proposed":
            lines.append(f"  {row.agent_type} {row.sli}: none ({row.status}: {row.reason})")
        elif row.sli == ERROR_SLI:
            lines.append(
                f"  {row.agent_type} {row.sli}: at most {row.allowed_error_rate:.2%} of finished "
                f"tasks fail (observed {row.observed_error_rate:.2%} of {row.observations:.0f})"
            )
        else:
            lines.append(
                f"  {row.agent_type} {row.sli}: {row.objective:.0%} <= {row.threshold_s:g} s "
                f"(observed p99 {row.observed_p99_s:.0f} s, in bucket {row.p99_lower_s:g}-"
                f"{row.p99_upper_s:g} s; {row.sli_at_threshold:.2%} of the window at or below)"
            )
    return "".join(f"# {line}\n" for line in lines)


def write_proposed_rules(
    path_dir: str | Path,
    catalogue: Catalogue,
    thresholds: pd.DataFrame,
    *,
    windows: Sequence[BurnWindow] = BURN_WINDOWS,
    min_events: int = MIN_EVENTS,
) -> Path:
    """Lint, then atomically write ``<path_dir>/pass2-slo.yaml``; returns its path.

    Raises:
        EmitError: a rule fails the project's PromQL lint (nothing is written).
    """
    document = render_proposed_rules(catalogue, thresholds, windows=windows, min_events=min_events)
    problems = lint_rules(document["groups"], catalogue.metrics)
    if problems:
        raise EmitError(f"the proposed Pass-2 rules fail the lint:\n{format_problems(problems)}")
    path = Path(path_dir) / PROPOSED_FILE
    write_atomic(path, _header(thresholds) + to_yaml(document, comment=""))
    return path
