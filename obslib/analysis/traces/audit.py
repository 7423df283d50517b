"""The trace-propagation audit: does each task's trace survive every hop of a hop profile?

Frames in, frames out: :func:`audit_traces` takes a span frame (``SPAN_COLUMNS``, from Tempo,
OTLP files or the test collector) and returns an :class:`AuditResult` of frames and a verdict.
Tasks are found through the task id attribute; a span without one belongs to its trace's task.
Every check is a vectorised pass over the spans (:mod:`obslib.analysis.traces.index`); each
finding is one row of ``problems`` (task, hop, check, detail), and everything else is read
from that table. The checks and what they mean are listed in :data:`CHECKS`. The checker hands
what it found to the frame builders as one frozen :class:`~.findings.Findings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from obslib.analysis.traces.findings import Findings, build_frames, empty_frames
from obslib.analysis.traces.index import MISSING, ROOT, SpanIndex, index_spans
from obslib.analysis.traces.membership import Membership, attribute_tasks
from obslib.catalogue.hops import ENVELOPE_TRACE_ID, PASS1, RESULT_SUBJECT_PREFIX, HopProfile
from obslib.sources.frames import collapse_copies, conform, empty_frame
from obslib.verdict import Verdict

CHECKS: dict[str, str] = {
    "no_root": "no trace of the task holds the profile's root span without a parent",
    "several_roots": "the task has parentless root spans in more than one trace",
    "missing": "the task has fewer spans of the hop than the profile expects",
    "extra": "the task has more spans of the hop than the profile expects",
    "wrong_kind": "the span has the hop's name but another span kind",
    "detached": "the span has no parent: the chain starts a new trace here",
    "orphan": "the span's parent id is no span of its trace (the parent was never exported)",
    "wrong_parent": "the span's parent is not the span of the profile's parent hop",
    "split": "the task's spans are spread over several traces",
    "shared_trace": "the trace also carries another task's id",
    "duplicate_span_id": "the span id occurs more than once in its trace",
    "skew": "the span starts before its parent by more than the tolerance (a clock is off)",
    "envelope_missing": f"the result envelope has no {ENVELOPE_TRACE_ID}",
    "envelope_mismatch": f"the result envelope's {ENVELOPE_TRACE_ID} is not the task's trace",
}
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
    findings = _Checker(spans, idx, mem, profile, skew_tolerance_ns).run()
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


class _Checker:
    """Runs the checks; each adds a block of rows to the problem table."""

    def __init__(
        self, spans: pd.DataFrame, idx: SpanIndex, mem: Membership, profile: HopProfile, tol: int
    ) -> None:
        self.spans, self.idx, self.mem, self.profile, self.tol = spans, idx, mem, profile, tol
        self.keys = [h.key for h in profile.hops]
        self.n_hops = len(self.keys)
        self.expected_parent = np.array(
            [self.keys.index(h.parent) if h.parent else -1 for h in profile.hops], dtype=np.int64
        )
        self.expected_count = np.array([h.count for h in profile.hops], dtype=np.int64)
        self.blocks: list[dict[str, np.ndarray]] = []
        self.envelope = pd.DataFrame()  # collector spans: row, task, envelope, want
        row, task = mem.row, mem.task
        hop_rows = idx.hop[row] >= 0
        self.counts = np.bincount(
            task[hop_rows] * self.n_hops + idx.hop[row[hop_rows]],
            minlength=mem.n_tasks * self.n_hops,
        ).reshape(mem.n_tasks, self.n_hops)
        self.ref_trace, self.n_root_traces = self._reference_traces()
        pairs = np.unique(task * idx.n_traces + idx.trace[row])
        self.pair_task, self.pair_trace = pairs // idx.n_traces, pairs % idx.n_traces
        self.n_task_traces = np.bincount(self.pair_task, minlength=mem.n_tasks)

    def _add(self, check: str, task: Any, hop: Any, row: Any, detail: Any) -> None:
        task = np.asarray(task, dtype=np.int64)
        n = len(task)
        self.blocks.append({
            "task": task,
            "hop": np.broadcast_to(np.asarray(hop, dtype=np.int64), n),
            "row": np.broadcast_to(np.asarray(row, dtype=np.int64), n),
            "check": np.full(n, check, dtype=object),
            "detail": np.broadcast_to(np.asarray(detail, dtype=object), n),
        })  # fmt: skip

    def _reference_traces(self) -> tuple[np.ndarray, np.ndarray]:
        """Per task: its own trace, and how many traces hold one of its root spans.

        A task's own trace is its earliest root trace, else the trace of its earliest span.
        """
        idx, mem = self.idx, self.mem
        ref = np.full(mem.n_tasks, -1, dtype=np.int64)
        is_root = (idx.hop[mem.row] == 0) & (idx.parent[mem.row] == ROOT)
        for rows, tasks in ((mem.row[is_root], mem.task[is_root]), (mem.row, mem.task)):
            todo = ref[tasks] < 0
            rows, tasks = rows[todo], tasks[todo]
            order = np.lexsort((idx.start[rows], tasks))
            first = order[np.unique(tasks[order], return_index=True)[1]]
            ref[tasks[first]] = idx.trace[rows[first]]
        root_pairs = np.unique(mem.task[is_root] * idx.n_traces + idx.trace[mem.row[is_root]])
        return ref, np.bincount(root_pairs // idx.n_traces, minlength=mem.n_tasks)

    def run(self) -> Findings:
        """Every check; the problem table (task, hop, row, check, detail) and what it rests on."""
        self._roots()
        self._counts()
        self._span_checks()
        self._splits()
        self._envelopes()
        if self.blocks:
            problems = {k: np.concatenate([b[k] for b in self.blocks]) for k in self.blocks[0]}
        else:
            problems = {k: np.zeros(0, dtype=np.int64 if k in ("task", "hop", "row") else object)
                        for k in ("task", "hop", "row", "check", "detail")}  # fmt: skip
        return Findings(
            index=self.idx,
            membership=self.mem,
            profile=self.profile,
            problems=problems,
            counts=self.counts,
            expected_count=self.expected_count,
            ref_trace=self.ref_trace,
            n_root_traces=self.n_root_traces,
            pair_task=self.pair_task,
            pair_trace=self.pair_trace,
            n_task_traces=self.n_task_traces,
            envelope=self.envelope,
        )

    def _roots(self) -> None:
        none = np.flatnonzero(self.n_root_traces == 0)
        self._add("no_root", none, 0, -1, f"no parentless {self.profile.root.span} span")
        several = np.flatnonzero(self.n_root_traces > 1)
        detail = (
            "root spans in " + self.n_root_traces[several].astype(str).astype(object) + " traces"
        )
        self._add("several_roots", several, 0, -1, detail)

    def _counts(self) -> None:
        for check, mask in (
            ("missing", self.counts < self.expected_count),
            ("extra", self.counts > self.expected_count),
        ):
            task, hop = np.nonzero(mask)
            got = self.counts[task, hop].astype(str).astype(object)
            detail = got + " of " + self.expected_count[hop].astype(str).astype(object) + " spans"
            self._add(check, task, hop, -1, detail)

    def _span_checks(self) -> None:
        idx, row, task = self.idx, self.mem.row, self.mem.task
        hop, parent = idx.hop[row], idx.parent[row]
        has_parent = parent >= 0
        above = np.maximum(parent, 0)  # a valid row to index with; masked where there is none
        wanted = np.where(hop >= 0, self.expected_parent[np.maximum(hop, 0)], -1)
        # The root hop wants no parent at all; the others the span of their parent hop.
        wrong = (hop >= 0) & has_parent & ((hop == 0) | (idx.hop[above] != wanted))
        wrong &= ~self._dup_parent_fits(row, wanted)
        lead = idx.start[above] - idx.start[row]
        skew = has_parent & (lead > self.tol)

        names, spans = idx.text("name"), [h.span for h in self.profile.hops]
        parent_names = names[above]
        wanted_names = np.array([*spans, "no parent"], dtype=object)[wanted]
        details = {
            "wrong_kind": lambda m: "kind is " + idx.text("kind")[row[m]],
            "detached": lambda m: "starts trace " + idx.trace_ids[idx.trace[row[m]]],
            "orphan": lambda m: (
                "parent " + idx.text("parent_span_id")[row[m]] + " is not in the trace"
            ),
            "wrong_parent": lambda m: (
                "parent is " + parent_names[m] + ", expected " + wanted_names[m]
            ),
            "duplicate_span_id": lambda m: np.where(
                idx.rewritten[row[m]],
                "span id " + idx.text("parent_span_id")[row[m]] + " was its CLIENT parent's too "
                "(Tempo rewrote it to " + idx.text("span_id")[row[m]] + ")",
                "span id " + idx.text("span_id")[row[m]] + " repeats",
            ),
            "skew": lambda m: (
                "starts " + (lead[m] / 1e6).round(3).astype(str).astype(object)
                + " ms before its parent " + parent_names[m]
            ),
        }  # fmt: skip
        masks = {
            "wrong_kind": (hop >= 0) & idx.wrong_kind[row],
            "detached": (hop > 0) & (parent == ROOT),
            "orphan": parent == MISSING,
            "wrong_parent": wrong,
            "duplicate_span_id": idx.duplicate[row],
            "skew": skew,
        }
        for check, mask in masks.items():
            if mask.any():
                self._add(check, task[mask], hop[mask], row[mask], details[check](mask))

    def _dup_parent_fits(self, row: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        """True where the parent id is duplicated and one of its spans is of the wanted hop."""
        idx = self.idx
        parent = idx.parent[row]
        ambiguous = (parent >= 0) & idx.duplicate[np.maximum(parent, 0)]
        if not ambiguous.any():
            return np.zeros(len(row), dtype=bool)
        dups = np.flatnonzero(idx.duplicate)
        width = self.n_hops + 1
        offered = idx.key[dups] * width + (idx.hop[dups] + 1)
        asked = idx.parent_key[row[ambiguous]] * width + (wanted[ambiguous] + 1)
        fits = np.zeros(len(row), dtype=bool)
        fits[ambiguous] = np.isin(asked, offered)
        return fits

    def _splits(self) -> None:
        """One finding per extra trace of a task, at the first hop that trace starts with."""
        idx, mem = self.idx, self.mem
        extra = self.pair_trace != self.ref_trace[self.pair_task]
        split_tasks = np.unique(self.pair_task[extra])
        if split_tasks.size:
            sel = np.isin(mem.task, split_tasks) & (idx.parent[mem.row] < 0)
            tops = pd.DataFrame({
                "task": mem.task[sel],
                "trace": idx.trace[mem.row[sel]],
                "rank": np.where(idx.hop[mem.row[sel]] >= 0, idx.hop[mem.row[sel]], self.n_hops),
                "row": mem.row[sel],
            }).sort_values(["task", "trace", "rank"]).drop_duplicates(["task", "trace"])  # fmt: skip
            tops = tops[tops["trace"].to_numpy() != self.ref_trace[tops["task"].to_numpy()]]
            rows = tops["row"].to_numpy()
            detail = "trace " + idx.trace_ids[tops["trace"].to_numpy()] + " starts here"
            self._add("split", tops["task"], idx.hop[rows], rows, detail)
        in_shared = mem.trace_tasks[self.pair_trace] > 1
        if in_shared.any():  # traces carrying several task ids: rare, so a merge is fine
            carriers = np.flatnonzero((mem.span_task >= 0) & (mem.trace_tasks[idx.trace] > 1))
            found = pd.DataFrame({
                "task": self.pair_task[in_shared], "trace": self.pair_trace[in_shared],
            }).merge(pd.DataFrame({
                "trace": idx.trace[carriers], "other": mem.span_task[carriers], "row": carriers,
                "rank": np.where(idx.hop[carriers] >= 0, idx.hop[carriers], self.n_hops),
            }), on="trace")  # fmt: skip
            found = found[found["task"] != found["other"]].sort_values(["task", "rank"])
            found = found.drop_duplicates("task")
            rows = found["row"].to_numpy()
            detail = "trace also carries task " + mem.task_ids[found["other"].to_numpy()]
            self._add("shared_trace", found["task"], idx.hop[rows], rows, detail)

    def _envelopes(self) -> None:
        """The envelope hop: the consumer of the result publish (its span carries the envelope)."""
        hops = [
            i
            for i, h in enumerate(self.profile.hops)
            if h.parent and self.profile.hop(h.parent).match_prefix == RESULT_SUBJECT_PREFIX
        ]
        idx, mem = self.idx, self.mem
        sel = np.isin(idx.hop[mem.row], hops)
        rows, tasks = mem.row[sel], mem.task[sel]
        attrs = self.spans["attributes"].to_numpy()[rows]
        # Python over the collector spans only: attributes are per-span dicts.
        env = np.array(
            [
                str(a.get(ENVELOPE_TRACE_ID, "")).lower() if isinstance(a, dict) else ""
                for a in attrs
            ],
            dtype=object,
        )
        want = idx.trace_ids[self.ref_trace[tasks]]
        empty = env == ""
        self._add(
            "envelope_missing",
            tasks[empty],
            idx.hop[rows[empty]],
            rows[empty],
            "no envelope trace id",
        )
        bad = ~empty & (env != want)
        detail = "envelope says " + env[bad] + ", task trace is " + want[bad]
        self._add("envelope_mismatch", tasks[bad], idx.hop[rows[bad]], rows[bad], detail)
        self.envelope = pd.DataFrame({"row": rows, "task": tasks, "envelope": env, "want": want})
