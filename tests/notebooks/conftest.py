"""Fixtures for running notebooks headlessly against the embedded stack."""

from __future__ import annotations

import pytest

from obslib.collector import OtlpCollector
from obslib.fleet import FaultPlan, run_fleet
from obslib.settings import load_settings


@pytest.fixture
def stack_env(history_stack, monkeypatch):
    """Point notebooks (their kernels inherit the environment) at the test's Prometheus."""
    source, truth = history_stack
    monkeypatch.setenv("OBSLIB_PROMETHEUS_URL", source.endpoint.url)
    for name in ("OBSLIB_TEMPO_URL", "OBSLIB_LOKI_URL", "OBSLIB_GRAFANA_URL", "OBSLIB_VALUES"):
        monkeypatch.delenv(name, raising=False)
    return source, truth


@pytest.fixture(scope="session")
def fleet_telemetry(tmp_path_factory):
    """A reference-pipeline run with faults in some tasks, collected into OTLP files."""
    out = tmp_path_factory.mktemp("fleet")
    with OtlpCollector(out_dir=out / "collector") as collector:
        run = run_fleet(
            load_settings(None),
            tasks=24,
            collector_endpoint=collector.endpoint,
            out_dir=out / "fleet",
            concurrency=12,
            faults=FaultPlan(stdio_context=0.1, nats_headers=0.1),
            seed=3,
        )
        collector.wait_for_spans(sum(run.spans_exported.values()), timeout_s=30)
        yield run, collector.traces_path, collector.logs_path, out / "fleet" / "fleet-run.json"
