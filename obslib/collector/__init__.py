"""The workbench's own OTLP/HTTP collector for tests and the reference pipeline.

``OtlpCollector`` receives traces and logs on 127.0.0.1, writes them as the OpenTelemetry
Collector file exporter would (``traces.jsonl``, ``logs.jsonl``) and serves them as DataFrames;
``run_collector`` is the ``obslib collector`` command.
"""

from obslib.collector.server import (
    DEFAULT_MAX_BODY_BYTES,
    CollectorStats,
    OtlpCollector,
    run_collector,
)

__all__ = ["DEFAULT_MAX_BODY_BYTES", "CollectorStats", "OtlpCollector", "run_collector"]
