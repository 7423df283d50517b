"""Every notebook runs headlessly against the embedded stack; assertions read its results JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pandas as pd
import pytest
from papermill import inspect_notebook

from obslib.errors import ConfigError
from obslib.reports import run_notebook
from obslib.reports.notebooks import NOTEBOOKS, notebook_spec
from obslib.reports.results import load_results

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("spec", NOTEBOOKS, ids=lambda s: s.name)
def test_parameter_contract(spec):
    declared = list(inspect_notebook(str(spec.path)))
    assert sorted(declared) == sorted(spec.parameters)
    forbidden = [p for p in declared if any(w in p for w in ("url", "token", "password", "secret"))]
    assert forbidden == []


@pytest.mark.parametrize("spec", NOTEBOOKS, ids=lambda s: s.name)
def test_committed_without_outputs(spec):
    notebook = nbformat.read(spec.path, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1


def test_unknown_parameter_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown parameter.*prometheus_url"):
        run_notebook("fleet_overview", {"prometheus_url": "http://x"}, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="no notebook named"):
        notebook_spec("nope")


def iso(seconds: int) -> str:
    return pd.Timestamp(seconds, unit="s", tz="UTC").isoformat()


def test_fleet_overview_draws_every_panel(stack_env, tmp_path):
    _, truth = stack_env
    run = run_notebook(
        "fleet_overview",
        {"start": iso(truth.end - 86400), "end": iso(truth.end)},
        tmp_path,
        progress=False,
    )
    assert run.verdict == "pass", run.error
    results = load_results(run.results)
    assert results["summary"]["empty_panels"] == []
    assert len(results["summary"]["panels"]) == 6
    html = run.html.read_text()
    assert "Plotly.newPlot" in html  # the figures are in the page...
    assert 'src="https://cdn.plot.ly' not in html  # ...with plotly.js itself: works offline
    assert "from obslib" not in html  # code cells hidden


def test_trace_audit_finds_the_injected_faults(stack_env, fleet_telemetry, tmp_path):
    run_, traces, logs, fleet_run = fleet_telemetry
    params = {"traces_path": str(traces), "logs_path": str(logs), "fleet_run": str(fleet_run)}
    run = run_notebook("trace_audit", params, tmp_path, progress=False)
    assert run.verdict == "fail", run.error
    summary = load_results(run.results)["summary"]
    faulted = {t for t, f in run_.faults.items() if f}
    assert summary["tasks_broken"] == len(faulted) and summary["tasks"] == len(run_.task_ids)
    assert summary["ground_truth"]["all_caught"] is True
    assert set(summary["first_broken_hops"]) == {"agent_new", "task_consume"}
    assert summary["orphan_log_lines"] == 0
    assert summary["traceql"]  # a query per class of break found


def test_a_failed_cell_leaves_a_report_with_the_error_and_what_to_check(
    tmp_path, monkeypatch, repo
):
    monkeypatch.setenv("OBSLIB_PROMETHEUS_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("OBSLIB_PROMETHEUS_TIMEOUT", "2")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "obslib",
            "report",
            "fleet_overview",
            "--quiet",
            "--no-embedded",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=repo,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    results = json.loads((tmp_path / "fleet_overview.results.json").read_text())
    assert results["verdict"] == "error"
    assert results["error"]["ename"] == "BackendUnavailable"
    html = (tmp_path / "fleet_overview.html").read_text()
    assert "This report failed" in html and "What to check" in html and "BackendUnavailable" in html


def test_a_token_in_the_environment_reaches_no_report_file(stack_env, tmp_path, monkeypatch):
    _, truth = stack_env
    token = "tok-3f9a1c77e2b04d5c"
    monkeypatch.setenv("OBSLIB_PROMETHEUS_TOKEN", token)
    run_notebook(
        "fleet_overview",
        {"start": iso(truth.end - 3600), "end": iso(truth.end)},
        tmp_path,
        progress=False,
    )
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.suffix for p in written} >= {".html", ".ipynb", ".json"}
    for path in written:
        assert token not in path.read_text(errors="replace"), path
