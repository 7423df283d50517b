"""The Phase-5 acceptance report: AC1, AC2 and AC5 on the window, and its one-line headline.

What the verdict means here: **pass** when every criterion passed on evidence, **fail** when a
criterion failed (the run exits 1), **inconclusive** when evidence is missing (no cold start in
the window, no sentinel trace, no fleet overview with data; exit 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from obslib.analysis import acceptance
from obslib.analysis.acceptance import CriterionResult
from obslib.catalogue import Catalogue
from obslib.reports import inputs
from obslib.verdict import Verdict


@dataclass(frozen=True)
class AcceptanceReport:
    """Each criterion's result and the summary the results JSON carries."""

    results: tuple[CriterionResult, ...]
    sentinel_origin: str  # where the sentinel came from, in words

    @property
    def summary(self) -> dict[str, Any]:
        """The results JSON's summary (each AC's verdict, value and evidence)."""
        return {**acceptance.acceptance_summary(list(self.results)), "headline": self.headline()}

    @property
    def verdict(self) -> Verdict:
        """Any failure fails; missing evidence is inconclusive; all passing passes."""
        return Verdict.combine([r.verdict for r in self.results])

    def headline(self) -> str:
        """One line: each criterion's verdict and figure."""
        return "; ".join(_criterion_words(r) for r in self.results)

    def criteria(self) -> pd.DataFrame:
        """One row per criterion."""
        return pd.DataFrame(
            [
                {
                    "criterion": r.criterion,
                    "verdict": r.verdict.value,
                    "value": r.value,
                    "unit": r.unit,
                    "explanation": r.explanation,
                }
                for r in self.results
            ]
        )


def _criterion_words(r: CriterionResult) -> str:
    value = r.value
    if r.criterion == "AC1" and isinstance(value, float) and not math.isnan(value):
        return f"AC1 {r.verdict.value}: p99 cold start {value:,.0f} s of 1,500 s"
    if r.criterion == "AC2" and isinstance(value, float) and not math.isnan(value):
        return f"AC2 {r.verdict.value}: sentinel task whole in {value:,.1f} s"
    return f"{r.criterion} {r.verdict.value}"


def acceptance_report(
    source: Any,
    catalogue: Catalogue,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    sentinel_task_id: str = "",
    trace_id: str = "",
    traces_path: str = "",
    fleet_report: str = "",
) -> AcceptanceReport:
    """Check AC1, AC2 and AC5 for the post-deploy window ``[start, end]``.

    With no sentinel given on the embedded default, the reference run's sentinel (a task
    without faults, and its trace) stands in, so the report runs as opened.
    """
    task, trace, path, origin = inputs.sentinel(sentinel_task_id, trace_id, traces_path)
    loader = inputs.trace_loader(path or None) if (path or trace) else (lambda _id: pd.DataFrame())
    results = (
        acceptance.check_ac1(source, start, end, catalogue=catalogue),
        acceptance.check_ac2(task, trace, loader),
        acceptance.check_ac5(
            catalogue, start, end, report_path=fleet_report or None, prometheus=source
        ),
    )
    return AcceptanceReport(results, origin)


def criterion_markdown(r: CriterionResult) -> str:
    """A criterion's section: its verdict and explanation, what decided it, its link."""
    lines = [f"### {r.criterion}: {r.title}", f"**{r.verdict.value}**: {r.explanation}"]
    if r.query:
        lines.append(f"Decided by:\n\n```\n{r.query}\n```")
    if r.link:
        lines.append(f"Link: {r.link}")
    return "\n\n".join(lines)


def evidence_table(r: CriterionResult) -> pd.DataFrame:
    """The queries behind a criterion and what each found."""
    return pd.DataFrame(
        [{"query": e.query, "value": e.value, "meaning": e.meaning} for e in r.evidence]
    )
