"""Spans dropped before export are counted, never silently missing."""

from __future__ import annotations

from obslib.collector import OtlpCollector
from obslib.fleet.pipeline import queue_size
from obslib.fleet.telemetry import DEFAULT_QUEUE_SIZE, ServiceTelemetry


def test_a_full_batch_queue_is_reported_as_lost_spans(tmp_path):
    with OtlpCollector(out_dir=tmp_path) as collector:
        telemetry = ServiceTelemetry(
            "daedalus-proxy",
            endpoint=collector.endpoint,
            namespace="daedalus",
            export_logs=False,
            queue_size=4,
        )
        tracer = telemetry.tracer("test")
        for i in range(400):  # far faster than a 4-span queue drains
            tracer.start_span(f"burst-{i}").end()
        telemetry.shutdown()
        received = collector.stats.spans_accepted
    assert telemetry.spans_lost > 0
    assert telemetry.spans_exported == received
    assert telemetry.spans_exported + telemetry.spans_lost == 400


def test_queue_grows_with_concurrency():
    assert queue_size(10) == DEFAULT_QUEUE_SIZE
    assert queue_size(1000) >= 3 * 1000  # three spans per task can end at once per service
