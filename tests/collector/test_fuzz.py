"""A bounded, seeded fuzz run of the collector: hostile bodies between valid batches.

Every reply must be a 200 or a 4xx with a ``google.rpc.Status`` (never a 5xx, never none),
every valid batch must be accepted, and afterwards the files must read whole (nothing skipped)
with every valid span and log record in them: what the collector accepted, the reader reads.
The longer run is ``benchmarks/collector_fuzz.py``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import requests

from obslib.analysis import audit_traces
from obslib.collector import OtlpCollector
from obslib.sources.otlp_files import read_logs_with_skips, read_spans_with_skips
from tests.collector import Reply
from tests.collector.fuzz import BodyFuzzer

BODIES = 500


@pytest.mark.parametrize("seed", [10])
def test_fuzzed_bodies_never_break_the_collector_or_its_files(tmp_path: Path, seed: int) -> None:
    fuzzer = BodyFuzzer(seed, valid_share=0.15)
    statuses: Counter[tuple[str, int]] = Counter()
    valid_spans: set[str] = set()
    valid_logs: list[str] = []
    # A 2 MiB cap (131,072 items) keeps the costliest bodies cheap enough for the normal run.
    collector = OtlpCollector(tmp_path / "otlp", max_body_bytes=2 * 2**20)
    with collector, requests.Session() as session:
        for _ in range(BODIES):
            case = fuzzer.next()
            response = session.post(
                collector.endpoint + case.path, data=case.body, headers=case.headers, timeout=30
            )
            statuses[case.kind, response.status_code] += 1
            assert response.status_code in (200, 400, 415), (case.kind, response.content[:300])
            if case.valid:
                assert response.status_code == 200, (case.kind, response.content[:300])
                valid_spans |= case.span_ids
                valid_logs += case.log_bodies
            elif response.status_code != 200:
                reply = Reply(response.status_code, dict(response.headers), response.content)
                assert reply.status_message()
                assert reply.content_type == case.headers["Content-Type"]
        stats = collector.stats

    spans = read_spans_with_skips(collector.traces_path, strict=True)
    logs = read_logs_with_skips(collector.logs_path, strict=True)

    assert spans.complete and logs.complete
    assert valid_spans <= set(spans.frame["span_id"])
    assert set(valid_logs) <= set(logs.frame["msg"])
    assert len(spans.frame) == stats.spans_accepted
    assert len(logs.frame) == stats.log_records_accepted
    audit_traces(spans.frame)  # the audit reads what the collector took
    # The run was hostile enough: most bodies refused, for several reasons.
    assert stats.requests_rejected > BODIES / 2
    assert {"malformed_protobuf", "malformed_json", "invalid_record", "too_many_items"} <= set(
        stats.rejected
    )
