"""Headless reports: run notebooks with papermill, render HTML, write an index.

``run_reports`` is what ``make reports`` (``obslib reports``) and ``obslib report NAME`` call:
it brings up the embedded default for whatever backend is not configured, runs the notebooks
in order, and writes ``index.html`` linking each report with its verdict. Notebook kernels
inherit this process's environment: when the embedded Prometheus serves the run, its address is
``$OBSLIB_PROMETHEUS_URL`` for the run's kernels, so a notebook reads Prometheus one way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from obslib.reports.notebooks import (
    NOTEBOOKS,
    check_values,
    notebook_spec,
    prepare_parameters,
    refuse_unknown,
)
from obslib.reports.run import ReportRun, exit_code, run_notebook
from obslib.settings import Settings
from obslib.sources.endpoint import env_name

if TYPE_CHECKING:
    from obslib.reports.embedded import ReportContext


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
    defaults and apply to every notebook that declares them. Every parameter of every notebook
    is checked before the first one runs: a name no chosen notebook takes, or a value its
    declaration does not allow, is a ``ConfigError`` (the overrides' own values are checked
    before the embedded backends start).
    """
    from obslib.reports.embedded import ReportContext, report_backends
    from obslib.reports.index import write_index

    chosen = [notebook_spec(n) for n in names] if names else list(NOTEBOOKS)
    overrides = dict(overrides or {})
    refuse_unknown(chosen, overrides)
    for spec in chosen:
        check_values(spec, overrides)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    runs: list[ReportRun] = []
    context_manager: AbstractContextManager[ReportContext] = (
        report_backends(settings, out)
        if embedded
        else nullcontext(ReportContext(prometheus="configured", traces="configured"))
    )
    with context_manager as ctx, _kernel_environment(settings, ctx):
        planned = []
        for spec in chosen:
            params = ctx.for_notebook(spec.name)
            if spec.name == "phase5_acceptance":
                params.setdefault("fleet_report", str(out / "fleet_overview.html"))
            params.update({k: v for k, v in overrides.items() if k in spec.names})
            planned.append((spec, prepare_parameters(spec, params)))
        for spec, params in planned:
            runs.append(run_notebook(spec.name, params, out, progress=progress))
    index = write_index(runs, out, ctx.notes) if not names else None
    return runs, index


@contextmanager
def _kernel_environment(settings: Settings, ctx: ReportContext) -> Iterator[None]:
    """Give the run's kernels the embedded Prometheus as ``$OBSLIB_PROMETHEUS_URL``, then unset it.

    Nothing changes when Prometheus is configured: the variable already names it.
    """
    if ctx.prometheus != "embedded":
        yield
        return
    from obslib.reports import inputs

    name = env_name("prometheus")
    before = os.environ.get(name)
    os.environ[name] = inputs.prometheus(settings).endpoint.url
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


__all__ = ["ReportRun", "exit_code", "run_notebook", "run_reports"]
