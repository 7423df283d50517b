"""Fixtures for running notebooks headlessly against the embedded stack."""

from __future__ import annotations

import pytest

from obslib.fleet import FaultPlan
from tests.helpers import collected_run


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
    run = collected_run(
        tmp_path_factory.mktemp("fleet"),
        24,
        FaultPlan(stdio_context=0.1, nats_headers=0.1),
        seed=3,
        concurrency=12,
    )
    return run.fleet, run.traces_path, run.logs_path, run.fleet_run_path
