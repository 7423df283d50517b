"""Headless reports: run notebooks with papermill, render HTML, write an index.

``run_reports`` is what ``make reports`` (``obslib reports``) and ``obslib report NAME`` call:
it brings up the embedded default for whatever backend is not configured, runs the notebooks
in order, and writes ``index.html`` linking each report with its verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from obslib.reports.notebooks import NOTEBOOKS, notebook_spec
from obslib.reports.run import ReportRun, run_notebook
from obslib.settings import Settings


def run_reports(
    settings: Settings,
    names: Sequence[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    out_dir: str | Path = "rendered",
    *,
    embedded: bool = True,
    progress: bool = True,
) -> tuple[list[ReportRun], Path | None]:
    """Run the named notebooks (all by default) and write the index when all of them ran.

    ``overrides`` are parameters given on the command line; they win over the embedded
    defaults and apply to every notebook that declares them.
    """
    from obslib.reports.embedded import ReportContext, report_backends
    from obslib.reports.index import write_index

    chosen = [notebook_spec(n) for n in names] if names else list(NOTEBOOKS)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    runs: list[ReportRun] = []
    context_manager: AbstractContextManager[ReportContext] = (
        report_backends(settings, out)
        if embedded
        else nullcontext(ReportContext(prometheus="configured", traces="configured"))
    )
    with context_manager as ctx:
        for spec in chosen:
            params = ctx.for_notebook(spec.name)
            if spec.name == "phase5_acceptance":
                params.setdefault("fleet_report", str(out / "fleet_overview.html"))
            params.update({k: v for k, v in (overrides or {}).items() if k in spec.parameters})
            runs.append(run_notebook(spec.name, params, out, progress=progress))
    index = write_index(runs, out, ctx.notes) if not names else None
    return runs, index


__all__ = ["ReportRun", "run_notebook", "run_reports"]
