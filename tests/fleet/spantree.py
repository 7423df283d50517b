"""Check one task's spans against the PASS1 tree, straight from a span frame.

Only what the fleet tests need (names, kinds, services, parents, one trace per task); the full
audit with its verdicts lives in obslib's analysis modules.
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd

from obslib.catalogue.hops import PASS1


def task_spans(frame: pd.DataFrame, task_id: str) -> pd.DataFrame:
    return frame[frame["task_id"] == task_id]


def spans_by_hop(spans: pd.DataFrame) -> dict[str, list[pd.Series]]:
    """PASS1 hop key -> the spans that match it by name (and destination prefix)."""
    found: dict[str, list[pd.Series]] = {}
    for hop in PASS1.hops:
        rows = spans[spans["name"] == hop.span]
        if hop.match_attribute:
            rows = rows[rows["destination"].str.startswith(hop.match_prefix)]
        found[hop.key] = [row for _, row in rows.iterrows()]
    return found


def pass1_problems(
    frame: pd.DataFrame, task_id: str, agent_type: str, trace_id: str, skip: Collection[str] = ()
) -> list[str]:
    """What keeps the task's spans from forming the PASS1 tree in ``trace_id``.

    Hops in ``skip`` are left out: their spans are neither required nor checked, and a hop whose
    parent is skipped is not checked for its parent either.
    """
    found = spans_by_hop(task_spans(frame, task_id))
    hops = [hop for hop in PASS1.hops if hop.key not in skip]
    problems = []
    extra = len(task_spans(frame, task_id)) - sum(len(found[h.key]) for h in PASS1.hops)
    if extra:
        problems.append(f"{extra} spans outside the PASS1 hops")
    seen_ids = [row["span_id"] for hop in hops for row in found[hop.key]]
    if len(seen_ids) != len(set(seen_ids)):
        problems.append("duplicate span ids")
    for hop in hops:
        rows = found[hop.key]
        if len(rows) != hop.count:
            problems.append(f"{hop.key}: {len(rows)} spans named {hop.span}")
            continue
        row = rows[0]
        if row["trace_id"] != trace_id:
            problems.append(f"{hop.key}: in trace {row['trace_id']}, expected {trace_id}")
        if row["kind"] != hop.kind:
            problems.append(f"{hop.key}: kind {row['kind']}, expected {hop.kind}")
        if row["service_name"] != hop.service_for(agent_type):
            problems.append(f"{hop.key}: service {row['service_name']}")
        if hop.parent in skip:
            continue
        expected_parent = ""
        if hop.parent is not None:
            if len(found[hop.parent]) != 1:
                continue  # already reported as the parent's own problem
            expected_parent = found[hop.parent][0]["span_id"]
        if row["parent_span_id"] != expected_parent:
            problems.append(
                f"{hop.key}: parent {row['parent_span_id']!r}, expected {expected_parent!r}"
            )
    return problems
