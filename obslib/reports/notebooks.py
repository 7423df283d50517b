"""The notebooks the workbench runs, and the parameters each one takes.

Parameters never name an endpoint or a secret: papermill writes them into the executed notebook
and the HTML report. Endpoints and credentials come from the environment only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from obslib.errors import ConfigError

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
WINDOW = ("start", "end", "hours")


@dataclass(frozen=True)
class NotebookSpec:
    """One notebook: its file, its report title, its parameters, how its verdict counts."""

    name: str
    title: str
    parameters: tuple[str, ...]
    fail_exits: bool = False  # a `fail` verdict makes the run exit non-zero (the acceptance gate)

    @property
    def path(self) -> Path:
        """The notebook file."""
        return NOTEBOOK_DIR / f"{self.name}.ipynb"


NOTEBOOKS: tuple[NotebookSpec, ...] = (
    NotebookSpec(
        "fleet_overview",
        "Fleet overview",
        (*WINDOW, "step", "results_dir"),
    ),
    NotebookSpec(
        "trace_audit",
        "Trace propagation audit",
        (
            *WINDOW,
            "traces_path",
            "logs_path",
            "traceql",
            "search_limit",
            "profile",
            "fleet_run",
            "results_dir",
        ),
    ),
    NotebookSpec(
        "slo_baseline",
        "SLO baseline (Pass-2 preparation)",
        (*WINDOW, "proposed_rules_dir", "results_dir"),
    ),
    NotebookSpec(
        "phase5_acceptance",
        "Phase 5 acceptance",
        (*WINDOW, "sentinel_task_id", "trace_id", "traces_path", "fleet_report", "results_dir"),
        fail_exits=True,
    ),
    NotebookSpec(
        "observability_crosscheck",
        "Observability cross-check",
        (*WINDOW, "results_dir"),
    ),
)


def notebook_spec(name: str) -> NotebookSpec:
    """The notebook called ``name``."""
    for spec in NOTEBOOKS:
        if spec.name == name:
            return spec
    raise ConfigError(
        f"no notebook named {name!r}; the notebooks are {', '.join(n.name for n in NOTEBOOKS)}"
    )
