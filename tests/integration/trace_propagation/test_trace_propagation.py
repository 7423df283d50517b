"""Work item 1: a task's trace survives every hop, under concurrent load, and breaks are named.

Publishes tasks concurrently through the reference pipeline (real nats-server with JetStream,
real OpenTelemetry SDK, agent CLI subprocesses over ACP), collects every span in the test OTLP
collector, and audits them against the Pass-1 hop profile. See README.md for the span tree.
"""

from __future__ import annotations

import pytest

from obslib.analysis import audit_traces
from obslib.catalogue.hops import PASS1
from obslib.fleet import FaultPlan
from obslib.settings import load_settings
from obslib.sources.otlp_files import read_spans
from obslib.verdict import Verdict
from tests.helpers import collected_run

pytestmark = pytest.mark.slow
TASKS = 100


@pytest.fixture(scope="module")
def settings():
    return load_settings(None)


def run(settings, tmp_path, tasks: int, faults: FaultPlan, seed: int = 11):
    collected = collected_run(tmp_path, tasks, faults, seed=seed, settings=settings)
    return collected.fleet, collected.spans, collected.traces_path


@pytest.fixture(scope="module")
def clean_run(settings, tmp_path_factory):
    return run(settings, tmp_path_factory.mktemp("clean"), TASKS, FaultPlan())


def test_every_span_ended_reaches_the_collector(clean_run):
    fleet, spans, traces_file = clean_run
    assert not fleet.lost
    assert sum(fleet.spans_lost.values()) == 0  # none dropped before export (queues, failures)
    assert len(spans) == sum(fleet.spans_exported.values())
    assert spans.groupby("service_name").size().to_dict() == dict(fleet.spans_exported)
    # The collector's file (OTLP JSON lines, hex ids) holds the same spans as its memory.
    from_file = read_spans(traces_file)
    key = ["trace_id", "span_id", "name"]
    assert (
        from_file[key].sort_values(key).values.tolist()
        == spans[key].sort_values(key).values.tolist()
    )


def test_each_task_has_exactly_one_root_trace_with_every_expected_span(clean_run):
    fleet, spans, _ = clean_run
    result = audit_traces(spans, PASS1)
    tasks = result.tasks.set_index("task_id")
    assert sorted(tasks.index) == sorted(fleet.task_ids)
    assert (tasks["n_traces"] == 1).all()
    assert (tasks["root_trace"] == tasks.index.map(fleet.expected_trace_ids)).all()
    assert tasks["ok"].all(), result.problems.head(20).to_string()
    for hop in PASS1.hops:
        per_task = spans.assign(key=spans.name).query("name == @hop.span").groupby("task_id").size()
        assert (per_task.reindex(fleet.task_ids, fill_value=0) >= hop.count).all(), hop.key
    assert len(spans) == TASKS * len(PASS1.hops)
    assert result.verdict is Verdict.PASS


def test_no_orphan_spans(clean_run):
    _, spans, _ = clean_run
    known = set(zip(spans.trace_id, spans.span_id, strict=True))
    parents = spans[spans.parent_span_id != ""]
    orphans = [
        p for p in zip(parents.trace_id, parents.parent_span_id, strict=True) if p not in known
    ]
    assert orphans == []
    assert audit_traces(spans, PASS1).orphans.empty


def test_envelope_trace_id_is_the_task_trace(clean_run):
    fleet, _, _ = clean_run
    assert dict(fleet.envelope_trace_ids) == dict(fleet.expected_trace_ids)


# Each fault, the hop where the audit must say the chain broke, and the check it must report.
FAULTS = [
    (FaultPlan(stdio_context=0.25), "agent_new", "detached"),
    (FaultPlan(nats_headers=0.25), "task_consume", "detached"),
    (FaultPlan(envelope_trace_id=0.25), "result_collect", "envelope_mismatch"),
    (FaultPlan(span_dropped=0.25, dropped_hop="acp_prompt"), "acp_prompt", "missing"),
    # acp.session.prompt reuses the id of acp.session.new: the first hop holding the id breaks.
    (FaultPlan(duplicate_span_ids=0.25), "acp_new", "duplicate_span_id"),
    # The proxy's clock runs 30 s behind: its first span starts before its parent publish.
    (FaultPlan(clock_skew=0.25, skew_seconds=-30.0), "task_consume", "skew"),
]


@pytest.mark.parametrize(
    ("plan", "hop", "check"), FAULTS, ids=[f"{next(iter(p.shares()))}" for p, _, _ in FAULTS]
)
def test_each_injected_fault_is_reported_at_the_hop_that_broke(
    settings, tmp_path, plan, hop, check
):
    fleet, spans, _ = run(settings, tmp_path, tasks=12, faults=plan)
    (fault,) = plan.shares()
    faulted = set(fleet.tasks_with(fault))
    assert faulted and len(faulted) < 12
    result = audit_traces(spans, PASS1)
    tasks = result.tasks.set_index("task_id")
    broken = set(tasks.index[~tasks["ok"]])
    assert broken == faulted
    assert set(tasks.loc[sorted(faulted), "first_broken_hop"]) == {hop}
    found = result.problems[result.problems.task_id.isin(faulted)]
    assert check in set(found.check), found.to_string()
    assert result.verdict is Verdict.FAIL
