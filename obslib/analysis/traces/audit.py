"""The trace-propagation audit: does each task's trace survive every hop of a hop profile?

Frames in, frames out: :func:`audit_traces` takes a span frame (``SPAN_COLUMNS``, from Tempo,
OTLP files or the test collector) and returns an :class:`AuditResult` of frames and a verdict.
Tasks are found through the task id attribute; a span without one belongs to its trace's task.
Every check is a vectorised pass over the spans (:mod:`.checks`, which lists them and what they
mean in :data:`CHECKS`); each finding is one row of ``problems`` (task, hop, check, detail), and
everything else is read from that table (:mod:`.findings`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from obslib.analysis.traces.checks import CHECKS, Checker
from obslib.analysis.traces.findings import build_frames, empty_frames
from obslib.analysis.traces.index import SpanIndex, index_spans
from obslib.analysis.traces.membership import Membership, attribute_tasks
from obslib.catalogue.hops import PASS1, HopProfile
from obslib.sources.frames import collapse_copies, conform, empty_frame
from obslib.verdict import Verdict

CUT_COLUMNS: dict[str, str] = {
    "task_id": "str",
    "agent_type": "str",
    "n_spans": "int64",
    "first_span_start": "datetime64[ns, UTC]",
    "reason": "str",
}
_REQUIRED = (
    "trace_id", "span_id", "parent_span_id", "name", "kind", "service_name", "start_ns",
    "end_ns", "status_code", "task_id", "agent_type", "destination", "attributes",
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class AuditResult:
    """What :func:`audit_traces` found; column meanings are in :mod:`.findings`."""

    profile: str
    verdict: Verdict
    n_spans: int
    n_traces: int
    tasks: pd.DataFrame  # one row per task
    hops: pd.DataFrame  # one row per hop of the profile
    by_agent_type: pd.DataFrame  # one row per (agent type, hop)
    problems: pd.DataFrame  # one row per finding
    orphans: pd.DataFrame
    split_tasks: pd.DataFrame
    duplicates: pd.DataFrame
    skewed: pd.DataFrame
    envelope_mismatches: pd.DataFrame
    unattributed: pd.DataFrame  # traces whose spans carry no task id
    redelivered: int = 0  # identical span copies collapsed before the audit
    cut_tasks: pd.DataFrame = field(default_factory=lambda: empty_frame(CUT_COLUMNS))

    def summary(self) -> dict[str, Any]:
        """A small JSON-ready dict of the headline figures, for a notebook's results file."""
        tasks = self.tasks
        broken = tasks[~tasks["ok"]]
        firsts = broken["first_broken_hop"].value_counts()
        order = list(self.hops["hop"])
        checks = self.problems.drop_duplicates(["task_id", "check"])["check"].value_counts()
        return {
            "profile": self.profile,
            "verdict": str(self.verdict),
            "spans": self.n_spans,
            "traces": self.n_traces,
            "tasks": len(tasks),
            "tasks_ok": int(tasks["ok"].sum()),
            "tasks_broken": len(broken),
            "complete_share": float(tasks["ok"].mean()) if len(tasks) else None,
            "first_broken_hops": {
                h: int(firsts[h]) for h in sorted(firsts.index, key=lambda h: _rank(order, h))
            },
            "checks": {c: int(checks[c]) for c in CHECKS if c in checks.index},
            "orphans": len(self.orphans),
            "split_tasks": int(self.split_tasks["task_id"].nunique()),
            "duplicates": len(self.duplicates),
            "skewed": len(self.skewed),
            "envelope_mismatches": len(self.envelope_mismatches),
            "unattributed_traces": len(self.unattributed),
            "tasks_with_errors": int((tasks["n_errors"] > 0).sum()),
            "redelivered_spans": self.redelivered,
            "tasks_cut_by_window": len(self.cut_tasks),
        }


def _rank(order: list[str], hop: str) -> int:
    return order.index(hop) if hop in order else len(order)


def audit_traces(
    spans: pd.DataFrame,
    profile: HopProfile = PASS1,
    *,
    skew_tolerance_ns: int = 1_000_000,
    adopt_by_time: bool = True,
    window: tuple[pd.Timestamp, pd.Timestamp] | None = None,
) -> AuditResult:
    """Audit every task in ``spans`` against the hop tree ``profile``.

    Args:
        spans: a span frame with the columns of ``obslib.sources.frames.SPAN_COLUMNS``.
        profile: the expected tree (``PASS1``, ``PLATFORM_TODAY`` or a ``sub_profile``).
        skew_tolerance_ns: how far a child may start before its parent before it counts as
            clock skew; also the slack when adopting a task-less trace by time.
        adopt_by_time: tie a trace without task ids to the one task whose open parent-hop span
            explains its root (a dropped context at the agent pipe), so the task shows as split
            rather than as merely missing a hop.
        window: the window the spans were read for. A task whose first span starts before it
            began before the window: it is reported in ``cut_tasks`` and not judged, since
            the window may have hidden part of it.

    Returns:
        The frames of findings and the verdict: pass when every task is whole, fail when any
        is broken, inconclusive when there is no task to judge (no data is never a pass).
        Identical copies of a span (an exporter's retry) are collapsed first and counted in
        ``redelivered``; two different spans with one id stay a ``duplicate_span_id``.

    Raises:
        ValueError: ``spans`` lacks a documented column the audit reads.
    """
    missing = [c for c in _REQUIRED if c not in spans.columns]
    if missing:
        raise ValueError(f"span frame lacks columns {missing}; build it with obslib.sources")
    redelivered, cut = 0, empty_frame(CUT_COLUMNS)
    spans = spans.reset_index(drop=True)
    if not spans.empty:
        idx = index_spans(spans, profile)
        same_id = idx.duplicate & ~idx.rewritten
        if same_id.any():  # only then is it worth comparing contents
            spans, redelivered = collapse_copies(spans, pd.Series(same_id))
            idx = index_spans(spans, profile) if redelivered else idx
        mem = attribute_tasks(idx, profile, skew_tolerance_ns, adopt_by_time)
        if window is not None:
            keep, cut = _cut_by_window(idx, mem, window)
            if not keep.all():
                spans = spans[keep].reset_index(drop=True)
                if not spans.empty:
                    idx = index_spans(spans, profile)
                    mem = attribute_tasks(idx, profile, skew_tolerance_ns, adopt_by_time)
    if spans.empty:
        return AuditResult(
            profile.name, Verdict.INCONCLUSIVE, 0, 0, **empty_frames(),
            redelivered=redelivered, cut_tasks=cut,
        )  # fmt: skip
    findings = Checker(spans, idx, mem, profile, skew_tolerance_ns).run()
    n_tasks = mem.n_tasks
    broken = np.zeros(n_tasks, dtype=bool)
    broken[findings.problems["task"]] = True
    verdict = (
        Verdict.INCONCLUSIVE if n_tasks == 0 else Verdict.FAIL if broken.any() else Verdict.PASS
    )
    return AuditResult(
        profile.name,
        verdict,
        len(spans),
        idx.n_traces,
        **build_frames(findings),
        redelivered=redelivered,
        cut_tasks=cut,
    )


def _cut_by_window(
    idx: SpanIndex, mem: Membership, window: tuple[pd.Timestamp, pd.Timestamp]
) -> tuple[np.ndarray, pd.DataFrame]:
    """Which spans belong to tasks that began inside the window, and the tasks that did not."""
    keep = np.ones(len(idx.trace), dtype=bool)
    first = np.full(mem.n_tasks, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, mem.task, idx.start[mem.row])
    early = np.flatnonzero(first < pd.Timestamp(window[0]).value)
    if early.size == 0:
        return keep, empty_frame(CUT_COLUMNS)
    keep[mem.row[np.isin(mem.task, early)]] = False
    cut = pd.DataFrame({
        "task_id": mem.task_ids[early], "agent_type": mem.agent[early],
        "n_spans": np.bincount(mem.task, minlength=mem.n_tasks)[early],
        "first_span_start": pd.to_datetime(first[early], unit="ns", utc=True),
        "reason": "began before the window: part of it may lie outside, so it is not judged",
    })  # fmt: skip
    return keep, conform(cut, CUT_COLUMNS)
