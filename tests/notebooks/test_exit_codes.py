"""Exit codes of a run of reports, and what the terminal says about a run that is not a pass."""

from __future__ import annotations

import pytest

from obslib.paths import results_path
from obslib.reports import exit_code
from obslib.reports.results import save_results
from obslib.reports.run import (
    EXIT_ERROR,
    EXIT_FAIL,
    EXIT_INCONCLUSIVE,
    EXIT_OK,
    ReportRun,
)

TOKEN = "tok-exit-codes-0b1e2d"


def report_run(tmp_path, name: str, verdict: str, **results) -> ReportRun:
    out = tmp_path / f"{name}-{verdict}"
    out.mkdir()
    error = results.pop("error", None)
    save_results(name, out, title=name, verdict=verdict, error=error, summary=results)
    html = out / f"{name}.html"
    notebook, results = out / f"{name}.ipynb", results_path(out, name)
    return ReportRun(name, name, verdict, html, notebook, results, 1.0, error)


def criteria(**verdicts: str) -> dict:
    return {
        key: {"verdict": verdict, "explanation": f"{key} explained"}
        for key, verdict in verdicts.items()
    }


@pytest.mark.parametrize(
    ("verdict", "code"),
    [
        ("pass", EXIT_OK),
        ("fail", EXIT_FAIL),
        ("inconclusive", EXIT_INCONCLUSIVE),
        ("error", EXIT_ERROR),
    ],
)
def test_the_acceptance_verdict_decides_the_exit_code(tmp_path, verdict, code):
    run = report_run(tmp_path, "phase5_acceptance", verdict)
    assert run.exit_code == code and exit_code([run]) == code
    assert run.failed is (code != EXIT_OK)


@pytest.mark.parametrize("verdict", ["pass", "fail", "inconclusive"])
def test_other_reports_exit_zero_unless_they_could_not_run(tmp_path, verdict):
    run = report_run(tmp_path, "trace_audit", verdict)
    assert run.exit_code == EXIT_OK and run.explain() == []


def test_a_failed_criterion_wins_then_an_error_then_inconclusive(tmp_path):
    fail = report_run(tmp_path, "phase5_acceptance", "fail")
    inconclusive = report_run(tmp_path, "phase5_acceptance", "inconclusive")
    error = report_run(tmp_path, "fleet_overview", "error")
    clean = report_run(tmp_path, "trace_audit", "pass")
    assert exit_code([error, fail, clean]) == EXIT_FAIL
    assert exit_code([error, inconclusive]) == EXIT_ERROR
    assert exit_code([clean, inconclusive]) == EXIT_INCONCLUSIVE
    assert exit_code([clean]) == exit_code([]) == EXIT_OK


def test_explain_names_each_criterion_that_did_not_pass(tmp_path):
    run = report_run(
        tmp_path,
        "phase5_acceptance",
        "inconclusive",
        criteria=criteria(AC1="pass", AC2="inconclusive", AC5="fail"),
    )
    assert run.explain() == ["AC2 inconclusive: AC2 explained", "AC5 fail: AC5 explained"]


def test_explain_gives_a_failed_report_its_cause_and_what_to_check(tmp_path, monkeypatch):
    monkeypatch.setenv("OBSLIB_PROMETHEUS_TOKEN", TOKEN)
    evalue = f"prometheus at http://p/api/v1/query: HTTP 401 (sent {TOKEN})\nsecond line"
    error = {"exec_count": 2, "ename": "BackendUnavailable", "evalue": evalue, "hint": "Look."}
    run = report_run(tmp_path, "fleet_overview", "error", error=error)
    cause, check = run.explain()
    assert cause == (
        "cause: BackendUnavailable: prometheus at http://p/api/v1/query: HTTP 401 (sent ***)"
    )
    assert check == "check: Look."
