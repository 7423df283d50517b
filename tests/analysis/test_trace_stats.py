"""Orphan log lines: found on both ingestion paths, never "0 orphans" from a read of nothing."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from obslib.analysis.traces.stats import logs_without_trace
from obslib.settings import load_settings
from obslib.sources.coverage import verdict_on
from obslib.sources.endpoint import endpoint_from_env
from obslib.sources.loki import LokiSource, log_selector
from obslib.verdict import Verdict
from tests.fakes.loki import FakeLoki, LogEntry, otlp_entries

T0 = 1_795_913_000_000_000_000
LINES = 50_106  # the window: 50,106 lines, 10 of them orphans, read with a 50,000 cap
ORPHANS = 10
POD = {"k8s_namespace_name": "daedalus", "service_name": "daedalus-proxy"}


def _trace(i: int) -> str:
    return f"{i:032x}"


def _otlp_store() -> tuple[list[LogEntry], pd.DataFrame]:
    """OTLP-shaped lines (ids in structured metadata, the body plain text), one trace per 10
    lines; the newest ``ORPHANS`` lines belong to traces no span has."""
    entries = []
    for i in range(LINES):
        trace = _trace(10**6 + i) if i >= LINES - ORPHANS else _trace(i // 10)
        metadata = {"trace_id": trace, "span_id": f"{i:016x}", "severity_text": "INFO"}
        entries.append(LogEntry.of(T0 + i * 1000, POD, f"session/update chunk {i}", metadata))
    spans = pd.DataFrame({"trace_id": [_trace(i) for i in range((LINES - ORPHANS) // 10 + 1)]})
    return entries, spans


@pytest.fixture(scope="module")
def otlp_run():
    entries, spans = _otlp_store()
    settings = dataclasses.replace(load_settings(), log_namespace_label="k8s_namespace_name")
    with FakeLoki(entries) as fake:
        source = LokiSource(endpoint_from_env("loki", environ={"OBSLIB_LOKI_URL": fake.url}))
        yield source, log_selector(settings), spans


def test_every_line_of_the_window_is_read_and_every_orphan_found(otlp_run) -> None:
    source, selector, spans = otlp_run
    fetched = source.window_logs(selector, T0, T0 + LINES * 1000)
    assert (len(fetched.frame), fetched.coverage.partial) == (LINES, False)
    orphans = logs_without_trace(fetched, spans)
    assert orphans is not None
    assert len(orphans) == ORPHANS
    assert set(orphans["trace_id"]) == {_trace(10**6 + i) for i in range(LINES - ORPHANS, LINES)}


def test_a_capped_read_is_partial_so_no_orphans_is_not_a_pass(otlp_run) -> None:
    source, selector, spans = otlp_run
    fetched = source.window_logs(selector, T0, T0 + LINES * 1000, cap=50_000)
    orphans = logs_without_trace(fetched, spans)
    assert orphans is not None and len(orphans) == 0  # the orphans are past the cap
    assert fetched.coverage.partial
    assert fetched.coverage.headline().endswith(
        "50,000 log lines, partial (partial: 50,000 lines read, more exist (cap of 50,000; "
        "Loki's stats count 106 more in the rest of the window))"
    )
    verdict, reasons = verdict_on(Verdict.PASS, [fetched.coverage])
    assert verdict is Verdict.INCONCLUSIVE and reasons == [fetched.coverage.headline()]


def test_a_selector_that_matches_no_stream_gives_no_logs_matched_not_zero_orphans() -> None:
    spans = pd.DataFrame({"trace_id": ["539b0e3e8ef409e0eab1542587ec1689"]})
    with FakeLoki(otlp_entries()) as fake:
        source = LokiSource(endpoint_from_env("loki", environ={"OBSLIB_LOKI_URL": fake.url}))
        fetched = source.window_logs(
            log_selector(load_settings()), 1795913693437000936, 1795913994437000936
        )
    assert fetched.coverage.matched_nothing
    assert logs_without_trace(fetched, spans) is None
    assert logs_without_trace(fetched.frame, spans) is None


def test_orphans_are_lines_with_a_trace_id_no_span_has() -> None:
    logs = pd.DataFrame({"trace_id": ["a" * 32, "", "b" * 32, "c" * 32], "msg": list("wxyz")})
    spans = pd.DataFrame({"trace_id": ["a" * 32]})
    orphans = logs_without_trace(logs, spans)
    assert orphans is not None and list(orphans["msg"]) == ["y", "z"]
    assert list(logs_without_trace(logs, spans.iloc[:0])["msg"]) == ["w", "y", "z"]
