"""Fault plans: validation, deterministic draws, and what the span faults do at export."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from obslib.catalogue.hops import DESTINATION, PASS1, SERVICE_PROXY, TASK_ID
from obslib.errors import ConfigError
from obslib.fleet.faults import (
    CLOCK_SKEW,
    FAULT_NAMES,
    NATS_HEADERS,
    SPAN_DROPPED,
    FaultBook,
    FaultPlan,
    SpanFaults,
    hop_key,
)
from obslib.fleet.telemetry import FleetSpanExporter

TASKS = {f"t{i:02d}": ("copilot", "claude", "codex")[i % 3] for i in range(30)}


def test_parse_accepts_cli_names_and_parameters() -> None:
    plan = FaultPlan.parse(["nats-headers=0.2", "span_dropped=0.1"], dropped_hop="acp_new")
    assert plan.shares() == {NATS_HEADERS: 0.2, SPAN_DROPPED: 0.1}
    assert plan.dropped_hop == "acp_new"


@pytest.mark.parametrize(
    ("items", "params"),
    [
        (["nats-headers"], {}),
        (["nats-headers=lots"], {}),
        (["gremlins=0.1"], {}),
        (["clock-skew=1.5"], {}),
        ([], {"dropped_hop": "not-a-hop"}),
        ([], {"headers_dropped_on": ("status_publish",)}),
    ],
)
def test_invalid_plans_fail_loudly(items: list[str], params: dict) -> None:
    with pytest.raises(ConfigError):
        FaultPlan.parse(items, **params)


def test_draws_are_exact_shares_and_repeat_with_the_seed() -> None:
    plan = FaultPlan(**{name: 0.2 for name in FAULT_NAMES})
    first = plan.assign(TASKS, seed=7)
    assert first == plan.assign(TASKS, seed=7)
    assert set(first) == set(TASKS)
    for name in FAULT_NAMES:
        assert sum(name in names for names in first.values()) == 6
    assert first != plan.assign(TASKS, seed=8)
    assert FaultPlan(stdio_context=0.001).assign(TASKS, seed=1) != {t: () for t in TASKS}


def test_skew_of_one_agent_service_only_draws_its_tasks() -> None:
    plan = FaultPlan(clock_skew=1.0, skewed_service="daedalus-agent-codex")
    assigned = plan.assign(TASKS, seed=1)
    assert {t for t, names in assigned.items() if CLOCK_SKEW in names} == {
        t for t, agent in TASKS.items() if agent == "codex"
    }


def test_hop_key_tells_same_named_spans_apart() -> None:
    assert hop_key("nats.publish", {DESTINATION: "agent.tasks.codex"}) == "task_publish"
    assert hop_key("nats.publish", {DESTINATION: "agent.results.t1"}) == "result_publish"
    assert hop_key("nats.publish", {DESTINATION: "agent.status.t1"}) == ""
    assert all(hop_key(h.span, {DESTINATION: h.match_prefix}) == h.key for h in PASS1.hops)


def test_book_routes_span_faults_to_the_service_that_owns_the_hop() -> None:
    plan = FaultPlan(span_dropped=1.0, dropped_hop="agent_prompt", clock_skew=1.0, skew_seconds=3)
    book = FaultBook(plan, plan.assign(TASKS, seed=1), TASKS)
    assert not book.span_faults(SERVICE_PROXY).dropped
    assert set(book.span_faults(SERVICE_PROXY).skew_ns.values()) == {3_000_000_000}
    claude = book.span_faults("daedalus-agent-claude")
    assert set(claude.dropped) == {t for t, a in TASKS.items() if a == "claude"}
    assert SpanFaults.from_json(claude.to_json()) == claude


def test_exporter_withholds_dropped_hops_and_shifts_skewed_tasks() -> None:
    memory = InMemorySpanExporter()
    faults = SpanFaults(dropped={"t1": ("acp_new",)}, skew_ns={"t2": 5_000_000_000})
    exporter = FleetSpanExporter(memory, faults)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for task in ("t1", "t2", "t3"):
        for name in ("acp.session.new", "acp.session.prompt"):
            with tracer.start_as_current_span(
                name, attributes={TASK_ID: task}, start_time=10**18
            ) as span:
                span.add_event("tick", timestamp=10**18 + 1)
    provider.shutdown()
    exported = {(s.attributes[TASK_ID], s.name): s for s in memory.get_finished_spans()}
    assert ("t1", "acp.session.new") not in exported
    assert ("t1", "acp.session.prompt") in exported
    assert exporter.exported == 5 and exporter.withheld == 1
    for name in ("acp.session.new", "acp.session.prompt"):
        skewed, plain = exported[("t2", name)], exported[("t3", name)]
        assert skewed.start_time == plain.start_time + 5_000_000_000 == 10**18 + 5_000_000_000
        assert skewed.events[0].timestamp == 10**18 + 1 + 5_000_000_000
