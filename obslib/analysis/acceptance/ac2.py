"""AC2, the e2e task asserted: the sentinel task's trace is whole and its result arrived.

The spec's ``daedalus_task_duration_seconds{task_id="<sentinel>"}`` can never return a series:
the metric contract has no ``task_id`` label on purpose (a series per task is unbounded
cardinality). The sentinel's duration comes from its trace instead: root span start to the end
of the result-collection span (the root span's duration when there is none), cross-checked
against the spans' task id attribute; the trace is audited against PASS1.
"""

from __future__ import annotations

import pandas as pd

from obslib.analysis.acceptance.criteria import CriterionResult, Evidence, criterion
from obslib.analysis.traces.audit import audit_traces
from obslib.catalogue.contract import TASK_DURATION
from obslib.catalogue.hops import PASS1, TASK_ID, TASK_STATE, HopProfile
from obslib.errors import NotFound, SourceError
from obslib.sources.trace_loaders import SpansLoader
from obslib.verdict import Verdict

COMPLETED = "completed"


def trace_duration(spans: pd.DataFrame, task_id: str, result_span: str) -> tuple[float, str]:
    """Seconds from the root span's start to the end of the task's result collection.

    Returns the duration and how it was measured: the root's own duration when the trace
    holds no result-collection span of the task.
    """
    roots = spans[spans["parent_span_id"] == ""].sort_values("start_ns")
    root = (roots if len(roots) else spans.sort_values("start_ns")).iloc[0]
    results = spans[(spans["name"] == result_span) & (spans["task_id"] == task_id)]
    if len(results):
        end_ns = int(results["end_ns"].max())
        return (end_ns - int(root["start_ns"])) / 1e9, f"{root['name']} start to {result_span} end"
    return int(root["duration_ns"]) / 1e9, f"{root['name']} duration (no {result_span} span)"


def _judge_trace(
    spans: pd.DataFrame, sentinel: str, profile: HopProfile
) -> tuple[Verdict, str, float, tuple[Evidence, ...]]:
    """Verdict, explanation, duration and evidence for a trace that carries the sentinel's id."""
    hops = {h.key: h for h in profile.hops}
    result_span = hops.get("result_collect", PASS1.hop("result_collect")).span
    duration, measured = trace_duration(spans, sentinel, result_span)
    tasks = audit_traces(spans, profile).tasks
    task = tasks[tasks["task_id"] == sentinel].iloc[0]
    reasons = list(task["reasons"])
    results = spans[(spans["name"] == result_span) & (spans["task_id"] == sentinel)]
    states = sorted({str(a.get(TASK_STATE, "")) for a in results["attributes"]} - {""})
    audit = "whole" if task["ok"] else f"broken at {task['first_broken_hop']}"
    evidence = (
        Evidence(measured, duration, "the sentinel's duration, seconds"),
        Evidence(
            f"audit_traces(spans, {profile.name})",
            audit,
            "; ".join(reasons) or "every hop present and linked",
        ),
        Evidence(f"{result_span} {TASK_STATE}", ", ".join(states) or None, "the result's state"),
    )
    done = f"Sentinel {sentinel} took {duration:.2f} s ({measured})"
    if not task["ok"]:
        why = (
            f"{done}, but its trace breaks at {task['first_broken_hop']}: {reasons[0]}. Fix the "
            "propagation at that hop (see the trace audit) and rerun the e2e test."
        )
        return Verdict.FAIL, why, duration, evidence
    if states and states != [COMPLETED]:
        why = f"{done}, but its result arrived {', '.join(states)}: read its logs by trace id."
        return Verdict.FAIL, why, duration, evidence
    why = (
        f"{done}; its trace is whole under {profile.name}. The spec's task_id query cannot "
        "work (no task_id label by design), so the duration is the trace's."
    )
    return Verdict.PASS, why, duration, evidence


def check_ac2(
    sentinel_task_id: str,
    trace_id: str,
    spans_loader: SpansLoader,
    *,
    profile: HopProfile = PASS1,
) -> CriterionResult:
    """AC2: the sentinel task's trace, found by id, is the sentinel's, whole, and completed.

    ``spans_loader`` maps a trace id to its span frame (``TempoSource().trace``,
    :class:`TempoTraceLoader` or :class:`OtlpTraceLoader`); a loader with
    ``describe(trace_id) -> (request, link)`` also says where it looked. Inconclusive without
    a sentinel, a trace id or the trace; fail when the trace carries another task's id, the
    audit finds a break, or the result did not complete.
    """
    sentinel = sentinel_task_id or "<sentinel>"
    traceql = f'{{ span.{TASK_ID} = "{sentinel}" }}'
    spec = Evidence(
        f'{TASK_DURATION.name}{{task_id="{sentinel}"}}',
        None,
        "the spec's query; it cannot return data: the metric contract has no task_id label "
        "(unbounded cardinality), so the duration is taken from the trace",
    )
    where = {"query": traceql, "link": ""}
    if sentinel_task_id and trace_id:
        describe = getattr(spans_loader, "describe", None)
        request, link = describe(trace_id) if describe else (f"trace {trace_id} by id", trace_id)
        where = {"query": request, "link": link}
    if not sentinel_task_id:
        why = "No sentinel task id: give the aks-e2e-<unixnano> id the e2e test published."
    elif not trace_id:
        why = f"No trace id: take it from the e2e output, or find it with {traceql}."
    else:
        try:
            spans = spans_loader(trace_id)
            why = (
                "" if len(spans) else f"The trace has no spans; find the sentinel's with {traceql}."
            )
        except (SourceError, ValueError) as exc:
            what = "not found" if isinstance(exc, NotFound) else "unreadable"
            why = f"Trace {what} ({exc}); find the sentinel's with {traceql}."
    if why:
        return criterion("AC2", Verdict.INCONCLUSIVE, why, evidence=(spec,), **where)
    tasks = sorted(set(spans["task_id"]) - {""})
    found = Evidence(
        where["query"], len(spans), f"spans of the trace; their task ids: {tasks or 'none'}"
    )
    if sentinel_task_id not in tasks:
        why = (
            f"The trace carries task ids {tasks or 'none'}, not {sentinel_task_id}: check the "
            "trace id in the e2e output; if it is right, the task id or context is lost."
        )
        return criterion("AC2", Verdict.FAIL, why, evidence=(found, spec), **where)
    verdict, why, duration, evidence = _judge_trace(spans, sentinel_task_id, profile)
    return criterion(
        "AC2", verdict, why, value=duration, unit="s", evidence=(found, *evidence, spec), **where
    )
