"""A window's spans from Tempo: recorded select() answers, and the fake store's Tempo 3.1 quirks.

The parser is checked on the recorded bodies (``samples/tempo-3.1``); the fake store is checked
against the recorded requests it must reproduce; the window reader is then run against the fake
for every quirk: the query-end cutoff, a silent ``limit``, the size error, cut span sets, the
ingestion slack, redelivered copies, traces outside the window and a user's cap.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from obslib.catalogue.hops import PASS1
from obslib.sources import coverage as cov
from obslib.sources.endpoint import Endpoint
from obslib.sources.http import HttpClient
from obslib.sources.tempo import TempoSource
from obslib.sources.tempo_select import select_query, spans_from_select
from obslib.sources.tempo_window import plan_slices, window_spans
from obslib.synth.spans import make_spans
from tests.fakes.tempo import FakeTempo
from tests.fakes.tempo_store import TempoStore

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "tempo-3.1"
THIRD = json.loads((SAMPLES / "trace-ids-third-set.json").read_text())
SECOND = json.loads((SAMPLES / "trace-ids.json").read_text())
RECORDED_SELECT = (
    '{ resource.service.name =~ "daedalus-.*" } | select(span:name, span:parentID, span:kind, '
    "span:status, span:statusMessage, instrumentation:name, resource.service.name, "
    "span.daedalus.task.id, span.agent.type)"
)
T0 = 1_795_920_000  # a pinned instant in the recordings' era (2026-11-29)


def body(name: str):
    return json.loads((SAMPLES / name).read_text())


class Clock:
    """The fake Tempo's clock; sleeping advances it."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def source_for(fake: FakeTempo, **kwargs) -> TempoSource:
    endpoint = Endpoint("tempo", fake.url, timeout=10)
    return TempoSource(client=HttpClient(endpoint, retries=0), **kwargs)


def shifted(spans: pd.DataFrame, first_s: float) -> pd.DataFrame:
    offset = int(first_s * 10**9) - int(spans["start_ns"].min())
    return spans.assign(start_ns=spans.start_ns + offset, end_ns=spans.end_ns + offset)


def push_live(store: TempoStore, spans: pd.DataFrame) -> None:
    """Push each trace a second after its last span ended, as a live exporter would."""
    for _, trace in spans.groupby("trace_id", sort=False):
        store.push(trace, at=trace["end_ns"].max() / 1e9 + 1)


# -- the recorded answers ------------------------------------------------------------------


def test_select_answers_become_whole_spans_with_padded_ids_and_no_root_parent():
    spans, hits, copies = spans_from_select(body("search-select-spss.json"))
    assert copies == 0 and len(hits) == 3 and len(spans) == 36
    ids = {THIRD[f"sel-{i}"] for i in (1, 2, 3)}
    assert set(spans["trace_id"]) == ids  # sel-1 came back as 30 characters
    sel1 = spans[spans["trace_id"] == THIRD["sel-1"]].set_index("name")
    assert set(sel1["span_id"]) == set(THIRD["sel-1-span-ids"].values())
    root = sel1.loc["ingress.mattermost"]
    assert root["parent_span_id"] == "" and root["kind"] == "SERVER"  # 0000000000000000
    assert root["service_name"] == "daedalus-ingress" and root["task_id"] == "sel-1"
    assert root["scope_name"] == "github.com/raykao/daedalus/internal/ingress"
    dispatch = sel1.loc["orchestrator.dispatch"]
    assert dispatch["parent_span_id"] == THIRD["sel-1-span-ids"]["ingress"]
    assert dispatch["kind"] == "INTERNAL" and dispatch["status_code"] == "UNSET"
    assert (spans["end_ns"] - spans["start_ns"] == spans["duration_ns"]).all()
    errors = spans[spans["status_code"] == "ERROR"]
    assert set(errors["trace_id"]) == {THIRD["sel-2"]} and (errors["status_message"] != "").all()
    assert not any(h.cut for h in hits)


def test_matched_above_the_spans_returned_marks_a_cut_span_set():
    spans, hits, _ = spans_from_select(body("search-select-spss-truncated.json"))
    assert len(spans) == 15 and all(h.cut and h.matched == 12 and h.spans == 5 for h in hits)


def test_a_span_twice_in_a_set_is_a_copy_one_in_two_sets_is_one_span_and_a_reused_id_stays():
    answer = body("search-select-spss.json")
    trace = answer["traces"][0]
    spans = trace["spanSets"][0]["spans"]
    first, second = spans[0], spans[1]
    reused = {**second, "spanID": first["spanID"]}  # another span with the first one's id
    trace["spanSets"] = [
        {"spans": [*spans, dict(first)], "matched": len(spans)},  # an exporter's retry
        {"spans": [second], "matched": 1},  # the same span in a second span set
        {"spans": [reused], "matched": 1},
    ]
    trace.pop("spanSet", None)
    frame, hits, copies = spans_from_select(answer)
    mine = frame[frame["trace_id"] == hits[0].trace_id]
    assert copies == 1
    assert len(mine) == len(spans) + 1 and hits[0].spans == len(spans) + 1
    same_id = mine[mine["span_id"] == mine["span_id"].iloc[0]]
    assert sorted(same_id["name"]) == sorted([first["name"], second["name"]])


def test_the_select_query_asks_for_every_field_the_audit_reads():
    query = select_query()
    assert query.startswith('{ resource.service.name =~ "daedalus-.*" } | select(')
    for field in ("span:parentID", "span:kind", "span.daedalus.task.id", "span.agent_type"):
        assert field in query


def test_slices_cover_the_window_in_whole_seconds():
    assert plan_slices(100, 350, 120) == [(100, 220), (220, 340), (340, 350)]
    assert plan_slices(5, 5) == []


# -- the fake store answers as the recorded server did --------------------------------------


def recorded_sel_store(clock: Clock) -> TempoStore:
    """A store holding the third set's sel-1..3 traces, rebuilt from the recorded answer.

    The recorded spans come in push order (resource by resource), so they are pushed so again.
    """
    spans, _, _ = spans_from_select(body("search-select-spss.json"))
    spans["attributes"] = [
        {"daedalus.task.id": t, "agent.type": "claude" if t == "sel-2" else "copilot"}
        for t in spans["task_id"]
    ]
    store = TempoStore(clock)
    for trace_id in (THIRD[f"sel-{i}"] for i in (1, 2, 3)):
        store.push(spans[spans["trace_id"] == trace_id], at=THIRD["sel_pushed_at"])
    return store


def test_the_fake_store_reproduces_the_recorded_select_answers():
    clock = Clock(THIRD["sel_pushed_at"] + 40)
    store = recorded_sel_store(clock)
    start, end = THIRD["sel_search_start_end"]
    for spss, name in ((100, "search-select-spss.json"), (5, "search-select-spss-truncated.json")):
        status, text = store.search(RECORDED_SELECT, start, end, 20, spss)
        ours, recorded = json.loads(text), body(name)
        assert status == 200
        assert [t["traceID"] for t in ours["traces"]] == [t["traceID"] for t in recorded["traces"]]
        for mine, theirs in zip(ours["traces"], recorded["traces"], strict=True):
            assert mine["spanSet"]["matched"] == theirs["spanSet"]["matched"]
            got = [(s["spanID"], s["name"]) for s in mine["spanSet"]["spans"]]
            assert got == [(s["spanID"], s["name"]) for s in theirs["spanSet"]["spans"]]
            for a, b in zip(mine["spanSet"]["spans"], theirs["spanSet"]["spans"], strict=True):
                as_set = {(x["key"], json.dumps(x["value"])) for x in a["attributes"]}
                assert as_set == {(x["key"], json.dumps(x["value"])) for x in b["attributes"]}


def test_the_fake_store_rewrites_a_search_ending_inside_the_cutoff():
    clock = Clock(T0)
    store = TempoStore(clock)
    old = shifted(make_spans(PASS1, 3, seed=1, spacing_ns=10**9), T0 - 60)
    store.push(old, at=T0 - 55)
    new = shifted(make_spans(PASS1, 3, seed=2, spacing_ns=10**9), T0 - 5)
    store.push(new, at=T0 - 1)
    _, text = store.search(select_query(), T0 - 20, T0, 20, 100)
    found = {t["traceID"].rjust(32, "0") for t in json.loads(text)["traces"]}
    assert found == set(old["trace_id"])  # the last 20 s became now - 15 min .. now - 30 s


# -- the window reader against the fake ---------------------------------------------------


@pytest.fixture
def clock():
    return Clock(T0)


def window_of(fake: FakeTempo, clock: Clock, start: float, end: float, **kwargs) -> cov.Fetched:
    return window_spans(
        source_for(fake), start, end, sleep=clock.sleep, progress=lambda _m: None, **kwargs
    )


def test_a_window_reaching_into_the_cutoff_waits_until_searchable(clock):
    store = TempoStore(clock)
    tasks = shifted(make_spans(PASS1, 20, seed=3, spacing_ns=10**9), T0 - 25)
    store.push(tasks, at=T0)
    with FakeTempo(store=store) as fake:
        fetched = window_of(fake, clock, T0 - 600, T0)
    assert clock.slept and sum(clock.slept) >= 30  # waited for now - 30 s to pass the end
    assert set(fetched.frame["trace_id"]) == set(tasks["trace_id"])
    assert not fetched.coverage.partial


def test_a_window_still_unsearchable_after_the_wait_is_partial(clock):
    store = TempoStore(clock)
    store.push(shifted(make_spans(PASS1, 5, seed=4, spacing_ns=10**9), T0 - 300), at=T0 - 290)
    with FakeTempo(store=store) as fake:
        fetched = window_of(fake, clock, T0 - 600, T0, max_wait_s=5)
    assert clock.slept == []
    kinds = {g.kind for g in fetched.coverage.gaps}
    assert fetched.coverage.partial and cov.NOT_SEARCHABLE in kinds
    assert fetched.coverage.covered[1] == pd.Timestamp(T0 - 30, unit="s", tz="UTC")
    assert fetched.frame["trace_id"].nunique() == 5


def test_a_slice_at_the_limit_is_split_until_every_trace_is_read(clock):
    store = TempoStore(clock)
    tasks = shifted(make_spans(PASS1, 30, seed=5, spacing_ns=20 * 10**9), T0 - 1200)
    push_live(store, tasks)
    with FakeTempo(store=store) as fake:
        direct = source_for(fake).client.get_json(
            "api/search",
            params={
                "q": select_query(),
                "start": T0 - 1300,
                "end": T0 - 100,
                "limit": 10,
                "spss": 100,
            },
        )
        fetched = window_of(fake, clock, T0 - 1300, T0 - 100, limit=10, slice_s=600)
    assert len(direct["traces"]) == 10  # silently cut, and not the ten newest
    newest = set(tasks.groupby("trace_id").start_ns.min().nlargest(10).index)
    assert {t["traceID"].rjust(32, "0") for t in direct["traces"]} != newest
    assert fetched.frame["trace_id"].nunique() == 30
    assert len(fetched.frame) == len(tasks) and not fetched.coverage.partial
    assert "split" in fetched.coverage.notes[0]


def test_the_size_error_splits_the_slice_and_a_cut_at_one_second_is_reported(clock):
    store = TempoStore(clock)
    big = make_spans(PASS1, 400, seed=6, spacing_ns=1_000_000)
    big["attributes"] = [
        {**a, "daedalus.task.id": "big-" + "x" * 4000} if a else a for a in big["attributes"]
    ]
    big["task_id"] = ["big-" + "x" * 4000 if t else t for t in big["task_id"]]
    store.push(shifted(big, T0 - 500), at=T0 - 400)
    with FakeTempo(store=store) as fake:
        fetched = window_of(fake, clock, T0 - 600, T0 - 60)
    assert fetched.coverage.partial
    cut = [g for g in fetched.coverage.gaps if g.kind == cov.CUT_BY_LIMIT]
    assert cut and "size limit" in cut[0].detail


def test_cut_span_sets_and_traces_search_cannot_see_are_fetched_by_id(clock):
    store = TempoStore(clock)
    seen = shifted(make_spans(PASS1, 4, seed=7, spacing_ns=10**9), T0 - 500)
    late = shifted(make_spans(PASS1, 2, seed=8, spacing_ns=10**9), T0 - 480)
    store.push(seen, at=T0 - 490)
    store.push(late, at=T0 - 60)  # arrived 7 min after its spans: hidden from search
    with FakeTempo(store=store) as fake:
        fetched = window_of(
            fake, clock, T0 - 600, T0 - 60, spans_per_spanset=5,
            known_trace_ids=[t.lstrip("0") for t in late["trace_id"].unique()],
        )  # fmt: skip
    assert set(fetched.frame["trace_id"]) == set(seen["trace_id"]) | set(late["trace_id"])
    assert len(fetched.frame) == len(seen) + len(late)  # every span, not 5 per trace
    gaps = {g.detail.split(" ")[0] + g.kind for g in fetched.coverage.gaps}
    assert "4" + cov.REFETCHED in gaps and "2" + cov.REFETCHED in gaps
    assert not fetched.coverage.partial


def test_redelivered_copies_collapse_and_are_counted(clock):
    store = TempoStore(clock)
    batch = shifted(make_spans(PASS1, 2, seed=9, spacing_ns=10**9), T0 - 400)
    store.push(batch, at=T0 - 395)
    store.push(batch, at=T0 - 394)  # the exporter retried after a timeout
    with FakeTempo(store=store) as fake:
        by_id = source_for(fake).trace(batch["trace_id"].iloc[0])
        fetched = window_of(fake, clock, T0 - 600, T0 - 60, spans_per_spanset=5)
    assert len(by_id) == 2 * (batch["trace_id"] == batch["trace_id"].iloc[0]).sum()
    assert len(fetched.frame) == len(batch)
    copies = [g for g in fetched.coverage.gaps if g.kind == cov.REDELIVERED]
    assert copies and copies[0].count == len(batch)


def test_traces_outside_the_window_are_dropped_and_counted(clock):
    store = TempoStore(clock)
    before = shifted(make_spans(PASS1, 3, seed=10, spacing_ns=10**9), T0 - 700)
    inside = shifted(make_spans(PASS1, 3, seed=11, spacing_ns=10**9), T0 - 20)
    store.push(before, at=T0 - 690)
    store.push(inside, at=T0 - 15)
    with FakeTempo(store=store) as fake:
        # A reader told the wrong cutoff asks for the last 20 s: Tempo answers another window.
        fetched = window_spans(
            source_for(fake, query_end_cutoff_s=0),
            T0 - 25,
            T0,
            sleep=clock.sleep,
            progress=lambda _m: None,
        )
    assert fetched.frame.empty
    outside = [g for g in fetched.coverage.gaps if g.kind == cov.OUTSIDE_WINDOW]
    assert outside and outside[0].count == 3


def test_a_cap_keeps_the_first_traces_and_says_how_many_matched(clock):
    store = TempoStore(clock)
    tasks = shifted(make_spans(PASS1, 12, seed=12, spacing_ns=10**9), T0 - 400)
    store.push(tasks, at=T0 - 380)
    with FakeTempo(store=store) as fake:
        fetched = window_of(fake, clock, T0 - 600, T0 - 60, max_traces=5)
    assert fetched.frame["trace_id"].nunique() == 5 and fetched.coverage.partial
    assert "partial: 5 traces audited, at least 12 matched" in fetched.coverage.headline()


def test_the_cutoff_is_a_setting(monkeypatch):
    from obslib.errors import ConfigError

    endpoint = Endpoint("tempo", "http://127.0.0.1:9")
    monkeypatch.setenv("OBSLIB_TEMPO_QUERY_END_CUTOFF", "45")
    assert TempoSource(endpoint).query_end_cutoff_s == 45
    monkeypatch.setenv("OBSLIB_TEMPO_QUERY_END_CUTOFF", "soon")
    with pytest.raises(ConfigError, match="OBSLIB_TEMPO_QUERY_END_CUTOFF='soon'"):
        TempoSource(endpoint)
    monkeypatch.delenv("OBSLIB_TEMPO_QUERY_END_CUTOFF")
    assert TempoSource(endpoint).query_end_cutoff_s == 30
