"""Golden reports: what each report says on the pinned world is what its golden copy says.

A report that changes what it says (a verdict, a headline, a row, a figure) fails here with
pytest-notebook's diff; after an intended change, ``make golden`` rewrites the golden copies
(README, "Golden reports"). The alteration tests show the check is not vacuous: the same run,
changed in one thing a reader reads, fails it; changed only in its volatile parts, passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import nbformat
import pytest
from nbformat import NotebookNode
from pytest_notebook.nb_regression import NBRegressionError

from obslib.reports.notebooks import NOTEBOOKS
from tests.golden.golden import EXPECTED, check_report, expected_path
from tests.golden.volatile import INJECTED, PLOTLY_MIME

pytestmark = pytest.mark.slow
NAMES = [spec.name for spec in NOTEBOOKS]


@pytest.mark.parametrize("name", NAMES)
def test_the_report_says_what_its_golden_copy_says(name, golden_runs, golden_check):
    run = golden_runs.run(name)
    check_report(run.notebook, expected_path(name), golden_check)


def test_every_golden_copy_belongs_to_a_notebook_and_holds_nothing_of_this_machine(repo):
    assert sorted(p.stem for p in EXPECTED.glob("*.ipynb")) == sorted(NAMES)
    for path in EXPECTED.glob("*.ipynb"):
        text = path.read_text()
        assert str(repo) not in text and "/tmp/" not in text, path.name
        assert not re.search(r"127\.0\.0\.1:\d", text), path.name
        assert "window.PlotlyConfig" not in text and PLOTLY_MIME not in text, path.name
        assert '"papermill"' not in text and '"execution_count": null' in text, path.name


# -- the check fails on an altered report ---------------------------------------------------------


@pytest.fixture
def strict_check(golden_check):
    """The check, never regenerating: an altered report must not become a golden copy."""
    golden_check.force_regen = False
    return golden_check


def _outputs(notebook: NotebookNode, mime: str):
    """(cell index, output) of every output carrying ``mime``."""
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if mime in output.get("data", {}):
                yield index, output


def _edit_first(notebook: NotebookNode, mime: str, pattern: str, change: Callable) -> int:
    """Apply ``change`` to the first match of ``pattern`` in a ``mime`` output; its cell."""
    for index, output in _outputs(notebook, mime):
        text = output.data[mime]
        if match := re.search(pattern, text):
            output.data[mime] = text[: match.start()] + change(match) + text[match.end() :]
            return index
    raise AssertionError(f"no {mime} output matches {pattern!r}: the alteration found nothing")


def swap_verdict(notebook: NotebookNode) -> int:
    other = {"pass": "fail", "fail": "pass", "inconclusive": "pass"}
    return _edit_first(
        notebook,
        "text/markdown",
        r"## Verdict: (\w+)",
        lambda m: f"## Verdict: {other[m[1]]}",
    )


def count_in_headline(notebook: NotebookNode) -> int:
    return _edit_first(
        notebook, "text/markdown", r"\*\*(\d+) of", lambda m: f"**{int(m[1]) + 1} of"
    )


def number_in_a_table(notebook: NotebookNode) -> int:
    return _edit_first(
        notebook,
        "text/html",
        r"(<td[^>]*>)(\d+)(</td>)",
        lambda m: f"{m[1]}{int(m[2]) + 1}{m[3]}",
    )


def words_of_a_finding(notebook: NotebookNode) -> int:
    # The first cell of words (the reason) in the broken-task tables.
    return _edit_first(
        notebook,
        "text/html",
        r"(?s)(<details>.*?<td>)([^<]* [^<]*)(</td>)",
        lambda m: f"{m[1]}{m[2]}, reworded{m[3]}",
    )


def narrative(notebook: NotebookNode) -> int:
    index = next(i for i, c in enumerate(notebook.cells) if c.cell_type == "markdown")
    notebook.cells[index].source += "\n\nA sentence a reader would read."
    return index


def a_table_dropped(notebook: NotebookNode) -> int:
    index, output = next(_outputs(notebook, "text/html"))
    notebook.cells[index].outputs.remove(output)
    return index


def a_figure_loses_a_series(notebook: NotebookNode) -> int:
    index, output = next(_outputs(notebook, PLOTLY_MIME))
    output.data[PLOTLY_MIME]["data"].pop()
    return index


def the_inputs(notebook: NotebookNode) -> int:
    index = next(i for i, c in enumerate(notebook.cells) if INJECTED in c.metadata.get("tags", []))
    notebook.cells[index].source += 'profile = "platform-today"\n'
    return index


ALTERATIONS = [
    swap_verdict,
    count_in_headline,
    number_in_a_table,
    words_of_a_finding,
    narrative,
    a_table_dropped,
    a_figure_loses_a_series,
    the_inputs,
]


@pytest.mark.parametrize("alter", ALTERATIONS, ids=lambda f: f.__name__)
def test_a_report_altered_in_what_it_says_fails_the_check(
    alter, golden_runs, strict_check, tmp_path
):
    executed = golden_runs.run("trace_audit").notebook
    notebook = nbformat.read(executed, as_version=4)
    changed = alter(notebook)
    nbformat.write(notebook, tmp_path / executed.name)
    with pytest.raises(NBRegressionError) as caught:
        check_report(tmp_path / executed.name, expected_path("trace_audit"), strict_check)
    message = str(caught.value)
    assert "run `make golden`" in message
    changed_paths = set(re.findall(r"^## \w+ /cells/(\d+)", message, flags=re.MULTILINE))
    assert changed_paths == {str(changed)}, message  # the diff names the altered cell alone


def test_a_golden_copy_altered_in_what_it_says_fails_the_check(golden_runs, strict_check, tmp_path):
    """The other side: an expectation edited by hand no longer matches the report."""
    expected = nbformat.read(expected_path("trace_audit"), as_version=4)
    changed = swap_verdict(expected)
    nbformat.write(expected, tmp_path / "trace_audit.ipynb")
    executed = golden_runs.run("trace_audit").notebook
    with pytest.raises(NBRegressionError, match=rf"## modified /cells/{changed}/outputs/"):
        check_report(executed, tmp_path / "trace_audit.ipynb", strict_check)


def test_a_report_altered_only_in_its_volatile_parts_passes(golden_runs, strict_check, tmp_path):
    """Ids, counts, timings, kernel and versions, plotly's blobs: none is what a report says."""
    executed = golden_runs.run("fleet_overview").notebook
    notebook = nbformat.read(executed, as_version=4)
    notebook.metadata["language_info"]["version"] = "3.99.0"
    notebook.metadata["papermill"]["duration"] = 1234.5
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.execution_count = (cell.execution_count or 0) + 100
            cell.metadata["papermill"]["duration"] = 99.0
            cell.metadata["execution"] = {"iopub.status.idle": "2031-01-01T00:00:00Z"}
            if INJECTED in cell.metadata.get("tags", []):
                cell.id = "f00dcafe"  # its source (the inputs) is compared
            else:
                cell.source += "\n# a code edit: the HTML report hides code"
    edits = {"Styler ids": 0, "port": 0, "plotly div ids": 0, "plotly.js": 0}
    for _, output in _outputs(notebook, "text/html"):
        html = output.data["text/html"]
        new = re.sub(r"\bT_[0-9a-f]{5}", "T_0a0a0", html)
        edits["Styler ids"] += new != html
        if "window.PlotlyConfig" in new:
            new += "<!-- another plotly.js build -->"
            edits["plotly.js"] += 1
        new, found = re.subn(
            r'id="[0-9a-f-]{36}"', 'id="00000000-0000-0000-0000-000000000000"', new
        )
        edits["plotly div ids"] += found
        output.data["text/html"] = new
    for _, output in _outputs(notebook, "text/markdown"):
        text = output.data["text/markdown"]
        output.data["text/markdown"] = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:1", text)
        edits["port"] += output.data["text/markdown"] != text
    assert all(edits.values()), edits  # each volatile part was there, and was changed
    nbformat.write(notebook, tmp_path / executed.name)
    check_report(tmp_path / executed.name, expected_path("fleet_overview"), strict_check)
