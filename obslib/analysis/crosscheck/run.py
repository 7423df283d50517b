"""One cross-check run over a window, and its results-JSON summary with the verdict."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from obslib.analysis.crosscheck.cardinality import agent_type_cardinality, cardinality_verdict
from obslib.analysis.crosscheck.exporters import exporter_report
from obslib.analysis.crosscheck.noise import alert_noise
from obslib.analysis.crosscheck.platform import platform_mismatches
from obslib.analysis.crosscheck.runbook import check_runbook
from obslib.analysis.crosscheck.selectors import selector_report, unmatched
from obslib.catalogue import Catalogue
from obslib.jsonable import jsonable
from obslib.sources.prometheus import PrometheusSource, TimeLike
from obslib.verdict import Verdict

MAX_LISTED = 20  # values listed in the summary; a leaking id can make thousands


def _texts(frame: pd.DataFrame, columns: Iterable[str]) -> list[dict[str, object]]:
    return [
        {c: jsonable(v) for c, v in zip(columns, row, strict=True)}
        for row in frame[list(columns)].itertuples(index=False)
    ]


def crosscheck_summary(
    selectors: pd.DataFrame,
    cardinality: pd.DataFrame | None = None,
    noise: pd.DataFrame | None = None,
    runbook: pd.DataFrame | None = None,
    mismatches: pd.DataFrame | None = None,
    exporters: pd.DataFrame | None = None,
    *,
    has_data: bool | None = None,
) -> dict[str, object]:
    """The results-JSON summary of a cross-check, with its verdict.

    Fail when a rule's selector matches nothing (an absent state, e.g. no ImagePullBackOff
    in the window, is not a failure) or a value outside the agent-type set is seen.
    Inconclusive, when nothing fails, if Prometheus has no data in the window (``has_data``;
    by default: no selector's metric has any series) or no agent_type value is seen. Dashboard
    selectors that match nothing, runbook gaps and platform mismatches are reported, and do
    not decide the verdict on their own.
    """
    if has_data is None:
        has_data = bool((selectors["diagnosis"] != "no_series").any())
    rules, dashboards = unmatched(selectors, "rule"), unmatched(selectors, "dashboard")
    reasons: list[str] = []
    verdicts = []
    if not has_data:
        reasons.append("Prometheus has no data in the window")
        verdicts.append(Verdict.INCONCLUSIVE)
    if has_data and not rules.empty:
        reasons.append(f"{len(rules)} rule selector(s) match nothing")
        verdicts.append(Verdict.FAIL)
    summary: dict[str, object] = {
        "has_data": has_data,
        "selectors": {
            "checked": len(selectors),
            "matched": int(selectors["matched"].sum()),
            "state_absent": int((selectors["diagnosis"] == "state_absent").sum()),
            "rules_unmatched": _texts(rules, ("name", "selector", "diagnosis", "detail")),
            "dashboards_unmatched": _texts(
                dashboards, ("name", "panel", "selector", "diagnosis", "detail")
            ),
        },
    }
    if cardinality is not None:
        verdict = cardinality_verdict(cardinality) if has_data else Verdict.INCONCLUSIVE
        outside = cardinality[cardinality["seen"] & ~cardinality["in_set"]]
        outside = outside[outside["agent_type"] != ""]
        if verdict is Verdict.FAIL:
            reasons.append(f"agent_type is unbounded: {len(outside)} value(s) outside agentTypes")
        elif verdict is Verdict.INCONCLUSIVE and has_data:
            reasons.append("no agent_type value on any Daedalus metric")
        verdicts.append(verdict)
        summary["agent_type"] = {
            "verdict": verdict.value,
            "outside_set_count": len(outside),
            "outside_set": sorted(outside["agent_type"])[:MAX_LISTED],
            "never_seen": sorted(
                cardinality.loc[cardinality["in_set"] & ~cardinality["seen"], "agent_type"]
            ),
        }
    if exporters is not None:
        summary["exporters"] = _texts(
            exporters[exporters["present"]], ("exporter", "version", "build_version", "agrees")
        )
    if noise is not None:
        summary["alerts"] = {
            r.alert: {"fired": int(r.fired), "firing_s": float(r.firing_s)}
            for r in noise.itertuples()
        }
    if runbook is not None:
        summary["runbook"] = {
            "complete": bool(runbook["complete"].all()),
            "incomplete": {
                (r.alert or r.anchor): list(r.missing)
                for r in runbook.itertuples()
                if not r.complete
            },
        }
    if mismatches is not None:
        summary["mismatches"] = _texts(mismatches, ("mismatch", "change"))
    verdict = Verdict.combine(verdicts) if verdicts else Verdict.PASS
    summary = {"verdict": verdict.value, "reasons": reasons, **summary}
    return summary


@dataclass(frozen=True)
class CrossCheck:
    """Every frame of one cross-check run, and its summary."""

    selectors: pd.DataFrame
    exporters: pd.DataFrame
    cardinality: pd.DataFrame
    noise: pd.DataFrame
    mismatches: pd.DataFrame
    runbook: pd.DataFrame | None
    summary: dict[str, object]


def run_crosscheck(
    source: PrometheusSource,
    catalogue: Catalogue,
    start: TimeLike,
    end: TimeLike,
    runbook_text: str | None = None,
) -> CrossCheck:
    """Run every part of the cross-check over one window (the runbook only when given)."""
    selectors = selector_report(source, catalogue, start, end)
    exporters = exporter_report(source, catalogue, start, end)
    cardinality = agent_type_cardinality(source, catalogue.settings, start, end)
    noise = alert_noise(source, catalogue, start, end)
    mismatches = platform_mismatches(selectors, catalogue, exporters, cardinality)
    runbook = None if runbook_text is None else check_runbook(runbook_text, catalogue)
    summary = crosscheck_summary(selectors, cardinality, noise, runbook, mismatches, exporters)
    return CrossCheck(selectors, exporters, cardinality, noise, mismatches, runbook, summary)
