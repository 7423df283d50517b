"""Which task each span belongs to: by its task id, its trace's task ids, or adoption by time.

Built on the :class:`~obslib.analysis.traces.index.SpanIndex` of a frame. A span without a task
id belongs to the task its trace carries; a trace that carries none may be adopted by the one
task whose open parent-hop span explains its root (a context dropped at the agent's pipe).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from obslib.analysis.traces.index import ROOT, SpanIndex, Texts, starts_with, strip_prefix
from obslib.catalogue.hops import SERVICE_AGENT_PREFIX, TASK_SUBJECT_PREFIX, HopProfile

LINK_NONE, LINK_ATTRIBUTE, LINK_TIME = 0, 1, 2  # how a trace was tied to its task


@dataclass(frozen=True)
class Membership:
    """Which task each span belongs to: one row per (task, span) pair."""

    task_ids: np.ndarray  # task id text per task code
    agent: np.ndarray  # agent type per task code, "" when no span says
    span_task: np.ndarray  # per span: code of the task id it carries itself, -1 for none
    row: np.ndarray  # span row of each pair
    task: np.ndarray  # task code of each pair
    trace_link: np.ndarray  # per trace code: LINK_NONE, LINK_ATTRIBUTE or LINK_TIME
    trace_tasks: np.ndarray  # per trace code: how many task ids its spans carry

    @property
    def n_tasks(self) -> int:
        """How many tasks the frame holds."""
        return len(self.task_ids)


def _task_codes(texts: Texts) -> tuple[np.ndarray, np.ndarray]:
    codes, values = pd.factorize(texts("task_id"))
    blank = np.flatnonzero(values == "")
    if blank.size:
        b = blank[0]
        codes = np.where(codes == b, -1, codes - (codes > b))
        values = np.delete(values, b)
    return codes.astype(np.int64), np.asarray(values, dtype=object)


def _agents(texts: Texts, row: np.ndarray, task: np.ndarray, n_tasks: int) -> np.ndarray:
    """Agent type per task: the agent_type attribute, else the suffix of the task subject."""
    agent = np.full(n_tasks, "", dtype=object)
    for column, prefix in (("agent_type", ""), ("destination", TASK_SUBJECT_PREFIX)):
        todo = agent[task] == ""
        values = texts(column)[row[todo]]
        has = np.flatnonzero(values != "")
        if prefix:
            has = has[starts_with(values[has], prefix)]
        tasks, first = np.unique(task[todo][has], return_index=True)
        agent[tasks] = strip_prefix(values[has[first]], prefix)
    return agent


def attribute_tasks(
    idx: SpanIndex, profile: HopProfile, tolerance_ns: int, adopt: bool
) -> Membership:
    """Tie spans to tasks: by their task id, else by their trace's task ids, else by adoption.

    A trace whose spans carry no task id is adopted when its root is a hop of the profile and
    exactly one span of the parent hop, in a task still missing that hop, was open when the
    root started (within ``tolerance_ns``): the agent side of a stdio pipe that dropped the
    context, say. Ambiguous candidates stay unattributed.
    """
    own, task_ids = _task_codes(idx.text)
    n_tasks, n_traces = len(task_ids), idx.n_traces
    pairs = np.unique(idx.trace[own >= 0] * max(n_tasks, 1) + own[own >= 0])
    pair_trace, pair_task = pairs // max(n_tasks, 1), pairs % max(n_tasks, 1)
    trace_tasks = np.bincount(pair_trace, minlength=n_traces)
    single = np.full(n_traces, -1, dtype=np.int64)
    one = trace_tasks[pair_trace] == 1
    single[pair_trace[one]] = pair_task[one]

    base = np.where(own >= 0, own, single[idx.trace])
    row = np.flatnonzero(base >= 0)
    task = base[row]
    shared = np.flatnonzero((own < 0) & (trace_tasks[idx.trace] > 1))
    if shared.size:  # a span without task id in a trace of several tasks belongs to each
        counts = trace_tasks[idx.trace[shared]]
        starts = np.searchsorted(pair_trace, idx.trace[shared])
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        row = np.concatenate([row, np.repeat(shared, counts)])
        task = np.concatenate([task, pair_task[np.repeat(starts, counts) + offsets]])

    agent = _agents(idx.text, row, task, n_tasks)
    link = np.where(trace_tasks > 0, LINK_ATTRIBUTE, LINK_NONE)
    if adopt and n_tasks:
        adopted = _adopt(idx, profile, row, task, agent, trace_tasks, tolerance_ns)
        if adopted:
            traces = np.fromiter(adopted, dtype=np.int64)
            owner = np.full(n_traces, -1, dtype=np.int64)
            owner[traces] = np.fromiter(adopted.values(), dtype=np.int64)
            extra = np.flatnonzero(owner[idx.trace] >= 0)
            row = np.concatenate([row, extra])
            task = np.concatenate([task, owner[idx.trace[extra]]])
            link[traces] = LINK_TIME
    return Membership(task_ids, agent, own, row, task, link, trace_tasks)


def _adopt(
    idx: SpanIndex,
    profile: HopProfile,
    row: np.ndarray,
    task: np.ndarray,
    agent: np.ndarray,
    trace_tasks: np.ndarray,
    tolerance_ns: int,
) -> dict[int, int]:
    """Trace code -> task code for task-less traces that one open parent-hop span explains."""
    n_hops = len(profile.hops)
    roots = np.flatnonzero(idx.parent == ROOT)
    roots_per_trace = np.bincount(idx.trace[roots], minlength=idx.n_traces)
    cand = roots[
        (trace_tasks[idx.trace[roots]] == 0)
        & (roots_per_trace[idx.trace[roots]] == 1)
        & (idx.hop[roots] > 0)
    ]
    if cand.size == 0:
        return {}
    hop_rows = idx.hop[row] >= 0
    counts = np.bincount(
        task[hop_rows] * n_hops + idx.hop[row[hop_rows]], minlength=len(agent) * n_hops
    ).reshape(len(agent), n_hops)
    services = idx.text("service_name")[cand]
    agent_side = starts_with(services, SERVICE_AGENT_PREFIX)
    cand_agent = np.full(cand.size, "", dtype=object)
    cand_agent[agent_side] = strip_prefix(services[agent_side], SERVICE_AGENT_PREFIX)
    keys = [h.key for h in profile.hops]
    adopted: dict[int, int] = {}
    for h, hop in enumerate(profile.hops):
        mine = np.flatnonzero(idx.hop[cand] == h)
        if mine.size == 0 or hop.parent is None:
            continue
        p = keys.index(hop.parent)
        pool = np.flatnonzero((idx.hop[row] == p) & (counts[task, h] < hop.count))
        if pool.size == 0:
            continue
        by_start = pool[np.argsort(idx.start[row[pool]], kind="stable")]
        starts, ends = idx.start[row[by_start]], idx.end[row[by_start]]
        t = idx.start[cand[mine]]
        opened = np.searchsorted(starts, t + tolerance_ns, side="right")
        closed = np.searchsorted(np.sort(ends), t - tolerance_ns, side="left")
        unique = (opened - closed) == 1
        # With exactly one interval open at t, it is the one with the latest end so far.
        latest = np.maximum.accumulate(
            np.where(ends == np.maximum.accumulate(ends), np.arange(len(ends)), 0)
        )
        pick = by_start[latest[np.maximum(opened - 1, 0)]]
        owner = task[pick]
        fits = unique & (
            (cand_agent[mine] == "") | (agent[owner] == "") | (cand_agent[mine] == agent[owner])
        )
        for trace_code, task_code in zip(idx.trace[cand[mine][fits]], owner[fits], strict=True):
            adopted[int(trace_code)] = int(task_code)  # adopted traces only, a handful
    return adopted
