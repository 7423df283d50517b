"""reports.inputs: one place decides what a report reads; the audit report says what it missed.

The trace-audit notebook runs headlessly against the fake Tempo (a pushed store answering as
Tempo 3.1) and the fake Loki (answering as Loki 3.8), configured through the environment as an
on-call engineer would: a cap makes the report partial and never a pass, a log selector that
matches no stream reads "no logs matched", never "0 orphans".
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from obslib.catalogue.hops import PASS1
from obslib.reports import inputs, run_notebook
from obslib.reports.results import load_results
from obslib.settings import load_settings
from obslib.sources.otlp_files import read_spans
from obslib.synth.spans import make_spans
from tests.fakes.loki import FakeLoki, otlp_entries
from tests.fakes.tempo import FakeTempo
from tests.fakes.tempo_store import TempoStore, _attrs, _otlp_span
from tests.world import iso

T0 = 1_795_920_000  # pinned: the window is the ten minutes before it
BACKENDS = ("PROMETHEUS", "TEMPO", "LOKI", "GRAFANA")


@pytest.fixture
def nothing_configured(monkeypatch, tmp_path):
    for backend in BACKENDS:
        monkeypatch.delenv(f"OBSLIB_{backend}_URL", raising=False)
    monkeypatch.setenv("OBSLIB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def tasks_before(end_s: int, n: int, seed: int) -> pd.DataFrame:
    spans = make_spans(PASS1, n, seed=seed, spacing_ns=20 * 10**9)
    offset = (end_s - 600) * 10**9 - int(spans["start_ns"].min())
    return spans.assign(start_ns=spans.start_ns + offset, end_ns=spans.end_ns + offset).drop(
        columns=["true_task", "true_hop"]
    )


@pytest.fixture
def tempo(monkeypatch):
    store = TempoStore(clock=lambda: T0 + 120.0)
    spans = tasks_before(T0, 12, seed=21)
    for _, trace in spans.groupby("trace_id", sort=False):
        store.push(trace, at=trace["end_ns"].max() / 1e9 + 1)
    with FakeTempo(store=store) as fake:
        monkeypatch.setenv("OBSLIB_TEMPO_URL", fake.url)
        yield fake, spans


def test_the_reference_run_is_started_once_and_found_from_any_directory(
    nothing_configured, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    first = inputs.reference_run()
    assert first.directory == nothing_configured / ".obslib" / "reference-run" and first.exists()
    stamp = first.fleet_run_path.stat().st_mtime_ns
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")  # where JupyterLab's kernels run
    again = inputs.reference_run()
    assert again == first and again.fleet_run_path.stat().st_mtime_ns == stamp  # reused
    fetched = inputs.window_spans(pd.Timestamp(0, tz="UTC"), pd.Timestamp(1, tz="UTC"))
    assert len(fetched.frame) > 0 and "reference pipeline" in fetched.coverage.notes[0]
    assert fetched.coverage.requested == fetched.coverage.covered  # the data's own window
    assert inputs.reference_fleet_run() == str(first.fleet_run_path)


def test_tempo_when_configured_reads_the_window_and_says_so(tempo):
    fake, spans = tempo
    fetched = inputs.window_spans(
        pd.Timestamp(T0 - 600, unit="s", tz="UTC"), pd.Timestamp(T0, unit="s", tz="UTC")
    )
    assert set(fetched.frame["trace_id"]) == set(spans["trace_id"])
    assert fetched.coverage.source == f"Tempo {fake.url}" and not fetched.coverage.partial
    assert inputs.reads_window() and not inputs.reads_window("traces.jsonl")
    assert any(r.path == "/api/search" for r in fake.requests)


@pytest.mark.slow
def test_a_capped_tempo_audit_is_partial_and_never_a_pass(tempo, monkeypatch, tmp_path):
    monkeypatch.delenv("OBSLIB_LOKI_URL", raising=False)
    window = {"start": iso(T0 - 600), "end": iso(T0)}
    whole = run_notebook("trace_audit", window, tmp_path / "whole", progress=False)
    summary = load_results(whole.results)["summary"]
    assert whole.verdict == "pass", whole.error
    assert summary["tasks"] == 12 and summary["partial_data"] == []
    capped = run_notebook(
        "trace_audit", {**window, "max_traces": "5"}, tmp_path / "capped", progress=False
    )
    summary = load_results(capped.results)["summary"]
    assert summary["audit_verdict"] == "pass" and capped.verdict == "inconclusive"
    assert summary["tasks"] == 5
    assert "partial: 5 traces audited, at least 12 matched" in " ".join(summary["partial_data"])
    (spans_coverage,) = [c for c in summary["coverage"] if c["what"] == "spans"]
    assert spans_coverage["partial"] is True
    html = capped.html.read_text()
    assert "Data coverage" in html and "partial: 5 traces audited, at least 12 matched" in html


@pytest.mark.slow
def test_logs_matching_no_stream_read_no_logs_matched(tempo, monkeypatch, tmp_path):
    with FakeLoki(otlp_entries()) as loki:  # OTLP logs: the namespace is k8s_namespace_name
        monkeypatch.setenv("OBSLIB_LOKI_URL", loki.url)
        window = {"start": iso(T0 - 600), "end": iso(T0)}
        run = run_notebook("trace_audit", window, tmp_path / "none", progress=False)
    summary = load_results(run.results)["summary"]
    assert summary["orphan_log_lines"] is None  # no evidence, never "0 orphans"
    assert "No logs matched" in run.html.read_text()
    (logs,) = [c for c in summary["coverage"] if c["what"] == "log lines"]
    assert logs["items"] == 0 and any(g["kind"] == "no_match" for g in logs["gaps"])


def test_window_logs_follows_the_namespace_label_setting(tempo, monkeypatch, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("logs:\n  namespaceLabel: k8s_namespace_name\n")
    settings = load_settings(values)
    start, end = pd.Timestamp(0, tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC")
    with FakeLoki(otlp_entries()) as loki:
        monkeypatch.setenv("OBSLIB_LOKI_URL", loki.url)
        fetched = inputs.window_logs(settings, start, end)
    assert fetched is not None and len(fetched.frame) == 6
    assert set(fetched.frame["trace_id"]) != {""} and not fetched.coverage.matched_nothing
    assert inputs.logged_trace_ids(fetched) == sorted(set(fetched.frame["trace_id"]))


def test_a_file_with_unreadable_records_is_partial_and_says_what_was_skipped(tmp_path):
    good = tasks_before(T0, 2, seed=22)
    path = tmp_path / "traces.jsonl"
    lines = []
    for _, trace in good.groupby("trace_id", sort=False):
        spans = [
            {
                **_otlp_span(r),
                "traceId": r["trace_id"],
                "spanId": r["span_id"],
                "parentSpanId": r["parent_span_id"],
            }
            for r in trace.to_dict("records")
        ]
        lines.append(
            json.dumps(
                {
                    "resourceSpans": [
                        {
                            "resource": {"attributes": _attrs({"service.name": "x"})},
                            "scopeSpans": [{"scope": {"name": "s"}, "spans": spans}],
                        }
                    ]
                }
            )
        )
    lines.insert(1, "{not json")
    path.write_text("\n".join(lines) + "\n")
    fetched = inputs.file_spans(path)
    assert len(fetched.frame) == len(good) == len(read_spans(path))
    assert fetched.coverage.partial
    (gap,) = [g for g in fetched.coverage.gaps if g.kind == "unreadable"]
    assert "1 whole line(s) could not be read" in gap.detail
