"""What the trace audit found, and the frames of an :class:`~.audit.AuditResult` built from it.

The checks (:mod:`obslib.analysis.traces.checks`) hand over one frozen :class:`Findings`: the
problem table as arrays, and the per-task and per-trace arrays the frames are cut from. The
builders here turn it into frames without a per-span loop; per-task tuples (trace ids,
reasons) are cut from sorted arrays. Column meanings are beside each schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from obslib.analysis.traces.index import MISSING, ROOT, SpanIndex
from obslib.analysis.traces.membership import LINK_TIME, Membership
from obslib.catalogue.hops import HopProfile
from obslib.sources.frames import empty_frame

TASK_COLUMNS: dict[str, str] = {
    "task_id": "str",
    "agent_type": "str",  # agent_type attribute, else the task subject's suffix, else ""
    "n_spans": "int64",
    "n_traces": "int64",  # traces holding the task's spans (1 when whole)
    "trace_ids": "object",  # tuple of those trace ids, the task's own trace first
    "root_trace": "str",  # the trace holding the profile's root span without parent, "" if none
    "ok": "bool",
    "first_broken_hop": "str",  # first hop in profile order with a finding, "" when ok
    "reasons": "object",  # tuple of "<hop> <check>: <detail>", in profile order
    "n_errors": "int64",  # spans with status ERROR (not a propagation break)
}
HOP_COLUMNS: dict[str, str] = {
    "hop": "str",  # hop key
    "span": "str",
    "kind": "str",
    "parent": "str",  # parent hop key, "" for the root
    "expected_count": "int64",  # spans of the hop one task should have
    "tasks": "int64",  # tasks that should have it (all of them)
    "present": "int64",  # tasks with at least one span of it
    "complete": "int64",  # tasks with no finding at it
    "complete_share": "float64",
    "first_broken": "int64",  # tasks whose chain first breaks here
}
AGENT_HOP_COLUMNS: dict[str, str] = {
    "agent_type": "str",
    "hop": "str",
    "tasks": "int64",
    "present": "int64",
    "complete": "int64",
    "complete_share": "float64",
}
PROBLEM_COLUMNS: dict[str, str] = {
    "task_id": "str",
    "hop": "str",  # hop key, or the span name for a span of no hop
    "check": "str",  # a key of CHECKS (obslib.analysis.traces.checks)
    "detail": "str",
    "trace_id": "str",  # the span's trace; the task's trace for task-level findings
    "span_id": "str",  # "" for task-level findings
}
_SPAN = {"task_id": "str", "trace_id": "str", "span_id": "str", "name": "str", "hop": "str",
         "service_name": "str"}  # fmt: skip
ORPHAN_COLUMNS = {**_SPAN, "parent_span_id": "str", "rootless": "bool"}
DUPLICATE_COLUMNS = {**_SPAN, "copies": "int64"}
SKEW_COLUMNS = {**_SPAN, "parent_name": "str", "parent_service": "str", "lead_ms": "float64"}
SPLIT_COLUMNS: dict[str, str] = {
    "task_id": "str",
    "trace_id": "str",
    "reference": "bool",  # the task's own trace (its root trace, else its earliest)
    "linked_by": "str",  # "task_id" (a span carries it) or "time" (adopted task-less trace)
    "n_spans": "int64",
    "first_hop": "str",  # hop of the trace's top span
}
ENVELOPE_COLUMNS: dict[str, str] = {
    "task_id": "str",
    "trace_id": "str",  # trace of the collector span
    "span_id": "str",
    "envelope_trace_id": "str",  # "" when missing
    "task_trace_id": "str",
    "problem": "str",  # missing | mismatch
}
UNATTRIBUTED_COLUMNS: dict[str, str] = {
    "trace_id": "str",
    "n_spans": "int64",
    "root_name": "str",  # "" when the trace has no parentless span (rootless)
    "root_service": "str",
    "profile_spans": "int64",  # spans that match a hop of the profile
    "start_ns": "int64",
}
_SCHEMAS = {
    "tasks": TASK_COLUMNS, "hops": HOP_COLUMNS, "by_agent_type": AGENT_HOP_COLUMNS,
    "problems": PROBLEM_COLUMNS, "orphans": ORPHAN_COLUMNS, "split_tasks": SPLIT_COLUMNS,
    "duplicates": DUPLICATE_COLUMNS, "skewed": SKEW_COLUMNS,
    "envelope_mismatches": ENVELOPE_COLUMNS, "unattributed": UNATTRIBUTED_COLUMNS,
}  # fmt: skip


@dataclass(frozen=True, eq=False)
class Findings:
    """Everything the checks found in one span frame, as arrays; the frames are built from it.

    Rows are rows of the span frame; tasks and traces are the codes of ``membership`` and
    ``index``. ``problems`` holds one entry per finding in the arrays ``task``, ``hop`` (-1 for
    a span of no hop), ``row`` (-1 for a task-level finding), ``check`` and ``detail``.
    """

    index: SpanIndex
    membership: Membership
    profile: HopProfile
    problems: Mapping[str, np.ndarray]
    counts: np.ndarray  # (task, hop): the task's spans of the hop
    expected_count: np.ndarray  # per hop: spans one task should have
    ref_trace: np.ndarray  # per task: its own trace (its root trace, else its earliest)
    n_root_traces: np.ndarray  # per task: traces holding one of its root spans
    pair_task: np.ndarray  # the (task, trace) pairs the task's spans lie in...
    pair_trace: np.ndarray  # ...one entry per pair
    n_task_traces: np.ndarray  # per task: traces holding its spans
    envelope: pd.DataFrame  # result-collection spans: row, task, envelope (trace id), want

    @property
    def keys(self) -> list[str]:
        """The profile's hop keys, in profile order."""
        return [h.key for h in self.profile.hops]

    @property
    def n_hops(self) -> int:
        """How many hops the profile has."""
        return len(self.profile.hops)


def empty_frames() -> dict[str, pd.DataFrame]:
    """Every result frame, empty and typed."""
    return {name: empty_frame(cols) for name, cols in _SCHEMAS.items()}


def _frame(name: str, data: dict[str, Any]) -> pd.DataFrame:
    schema = _SCHEMAS[name]
    out = pd.DataFrame(data, columns=list(schema))
    return out.astype({c: t for c, t in schema.items() if t != "object"})


def _cut(values: np.ndarray, groups: np.ndarray, n: int) -> np.ndarray:
    """Tuples of ``values`` per group code 0..n-1 (``groups`` sorted ascending), empty if none."""
    out = np.empty(n, dtype=object)
    out.fill(())
    if not len(groups):
        return out
    starts = _run_starts(groups)
    sizes = np.diff(np.append(starts, len(groups)))
    one = sizes == 1  # most tasks: 1-tuples straight from zip, no split
    out[groups[starts[one]]] = np.fromiter(zip(values[starts[one]]), dtype=object, count=one.sum())
    many = np.flatnonzero(~one)
    if many.size:
        parts = np.split(values[np.repeat(~one, sizes)], np.cumsum(sizes[many])[:-1])
        out[groups[starts[many]]] = np.fromiter(map(tuple, parts), dtype=object, count=many.size)
    return out


class _Labels:
    """Hop labels and span columns shared by the frame builders."""

    def __init__(self, f: Findings) -> None:
        self.keys = np.array([*f.keys, ""], dtype=object)
        self.names = f.index.text("name")
        self.services = f.index.text("service_name")
        self.span_ids = f.index.text("span_id")

    def hop(self, hop: np.ndarray, row: np.ndarray) -> np.ndarray:
        """Hop key, or the span's own name when it is no hop of the profile."""
        named = np.where(row >= 0, self.names[np.maximum(row, 0)], "")
        return np.where(hop >= 0, self.keys[hop], named)


def build_frames(f: Findings) -> dict[str, pd.DataFrame]:
    """The result frames of :class:`~.audit.AuditResult` from what the checks found."""
    idx, mem, lab = f.index, f.membership, _Labels(f)
    p = f.problems
    rank = np.where(p["hop"] >= 0, p["hop"], f.n_hops)
    order = np.lexsort((p["row"], rank, p["task"]))
    p = {k: v[order] for k, v in p.items()}
    hop_label = lab.hop(p["hop"], p["row"])
    row_trace = np.where(p["row"] >= 0, idx.trace[np.maximum(p["row"], 0)], f.ref_trace[p["task"]])
    problems = _frame("problems", {
        "task_id": mem.task_ids[p["task"]], "hop": hop_label, "check": p["check"],
        "detail": p["detail"], "trace_id": idx.trace_ids[row_trace],
        "span_id": np.where(p["row"] >= 0, lab.span_ids[np.maximum(p["row"], 0)], ""),
    })  # fmt: skip

    n_tasks = mem.n_tasks
    broken = np.zeros(n_tasks, dtype=bool)
    broken[p["task"]] = True
    first = np.full(n_tasks, "", dtype=object)
    heads = _run_starts(p["task"])
    first[p["task"][heads]] = hop_label[heads]
    reasons = _cut(hop_label + " " + p["check"] + ": " + p["detail"], p["task"], n_tasks)
    is_other = f.pair_trace != f.ref_trace[f.pair_task]
    by = np.lexsort((is_other, f.pair_task))
    error = f.index.text("status_code")[mem.row] == "ERROR"
    tasks = _frame("tasks", {
        "task_id": mem.task_ids, "agent_type": mem.agent,
        "n_spans": np.bincount(mem.task, minlength=n_tasks), "n_traces": f.n_task_traces,
        "trace_ids": _cut(idx.trace_ids[f.pair_trace[by]], f.pair_task[by], n_tasks),
        "root_trace": np.where(f.n_root_traces > 0, idx.trace_ids[np.maximum(f.ref_trace, 0)], ""),
        "ok": ~broken, "first_broken_hop": first, "reasons": reasons,
        "n_errors": np.bincount(mem.task[error], minlength=n_tasks),
    })  # fmt: skip

    at = np.zeros((n_tasks, f.n_hops), dtype=bool)
    with_hop = p["hop"] >= 0
    at[p["task"][with_hop], p["hop"][with_hop]] = True
    complete, present = ~at, f.counts > 0
    firsts = pd.Series(first[broken]).value_counts()
    hops = _frame("hops", {
        "hop": f.keys, "span": [h.span for h in f.profile.hops],
        "kind": [h.kind for h in f.profile.hops], "parent": [h.parent or "" for h in f.profile.hops],
        "expected_count": f.expected_count, "tasks": n_tasks, "present": present.sum(axis=0),
        "complete": complete.sum(axis=0),
        "complete_share": complete.mean(axis=0) if n_tasks else np.nan,
        "first_broken": [int(firsts.get(k, 0)) for k in f.keys],
    })  # fmt: skip
    return {
        "tasks": tasks,
        "hops": hops,
        "by_agent_type": _by_agent(f, complete, present),
        "problems": problems,
        **_span_frames(f, lab, p),
        "split_tasks": _splits(f, lab),
        "envelope_mismatches": _envelopes(f, lab),
        "unattributed": _unattributed(f, lab),
    }


def _run_starts(groups: np.ndarray) -> np.ndarray:
    """First position of each run in a sorted array."""
    return np.flatnonzero(np.diff(groups, prepend=groups[0] - 1)) if len(groups) else groups


def _by_agent(f: Findings, complete: np.ndarray, present: np.ndarray) -> pd.DataFrame:
    parts = {
        "tasks": pd.DataFrame(np.ones_like(complete, dtype=np.int64), columns=f.keys),
        "present": pd.DataFrame(present.astype(np.int64), columns=f.keys),
        "complete": pd.DataFrame(complete.astype(np.int64), columns=f.keys),
    }
    sums = {k: v.groupby(f.membership.agent).sum().stack() for k, v in parts.items()}
    out = pd.DataFrame(sums).rename_axis(["agent_type", "hop"]).reset_index()
    out["complete_share"] = out["complete"] / out["tasks"]
    order = {k: i for i, k in enumerate(f.keys)}
    out = out.sort_values(
        ["agent_type", "hop"], key=lambda s: s.map(order) if s.name == "hop" else s
    )
    return _frame("by_agent_type", out.reset_index(drop=True).to_dict("series"))


def _span_base(f: Findings, lab: _Labels, rows: np.ndarray, task: np.ndarray) -> dict[str, Any]:
    idx = f.index
    return {
        "task_id": np.where(task >= 0, f.membership.task_ids[np.maximum(task, 0)] if f.membership.n_tasks else "", ""),
        "trace_id": idx.trace_ids[idx.trace[rows]], "span_id": lab.span_ids[rows],
        "name": lab.names[rows], "hop": lab.hop(idx.hop[rows], rows),
        "service_name": lab.services[rows],
    }  # fmt: skip


def _span_frames(f: Findings, lab: _Labels, p: dict[str, np.ndarray]) -> dict[str, pd.DataFrame]:
    idx, mem = f.index, f.membership
    primary = np.full(len(idx.trace), -1, dtype=np.int64)
    primary[mem.row[::-1]] = mem.task[::-1]  # the first task a span belongs to
    roots = np.bincount(idx.trace[idx.parent == ROOT], minlength=idx.n_traces)

    rows = np.flatnonzero(idx.parent == MISSING)
    orphans = _frame("orphans", {
        **_span_base(f, lab, rows, primary[rows]),
        "parent_span_id": f.index.text("parent_span_id")[rows],
        "rootless": roots[idx.trace[rows]] == 0,
    })  # fmt: skip
    rows = np.flatnonzero(idx.duplicate)
    _, inverse, copies = np.unique(idx.key[rows], return_inverse=True, return_counts=True)
    duplicates = _frame("duplicates", {
        **_span_base(f, lab, rows, primary[rows]), "copies": copies[inverse],
    })  # fmt: skip
    skew = p["check"] == "skew"
    rows, parents = p["row"][skew], idx.parent[p["row"][skew]]
    skewed = _frame("skewed", {
        **_span_base(f, lab, rows, p["task"][skew]),
        "parent_name": lab.names[parents], "parent_service": lab.services[parents],
        "lead_ms": (idx.start[parents] - idx.start[rows]) / 1e6,
    })  # fmt: skip
    return {"orphans": orphans, "duplicates": duplicates, "skewed": skewed}


def _splits(f: Findings, lab: _Labels) -> pd.DataFrame:
    idx, mem = f.index, f.membership
    split = f.n_task_traces[f.pair_task] > 1
    task, trace = f.pair_task[split], f.pair_trace[split]
    sel = np.isin(mem.task, task)
    frame = pd.DataFrame({
        "task": mem.task[sel], "trace": idx.trace[mem.row[sel]], "row": mem.row[sel],
        "top": idx.parent[mem.row[sel]] < 0,
        "rank": np.where(idx.hop[mem.row[sel]] >= 0, idx.hop[mem.row[sel]], f.n_hops),
    })  # fmt: skip
    sizes = frame.groupby(["task", "trace"]).size()
    tops = frame.sort_values(["task", "trace", "top", "rank"], ascending=[True, True, False, True])
    tops = tops.drop_duplicates(["task", "trace"]).set_index(["task", "trace"])["row"]
    pairs = pd.MultiIndex.from_arrays([task, trace])
    top_rows = tops.reindex(pairs).to_numpy(dtype=np.int64)
    return _frame("split_tasks", {
        "task_id": mem.task_ids[task], "trace_id": idx.trace_ids[trace],
        "reference": trace == f.ref_trace[task],
        "linked_by": np.where(mem.trace_link[trace] == LINK_TIME, "time", "task_id"),
        "n_spans": sizes.reindex(pairs).to_numpy(dtype=np.int64),
        "first_hop": lab.hop(idx.hop[top_rows], top_rows),
    })  # fmt: skip


def _envelopes(f: Findings, lab: _Labels) -> pd.DataFrame:
    env = f.envelope
    bad = env[env["envelope"] != env["want"]]
    rows = bad["row"].to_numpy(dtype=np.int64)
    return _frame("envelope_mismatches", {
        "task_id": f.membership.task_ids[bad["task"].to_numpy(dtype=np.int64)],
        "trace_id": f.index.trace_ids[f.index.trace[rows]], "span_id": lab.span_ids[rows],
        "envelope_trace_id": bad["envelope"].to_numpy(), "task_trace_id": bad["want"].to_numpy(),
        "problem": np.where(bad["envelope"].to_numpy() == "", "missing", "mismatch"),
    })  # fmt: skip


def _unattributed(f: Findings, lab: _Labels) -> pd.DataFrame:
    idx = f.index
    claimed = np.zeros(idx.n_traces, dtype=bool)
    claimed[idx.trace[f.membership.row]] = True
    rows = np.flatnonzero(~claimed[idx.trace])
    frame = pd.DataFrame({
        "trace": idx.trace[rows], "start": idx.start[rows], "hop": idx.hop[rows] >= 0,
        "root": np.where(idx.parent[rows] == ROOT, rows, -1),
    })  # fmt: skip
    g = frame.groupby("trace", sort=False)
    traces = g.size()
    root = g["root"].max().to_numpy()
    return _frame("unattributed", {
        "trace_id": idx.trace_ids[traces.index.to_numpy()], "n_spans": traces.to_numpy(),
        "root_name": np.where(root >= 0, lab.names[np.maximum(root, 0)], ""),
        "root_service": np.where(root >= 0, lab.services[np.maximum(root, 0)], ""),
        "profile_spans": g["hop"].sum().to_numpy(), "start_ns": g["start"].min().to_numpy(),
    })  # fmt: skip
