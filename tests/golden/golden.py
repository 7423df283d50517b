"""Golden reports: each notebook's run on the pinned world, and the check against its golden copy.

Every notebook runs through :func:`obslib.reports.run_notebook` (what ``make reports`` runs:
parameters checked, papermill, the code's own choices of backends) with the inputs of
:data:`CASES`: the pinned history (``tests/world.py``) behind a real Prometheus, explicit
windows, and the reference-pipeline run recorded once in ``tests/golden/data/``. The executed
notebook is then compared with ``tests/golden/expected/<name>.ipynb`` by pytest-notebook's
notebook diff, with the volatile parts of :mod:`tests.golden.volatile` left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
from pytest_notebook.diffing import diff_notebooks, diff_to_string, filter_diff
from pytest_notebook.nb_regression import NBRegressionError, NBRegressionFixture
from pytest_notebook.notebook import regex_replace_nb

from tests.golden.volatile import normalise, without_ignored
from tests.world import ANCHOR, HISTORY_DAYS, iso

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
EXPECTED = HERE / "expected"
TRACES = DATA / "traces.jsonl"
LOGS = DATA / "logs.jsonl"
FLEET_RUN = DATA / "fleet-run.json"
HOUR = 3600
REGENERATE = "make golden"


def sentinel() -> tuple[str, str]:
    """The recorded run's first task without a fault, and its trace id: the AC2 sentinel."""
    truth = json.loads(FLEET_RUN.read_text())
    task = next(t for t in truth["task_ids"] if not truth["faults"].get(t))
    return task, truth["expected_trace_ids"][task]


def cases(out: Path) -> dict[str, dict[str, Any]]:
    """Each notebook's parameters; ``out`` holds every run's output (``out/<name>/``).

    The acceptance check reads the fleet overview's report as its AC5 artifact, so that
    notebook runs first.
    """
    task, trace = sentinel()
    return {
        "fleet_overview": {"start": iso(ANCHOR - 24 * HOUR), "end": iso(ANCHOR)},
        "observability_crosscheck": {"start": iso(ANCHOR - 12 * HOUR), "end": iso(ANCHOR)},
        "slo_baseline": {
            "start": iso(ANCHOR - HISTORY_DAYS * 24 * HOUR),
            "end": iso(ANCHOR),
            "proposed_rules_dir": str(out / "slo_baseline" / "proposed"),
        },
        "trace_audit": {
            "traces_path": str(TRACES),
            "logs_path": str(LOGS),
            "fleet_run": str(FLEET_RUN),
        },
        "phase5_acceptance": {
            "start": iso(ANCHOR - 3 * HOUR),
            "end": iso(ANCHOR),
            "sentinel_task_id": task,
            "trace_id": trace,
            "traces_path": str(TRACES),
            "fleet_report": str(out / "fleet_overview" / "fleet_overview.html"),
        },
    }


def expected_path(name: str) -> Path:
    """Where notebook ``name``'s golden copy is committed."""
    return EXPECTED / f"{name}.ipynb"


def compared_form(executed: Path, fixture: NBRegressionFixture) -> nbformat.NotebookNode:
    """An executed notebook as the golden diff sees it: normalised, paths and ids replaced."""
    notebook = nbformat.read(executed, as_version=4)
    return regex_replace_nb(normalise(notebook), fixture.diff_replace)


def check_report(executed: Path, expected: Path, fixture: NBRegressionFixture) -> None:
    """Compare an executed notebook with its golden copy.

    With ``fixture.force_regen`` (``--nb-force-regen``) the golden copy is written from this
    run instead (``git diff tests/golden/expected/`` then shows what changed).

    Raises:
        NBRegressionError: the report differs from its golden copy (the message is
            pytest-notebook's diff), or there is no golden copy.
    """
    __tracebackhide__ = True
    obtained = compared_form(executed, fixture)
    if fixture.force_regen:
        expected.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(without_ignored(obtained), expected)
        return
    if not expected.exists():
        raise NBRegressionError(f"no golden report {expected.name}: run `{REGENERATE}`")
    golden = regex_replace_nb(nbformat.read(expected, as_version=4), fixture.diff_replace)
    diff = filter_diff(diff_notebooks(golden, obtained), list(fixture.diff_ignore))
    if not diff:
        return
    text = diff_to_string(
        golden, diff, use_color=fixture.diff_use_color, color_words=fixture.diff_color_words
    )
    raise NBRegressionError(
        f"{expected.name}: the report differs from its golden copy (expected: golden, "
        f"obtained: this run). If the change is intended, run `{REGENERATE}` and commit the "
        f"diff of tests/golden/expected/.\n{text}"
    )
