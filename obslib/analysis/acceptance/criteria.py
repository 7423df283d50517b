"""What every acceptance check returns: the verdict on one criterion and its proof.

A :class:`CriterionResult` carries the query or request that decides the criterion, the value
found, a link and one line on what to do next, with the :class:`Evidence` behind it, so a report
of them is enough to validate the criteria by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from obslib.catalogue import Catalogue
from obslib.emit.dashboards import FLEET_UID, render_dashboard
from obslib.jsonable import jsonable
from obslib.sources.endpoint import endpoint_from_env, is_configured
from obslib.sources.prometheus import TimeLike, to_seconds
from obslib.verdict import Verdict

TITLES = {
    "AC1": "Deploy in 25 minutes: p99 cold start below 1500 s after the deploy",
    "AC2": "E2E task asserted: the sentinel task's trace is whole and its result arrived",
    "AC5": "workflow_dispatch passes: a snapshot of the fleet overview for the run window",
}


@dataclass(frozen=True)
class Evidence:
    """One piece of proof: what was asked, what came back, and what it means."""

    query: str  # PromQL, a trace or snapshot request, or a file
    value: float | str | None
    meaning: str = ""


@dataclass(frozen=True, eq=False)
class CriterionResult:
    """The verdict on one acceptance criterion and everything needed to check it by hand."""

    criterion: str  # AC1 | AC2 | AC5
    title: str
    verdict: Verdict
    explanation: str  # one line: what was found, and on fail or inconclusive what to do
    query: str = ""  # the query or request that decides it
    value: float | str | None = None  # what it found (seconds, a snapshot URL, a file)
    unit: str = ""
    link: str = ""  # dashboard panel, Tempo trace, snapshot URL or report file
    evidence: tuple[Evidence, ...] = ()
    breakdown: pd.DataFrame = field(default_factory=pd.DataFrame)  # per agent type (AC1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for a results file (NaN and infinities become None)."""
        return {
            "criterion": self.criterion,
            "title": self.title,
            "verdict": self.verdict.value,
            "query": self.query,
            "value": jsonable(self.value),
            "unit": self.unit,
            "link": self.link,
            "explanation": self.explanation,
            "evidence": [
                {"query": e.query, "value": jsonable(e.value), "meaning": e.meaning}
                for e in self.evidence
            ],
            "breakdown": jsonable(self.breakdown),
        }


def criterion(criterion: str, verdict: Verdict, why: str, **fields: Any) -> CriterionResult:
    """The result of ``criterion`` (AC1, AC2 or AC5) under its title."""
    return CriterionResult(criterion, TITLES[criterion], verdict, why, **fields)


def panel_link(
    catalogue: Catalogue,
    key: str,
    start: TimeLike,
    end: TimeLike,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Where a fleet-overview panel is: its Grafana URL over the window, else the dashboard file."""
    title = catalogue.panel(key).title
    panel_id = next(p["id"] for p in render_dashboard(catalogue)["panels"] if p["title"] == title)
    if is_configured("grafana", environ):
        base = endpoint_from_env("grafana", environ=environ).safe_url
        start_ms, end_ms = round(to_seconds(start) * 1000), round(to_seconds(end) * 1000)
        return f"{base}/d/{FLEET_UID}?viewPanel={panel_id}&from={start_ms}&to={end_ms}"
    return f"dashboards/{FLEET_UID}.json, panel {panel_id} ({title!r})"
