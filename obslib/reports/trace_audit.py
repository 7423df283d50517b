"""The trace-audit report's findings: the audit on what was read, with what was not read.

:func:`audit_report` reads nothing itself: it takes the window's spans and logs as
:mod:`obslib.reports.inputs` fetched them, audits the spans, checks the log lines against them
and (for the reference run) the injected faults against the findings, and lowers a pass on
partial data to inconclusive. The notebook displays the result; headless runs save its summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from obslib.analysis import audit_traces
from obslib.analysis.audit import AuditResult
from obslib.analysis.trace_stats import ground_truth_verdict, injected_vs_found, logs_without_trace
from obslib.catalogue.hops import HopProfile
from obslib.reports.coverage import coverage_json
from obslib.sources.coverage import Fetched, verdict_on
from obslib.verdict import Verdict


@dataclass(frozen=True)
class AuditReport:
    """What the trace-audit report says."""

    spans: Fetched
    logs: Fetched | None
    result: AuditResult
    verdict: Verdict  # the audit's verdict, lowered to inconclusive on partial data
    reasons: tuple[str, ...]  # why it was lowered (or why a fail rests on partial data)
    orphan_logs: pd.DataFrame | None  # None: no log line was read ("no logs matched")
    ground_truth: pd.DataFrame | None  # injected faults against findings (reference run)
    ground_truth_verdict: Verdict | None

    @property
    def window(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """The window the spans cover: the request for a backend, the data's own for a file."""
        return self.spans.coverage.covered or self.spans.coverage.requested

    def log_words(self) -> str:
        """One sentence on the log check."""
        if self.logs is None:
            return "No log source: pass logs_path or set OBSLIB_LOKI_URL."
        if self.orphan_logs is None:
            gap = next((g.detail for g in self.logs.coverage.gaps if g.kind == "no_match"), "")
            return f"No logs matched in {self.logs.coverage.source}" + (f": {gap}." if gap else ".")
        frame = self.logs.frame
        with_id = int((frame["trace_id"].astype(str) != "").sum())
        partial = (
            " (of the lines read: the log read is partial)" if self.logs.coverage.partial else ""
        )
        return (
            f"{len(frame):,} log lines, {with_id:,} with a trace id, **{len(self.orphan_logs):,}** "
            f"whose trace is not among the audited spans{partial}."
        )

    def summary(self) -> dict[str, Any]:
        """The results JSON's summary: the audit's figures, coverage, logs and ground truth."""
        truth = None
        if self.ground_truth is not None:
            truth = {
                "verdict": str(self.ground_truth_verdict),
                "all_caught": bool(self.ground_truth["caught"].all()),
                "absent_tasks": int(sum(len(a) for a in self.ground_truth["absent"])),
                "faults": self.ground_truth.to_dict("records"),
            }
        return {
            **self.result.summary(),
            "verdict": str(self.verdict),
            "audit_verdict": str(self.result.verdict),
            "partial_data": list(self.reasons),
            "coverage": coverage_json(
                [self.spans.coverage, self.logs.coverage if self.logs else None]
            ),
            "hop_completeness": self.result.hops.to_dict("records"),
            "orphan_log_lines": None if self.orphan_logs is None else len(self.orphan_logs),
            "ground_truth": truth,
        }


def audit_report(
    spans: Fetched,
    logs: Fetched | None,
    profile: HopProfile,
    *,
    fleet_run: str | Path = "",
    window_read: bool = False,
) -> AuditReport:
    """Audit the window's spans and judge the result by what the reads covered.

    ``window_read`` says the spans were read for a window (from Tempo), so tasks that began
    before it are cut, not judged; a file is read whole and judged whole.
    """
    window = spans.coverage.requested if window_read else None
    result = audit_traces(spans.frame, profile, window=window)
    coverages = [spans.coverage] + ([logs.coverage] if logs is not None else [])
    verdict, reasons = verdict_on(result.verdict, coverages)
    orphans = None if logs is None else logs_without_trace(logs, spans.frame)
    truth = injected_vs_found(result, fleet_run) if fleet_run else None
    return AuditReport(
        spans,
        logs,
        result,
        verdict,
        tuple(reasons),
        orphans,
        truth,
        None if truth is None else ground_truth_verdict(truth),
    )
