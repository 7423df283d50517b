"""The trace-propagation audit on recorded Tempo traces and on synthetic traces with one fault each."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from obslib.analysis import CHECKS, audit_traces, broken_trace_queries, query_for, sub_profile
from obslib.analysis.traces.findings import TASK_COLUMNS, empty_frames
from obslib.analysis.traces.index import hop_codes
from obslib.catalogue.hops import ENVELOPE_TRACE_ID, PASS1, PLATFORM_TODAY, SERVICE_PROXY
from obslib.sources.frames import SPAN_COLUMNS, empty_frame
from obslib.sources.otlp import spans_from_json
from obslib.synth.spans import (
    background_traces,
    collide_span_id,
    drop_hop_span,
    drop_nats_headers,
    drop_stdio_context,
    make_spans,
    reexport_span,
    regenerate_envelope,
    skew_service,
)
from obslib.verdict import Verdict

TEMPO = Path(__file__).resolve().parents[1] / "samples" / "tempo"
IDS = json.loads((TEMPO / "trace-ids.json").read_text())
# The hops the recorded traces have: no acp.session.new, update stream or result publish.
RECORDED = sub_profile(
    PASS1,
    ["ingress", "dispatch", "task_publish", "task_consume", "proxy", "acp_prompt", "agent_prompt"],
)


def recorded(*names: str) -> pd.DataFrame:
    frames = []
    for name in names:
        body = json.loads((TEMPO / f"trace-v2-{name}.json").read_text())
        frames.append(spans_from_json(body["trace"]["resourceSpans"], "base64"))
    return pd.concat(frames, ignore_index=True)


def task(result, task_id: str) -> pd.Series:
    return result.tasks.set_index("task_id").loc[task_id]


def checks_of(result, task_id: str) -> set[str]:
    return set(result.problems.loc[result.problems["task_id"] == task_id, "check"])


# --- recorded Tempo traces -------------------------------------------------------------------


def test_recorded_complete_trace_passes_on_the_hops_it_has():
    result = audit_traces(recorded("complete"), RECORDED)
    assert result.verdict is Verdict.PASS
    row = task(result, "t-ok-1")
    assert row["ok"] and row["n_traces"] == 1 and row["agent_type"] == "copilot"
    assert row["root_trace"] == IDS["ok"][0] and row["trace_ids"] == (IDS["ok"][0],)
    assert result.problems.empty and result.orphans.empty and result.unattributed.empty
    assert (result.hops["complete_share"] == 1.0).all()


def test_recorded_complete_trace_lacks_five_pass1_hops():
    result = audit_traces(recorded("complete"), PASS1)
    assert result.verdict is Verdict.FAIL
    assert task(result, "t-ok-1")["first_broken_hop"] == "acp_new"
    missing = result.problems.loc[result.problems["check"] == "missing", "hop"]
    assert set(missing) == {
        "acp_new",
        "agent_new",
        "acp_update",
        "result_publish",
        "result_collect",
    }
    assert set(result.problems["check"]) == {"missing"}


def test_recorded_broken_pipe_is_one_task_split_at_the_agent_hop():
    result = audit_traces(recorded("broken-pipe-task-side", "broken-pipe-agent-side"), RECORDED)
    assert result.verdict is Verdict.FAIL
    row = task(result, "t-broken-1")
    assert row["first_broken_hop"] == "agent_prompt"
    assert row["n_traces"] == 2 and row["trace_ids"] == tuple(IDS["broken_pipe"])
    assert {"detached", "split"} <= checks_of(result, "t-broken-1")
    split = result.split_tasks.set_index("trace_id")
    assert split.loc[IDS["broken_pipe"][0], "reference"]
    assert split.loc[IDS["broken_pipe"][1], "linked_by"] == "time"
    assert split.loc[IDS["broken_pipe"][1], "first_hop"] == "agent_prompt"
    assert result.unattributed.empty


def test_recorded_broken_pipe_without_adoption_leaves_the_agent_trace_unattributed():
    spans = recorded("broken-pipe-task-side", "broken-pipe-agent-side")
    result = audit_traces(spans, RECORDED, adopt_by_time=False)
    row = task(result, "t-broken-1")
    assert row["first_broken_hop"] == "agent_prompt" and row["n_traces"] == 1
    assert "missing" in checks_of(result, "t-broken-1")
    assert list(result.unattributed["trace_id"]) == [IDS["broken_pipe"][1]]
    assert result.unattributed["root_name"].iloc[0] == "agent.session.prompt"


def test_recorded_orphan_is_rootless():
    result = audit_traces(recorded("orphan-rootless"), PASS1)
    row = task(result, "t-orphan-1")
    assert not row["ok"] and row["first_broken_hop"] == "ingress" and row["root_trace"] == ""
    assert {"no_root", "orphan"} <= checks_of(result, "t-orphan-1")
    orphan = result.orphans.iloc[0]
    assert len(result.orphans) == 1 and orphan["rootless"] and orphan["trace_id"] == IDS["orphan"]
    assert orphan["hop"] == "result_collect"
    assert list(result.envelope_mismatches["problem"]) == ["missing"]


def test_recorded_error_is_visible_but_not_a_break():
    result = audit_traces(recorded("agent-error"), RECORDED)
    assert result.verdict is Verdict.PASS
    assert task(result, "t-err-1")["n_errors"] == 1
    assert result.summary()["tasks_with_errors"] == 1


def test_recorded_traces_together():
    spans = recorded(
        "complete",
        "broken-pipe-task-side",
        "broken-pipe-agent-side",
        "agent-error",
        "orphan-rootless",
    )
    result = audit_traces(spans, RECORDED)
    assert result.verdict is Verdict.FAIL
    assert set(result.tasks.loc[result.tasks["ok"], "task_id"]) == {"t-ok-1", "t-err-1"}
    assert result.summary()["first_broken_hops"] == {"ingress": 1, "agent_prompt": 1}


def test_detached_query_is_the_recorded_structural_search():
    """Tempo answered the recorded `!>` search with the trace the audit calls detached."""
    answer = json.loads((TEMPO / "search-structural-missing-child.json").read_text())
    found = {t["traceID"] for t in answer["traces"]}
    result = audit_traces(
        recorded("complete", "broken-pipe-task-side", "broken-pipe-agent-side"), RECORDED
    )
    detached = result.problems[result.problems["check"] == "detached"]
    assert set(detached["trace_id"]) == found
    query = query_for("detached", "agent_prompt", RECORDED)
    recorded_query = '{ name = "acp.session.prompt" } !> { name = "agent.session.prompt" }'
    assert re.sub(r" && kind = \w+", "", query) == recorded_query


# --- synthetic traces ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pass1() -> pd.DataFrame:
    return make_spans(PASS1, 10, seed=7)


@pytest.fixture(scope="module")
def victims(pass1) -> list[str]:
    return list(pass1["true_task"].drop_duplicates().iloc[[2, 6]])


@pytest.mark.parametrize("profile", [PASS1, PLATFORM_TODAY], ids=lambda p: p.name)
def test_whole_traces_pass_their_profile(profile):
    spans = make_spans(profile, 30, seed=3, agent_attribute=profile is PASS1)
    result = audit_traces(spans, profile)
    assert result.verdict is Verdict.PASS
    assert len(result.tasks) == 30 and result.tasks["ok"].all()
    assert (result.tasks["n_traces"] == 1).all() and (result.tasks["first_broken_hop"] == "").all()
    truth = spans.groupby("true_task")["trace_id"].first()
    assert (
        result.tasks.set_index("task_id")["root_trace"]
        == truth.reindex(result.tasks["task_id"]).to_numpy()
    ).all()
    for name in (
        "problems",
        "orphans",
        "split_tasks",
        "duplicates",
        "skewed",
        "envelope_mismatches",
        "unattributed",
    ):
        assert getattr(result, name).empty, name
    assert (result.hops["present"] == 30).all() and (result.hops["complete_share"] == 1.0).all()
    assert set(result.tasks["agent_type"]) <= {"copilot", "claude", "codex"}
    assert (result.by_agent_type["complete_share"] == 1.0).all()
    assert result.by_agent_type.groupby("agent_type")["tasks"].first().sum() == 30


@pytest.mark.parametrize("profile", [PASS1, PLATFORM_TODAY], ids=lambda p: p.name)
def test_hops_are_assigned_as_generated(profile):
    spans = make_spans(profile, 5, seed=11)
    hop, wrong_kind = hop_codes(spans, profile)
    keys = np.array([h.key for h in profile.hops], dtype=object)
    assert (keys[hop] == spans["true_hop"].to_numpy()).all() and not wrong_kind.any()


def test_platform_today_fails_pass1_at_the_ingress_hop():
    result = audit_traces(make_spans(PLATFORM_TODAY, 12, agent_attribute=False), PASS1)
    assert result.verdict is Verdict.FAIL
    assert (result.tasks["first_broken_hop"] == "ingress").all()
    assert result.tasks["reasons"].map(lambda r: any("no_root" in x for x in r)).all()


FAULTS = {
    # name: (apply(spans, tasks), first broken hop, checks that must be reported)
    "stdio_context_dropped": (drop_stdio_context, "agent_new", {"detached", "split"}),
    "nats_headers_dropped": (
        lambda s, t: drop_nats_headers(s, t, PASS1),
        "task_consume",
        {"detached", "split", "envelope_mismatch"},
    ),
    "envelope_regenerated": (regenerate_envelope, "result_collect", {"envelope_mismatch"}),
    "span_not_exported": (
        lambda s, t: drop_hop_span(s, t, "proxy"),
        "proxy",
        {"missing", "orphan"},
    ),
    "span_id_collision": (
        lambda s, t: collide_span_id(s, t, "acp_prompt", like="acp_new"),
        "acp_new",
        {"duplicate_span_id"},
    ),
    "proxy_clock_behind": (
        lambda s, t: skew_service(s, t, SERVICE_PROXY, -50_000_000),
        "task_consume",
        {"skew"},
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_is_flagged_at_its_hop(pass1, victims, fault):
    apply, hop, checks = FAULTS[fault]
    result = audit_traces(apply(pass1, victims), PASS1)
    assert result.verdict is Verdict.FAIL
    tasks = result.tasks.set_index("task_id")
    assert set(tasks.index[~tasks["ok"]]) == set(victims)
    assert (tasks.loc[victims, "first_broken_hop"] == hop).all()
    for victim in victims:
        assert checks <= checks_of(result, victim), checks_of(result, victim)
        assert result.summary()["first_broken_hops"] == {hop: len(victims)}


TODAY_FAULTS = {
    "nats_headers_dropped": (lambda s, t: drop_nats_headers(s, t, PLATFORM_TODAY), "task_consume"),
    "envelope_regenerated": (regenerate_envelope, "result_collect"),
    "span_not_exported": (lambda s, t: drop_hop_span(s, t, "proxy"), "proxy"),
    "status_not_exported": (lambda s, t: drop_hop_span(s, t, "status_collect"), "status_collect"),
}


@pytest.mark.parametrize("fault", list(TODAY_FAULTS))
def test_faults_in_todays_tree_are_flagged_at_their_hop(fault):
    spans = make_spans(PLATFORM_TODAY, 8, seed=13, agent_attribute=False)
    victims = list(spans["true_task"].drop_duplicates().iloc[[1, 5]])
    apply, hop = TODAY_FAULTS[fault]
    result = audit_traces(apply(spans, victims), PLATFORM_TODAY)
    tasks = result.tasks.set_index("task_id")
    assert set(tasks.index[~tasks["ok"]]) == set(victims)
    assert (tasks.loc[victims, "first_broken_hop"] == hop).all()


def test_stdio_fault_links_both_agent_traces_by_time(pass1, victims):
    result = audit_traces(drop_stdio_context(pass1, victims), PASS1)
    split = result.split_tasks
    assert set(split["task_id"]) == set(victims) and (split.groupby("task_id").size() == 3).all()
    assert set(split.loc[~split["reference"], "linked_by"]) == {"time"}
    assert set(split.loc[~split["reference"], "first_hop"]) == {"agent_new", "agent_prompt"}


def test_overlapping_tasks_are_not_adopted_by_guess():
    spans = make_spans(PASS1, 4, seed=5, spacing_ns=1_000)  # all four run at once
    victims = list(spans["true_task"].drop_duplicates().iloc[:2])
    result = audit_traces(drop_stdio_context(spans, victims), PASS1)
    assert result.split_tasks.empty
    assert len(result.unattributed) == 4
    assert set(result.unattributed["root_name"]) == {"agent.session.new", "agent.session.prompt"}
    assert (result.tasks.set_index("task_id").loc[victims, "first_broken_hop"] == "agent_new").all()


def test_nats_fault_keeps_the_consumer_trace_by_task_id(pass1, victims):
    result = audit_traces(drop_nats_headers(pass1, victims, PASS1), PASS1)
    split = result.split_tasks
    assert (split.groupby("task_id").size() == 2).all()
    assert set(split.loc[~split["reference"], "linked_by"]) == {"task_id"}
    assert set(split.loc[~split["reference"], "first_hop"]) == {"task_consume"}
    mism = result.envelope_mismatches
    assert (
        set(mism["task_id"]) == set(victims)
        and (mism["envelope_trace_id"] == mism["trace_id"]).all()
    )


def test_envelope_fault_reports_both_ids(pass1, victims):
    result = audit_traces(regenerate_envelope(pass1, victims), PASS1)
    mism = result.envelope_mismatches.set_index("task_id").loc[victims]
    assert (mism["problem"] == "mismatch").all()
    assert (mism["envelope_trace_id"] != mism["task_trace_id"]).all()
    assert (mism["task_trace_id"] == mism["trace_id"]).all()  # the tree itself is whole


def test_unexported_span_leaves_three_orphans_per_task(pass1, victims):
    result = audit_traces(drop_hop_span(pass1, victims, "proxy"), PASS1)
    orphans = result.orphans
    assert set(orphans["task_id"]) == set(victims) and not orphans["rootless"].any()
    assert sorted(orphans["hop"].unique()) == ["acp_new", "acp_prompt", "result_publish"]


def test_duplicate_frames(pass1, victims):
    collided = audit_traces(collide_span_id(pass1, victims, "acp_prompt", like="acp_new"), PASS1)
    assert (collided.duplicates["copies"] == 2).all() and len(collided.duplicates) == 4
    assert set(collided.duplicates["hop"]) == {"acp_new", "acp_prompt"}
    assert "wrong_parent" not in set(collided.problems["check"])  # children resolve by hop


def test_an_identical_copy_is_a_redelivery_not_a_break(pass1, victims):
    """An exporter retry sends the same span twice: one span, counted as redelivered."""
    twice = audit_traces(reexport_span(pass1, victims, "acp_prompt"), PASS1)
    assert twice.verdict is Verdict.PASS and twice.duplicates.empty
    assert twice.redelivered == len(victims) and twice.summary()["redelivered_spans"] == len(
        victims
    )
    # The same id on a span that differs in anything is still a duplicate id.
    changed = reexport_span(pass1, victims, "acp_prompt")
    changed.loc[changed.index[-len(victims) :], "end_ns"] += 1
    again = audit_traces(changed, PASS1)
    assert again.redelivered == 0 and set(again.duplicates["hop"]) == {"acp_prompt"}


def test_skew_frame_and_tolerance(pass1, victims):
    result = audit_traces(skew_service(pass1, victims, SERVICE_PROXY, -50_000_000), PASS1)
    assert set(result.skewed["task_id"]) == set(victims)
    assert (result.skewed["lead_ms"] > 40).all() and set(result.skewed["hop"]) == {"task_consume"}
    slight = skew_service(pass1, victims, SERVICE_PROXY, -500_000)  # 0.5 ms behind
    assert audit_traces(slight, PASS1, skew_tolerance_ns=2_000_000).verdict is Verdict.PASS
    assert audit_traces(slight, PASS1, skew_tolerance_ns=0).verdict is Verdict.FAIL


def test_wrong_kind_is_not_a_missing_hop(pass1, victims):
    spans = pass1.copy()
    spans.loc[spans["true_task"].isin(victims) & (spans["true_hop"] == "agent_prompt"), "kind"] = (
        "INTERNAL"
    )
    result = audit_traces(spans, PASS1)
    assert set(result.problems["check"]) == {"wrong_kind"}
    assert set(result.problems["hop"]) == {"agent_prompt"}


def test_root_span_with_a_parent_is_no_root(pass1, victims):
    spans = pass1.copy()
    roots = spans["true_task"].isin(victims) & (spans["true_hop"] == "ingress")
    upstream = spans[roots].assign(
        span_id=spans.loc[roots, "span_id"].str[::-1],
        name="POST /hooks/mattermost",
        start_ns=spans.loc[roots, "start_ns"] - 1000,
    )  # an instrumented upstream proxy now owns the root
    spans.loc[roots, "parent_span_id"] = upstream["span_id"].to_numpy()
    result = audit_traces(pd.concat([spans, upstream], ignore_index=True), PASS1)
    assert (result.tasks.set_index("task_id").loc[victims, "first_broken_hop"] == "ingress").all()
    for victim in victims:
        assert checks_of(result, victim) == {"no_root", "wrong_parent"}


def test_leaked_context_marks_the_trace_shared(pass1):
    a, b = pass1["true_task"].drop_duplicates().iloc[:2]
    spans = pass1.copy()
    leak = (spans["true_task"] == b) & spans["true_hop"].isin(["task_consume", "proxy"])
    spans.loc[leak, "trace_id"] = spans.loc[spans["true_task"] == a, "trace_id"].iloc[0]
    result = audit_traces(spans, PASS1)
    assert "shared_trace" in checks_of(result, a) and "shared_trace" in checks_of(result, b)
    assert set(result.tasks.loc[~result.tasks["ok"], "task_id"]) == {a, b}


def test_ids_that_are_not_hex_still_audit(pass1, victims):
    spans = pass1.copy()
    for col in ("span_id", "parent_span_id"):
        spans[col] = spans[col].map(lambda s: f"s-{s}" if s else "")
    assert audit_traces(spans, PASS1).verdict is Verdict.PASS
    assert audit_traces(drop_hop_span(spans, victims, "proxy"), PASS1).verdict is Verdict.FAIL


def test_trace_ids_sharing_their_low_half_stay_apart():
    spans = make_spans(PASS1, 2, seed=4)
    first = spans["trace_id"].iloc[0]
    spans["trace_id"] = spans["trace_id"].map(lambda t: t if t == first else "0" * 16 + first[16:])
    spans["attributes"] = [
        a | {ENVELOPE_TRACE_ID: t} if ENVELOPE_TRACE_ID in a else a
        for a, t in zip(spans["attributes"], spans["trace_id"], strict=True)
    ]
    result = audit_traces(spans, PASS1)
    assert result.verdict is Verdict.PASS and result.n_traces == 2


def test_no_data_is_inconclusive():
    result = audit_traces(empty_frame(SPAN_COLUMNS))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert list(result.tasks.columns) == list(TASK_COLUMNS)
    assert result.summary()["tasks"] == 0 and result.summary()["complete_share"] is None
    assert set(empty_frames()) <= set(vars(result))


def test_spans_without_task_ids_are_inconclusive_and_listed():
    result = audit_traces(background_traces(5))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert (
        len(result.unattributed) == 5 and (result.unattributed["root_name"] == "GET /healthz").all()
    )


def test_background_traffic_does_not_disturb_whole_tasks(pass1):
    spans = pd.concat([pass1, background_traces(50)], ignore_index=True)
    result = audit_traces(spans, PASS1)
    assert result.verdict is Verdict.PASS and len(result.unattributed) == 50


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="task_id"):
        audit_traces(pd.DataFrame({"trace_id": ["a"]}))


def test_summary_agrees_with_the_frames(pass1, victims):
    result = audit_traces(drop_nats_headers(pass1, victims, PASS1), PASS1)
    summary = json.loads(json.dumps(result.summary()))
    assert summary["verdict"] == "fail" and summary["tasks"] == 10
    assert summary["tasks_broken"] == int((~result.tasks["ok"]).sum()) == 2
    assert summary["split_tasks"] == 2 and summary["envelope_mismatches"] == 2
    assert summary["checks"]["split"] == 2 and set(summary["checks"]) <= set(CHECKS)


# --- profiles and queries --------------------------------------------------------------------


def test_sub_profile_reparents_and_rejects_forests():
    chain = sub_profile(PASS1, ["ingress", "proxy", "agent_prompt"])
    assert [(h.key, h.parent) for h in chain.hops] == [
        ("ingress", None), ("proxy", "ingress"), ("agent_prompt", "proxy"),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="one root"):
        sub_profile(PASS1, ["acp_new", "acp_prompt"])
    with pytest.raises(KeyError):
        sub_profile(PASS1, ["ingress", "nope"])


@pytest.mark.parametrize("profile", [PASS1, PLATFORM_TODAY], ids=lambda p: p.name)
def test_queries_are_built_from_the_profile(profile):
    queries = broken_trace_queries(profile)
    spans = {h.span for h in profile.hops}
    for hop in profile.hops[1:]:
        parent = profile.hop(hop.parent)
        for check in ("missing", "detached", "orphan", "wrong_parent"):
            q = queries[f"{check}:{hop.key}"]
            assert f'name = "{hop.span}"' in q and f'name = "{parent.span}"' in q
        assert "!<" in queries[f"missing:{hop.key}"] and "!>" in queries[f"detached:{hop.key}"]
    for q in queries.values():
        assert q.count("{") == q.count("}") and q.count('"') % 2 == 0
        assert set(re.findall(r'name [!=]= "([^"]+)"', q)) <= spans
    assert (
        'span.messaging.destination.name =~ "agent[.]tasks[.].*"' in queries["missing:task_publish"]
    )
    assert f"span.{ENVELOPE_TRACE_ID} = nil" in queries["envelope_missing"]
    assert profile.root.span in queries["split"]


def test_every_finding_has_a_query_or_is_documented_as_without(pass1, victims):
    without = {"skew", "duplicate_span_id", "shared_trace"}
    for fault in FAULTS.values():
        problems = audit_traces(fault[0](pass1, victims), PASS1).problems
        for check, hop in problems[["check", "hop"]].drop_duplicates().itertuples(index=False):
            assert (query_for(check, hop) is None) == (check in without), (check, hop)


# --- Tempo 3.1 recordings: redelivered copies and the rewritten shared span id ---------------

TEMPO31 = TEMPO.parent / "tempo-3.1"
IDS31 = json.loads((TEMPO31 / "trace-ids.json").read_text())
CHAIN31 = PASS1  # the second set's chains carry every Pass-1 hop, subjects included


def recorded31(name: str) -> pd.DataFrame:
    body = json.loads((TEMPO31 / name).read_text())
    batches = body["trace"]["resourceSpans"] if "trace" in body else body["batches"]
    return spans_from_json(batches, "base64")


@pytest.mark.parametrize(
    "name",
    [
        "trace-v2-redelivered.json",
        "trace-v1-redelivered.json",
        "trace-v2-redelivered-after-flush.json",
        "trace-v1-redelivered-after-flush.json",
    ],
)
def test_a_batch_tempo_kept_twice_is_audited_once(name):
    spans = recorded31(name)
    assert len(spans) == 24 and spans["span_id"].nunique() == 12  # as Tempo returned it
    result = audit_traces(spans, CHAIN31)
    assert result.redelivered == 12 and result.n_spans == 12
    assert result.duplicates.empty and "duplicate_span_id" not in set(result.problems["check"])
    # Exactly what one copy alone gives (the recorder sent no envelope trace id: its only gap).
    once = audit_traces(spans.drop_duplicates("span_id"), CHAIN31)
    assert result.problems.equals(once.problems) and result.verdict is once.verdict
    assert set(once.problems["check"]) == {"envelope_missing"}


def test_the_span_tempo_rewrote_is_still_a_duplicate_id():
    for name in ("trace-v2-server-shares-client-id.json", "trace-v1-server-shares-client-id.json"):
        spans = recorded31(name)
        shared = IDS31["shared-id-1-span-ids"]["acp_new"]
        agent = spans[spans["name"] == "agent.session.new"].iloc[0]
        assert agent["span_id"] == "0000000000000001" and agent["parent_span_id"] == shared
        result = audit_traces(spans, CHAIN31)
        found = result.problems[result.problems["check"] == "duplicate_span_id"]
        assert list(found["hop"]) == ["agent_new"], result.problems
        assert shared in found["detail"].iloc[0] and "rewrote" in found["detail"].iloc[0]
        assert result.verdict is Verdict.FAIL


def test_the_collectors_copy_of_the_shared_id_is_the_same_finding():
    """As exported (before Tempo's rewrite) the SERVER span names its own id as its parent."""
    spans = recorded31("trace-v2-server-shares-client-id.json")
    shared = IDS31["shared-id-1-span-ids"]["acp_new"]
    spans.loc[spans["span_id"] == "0000000000000001", "span_id"] = shared
    result = audit_traces(spans, CHAIN31)
    hops = set(result.problems.loc[result.problems["check"] == "duplicate_span_id", "hop"])
    assert "agent_new" in hops and result.verdict is Verdict.FAIL
    agent = result.problems[(result.problems["hop"] == "agent_new")]
    assert "wrong_parent" not in set(agent["check"])  # it hangs under its CLIENT, not itself


def test_a_task_that_began_before_the_window_is_cut_not_broken(pass1):
    tasks = pass1.groupby("true_task")["start_ns"].min().sort_values()
    begin = pd.Timestamp(int(tasks.iloc[4]) + 1, unit="ns", tz="UTC")  # inside task 4's tree
    end = pd.Timestamp(int(pass1["end_ns"].max()) + 1, unit="ns", tz="UTC")
    inside = pass1[(pass1["end_ns"] >= begin.value)]  # a window read keeps spans ending in it
    result = audit_traces(inside, PASS1, window=(begin, end))
    assert result.verdict is Verdict.PASS  # no task is broken for what the window hid
    assert list(result.cut_tasks["task_id"]) == [tasks.index[4]]
    assert len(result.tasks) == len(tasks) - 5  # tasks 0-3 ended before it, task 4 is cut
    assert result.summary()["tasks_cut_by_window"] == len(result.cut_tasks)


def test_an_injected_task_absent_from_the_data_is_missed_and_inconclusive(pass1, victims, tmp_path):
    from obslib.analysis.traces.stats import ground_truth_verdict, injected_vs_found

    tasks = sorted(set(pass1["true_task"]))
    run = tmp_path / "fleet-run.json"
    run.write_text(
        json.dumps({"task_ids": tasks, "faults": {v: ["stdio_context"] for v in victims}})
    )
    broken = drop_stdio_context(pass1, victims)
    whole = injected_vs_found(audit_traces(broken, PASS1), run)
    assert bool(whole["caught"].all()) and ground_truth_verdict(whole) is Verdict.PASS
    # The audit saw none of the faulted tasks (the window missed them): nothing was caught.
    seen = broken[~broken["true_task"].isin(victims)]
    absent = injected_vs_found(audit_traces(seen, PASS1), run).set_index("fault")
    assert absent.loc["stdio_context", "missed"] == sorted(victims)
    assert absent.loc["stdio_context", "absent"] == sorted(victims)
    assert not absent.loc["stdio_context", "caught"]
    assert ground_truth_verdict(absent.reset_index()) is Verdict.INCONCLUSIVE
    # A faulted task the audit saw but passed fails the comparison.
    unflagged = injected_vs_found(audit_traces(pass1, PASS1), run)
    assert ground_truth_verdict(unflagged) is Verdict.FAIL
