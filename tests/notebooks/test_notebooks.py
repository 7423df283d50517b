"""Every notebook runs headlessly against the embedded stack; assertions read its results JSON."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from contextlib import ExitStack

import nbformat
import pytest
from papermill import inspect_notebook

from obslib.errors import ConfigError
from obslib.reports import run_notebook
from obslib.reports.notebooks import NOTEBOOKS, notebook_spec
from obslib.reports.results import load_results
from obslib.reports.run import EXIT_ERROR, EXIT_INCONCLUSIVE, KERNEL
from tests.conftest import REPO, free_port
from tests.fakes.http_server import FakeServer, Reply
from tests.world import iso

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("spec", NOTEBOOKS, ids=lambda s: s.name)
def test_parameter_contract(spec):
    declared = list(inspect_notebook(str(spec.path)))
    assert declared == list(spec.names)
    forbidden = [p for p in declared if any(w in p for w in ("url", "token", "password", "secret"))]
    assert forbidden == []


@pytest.mark.parametrize("spec", NOTEBOOKS, ids=lambda s: s.name)
def test_committed_without_outputs(spec):
    notebook = nbformat.read(spec.path, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
    long = [line for c in code for line in c.source.splitlines() if len(line) > 100]
    assert long == []  # the project's line length (ruff lints and formats notebooks too)


def test_unknown_parameter_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown parameter.*prometheus_url"):
        run_notebook("fleet_overview", {"prometheus_url": "http://x"}, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="no notebook named"):
        notebook_spec("nope")


@pytest.mark.parametrize(
    ("name", "parameters", "message"),
    [
        ("trace_audit", {"profile": "bogus"}, "parameter profile='bogus' is not allowed"),
        ("fleet_overview", {"hours": "abc"}, "parameter hours='abc' is not allowed"),
        ("fleet_overview", {"step": "1"}, "the caps are 11,000 per query"),
    ],
)
def test_a_notebook_run_without_the_runner_checks_its_own_parameters(
    tmp_path, monkeypatch, name, parameters, message
):
    """As in JupyterLab: papermill alone, so only the notebook's own check stands in the way."""
    from papermill import execute_notebook
    from papermill.exceptions import PapermillExecutionError

    monkeypatch.setenv("OBSLIB_PROMETHEUS_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(PapermillExecutionError) as caught:
        execute_notebook(
            str(notebook_spec(name).path),
            str(tmp_path / f"{name}.ipynb"),
            parameters={**parameters, "results_dir": str(tmp_path)},
            kernel_name=KERNEL,
            progress_bar=False,
            cwd=str(REPO),
        )
    assert caught.value.ename == "ConfigError"
    assert message in caught.value.evalue


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
    assert result.returncode == EXIT_ERROR, result.stderr
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


def acceptance_run(tmp_path, start: int, end: int, **extra):
    params = {"start": iso(start), "end": iso(end), "fleet_report": "", **extra}
    run = run_notebook("phase5_acceptance", params, tmp_path, progress=False)
    assert run.error is None, run.error
    return run, load_results(run.results)["summary"]["criteria"]


def test_ac1_passes_fails_and_is_inconclusive_on_windows_built_for_it(stack_env, tmp_path):
    _, truth = stack_env
    slow = truth.incident("slow-cold-starts")
    run, criteria = acceptance_run(tmp_path / "pass", slow.start - 9 * 3600, slow.start - 3 * 3600)
    assert criteria["AC1"]["verdict"] == "pass" and criteria["AC1"]["value"] < 1500
    run, criteria = acceptance_run(tmp_path / "fail", slow.start, slow.end + 3600)
    assert criteria["AC1"]["verdict"] == "fail" and criteria["AC1"]["value"] > 1500
    assert run.verdict == "fail" and run.failed  # a failing AC fails the run...
    assert "This report failed" not in run.html.read_text()  # ...after a normal report is written
    _, criteria = acceptance_run(tmp_path / "none", truth.start - 6 * 3600, truth.start - 3600)
    assert criteria["AC1"]["verdict"] == "inconclusive"


def test_ac2_audits_the_sentinel_trace(stack_env, fleet_telemetry, tmp_path):
    run_, traces, _, _ = fleet_telemetry
    _, truth = stack_env
    clean = next(t for t in run_.task_ids if not run_.faults.get(t))
    broken = next(t for t in run_.task_ids if run_.faults.get(t))
    window = (truth.end - 3 * 3600, truth.end)
    _, criteria = acceptance_run(
        tmp_path / "ok",
        *window,
        sentinel_task_id=clean,
        trace_id=run_.expected_trace_ids[clean],
        traces_path=str(traces),
    )
    assert criteria["AC2"]["verdict"] == "pass" and criteria["AC2"]["value"] > 0
    _, criteria = acceptance_run(
        tmp_path / "bad",
        *window,
        sentinel_task_id=broken,
        trace_id=run_.expected_trace_ids[broken],
        traces_path=str(traces),
    )
    assert criteria["AC2"]["verdict"] == "fail"
    _, criteria = acceptance_run(tmp_path / "none", *window)
    assert (
        criteria["AC2"]["verdict"] == "inconclusive"
        and criteria["AC5"]["verdict"] == "inconclusive"
    )


def test_crosscheck_passes_on_clean_data_and_flags_a_selector_that_matches_nothing(
    stack_env, tmp_path, monkeypatch
):
    _, truth = stack_env
    window = {"start": iso(truth.end - 12 * 3600), "end": iso(truth.end)}
    run = run_notebook("observability_crosscheck", window, tmp_path / "clean", progress=False)
    assert run.verdict == "pass", load_results(run.results)
    values = tmp_path / "values.yaml"
    values.write_text("workers:\n  podPrefix: daedalus-wrkr-\n")  # a prefix no pod has
    monkeypatch.setenv("OBSLIB_VALUES", str(values))
    run = run_notebook("observability_crosscheck", window, tmp_path / "drift", progress=False)
    summary = load_results(run.results)["summary"]
    assert run.verdict == "fail"
    unmatched = {
        (s["name"], s["diagnosis"]) for s in summary["unmatched_selectors"] if s["kind"] == "rule"
    }
    assert ("WorkerCrashLoopBackOff", "value_missing") in unmatched
    assert any(m["values_key"] == "workers.podPrefix" for m in summary["mismatches"])


def test_baseline_thresholds_lie_on_bucket_bounds_and_match_the_profiles(stack_env, tmp_path):
    from obslib.analysis.slo.baseline import THIN_TAIL
    from obslib.catalogue.contract import COLD_START, TASK_DURATION

    _, truth = stack_env
    clean_end = truth.incident("slow-cold-starts").start  # before both latency incidents
    params = {
        "start": iso(truth.start),
        "end": iso(clean_end),
        "proposed_rules_dir": str(tmp_path / "proposed"),
    }
    run = run_notebook("slo_baseline", params, tmp_path, progress=False)
    summary = load_results(run.results)["summary"]
    assert run.verdict == "pass", (run.error, summary.get("flagged"), summary.get("not_proposed"))
    bounds = {"cold_start": COLD_START.buckets, "task_duration": TASK_DURATION.buckets}
    latency = [t for t in summary["thresholds"] if t["sli"] in bounds]
    assert {(t["agent_type"], t["sli"]) for t in latency} == {
        (a, s) for a in truth.agent_types for s in bounds
    }
    for t in latency:
        assert t["status"] == "proposed" and t["threshold_s"] in bounds[t["sli"]]
        assert t["threshold_s"] >= t["observed_p99_s"]
        true_p99 = truth.profiles[t["agent_type"]][f"{t['sli']}_s"]["p99"]
        # The analysis promises a ~99% interval for the true p99 (null in JSON: unbounded).
        ci_upper = math.inf if t["p99_ci_upper_s"] is None else t["p99_ci_upper_s"]
        assert t["p99_ci_lower_s"] <= true_p99 <= ci_upper, t
        # Fewer than THIN_TAIL observations beyond the p99 is thin evidence, and says so.
        thin = t["observations"] * (1 - 0.99) < THIN_TAIL
        assert t["evidence"] == ("thin" if thin else "ok"), t
        # Only where the evidence holds and the interval sits inside one bucket does the truth
        # have to share the estimate's bucket; near a bound it may lie in the next one.
        if not thin and t["p99_lower_s"] < t["p99_ci_lower_s"] and ci_upper <= t["p99_upper_s"]:
            assert t["p99_lower_s"] < true_p99 <= t["p99_upper_s"], t
    assert summary["promtool_check"] is True
    assert (tmp_path / "proposed" / "pass2-slo.yaml").exists()


def test_baseline_flags_the_latency_regression(stack_env, tmp_path):
    _, truth = stack_env
    regression = truth.incident("latency-regression")
    params = {
        "start": iso(truth.start),
        "end": iso(truth.end),
        "proposed_rules_dir": str(tmp_path / "p"),
    }
    run = run_notebook("slo_baseline", params, tmp_path, progress=False)
    results = load_results(run.results)
    summary = results["summary"]
    # An unstable baseline fails nothing: thresholds must wait, so the verdict is inconclusive.
    assert run.verdict == "inconclusive"
    assert "unstable" in results["verdict_note"] and "unstable period" in results["headline"]
    flagged = {(f["agent_type"], f["sli"]) for f in summary["flagged"]}
    assert (regression.agent_type, "task_duration") in flagged
    assert summary["promtool_check"] is True


# -- the Phase-5 acceptance run through the CLI, with Prometheus failing --------------------------

TOKEN = "tok-acceptance-run-5d1c9e"
PROMETHEUS_FAULTS = {
    "closed port": (None, "BackendUnavailable", "cannot connect (ConnectionError)"),
    "401": (
        Reply(401, "Unauthorized\n", "text/plain"),
        "BackendUnavailable",
        "HTTP 401: access denied",
    ),
    "500": (
        Reply(500, '{"status": "error", "errorType": "internal", "error": "tsdb: corrupt block"}'),
        "BackendUnavailable",
        "HTTP 500: internal: tsdb: corrupt block",
    ),
    "502": (Reply(502, "<html>Bad Gateway</html>", "text/html"), "BackendUnavailable", "HTTP 502"),
    "200, not JSON": (
        Reply(200, "<html>Sign in</html>", "text/html"),
        "MalformedResponse",
        "body is not JSON",
    ),
}


def obslib_report(name: str, out, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "obslib", "report", name, "--quiet", "--no-embedded"]
    return subprocess.run(
        [*command, "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("fault", PROMETHEUS_FAULTS)
def test_the_acceptance_run_is_not_a_pass_when_prometheus_fails(tmp_path, fault):
    """The workflow's two steps: the fleet overview, then the acceptance check reading it."""
    reply, ename, cause = PROMETHEUS_FAULTS[fault]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSLIB_")}
    env.update(OBSLIB_PROMETHEUS_TIMEOUT="2", OBSLIB_PROMETHEUS_TOKEN=TOKEN)
    with ExitStack() as stack:
        if reply is None:
            url = f"http://127.0.0.1:{free_port()}"
        else:
            url = stack.enter_context(FakeServer(lambda request: reply)).url
        env["OBSLIB_PROMETHEUS_URL"] = url
        fleet = obslib_report("fleet_overview", tmp_path, env)
        acceptance = obslib_report("phase5_acceptance", tmp_path, env)

    assert fleet.returncode == EXIT_ERROR, fleet.stdout + fleet.stderr
    lines = fleet.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("error  Fleet overview"))
    assert lines[at + 1].strip().startswith(f"cause: {ename}: prometheus at {url}/api/v1/")
    assert cause in lines[at + 1]
    assert lines[at + 2].strip().startswith("check: ")
    assert "exit 4, a report could not run to its end: Fleet overview (error)" in fleet.stderr

    assert acceptance.returncode == EXIT_INCONCLUSIVE, acceptance.stdout + acceptance.stderr
    out = acceptance.stdout
    assert "inconclusive  Phase 5 acceptance" in out
    assert "AC1 inconclusive: Prometheus could not answer" in out
    ac5 = next(line for line in out.splitlines() if "AC5 inconclusive" in line)
    assert "The fleet-overview report failed, so it proves nothing" in ac5 and cause in ac5
    assert (
        "exit 3, the acceptance check is inconclusive: Phase 5 acceptance (inconclusive)"
        in acceptance.stderr
    )
    criteria = load_results(tmp_path / "phase5_acceptance.results.json")["summary"]["criteria"]
    assert criteria["AC5"]["verdict"] == "inconclusive"
    for result in (fleet, acceptance):
        assert TOKEN not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
