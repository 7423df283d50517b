"""Each report records the versions of the key packages that made it: results JSON and footer."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata

import nbformat
import pytest

from obslib.reports.index import write_index
from obslib.reports.results import KEY_PACKAGES, load_results, package_versions, save_results
from obslib.reports.run import EXIT_ERROR, render_html
from obslib.verdict import Verdict
from tests.lockfile import LOCK, REPO, read_lock


def test_results_json_records_python_and_the_key_packages_at_their_locked_versions(
    tmp_path,
) -> None:
    path = save_results("demo", tmp_path, title="Demo", verdict=Verdict.PASS, summary={"n": 1})
    versions = load_results(path)["versions"]
    assert versions["python"] == platform.python_version()
    locked = read_lock(LOCK)
    expected = {name: locked[name].version for name in KEY_PACKAGES if name in locked}
    assert {"pandas", "plotly", "papermill", "nbconvert", "opentelemetry-proto"} <= set(expected)
    assert "agent-client-protocol" in expected
    assert {k: v for k, v in versions.items() if k != "python"} == expected


def test_a_package_that_is_not_installed_is_left_out() -> None:
    versions = package_versions(("pandas", "surely-not-a-dependency-of-obslib"))
    assert versions == {"python": platform.python_version(), "pandas": metadata.version("pandas")}


def test_the_html_report_ends_with_a_footer_naming_the_versions() -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Hello")])
    page = render_html(notebook, "Demo", {"python": "3.11.7", "pandas": "3.1.1", "a<b": "1&2"})
    footer = "Made with python 3.11.7, pandas 3.1.1, a&lt;b 1&amp;2.</footer>"
    assert footer in page
    assert page.index(footer) < page.rindex("</body>")
    assert "Made with python " + platform.python_version() in render_html(notebook, "Demo")


def test_the_index_page_names_the_versions(tmp_path) -> None:
    page = write_index([], tmp_path).read_text()
    expected = ", ".join(f"{k} {v}" for k, v in package_versions().items())
    assert f"Made with {expected}." in page


@pytest.mark.slow
def test_a_real_report_run_records_the_versions_in_both(tmp_path, monkeypatch) -> None:
    # The quickest real run: the notebook fails at its first query (nothing listens on port 9),
    # and the run still writes its HTML and results JSON.
    monkeypatch.setenv("OBSLIB_PROMETHEUS_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("OBSLIB_PROMETHEUS_TIMEOUT", "2")
    command = [sys.executable, "-m", "obslib", "report", "fleet_overview", "--quiet"]
    command += ["--no-embedded", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    assert done.returncode == EXIT_ERROR, done.stderr
    results = json.loads((tmp_path / "fleet_overview.results.json").read_text())
    assert results["versions"] == package_versions()
    html = (tmp_path / "fleet_overview.html").read_text()
    made_with = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    assert f"Made with {made_with}." in html
