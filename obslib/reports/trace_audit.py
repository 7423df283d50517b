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

from obslib.analysis import AuditResult, audit_traces
from obslib.analysis.traces.stats import (
    ground_truth_verdict,
    injected_vs_found,
    logs_without_trace,
)
from obslib.catalogue.hops import HopProfile
from obslib.reports.coverage import coverage_json
from obslib.sources.coverage import Fetched, verdict_on
from obslib.verdict import Verdict


@dataclass(frozen=True)
class AuditReport:
    """What the trace-audit report says."""

    spans: Fetched
    logs: Fetched | None
    profile: HopProfile
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
            "headline": headline(self),
            "broken_tasks": broken_tasks(self).to_dict("records"),
            "findings": dict(
                zip(*[finding_counts(self)[c] for c in ("finding", "count")], strict=True)
            ),
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
        profile,
        result,
        verdict,
        tuple(reasons),
        orphans,
        truth,
        None if truth is None else ground_truth_verdict(truth),
    )


# -- the report's words -----------------------------------------------------------------------

_CAUSES = {
    "CONSUMER": "the message headers carried no traceparent",
    "SERVER": "the request's metadata (ACP `_meta`) carried no traceparent",
}


def _side(profile: HopProfile, key: str, agent_type: str) -> str:
    hop = profile.hop(key)
    return f"{hop.service_for(agent_type or '<agent>')} `{hop.span}`"


def plain_reason(
    profile: HopProfile, hop_key: str, check: str, detail: str, agent_type: str
) -> str:
    """One finding in plain words, naming the services on either side of the break."""
    keys = {h.key for h in profile.hops}
    if hop_key not in keys:
        return f"span `{hop_key}` (no hop of the profile): {check.replace('_', ' ')}, {detail}"
    hop = profile.hop(hop_key)
    here = _side(profile, hop_key, agent_type)
    above = _side(profile, hop.parent, agent_type) if hop.parent else ""
    words = {
        "no_root": f"no root span: {here} was never exported, or has a parent",
        "several_roots": f"the task starts more than once: {detail}",
        "missing": f"{here} is missing ({detail})"
        + (f": the chain stops below {above}" if above else ""),
        "extra": f"{here} occurs more often than one task needs ({detail})",
        "wrong_kind": f"{here} has the wrong span kind ({detail}; expected {hop.kind})",
        "detached": f"trace context lost between {above} and {here}: "
        + _CAUSES.get(hop.kind, "the span started a new trace"),
        "orphan": f"the parent of {here} was never exported ({detail})",
        "wrong_parent": f"{here} hangs under the wrong span ({detail})",
        "split": f"the task continues in another trace from {here} on ({detail})",
        "shared_trace": f"the trace of {here} also carries another task ({detail})",
        "duplicate_span_id": f"{here} shares its span id with another span ({detail})",
        "skew": f"{here} starts before its parent {above} ({detail}): a clock is off",
        "envelope_missing": f"the result envelope reaching {here} carries no trace id",
        "envelope_mismatch": f"the result envelope reaching {here} names another trace than "
        f"the task's ({detail}): the result was published under a new trace",
    }
    return words.get(check, f"{here}: {check.replace('_', ' ')} ({detail})")


def broken_tasks(report: AuditReport) -> pd.DataFrame:
    """Every broken task with its first broken hop and every finding in plain words.

    Ordered by first broken hop (root first), then task id; ``reasons`` is one string with
    the findings separated by "; " (nothing is cut).
    """
    profile = report.profile
    tasks = report.result.tasks
    broken = tasks[~tasks["ok"]]
    problems = report.result.problems
    agents = dict(zip(tasks["task_id"], tasks["agent_type"], strict=True))
    words = [
        plain_reason(profile, h, c, d, agents.get(t, ""))
        for t, h, c, d in zip(
            problems["task_id"], problems["hop"], problems["check"], problems["detail"], strict=True
        )
    ]
    reasons = (
        pd.DataFrame({"task_id": problems["task_id"], "reason": words})
        .drop_duplicates()
        .groupby("task_id", sort=False)["reason"]
        .agg("; ".join)
    )
    order = {h.key: i for i, h in enumerate(profile.hops)}
    out = pd.DataFrame(
        {
            "first broken hop": [_hop_words(profile, h) for h in broken["first_broken_hop"]],
            "task": broken["task_id"].to_numpy(),
            "agent type": broken["agent_type"].to_numpy(),
            "traces": broken["n_traces"].to_numpy(),
            "what broke": [reasons.get(t, "") for t in broken["task_id"]],
            "_rank": [order.get(h, len(order)) for h in broken["first_broken_hop"]],
        }
    )
    return out.sort_values(["_rank", "task"], kind="stable").drop(columns="_rank")


def _hop_words(profile: HopProfile, key: str) -> str:
    keys = {h.key for h in profile.hops}
    return profile.hop(key).spec_hop if key in keys else key


def finding_counts(report: AuditReport) -> pd.DataFrame:
    """Each kind of finding with a count that says what it counts."""
    r = report.result
    rows = [
        ("Orphan spans (their parent was never exported)", f"{len(r.orphans):,} spans"),
        (
            "Tasks split over several traces",
            f"{r.split_tasks['task_id'].nunique():,} tasks over {len(r.split_tasks):,} traces",
        ),
        (
            "Result envelopes naming another trace than the task's",
            f"{len(r.envelope_mismatches):,} envelopes",
        ),
        (
            "Span ids used by more than one span",
            f"{r.duplicates['span_id'].nunique():,} ids on {len(r.duplicates):,} spans",
        ),
        ("Children starting before their parent", f"{len(r.skewed):,} spans"),
        ("Traces with no task id", f"{len(r.unattributed):,} traces"),
        ("Span copies collapsed (exporter retries)", f"{r.redelivered:,} copies"),
        ("Tasks cut by the window (not judged)", f"{len(r.cut_tasks):,} tasks"),
    ]
    return pd.DataFrame(rows, columns=["finding", "count"])


def headline(report: AuditReport) -> str:
    """One line for the index: how many tasks are whole, where the others break."""
    profile = report.profile
    tasks = report.result.tasks
    if tasks.empty:
        return "no task in the data" + (" (partial data)" if report.reasons else "")
    whole = int(tasks["ok"].sum())
    text = f"{whole:,} of {len(tasks):,} tasks whole"
    firsts = tasks.loc[~tasks["ok"], "first_broken_hop"].value_counts()
    if len(firsts):
        order = [h.key for h in profile.hops]
        ranked = sorted(firsts.index, key=lambda h: order.index(h) if h in order else len(order))
        text += "; breaks at " + ", ".join(f"{_hop_words(profile, h)} {firsts[h]}" for h in ranked)
    if len(report.result.cut_tasks):
        text += f"; {len(report.result.cut_tasks):,} cut by the window"
    if report.reasons:
        text += "; partial data"
    return text


def verdict_note(report: AuditReport) -> str:
    """What the verdict means here, when it needs saying (faults injected on purpose)."""
    truth = report.ground_truth
    if truth is None:
        return ""
    faulted = truth[truth["fault"] != "(none)"]
    injected = int(faulted["injected"].sum())
    found = int(faulted["flagged"].sum())
    absent = int(sum(len(a) for a in faulted["absent"]))
    text = f"faults injected on purpose (the demo run): {found} of {injected} found"
    if absent:
        text += f", {absent} absent from the data"
    false_alarms = int(truth.loc[truth["fault"] == "(none)", "flagged"].sum())
    if false_alarms:
        text += f", {false_alarms} clean tasks flagged"
    return text


def broken_tasks_html(report: AuditReport) -> str:
    """Every broken task, in one collapsed section per first broken hop (full reasons)."""
    import html

    frame = broken_tasks(report)
    if frame.empty:
        return "<p>No broken task.</p>"
    parts = []
    for hop, group in frame.groupby("first broken hop", sort=False):
        rows = group.drop(columns="first broken hop")
        parts.append(
            f"<details><summary><b>{html.escape(str(hop))}</b>: {len(rows):,} task(s) first "
            f"break here</summary>{rows.to_html(index=False, escape=True, border=0)}</details>"
        )
    return "\n".join(parts)


def completeness_by_agent(report: AuditReport) -> pd.DataFrame:
    """Share of tasks whole at each hop (rows, profile order) per agent type (columns)."""
    by_agent = report.result.by_agent_type
    if by_agent.empty:
        return pd.DataFrame()
    wide = by_agent.pivot(index="hop", columns="agent_type", values="complete_share")
    order = [h for h in report.result.hops["hop"] if h in wide.index]
    return wide.reindex(order).rename_axis(columns=None).reset_index()


def found_queries(report: AuditReport) -> dict[str, str]:
    """A TraceQL query per class of break the audit found (check at hop)."""
    from obslib.analysis import query_for

    problems = report.result.problems
    found = sorted(set(zip(problems["check"], problems["hop"], strict=True)))
    queries = {
        f"{check} at {hop}" if hop else check: query_for(check, hop, report.profile)
        for check, hop in found
    }
    return {name: q for name, q in queries.items() if q}
