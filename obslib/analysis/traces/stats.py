"""Figures the trace audit report shows beside the audit itself.

Per-hop latency, log lines whose trace id has no trace, sample traces to draw, and (for the
embedded default) the comparison of what the audit found with the faults the reference
pipeline injected.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from obslib.analysis.traces.audit import AuditResult
from obslib.analysis.traces.index import hop_codes
from obslib.catalogue.hops import HopProfile
from obslib.sources.coverage import Fetched
from obslib.verdict import Verdict


def hop_latency(spans: pd.DataFrame, profile: HopProfile) -> pd.DataFrame:
    """Duration percentiles (milliseconds) of each hop's spans, in profile order."""
    columns = ["hop", "span", "spans", "p50_ms", "p95_ms", "p99_ms", "max_ms"]
    if spans.empty:
        return pd.DataFrame(columns=columns)
    hop, _ = hop_codes(spans, profile)
    frame = pd.DataFrame({"hop": hop, "ms": spans["duration_ns"].to_numpy() / 1e6})
    frame = frame[frame["hop"] >= 0]
    stats = frame.groupby("hop")["ms"].describe(percentiles=[0.5, 0.95, 0.99])
    keys = [h.key for h in profile.hops]
    out = pd.DataFrame(
        {
            "hop": [keys[i] for i in stats.index],
            "span": [profile.hops[i].span for i in stats.index],
            "spans": stats["count"].astype(int).to_numpy(),
            "p50_ms": stats["50%"].to_numpy(),
            "p95_ms": stats["95%"].to_numpy(),
            "p99_ms": stats["99%"].to_numpy(),
            "max_ms": stats["max"].to_numpy(),
        }
    )
    return out.sort_values("hop", key=lambda s: s.map(keys.index)).reset_index(drop=True)


def logs_without_trace(logs: pd.DataFrame | Fetched, spans: pd.DataFrame) -> pd.DataFrame | None:
    """Log lines carrying a ``trace_id`` that no span in ``spans`` has.

    Args:
        logs: a LOG_COLUMNS frame, or a source's :class:`Fetched` read of the window.
        spans: the audited spans (SPAN_COLUMNS).

    Returns:
        The orphan lines, or None when no log line was read: "no logs matched" (a selector
        that matched no stream, a window without lines) is no evidence, never "0 orphans".
        When the read is partial (its coverage says so), the lines are those found among the
        lines read: pass the coverage to :func:`obslib.sources.coverage.verdict_on`.
    """
    frame = logs.frame if isinstance(logs, Fetched) else logs
    if frame.empty or (isinstance(logs, Fetched) and logs.coverage.matched_nothing):
        return None
    known = set(spans["trace_id"]) if not spans.empty else set()
    has_id = frame["trace_id"].astype(str).str.len() > 0
    return frame[has_id & ~frame["trace_id"].isin(known)].reset_index(drop=True)


def sample_traces(result: AuditResult) -> tuple[str, str]:
    """One broken task's root trace (or first trace) and one healthy task's, "" when none."""
    tasks = result.tasks
    if tasks.empty:
        return "", ""

    def pick(frame: pd.DataFrame) -> str:
        if frame.empty:
            return ""
        row = frame.iloc[0]
        if isinstance(row["root_trace"], str) and row["root_trace"]:
            return row["root_trace"]
        traces = row["trace_ids"]
        return str(traces[0]) if len(traces) else ""

    return pick(tasks[~tasks["ok"]]), pick(tasks[tasks["ok"]])


def injected_vs_found(result: AuditResult, fleet_run: str | Path) -> pd.DataFrame:
    """Per injected fault: tasks that got it, how many the audit saw and flagged, which it missed.

    A task absent from the audited data was not caught: it is ``missed`` (and listed in
    ``absent``), so a run whose tasks never reached the audit cannot look all caught. The last
    row compares the tasks without any fault: the audit should flag none of them.
    """
    run = json.loads(Path(fleet_run).read_text())
    audited = set(result.tasks["task_id"])
    broken = set(result.tasks.loc[~result.tasks["ok"], "task_id"])
    faults: dict[str, list[str]] = {}
    for task, names in run["faults"].items():
        for name in names:
            faults.setdefault(name, []).append(task)
    rows = []
    for name, tasks in sorted(faults.items()):
        found = [t for t in tasks if t in broken]
        rows.append(
            {
                "fault": name,
                "injected": len(tasks),
                "audited": sum(t in audited for t in tasks),
                "flagged": len(found),
                "missed": sorted(set(tasks) - broken),
                "absent": sorted(set(tasks) - audited),
            }
        )
    clean = [t for t in run["task_ids"] if not run["faults"].get(t)]
    false_alarms = sorted(set(clean) & broken)
    rows.append(
        {
            "fault": "(none)",
            "injected": len(clean),
            "audited": sum(t in audited for t in clean),
            "flagged": len(false_alarms),
            "missed": false_alarms,
            "absent": sorted(set(clean) - audited),
        }
    )
    frame = pd.DataFrame(rows)
    frame["caught"] = np.where(
        frame["fault"] == "(none)", frame["flagged"] == 0, frame["flagged"] == frame["injected"]
    )
    return frame


def ground_truth_verdict(comparison: pd.DataFrame) -> Verdict:
    """Whether the audit found what was injected, from an :func:`injected_vs_found` frame.

    A task absent from the audited data makes it inconclusive at best; a faulted task present
    but not flagged, or a clean task flagged, fails it.
    """
    present_missed = any(
        len(set(m) - set(a))
        for m, a in zip(comparison["missed"], comparison["absent"], strict=True)
    )
    if present_missed:
        return Verdict.FAIL
    if any(len(a) for a in comparison["absent"]):
        return Verdict.INCONCLUSIVE
    return Verdict.PASS if len(comparison) else Verdict.INCONCLUSIVE
