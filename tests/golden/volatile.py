"""What the golden diff does not compare, declared once.

An executed report holds two kinds of thing: what a reader reads (markdown, verdicts, headlines,
tables, coverage, findings, which figures there are and what they plot), compared to the last
character, and what changes from run to run without changing what the report says, listed
here and nowhere else:

- :data:`DIFF_IGNORE`: notebook paths pytest-notebook's diff drops (its ``diff_ignore``), and
  which the stored golden notebooks leave out (:func:`without_ignored`);
- :func:`diff_replace`: pytest-notebook's ``diff_replace`` substitutions, applied to both sides
  before the diff and to what is stored;
- :func:`normalise`: what is reduced before the diff: a plotly figure to its shape, code cells
  to nothing (the HTML report hides code: it is not what the report says), papermill's random
  id of the cell it injects.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from nbformat import NotebookNode

DIFF_IGNORE: tuple[str, ...] = (
    "/metadata",  # kernelspec, language_info (Python's version), papermill's run record
    "/cells/*/execution_count",
    "/cells/*/outputs/*/execution_count",
    "/cells/*/metadata/execution",  # nbclient's timestamps of each cell
    "/cells/*/metadata/papermill",  # papermill's start, end and duration of each cell
    "/cells/*/outputs/*/traceback",  # pytest-notebook's default: ANSI colours and file paths
)


def diff_replace(out_dir: Path, repo: Path) -> tuple[tuple[str, str, str], ...]:
    """``(path, regex, replacement)`` for pytest-notebook: what differs by where a run ran.

    Args:
        out_dir: the run's output directory (a fresh temporary one per run).
        repo: the checkout the test runs in (another in CI, and on every machine).
    """
    return (
        ("/cells", re.escape(str(out_dir)), "<out>"),
        ("/cells", re.escape(str(repo)), "<repo>"),
        # The test Prometheus listens on a free port of the moment.
        ("/cells/*/outputs", r"127\.0\.0\.1:\d+", "127.0.0.1:<port>"),
        # A pandas Styler names its table with a random id (T_1a2b3), and its repr shows the
        # object's address.
        ("/cells/*/outputs", r"\bT_[0-9a-f]{5}", "T_<id>"),
        ("/cells/*/outputs", r" at 0x[0-9a-f]+>", " at <address>>"),
        # AC5's evidence counts the bytes of the rendered fleet overview: they follow the
        # package versions and the output path, not what either report says.
        ("/cells/*/outputs", r">\d+(</td>\s*<td .*?>bytes in the report file<)", r">N\1"),
    )


PLOTLY_MIME = "application/vnd.plotly.v1+json"
INJECTED = "injected-parameters"  # papermill's tag on the parameters cell it adds


def normalise(notebook: NotebookNode) -> NotebookNode:
    """A copy of an executed notebook reduced to what its report says, for the golden diff."""
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if INJECTED in cell.metadata.get("tags", []):
            cell.id = INJECTED  # papermill draws a random id; the source (the inputs) stays
        else:
            cell.source = ""
        cell.outputs = [_output(o) for o in cell.outputs]
    return notebook


def _output(output: NotebookNode) -> NotebookNode:
    data = output.get("data", {})
    if PLOTLY_MIME in data:
        # The figure's JSON holds every sample and plotly's whole template; its HTML a random
        # div id. Its shape is what a reader would notice change: the title, the traces and
        # how many points each draws.
        output.data = {"text/plain": figure_shape(data[PLOTLY_MIME])}
        output.metadata = {}
    elif "window.PlotlyConfig" in "".join(data.get("text/html", "")):
        # plotly.js itself, embedded once per notebook for offline reading: megabytes of code.
        output.data = {"text/plain": "<plotly.js, embedded for offline reading>"}
    return output


def figure_shape(figure: dict[str, Any]) -> str:
    """A plotly figure in words: its title, and each trace's type, name and point count."""
    title = (figure.get("layout", {}).get("title") or {}).get("text", "")
    lines = [f"plotly figure {title!r}: {len(figure.get('data', []))} trace(s)"]
    for trace in figure.get("data", []):
        points = max((len(trace.get(axis) or ()) for axis in ("x", "y", "base")), default=0)
        lines.append(f"  {trace.get('type', '?')} {trace.get('name', '')!r}: {points} point(s)")
    return "\n".join(lines)


# What a path's value becomes when the notebook format requires the key: empty, not absent.
_REQUIRED = {"metadata": dict, "execution_count": lambda: None, "traceback": list}


def without_ignored(notebook: NotebookNode) -> NotebookNode:
    """A copy of ``notebook`` without the :data:`DIFF_IGNORE` paths (what a golden stores)."""
    notebook = copy.deepcopy(notebook)
    for path in DIFF_IGNORE:
        *parents, last = path.strip("/").split("/")
        for holder in _nodes(notebook, parents):
            if isinstance(holder, dict) and last in holder:
                if last in _REQUIRED:
                    holder[last] = _REQUIRED[last]()
                else:
                    del holder[last]
    return notebook


def _nodes(node: Any, keys: list[str]) -> list[Any]:
    """The nodes at ``keys`` below ``node`` (``*``: every item of a list)."""
    if not keys:
        return [node]
    key, rest = keys[0], keys[1:]
    if key == "*":
        children = list(node) if isinstance(node, list) else []
    else:
        children = [node[key]] if isinstance(node, dict) and key in node else []
    return [found for child in children for found in _nodes(child, rest)]
