"""The checks of the trace audit, each a vectorised pass over the spans of every task.

:data:`CHECKS` names them and says what each means. A :class:`Checker` runs them over one
indexed span frame (:mod:`.index`, :mod:`.membership`): each check adds a block of findings
(task, hop, span row, check, detail), and :meth:`Checker.run` hands them over, with the arrays
they rest on, as one frozen :class:`~.findings.Findings`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from obslib.analysis.traces.findings import Findings
from obslib.analysis.traces.index import MISSING, ROOT, SpanIndex
from obslib.analysis.traces.membership import Membership
from obslib.catalogue.hops import ENVELOPE_TRACE_ID, RESULT_SUBJECT_PREFIX, HopProfile

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


class Checker:
    """Runs the checks over one indexed frame; each adds a block of rows to the problem table."""

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
