"""The fleet overview and cross-check reports' verdicts and headlines.

Fleet overview: **pass** when every panel drew data over the window, **inconclusive** when a
panel had none (no data is never a pass). Cross-check: **pass** when every rule selector matches
live series and agent_type stays within the configured set, **fail** when a rule selector
matches nothing or agent_type is unbounded, **inconclusive** when Prometheus has no data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from obslib.verdict import Verdict


def panel_summary(panel_stats: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per panel: its series count and whether it drew anything."""
    return pd.DataFrame(
        [
            {"panel": t, "series": int(s["series"]), "data": s["series"] > 0}
            for t, s in panel_stats.items()
        ]
    )


def fleet_verdict(panel_stats: Mapping[str, Mapping[str, Any]]) -> Verdict:
    """Pass when every panel drew data; inconclusive otherwise."""
    empty = [t for t, s in panel_stats.items() if s["series"] == 0]
    return Verdict.INCONCLUSIVE if empty or not panel_stats else Verdict.PASS


def fleet_headline(panel_stats: Mapping[str, Mapping[str, Any]], agent_types: list[str]) -> str:
    """One line: how many panels drew data, and which did not."""
    empty = [t for t, s in panel_stats.items() if s["series"] == 0]
    text = f"{len(panel_stats) - len(empty)} of {len(panel_stats)} panels have data"
    text += f" for {len(agent_types)} agent types"
    return text + (f"; no data: {', '.join(empty)}" if empty else "")


def crosscheck_headline(summary: Mapping[str, Any]) -> str:
    """One line: selectors matched, agent_type bounded or not, mismatches found."""
    selectors = summary.get("selectors") or {}
    text = f"{selectors.get('matched', 0):,} of {selectors.get('checked', 0):,} selectors match"
    rules = selectors.get("rules_unmatched") or []
    if rules:
        text += f"; {len(rules)} rule selector(s) match nothing"
    agent = summary.get("agent_type") or {}
    if agent.get("outside_set_count"):
        text += f"; agent_type unbounded ({agent['outside_set_count']} values outside the set)"
    mismatches = summary.get("mismatches") or []
    if mismatches:
        text += f"; {len(mismatches)} platform naming mismatch(es)"
    return text


def unmatched_selectors(check: Any) -> pd.DataFrame:
    """Rule and dashboard selectors that matched no series, once each."""
    selectors = check.selectors
    unmatched = selectors[~selectors["matched"]]
    columns = ["kind", "name", "panel", "selector", "diagnosis", "detail"]
    return unmatched[columns].drop_duplicates(["kind", "name", "selector"])


def selector_counts(check: Any) -> pd.DataFrame:
    """How many selectors of each kind got each diagnosis."""
    counts = check.selectors.groupby(["kind", "diagnosis"]).size().rename("selectors")
    return counts.reset_index()


def incomplete_runbook(check: Any) -> pd.DataFrame:
    """Runbook sections that lack a part."""
    runbook = check.runbook
    return runbook[~runbook["complete"]] if runbook is not None else pd.DataFrame()


def crosscheck_summary(check: Any) -> dict[str, Any]:
    """The results JSON's summary of a cross-check."""
    return {
        **check.summary,
        "headline": crosscheck_headline(check.summary),
        "unmatched_selectors": unmatched_selectors(check)
        .drop(columns="detail")
        .drop_duplicates()
        .to_dict("records"),
        "mismatches": check.mismatches[["mismatch", "fix", "values_key", "suggested"]].to_dict(
            "records"
        ),
        "alert_noise": check.noise.to_dict("records"),
    }
