"""Each fault flag changes exactly what it claims, on the tasks drawn for it and no others.

Every run here has four tasks of one agent type (one agent process keeps the runs short) and a
share of 0.5, so two tasks are faulted and two are clean; the clean ones must keep the whole
PASS1 tree.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from obslib.catalogue.hops import ENVELOPE_TRACE_ID, PASS1, SERVICE_PROXY
from obslib.collector import OtlpCollector
from obslib.fleet import FaultPlan, FleetRun, run_fleet
from obslib.fleet.envelope import TRACE_ID_RE
from obslib.settings import Settings

from .spantree import pass1_problems, spans_by_hop, task_spans

AGENT = "claude"
AGENT_HOPS = {"agent_new", "agent_prompt"}
UPSTREAM_HOPS = {"ingress", "dispatch", "task_publish"}


def _run(
    settings: Settings,
    collector: OtlpCollector,
    tmp_path: Path,
    plan: FaultPlan,
    fault: str,
    breaks_tree: bool,
):
    one_type = dataclasses.replace(settings, agent_types=(AGENT,))
    run = run_fleet(
        one_type,
        tasks=4,
        collector_endpoint=collector.endpoint,
        out_dir=tmp_path / "run",
        concurrency=4,
        faults=plan,
        seed=11,
    )
    assert run.lost == ()
    assert collector.wait_for_spans(sum(run.spans_exported.values()), timeout_s=15)
    frame = collector.spans_frame()
    assert frame.groupby("service_name").size().to_dict() == dict(run.spans_exported)
    faulted = run.tasks_with(fault)
    clean = [t for t in run.task_ids if t not in faulted]
    assert len(faulted) == 2 and all(run.faults[t] == (fault,) for t in faulted)
    for task_id in clean:
        assert pass1_problems(frame, task_id, AGENT, run.expected_trace_ids[task_id]) == [], task_id
        assert run.envelope_trace_ids[task_id] == run.expected_trace_ids[task_id]
    for task_id in faulted:
        problems = pass1_problems(frame, task_id, AGENT, run.expected_trace_ids[task_id])
        assert bool(problems) == breaks_tree, problems
    return run, frame, faulted


def _hop(frame: pd.DataFrame, task_id: str, key: str) -> pd.Series:
    (row,) = spans_by_hop(task_spans(frame, task_id))[key]
    return row


@pytest.fixture()
def fault_run(settings: Settings, collector: OtlpCollector, tmp_path: Path):
    def start(
        plan: FaultPlan, fault: str, breaks_tree: bool = True
    ) -> tuple[FleetRun, pd.DataFrame, tuple[str, ...]]:
        return _run(settings, collector, tmp_path, plan, fault, breaks_tree)

    return start


def test_stdio_context_dropped_orphans_only_the_agent_spans(fault_run) -> None:
    run, frame, faulted = fault_run(FaultPlan(stdio_context=0.5), "stdio_context")
    for task_id in faulted:
        expected = run.expected_trace_ids[task_id]
        assert pass1_problems(frame, task_id, AGENT, expected, skip=AGENT_HOPS) == []
        agent_traces = set()
        for key in AGENT_HOPS:
            row = _hop(frame, task_id, key)
            assert row["parent_span_id"] == "" and row["trace_id"] != expected
            agent_traces.add(row["trace_id"])
        assert len(agent_traces) == 2  # each agent span is a root of its own trace


def test_task_headers_dropped_split_the_trace_at_the_consumer(fault_run) -> None:
    run, frame, faulted = fault_run(FaultPlan(nats_headers=0.5), "nats_headers")
    downstream = {hop.key for hop in PASS1.hops} - UPSTREAM_HOPS
    for task_id in faulted:
        expected = run.expected_trace_ids[task_id]
        consume = _hop(frame, task_id, "task_consume")
        assert consume["parent_span_id"] == "" and consume["trace_id"] != expected
        assert pass1_problems(frame, task_id, AGENT, expected, skip=downstream) == []
        assert pass1_problems(frame, task_id, AGENT, consume["trace_id"], skip=UPSTREAM_HOPS) == []
        # The proxy stamps the trace it is in: the new one.
        assert run.envelope_trace_ids[task_id] == consume["trace_id"]


def test_result_headers_dropped_fall_back_on_the_envelope(fault_run) -> None:
    plan = FaultPlan(nats_headers=0.5, headers_dropped_on=("result_publish",))
    run, frame, faulted = fault_run(plan, "nats_headers")
    for task_id in faulted:
        expected = run.expected_trace_ids[task_id]
        assert pass1_problems(frame, task_id, AGENT, expected, skip={"result_collect"}) == []
        collect = _hop(frame, task_id, "result_collect")
        # As the platform's collector does: a root span inside the envelope's trace.
        assert collect["trace_id"] == expected and collect["parent_span_id"] == ""


def test_envelope_trace_id_regenerated_leaves_the_tree_intact(fault_run) -> None:
    run, frame, faulted = fault_run(
        FaultPlan(envelope_trace_id=0.5), "envelope_trace_id", breaks_tree=False
    )
    for task_id in faulted:
        expected = run.expected_trace_ids[task_id]
        assert pass1_problems(frame, task_id, AGENT, expected) == []
        stamped = run.envelope_trace_ids[task_id]
        assert TRACE_ID_RE.match(stamped) and stamped != expected
        assert _hop(frame, task_id, "result_collect")["attributes"][ENVELOPE_TRACE_ID] == stamped


@pytest.mark.parametrize(("hop", "child"), [("acp_new", "agent_new"), ("agent_prompt", None)])
def test_span_dropped_withholds_exactly_that_hop(fault_run, hop: str, child: str | None) -> None:
    run, frame, faulted = fault_run(FaultPlan(span_dropped=0.5, dropped_hop=hop), "span_dropped")
    for task_id in faulted:
        expected = run.expected_trace_ids[task_id]
        assert spans_by_hop(task_spans(frame, task_id))[hop] == []
        assert pass1_problems(frame, task_id, AGENT, expected, skip={hop}) == []
        if child is not None:
            orphan = _hop(frame, task_id, child)
            assert orphan["trace_id"] == expected
            assert orphan["parent_span_id"] not in set(frame["span_id"])
    per_task = {"acp_new": 6, "agent_prompt": 2}[hop]  # spans of the hop's service per task
    service = SERVICE_PROXY if hop == "acp_new" else f"daedalus-agent-{AGENT}"
    assert run.spans_exported[service] == 4 * per_task - len(faulted)


def test_duplicate_span_ids_reuse_the_session_new_id(fault_run) -> None:
    run, frame, faulted = fault_run(FaultPlan(duplicate_span_ids=0.5), "duplicate_span_ids")
    for task_id in run.task_ids:
        new, prompt = _hop(frame, task_id, "acp_new"), _hop(frame, task_id, "acp_prompt")
        assert (new["span_id"] == prompt["span_id"]) == (task_id in faulted)
        assert new["trace_id"] == prompt["trace_id"] == run.expected_trace_ids[task_id]


@pytest.mark.parametrize(
    ("service", "hops"), [("{agent}", AGENT_HOPS), (SERVICE_PROXY, {"task_consume"})]
)
def test_clock_skew_shifts_one_service(fault_run, service: str, hops: set[str]) -> None:
    skew_ns = 600 * 10**9
    plan = FaultPlan(clock_skew=0.5, skewed_service=service, skew_seconds=600)
    run, frame, faulted = fault_run(plan, "clock_skew", breaks_tree=False)
    for task_id in run.task_ids:
        # Skew moves timestamps, never the tree.
        assert pass1_problems(frame, task_id, AGENT, run.expected_trace_ids[task_id]) == []
        spans = spans_by_hop(task_spans(frame, task_id))
        by_id = {row["span_id"]: row for rows in spans.values() for row in rows}
        for key in hops:
            (row,) = spans[key]
            lead = row["start_ns"] - by_id[row["parent_span_id"]]["start_ns"]  # parent is unskewed
            if task_id in faulted:
                assert lead >= skew_ns
            else:
                assert 0 <= lead < skew_ns
