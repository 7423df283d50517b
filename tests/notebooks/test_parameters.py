"""Notebook parameters are checked before any notebook runs, on every path, from one declaration.

The CLI tests call ``obslib.cli.main`` in this process: a refused parameter must be refused
before a kernel starts or a request is made, so no notebook runs here.
"""

from __future__ import annotations

import pandas as pd
import pytest

from obslib.cli import main
from obslib.errors import ConfigError
from obslib.reports import run_notebook, run_reports
from obslib.reports.notebooks import (
    NOTEBOOKS,
    checked_parameters,
    fleet_range_queries,
    notebook_defaults,
    notebook_spec,
)
from obslib.reports.params import (
    MAX_POINTS_PER_QUERY,
    MAX_POINTS_PER_REPORT,
    MAX_WINDOW_HOURS,
    parse_time,
    points,
    report_step,
)
from obslib.settings import load_settings
from tests.conftest import REPO
from tests.fakes.http_server import FakeServer, Reply

DAY = pd.Timedelta(hours=24)
END = pd.Timestamp("2026-11-28T10:00:00Z")


@pytest.fixture
def prometheus(monkeypatch):
    """A Prometheus that answers every query with an empty result and records each request."""
    body = '{"status": "success", "data": {"resultType": "matrix", "result": []}}'
    with FakeServer(lambda request: Reply(body=body)) as server:
        monkeypatch.setenv("OBSLIB_PROMETHEUS_URL", server.url)
        monkeypatch.setenv("OBSLIB_PROMETHEUS_TIMEOUT", "2")
        for name in ("TEMPO", "LOKI", "GRAFANA"):
            monkeypatch.delenv(f"OBSLIB_{name}_URL", raising=False)
        yield server


def cli(capsys, out, *args: str) -> tuple[int, str]:
    code = main([*args, "--no-embedded", "--quiet", "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# -- item 10: an unknown parameter is an error on every path -----------------------------------


def test_an_unknown_parameter_is_refused_by_report_and_reports(prometheus, tmp_path, capsys):
    # `obslib report` used to drop it: run_reports kept only the parameters a notebook declares
    # before run_notebook's check saw them, so the check only ever caught the Python API.
    code, text = cli(capsys, tmp_path, "report", "fleet_overview", "-p", "strat", "2026-11-28")
    assert code == 2, text
    assert "unknown parameter(s) strat" in text
    assert "it takes start, end, hours, step, results_dir" in text
    code, text = cli(capsys, tmp_path, "reports", "-p", "strat", "x", "-p", "hours", "2")
    assert code == 2, text
    assert "unknown parameter(s) strat: no notebook takes them" in text
    assert all(f"{spec.name} takes start, end, hours" in text for spec in NOTEBOOKS)
    # A parameter of another notebook is unknown to this one.
    code, text = cli(capsys, tmp_path, "report", "fleet_overview", "-p", "profile", "pass1")
    assert code == 2 and "unknown parameter(s) profile" in text
    assert prometheus.requests == [] and not any(tmp_path.iterdir())


def test_an_unknown_parameter_is_refused_by_the_python_api(tmp_path):
    settings = load_settings(None)
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) strat; it takes start"):
        run_reports(settings, ["fleet_overview"], {"strat": "x"}, tmp_path, embedded=False)
    with pytest.raises(ConfigError, match="no notebook takes them"):
        run_reports(settings, None, {"strat": "x"}, tmp_path, embedded=False)
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) strat"):
        run_notebook("fleet_overview", {"strat": "x"}, tmp_path, progress=False)


# -- item 11: a bad value is a ConfigError naming the parameter and what it allows -------------

BAD_VALUES = [
    ("fleet_overview", "hours", "abc", "a number of hours above 0 and at most 2160"),
    ("fleet_overview", "hours", "1e9", "at most 2160 (90 days)"),
    ("fleet_overview", "hours", "nan", "a number of hours"),
    ("fleet_overview", "hours", "-1", "a number of hours above 0"),
    ("fleet_overview", "start", "yesterday", "ISO 8601"),
    ("fleet_overview", "end", "99999999999999999999", "between 1970 and 2200"),
    ("fleet_overview", "step", "0", "a number of seconds above 0"),
    ("fleet_overview", "step", "5m", "a number of seconds above 0"),
    ("trace_audit", "profile", "bogus", "one of pass1, platform-today"),
    ("trace_audit", "max_traces", "abc", "a whole number from 0 to 1,000,000"),
    ("trace_audit", "max_traces", "2.5", "a whole number from 0 to 1,000,000"),
    ("phase5_acceptance", "trace_id", "not-a-trace", "a trace id of 32 hex characters"),
    ("slo_baseline", "hours", "inf", "a number of hours"),
]


@pytest.mark.parametrize(("name", "parameter", "value", "allowed"), BAD_VALUES)
def test_a_bad_value_is_refused_before_the_notebook_runs(
    prometheus, tmp_path, capsys, name, parameter, value, allowed
):
    code, text = cli(capsys, tmp_path, "report", name, "-p", parameter, value)
    assert code == 2, text
    assert f"notebook {name}: parameter {parameter}={value!r} is not allowed" in text
    assert allowed in text
    assert "Traceback" not in text
    assert prometheus.requests == [] and not any(tmp_path.iterdir())


def test_reports_checks_every_notebook_before_the_backends_start(tmp_path, capsys, monkeypatch):
    def backends_started(*args, **kwargs):
        raise AssertionError("the embedded backends started before the parameters were checked")

    monkeypatch.setattr("obslib.reports.embedded.report_backends", backends_started)
    code = main(["reports", "--quiet", "--out", str(tmp_path), "-p", "profile", "bogus"])
    text = capsys.readouterr().err
    assert code == 2 and "notebook trace_audit: parameter profile='bogus'" in text
    assert not any(tmp_path.iterdir())


def test_the_python_api_gets_the_same_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"parameter hours='abc' is not allowed"):
        run_notebook("fleet_overview", {"hours": "abc"}, tmp_path, progress=False)
    with pytest.raises(ConfigError, match=r"parameter profile='bogus'.*one of pass1"):
        run_notebook("trace_audit", {"profile": "bogus"}, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="is not before its end"):
        run_notebook(
            "fleet_overview", {"start": "2026-11-28", "end": "2026-11-27"}, tmp_path, progress=False
        )
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("spec", NOTEBOOKS, ids=lambda s: s.name)
def test_every_notebook_default_passes_its_declaration(spec):
    defaults = notebook_defaults(spec)
    assert sorted(defaults) == sorted(spec.names)
    checked = checked_parameters(spec.name, defaults)
    assert checked["window_start"] < checked["window_end"]


@pytest.mark.parametrize("spec", NOTEBOOKS, ids=lambda s: s.name)
def test_every_notebook_checks_its_own_parameters_cell(spec):
    """In JupyterLab nothing checks a notebook but itself: it calls the same function."""
    import nbformat

    cells = nbformat.read(spec.path, as_version=4).cells
    code = [c.source for c in cells if c.cell_type == "code"]
    after_parameters = code[1]
    assert f'checked_parameters("{spec.name}", globals())' in after_parameters
    assert "params.window(" not in "\n".join(code)


def test_checked_parameters_converts_values_given_as_text():
    values = {**notebook_defaults(notebook_spec("trace_audit")), "max_traces": "40"}
    values.update(start="2026-11-28T08:00:00Z", end=str(int(END.timestamp())), hours="2")
    checked = checked_parameters("trace_audit", values)
    assert checked["max_traces"] == 40 and checked["hours"] == 2.0
    assert (checked["window_start"], checked["window_end"]) == (END - pd.Timedelta(hours=2), END)
    values.update(start="")
    assert checked_parameters("trace_audit", values)["window_start"] == END - pd.Timedelta(hours=2)


@pytest.mark.parametrize(
    "text", ["nan", "-5", "today", "1.2.3", "1e9", "9" * 20, "2026-13-45", "", "  "]
)
def test_parse_time_refuses_what_is_not_a_time(text):
    with pytest.raises(ConfigError, match="is not a time as ISO 8601"):
        parse_time(text)


def test_parse_time_reads_iso_unix_seconds_and_now(monkeypatch):
    assert parse_time("2026-11-28T10:00:00Z") == END
    assert parse_time("2026-11-28T11:00:00+01:00") == END
    assert parse_time("2026-11-28 10:00") == END  # naive means UTC
    assert parse_time(str(int(END.timestamp()))) == END
    assert parse_time(END.timestamp()) == END
    monkeypatch.setenv("OBSLIB_NOW", "2026-11-28T10:00:00Z")  # "now" is the run's clock
    assert parse_time("now") == END


# -- item 12: a cap on points per query and per report ----------------------------------------


def test_a_step_over_the_points_cap_is_refused_before_any_request(prometheus, tmp_path, capsys):
    # Before: -p step 1 on a 24-hour window made 88 requests for 3.08 M points.
    window = ["-p", "start", "2026-11-27T10:00:00Z", "-p", "end", "2026-11-28T10:00:00Z"]
    code, text = cli(capsys, tmp_path, "report", "fleet_overview", *window, "-p", "step", "1")
    assert code == 2, text
    queries = fleet_range_queries()
    assert f"86,401 points per query and {86_401 * queries:,} for the report's {queries}" in text
    assert f"the caps are {MAX_POINTS_PER_QUERY:,} per query and {MAX_POINTS_PER_REPORT:,}" in text
    assert "Give step 20 or more (seconds)" in text
    assert prometheus.requests == []


def test_report_step_keeps_every_query_and_the_report_under_the_caps():
    start = END - DAY
    queries = fleet_range_queries()
    assert queries == 11  # the fleet overview's line charts: 3 + 3 + 1 + 2 + 1 + 1 targets
    assert report_step(20, start, END, queries) == 20  # the smallest step the error offers
    assert points(start, END, 20) * queries <= MAX_POINTS_PER_REPORT
    with pytest.raises(ConfigError, match="Give step 20 or more"):
        report_step(19, start, END, queries)
    # One query: only the per-query cap (Prometheus's own limit, one request per query) binds.
    assert report_step(8, start, END, 1) == 8
    with pytest.raises(ConfigError, match=r"86,401 points per query .* Give step 8 or more"):
        report_step(1, start, END, 1)
    # An empty step gives about 300 points, under the caps on any window allowed.
    for hours in (0.1, 1, 24, 336, MAX_WINDOW_HOURS):
        begin = END - pd.Timedelta(hours=hours)
        step = report_step("", begin, END, queries)
        assert points(begin, END, step) * queries <= MAX_POINTS_PER_REPORT
        assert step >= 60


def test_the_readme_documents_the_caps_and_the_exit_codes():
    readme = (REPO / "README.md").read_text()
    assert f"{MAX_POINTS_PER_QUERY:,} points per query" in readme
    assert f"{MAX_POINTS_PER_REPORT:,} per report" in readme
    from obslib.reports.run import (
        EXIT_ERROR,
        EXIT_FAIL,
        EXIT_INCONCLUSIVE,
        EXIT_INVALID,
        EXIT_OK,
    )

    for code in (EXIT_OK, EXIT_FAIL, EXIT_INVALID, EXIT_INCONCLUSIVE, EXIT_ERROR):
        assert f"| {code} |" in readme
