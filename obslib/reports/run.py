"""Run a notebook headlessly (papermill), render it (nbconvert), and read its verdict.

``run_notebook`` is what ``obslib report NAME`` and ``make reports`` call: it checks the
parameters against the notebook's declaration before it starts (unknown names and invalid values
are a ``ConfigError``), executes it with a progress bar and cell output logged, renders HTML with
the code hidden, and returns the verdict from the results JSON the notebook wrote. A failed cell
still leaves an HTML report (the error, and what to check first) and a results file with
``verdict: error``.

Exit codes of a run of reports (README, "Exit codes"): 0 when every report ran and the
acceptance check, if it ran, passed; 1 when an acceptance criterion failed; 2 for invalid input
(nothing ran); 3 when the acceptance check is inconclusive; 4 when a report could not run to its
end. Several at once: a failed criterion wins, then a report error, then inconclusive.
"""

from __future__ import annotations

import html as html_text
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from obslib.files import write_atomic
from obslib.paths import results_path
from obslib.reports.notebooks import notebook_spec, prepare_parameters
from obslib.reports.results import (
    ERROR,
    load_results,
    package_versions,
    save_results,
)
from obslib.reports.secrets import scrub
from obslib.reports.tables import REPORT_CSS

REPO = Path(__file__).resolve().parents[2]
KERNEL = "python3"
CELL_TIMEOUT_S = 900

# First things to check, by the exception a cell raised (obslib's own errors first).
HINTS = {
    "BackendUnavailable": "The backend did not answer: is it up, and are OBSLIB_<BACKEND>_URL and its "
    "credentials right? For the embedded default, `obslib stack status` shows the local Prometheus.",
    "QueryRejected": "The backend refused a query: its own message above names the problem; the query "
    "comes from the catalogue or a notebook parameter.",
    "NoData": "The query matched nothing: widen the window (start/end/hours parameters) or check the "
    "selector's labels against live data (the observability cross-check report does this).",
    "NotFound": "An id was not found: check the trace id parameter; fresh traces take seconds to appear.",
    "MalformedResponse": "The backend answered in an unexpected shape: check its version and URL.",
    "ConfigError": "A setting is invalid: the message names the values-file key, parameter or variable.",
    "CatalogueError": "The catalogue is inconsistent: run `make check` and `obslib lint`.",
}
DEFAULT_HINT = (
    "Read the traceback above; rerun this one report with `obslib report {name}` after fixing."
)
EXIT_OK = 0
EXIT_FAIL = 1  # an acceptance criterion failed
EXIT_INVALID = 2  # bad input (a parameter, the values file): nothing ran (obslib.cli.main)
EXIT_INCONCLUSIVE = 3  # the acceptance check lacks evidence: no data, a backend did not answer
EXIT_ERROR = 4  # a report could not run to its end (a cell raised)
_EXIT_PRECEDENCE = (EXIT_FAIL, EXIT_ERROR, EXIT_INCONCLUSIVE)
EXIT_MEANINGS = {
    EXIT_FAIL: "an acceptance criterion failed",
    EXIT_INCONCLUSIVE: "the acceptance check is inconclusive",
    EXIT_ERROR: "a report could not run to its end",
}
CAUSE_CHARS = 600  # a terminal line of cause, not the whole traceback


@dataclass(frozen=True)
class ReportRun:
    """What one notebook run produced."""

    name: str
    title: str
    verdict: str  # pass | fail | inconclusive | error
    html: Path
    notebook: Path
    results: Path
    seconds: float
    error: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        """What this run makes the command exit with (see the module docstring)."""
        if self.verdict == ERROR:
            return EXIT_ERROR
        if notebook_spec(self.name).fail_exits:
            return {"fail": EXIT_FAIL, "inconclusive": EXIT_INCONCLUSIVE}.get(self.verdict, EXIT_OK)
        return EXIT_OK

    @property
    def failed(self) -> bool:
        """Whether this run should make the whole run exit non-zero."""
        return self.exit_code != EXIT_OK

    def explain(self) -> list[str]:
        """Lines for the terminal on why a run is not a pass, and what to check; none if it is.

        For a failed report, its error's one-line cause and what to check first; for the
        acceptance gate, each criterion that did not pass with its explanation.
        """
        if self.error:
            cause = (str(self.error.get("evalue") or "").strip().splitlines() or [""])[0]
            if len(cause) > CAUSE_CHARS:
                cause = f"{cause[:CAUSE_CHARS]}..."
            hint = self.error.get("hint") or DEFAULT_HINT.format(name=self.name)
            return [scrub(f"cause: {self.error.get('ename')}: {cause}"), scrub(f"check: {hint}")]
        if self.exit_code == EXIT_OK:
            return []
        criteria = load_results(self.results).get("summary", {}).get("criteria", {})
        return [
            scrub(f"{key} {c.get('verdict')}: {c.get('explanation')}")
            for key, c in criteria.items()
            if c.get("verdict") != "pass"
        ]


def exit_code(runs: Sequence[ReportRun]) -> int:
    """The exit code of a run of ``runs``: a failed criterion, then an error, then inconclusive."""
    codes = {run.exit_code for run in runs}
    return next((code for code in _EXIT_PRECEDENCE if code in codes), EXIT_OK)


def _error_cell(name: str, error: dict[str, Any]) -> nbformat.NotebookNode:
    hint = HINTS.get(error["ename"], DEFAULT_HINT.format(name=name))
    text = (
        f"## This report failed\n\nCell {error['exec_count']} raised **{error['ename']}**: "
        f"{error['evalue']}\n\n**What to check:** {hint}\n\nThe cells below ran up to the failure; "
        "the error and its traceback are at the end."
    )
    return nbformat.v4.new_markdown_cell(text, metadata={"tags": ["obslib-error"]})


def versions_footer(versions: Mapping[str, str]) -> str:
    """A ``<footer>`` naming the versions that produced a page (``python``, then packages)."""
    made_with = ", ".join(f"{name} {version}" for name, version in versions.items())
    return (
        "<footer class='obslib-versions' style='margin:2rem 0 1rem;color:#57606a;"
        f"font-size:.85rem'>Made with {html_text.escape(made_with)}.</footer>"
    )


def render_html(
    notebook: nbformat.NotebookNode, title: str, versions: Mapping[str, str] | None = None
) -> str:
    """HTML of an executed notebook with the code hidden, and a footer naming ``versions``.

    ``versions`` defaults to this interpreter's (:func:`~obslib.reports.results.package_versions`).
    """
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    notebook.metadata["title"] = title
    body, _ = exporter.from_notebook_node(notebook)
    footer = versions_footer(package_versions() if versions is None else versions)
    body = body.replace("</head>", f"{REPORT_CSS}\n</head>", 1)  # wide tables scroll
    head, closing, tail = body.rpartition("</body>")
    return f"{head}{footer}\n{closing}{tail}" if closing else f"{body}{footer}\n"


def run_notebook(
    name: str,
    parameters: dict[str, Any] | None = None,
    out_dir: str | Path = "rendered",
    *,
    progress: bool = True,
    log_output: bool = True,
) -> ReportRun:
    """Execute notebook ``name`` with ``parameters``; write its .ipynb, .html and results JSON.

    Raises:
        ConfigError: before anything runs, for a parameter the notebook does not take or a
            value its declaration does not allow (including a step over the points cap).
    """
    from papermill import execute_notebook
    from papermill.exceptions import PapermillExecutionError

    spec = notebook_spec(name)
    out = Path(out_dir).resolve()
    params = {**prepare_parameters(spec, dict(parameters or {})), "results_dir": str(out)}
    out.mkdir(parents=True, exist_ok=True)
    results = results_path(out, name)
    results.unlink(missing_ok=True)  # a stale verdict must never survive a failed run
    executed = out / f"{name}.ipynb"
    started = time.monotonic()
    error: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix=f"obslib-{name}-") as tmp:
        scratch = Path(tmp) / f"{name}.ipynb"
        try:
            execute_notebook(
                str(spec.path),
                str(scratch),
                parameters=params,
                kernel_name=KERNEL,
                progress_bar=progress,
                log_output=log_output,
                cwd=str(REPO),
                execution_timeout=CELL_TIMEOUT_S,
            )
        except PapermillExecutionError as exc:
            error = {
                "exec_count": exc.exec_count,
                "ename": exc.ename,
                "evalue": str(exc.evalue)[:2000],
            }
        notebook = nbformat.read(scratch, as_version=4)
    if error is not None:
        notebook.cells.insert(0, _error_cell(name, error))
    write_atomic(executed, scrub(nbformat.writes(notebook)))
    if error is None and not results.exists():
        error = {
            "exec_count": None,
            "ename": "MissingResults",
            "evalue": f"{name} wrote no {results.name}",
        }
    if error is not None:
        error["hint"] = HINTS.get(error["ename"], DEFAULT_HINT.format(name=name))
        save_results(name, out, title=spec.title, verdict=ERROR, error=error)
    recorded = load_results(results)
    html = out / f"{name}.html"
    # The footer names the versions the results JSON recorded (the kernel's, which made it).
    versions = recorded.get("versions") or package_versions()
    write_atomic(html, scrub(render_html(notebook, spec.title, versions)))
    verdict = recorded["verdict"]
    return ReportRun(
        name, spec.title, verdict, html, executed, results, time.monotonic() - started, error
    )
