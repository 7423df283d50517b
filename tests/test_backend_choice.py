"""What a report reads, and from where: the configured backend first, else the embedded default.

The choice lives in ``obslib.reports.inputs``; sources never look for the embedded stack.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest

from obslib.reports import inputs, run_reports
from obslib.reports.embedded import ReportContext
from obslib.settings import load_settings
from obslib.stack import LocalStack
from tests.conftest import free_port


@pytest.fixture(scope="module")
def running_stack(tmp_path_factory):
    """An embedded stack without history, up for this module (the choice needs it running)."""
    stack = LocalStack(data_dir=tmp_path_factory.mktemp("inputs-stack"), port=free_port())
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture
def embedded_env(monkeypatch, running_stack):
    """No Prometheus configured; the embedded stack's directory and port are the test's."""
    monkeypatch.delenv("OBSLIB_PROMETHEUS_URL", raising=False)
    monkeypatch.setenv("OBSLIB_STACK_DIR", str(running_stack.data_dir))
    monkeypatch.setenv("OBSLIB_STACK_PORT", str(running_stack.port))
    return running_stack


def test_prometheus_is_the_configured_one_even_with_the_stack_running(monkeypatch, embedded_env):
    monkeypatch.setenv("OBSLIB_PROMETHEUS_URL", "https://prom.example.com/")
    monkeypatch.setenv("OBSLIB_PROMETHEUS_TOKEN", "abc")
    endpoint = inputs.prometheus().endpoint
    assert endpoint.url == "https://prom.example.com"
    assert endpoint.request_headers()["Authorization"] == "Bearer abc"


def test_prometheus_falls_back_to_the_running_embedded_stack(embedded_env):
    source = inputs.prometheus()
    assert source.endpoint.url == embedded_env.endpoint().url
    assert source.buildinfo()["version"]  # a real answer from the stack


def test_a_run_on_the_embedded_default_hands_its_kernels_the_stack(
    monkeypatch, embedded_env, tmp_path
):
    """Kernels inherit the environment: the stack's URL is theirs for the run, and only then."""

    @contextmanager
    def backends(settings, out_dir):
        yield ReportContext(prometheus="embedded", traces="otlp-files")

    seen = []

    def run_notebook(name, parameters, out_dir, *, progress=True):
        seen.append((name, os.environ.get("OBSLIB_PROMETHEUS_URL")))
        return name

    monkeypatch.setattr("obslib.reports.embedded.report_backends", backends)
    monkeypatch.setattr("obslib.reports.run_notebook", run_notebook)
    runs, _ = run_reports(load_settings(None), ["fleet_overview", "slo_baseline"], {}, tmp_path)
    assert runs == ["fleet_overview", "slo_baseline"]
    assert seen == [(n, embedded_env.endpoint().url) for n in runs]
    assert "OBSLIB_PROMETHEUS_URL" not in os.environ


def test_one_trace_is_read_from_tempo_when_configured_else_from_the_file(monkeypatch, tmp_path):
    from obslib.sources.trace_loaders import OtlpTraceLoader, TempoTraceLoader

    monkeypatch.setenv("OBSLIB_TEMPO_URL", "https://tempo.example.com")
    assert isinstance(inputs.trace_loader(tmp_path / "unused.jsonl"), TempoTraceLoader)
    monkeypatch.delenv("OBSLIB_TEMPO_URL")
    loader = inputs.trace_loader(tmp_path / "traces.jsonl")
    assert isinstance(loader, OtlpTraceLoader) and loader.paths == [tmp_path / "traces.jsonl"]
    with pytest.raises(ValueError, match="OBSLIB_TEMPO_URL"):
        inputs.trace_loader()
