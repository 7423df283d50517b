"""What a report reads, and from where: the one place that chooses a run's backends.

A notebook cell says what it wants ("the spans of this window", "the logs of this window",
"a Prometheus"), and this module decides how to get it:

- Prometheus: ``$OBSLIB_PROMETHEUS_URL``, else the embedded local stack (started or reused).
- Spans: an OTLP file the caller names, else Tempo when ``$OBSLIB_TEMPO_URL`` is set, else the
  latest run of the reference pipeline (started when there is none).
- Logs: an OTLP logs file the caller names, else Loki when ``$OBSLIB_LOKI_URL`` is set, else
  the reference run's logs when the spans came from it, else none.
- One trace by id: Tempo when ``$OBSLIB_TEMPO_URL`` is set, else the OTLP file(s) named.

Every window read returns a :class:`~obslib.sources.coverage.Fetched`: the frame, and what it
could not get. Paths the workbench owns (the stack, the reference run) come from
:mod:`obslib.paths`, never from the working directory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from obslib import paths
from obslib.settings import Settings
from obslib.sources import coverage as cov
from obslib.sources.endpoint import endpoint_from_env, is_configured
from obslib.sources.frames import SPAN_COLUMNS, empty_frame

if TYPE_CHECKING:
    from obslib.sources.trace_loaders import SpansLoader

log = logging.getLogger(__name__)
REFERENCE_TASKS = 60
REFERENCE_SEED = 1
# Faults injected into the reference run, so the audit report shows what a break looks like;
# the audit must find exactly these tasks (the run's ground truth says which).
DEMO_FAULTS = ("stdio_context=0.05", "nats_headers=0.05", "envelope_trace_id=0.03")


# -- Prometheus -------------------------------------------------------------------------------


def prometheus(settings: Settings | None = None) -> Any:
    """A Prometheus source: the configured one, else the embedded local stack.

    The stack is started over synthetic history when it is not running.
    """
    from obslib.sources.prometheus import PrometheusSource

    if is_configured("prometheus"):
        return PrometheusSource(endpoint_from_env("prometheus"))
    return PrometheusSource(embedded_stack(settings).endpoint())


def embedded_stack(settings: Settings | None = None, scrape_targets: Iterable[str] = ()) -> Any:
    """The embedded :class:`~obslib.stack.LocalStack`, up and ready (reused when it runs)."""
    from obslib import clock
    from obslib.settings import load_settings
    from obslib.stack import LocalStack
    from obslib.synth import write_history
    from obslib.synth.scenario import default_end

    settings = settings or load_settings(None)
    stack = LocalStack(data_dir=paths.stack_dir(), scrape_targets=list(scrape_targets))
    if not stack.status().ready:
        end = default_end(clock.now_seconds())
        stack.up(
            history=lambda work_dir: write_history(
                settings, work_dir, end=end, days=paths.HISTORY_DAYS
            )
        )
    return stack


# -- one trace by id --------------------------------------------------------------------------


def trace_loader(
    traces_path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> SpansLoader:
    """One trace's spans by id: from Tempo when ``OBSLIB_TEMPO_URL`` is set, else from files.

    The files are the OTLP file(s) at ``traces_path``.

    Raises:
        ValueError: no Tempo is configured and no file is given.
    """
    from obslib.sources.tempo import TempoSource
    from obslib.sources.trace_loaders import OtlpTraceLoader, TempoTraceLoader

    if is_configured("tempo", environ):
        return TempoTraceLoader(TempoSource(endpoint_from_env("tempo", environ=environ)))
    if traces_path is None:
        raise ValueError("set OBSLIB_TEMPO_URL or give the OTLP traces file")
    return OtlpTraceLoader(traces_path)


# -- the reference run ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceRun:
    """One run of the reference pipeline as the test collector recorded it."""

    directory: Path

    @property
    def traces_path(self) -> Path:
        """The collector's spans (OTLP JSON lines)."""
        from obslib.collector.server import FILES

        return self.directory / "collector" / FILES["traces"]

    @property
    def logs_path(self) -> Path:
        """The collector's log records (OTLP JSON lines)."""
        from obslib.collector.server import FILES

        return self.directory / "collector" / FILES["logs"]

    @property
    def fleet_run_path(self) -> Path:
        """The run's ground truth: its tasks, their faults and trace ids."""
        from obslib.fleet.pipeline import RUN_FILE

        return self.directory / "fleet" / RUN_FILE

    @property
    def ground_truth(self) -> dict[str, Any]:
        """The parsed ``fleet-run.json``."""
        return json.loads(self.fleet_run_path.read_text())

    def sentinel(self) -> tuple[str, str]:
        """A task without any fault that completed, and its trace id ("" when none)."""
        truth = self.ground_truth
        clean = [t for t in truth["task_ids"] if not truth["faults"].get(t)]
        task = clean[0] if clean else ""
        return task, truth.get("expected_trace_ids", {}).get(task, "")

    def exists(self) -> bool:
        """Whether the run completed and wrote its files."""
        return self.fleet_run_path.is_file() and self.traces_path.is_file()


def reference_run(
    settings: Settings | None = None,
    *,
    directory: Path | None = None,
    fresh: bool = False,
    metrics: Any = None,
) -> ReferenceRun:
    """The latest reference-pipeline run, or a new one when there is none (or ``fresh``)."""
    run = ReferenceRun(directory or paths.reference_run_dir())
    if run.exists() and not fresh:
        return run
    return _run_reference(run, settings, metrics)


def _run_reference(run: ReferenceRun, settings: Settings | None, metrics: Any) -> ReferenceRun:
    import shutil

    from obslib.collector import OtlpCollector
    from obslib.fleet import FaultPlan, run_fleet
    from obslib.settings import load_settings

    shutil.rmtree(run.directory, ignore_errors=True)  # the collector appends: start empty
    with OtlpCollector(out_dir=run.directory / "collector") as collector:
        fleet = _outside_event_loop(
            lambda: run_fleet(
                settings or load_settings(None),
                tasks=REFERENCE_TASKS,
                collector_endpoint=collector.endpoint,
                out_dir=run.directory / "fleet",
                concurrency=min(REFERENCE_TASKS, 20),
                faults=FaultPlan.parse(list(DEMO_FAULTS)),
                seed=REFERENCE_SEED,
                metrics=metrics,
            )
        )
        collector.wait_for_spans(sum(fleet.spans_exported.values()), timeout_s=30)
    return run


def _outside_event_loop(work: Callable[[], Any]) -> Any:
    """``work()``, in a thread of its own when this one runs an event loop (a Jupyter kernel).

    The pipeline drives its services with ``asyncio.run``, which refuses to start inside a
    running loop.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return work()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result()


# -- spans and logs of a window ---------------------------------------------------------------


def _window(spans: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    if spans.empty:
        return None
    return (
        pd.Timestamp(int(spans["start_ns"].min()), unit="ns", tz="UTC"),
        pd.Timestamp(int(spans["end_ns"].max()), unit="ns", tz="UTC"),
    )


def file_spans(path: str | Path | Iterable[str | Path]) -> cov.Fetched:
    """Every span of OTLP file(s); the coverage's window is the data's own."""
    from obslib.sources.otlp_files import read_spans_with_skips

    read = read_spans_with_skips(path)
    spans = read.frame
    where = path if isinstance(path, str | Path) else ", ".join(str(p) for p in path)
    window = _window(spans)
    coverage = cov.Coverage(f"OTLP file {where}", "spans", len(spans), window, window)
    coverage = coverage.with_gaps(*_unreadable(read, "spans"))
    if spans.empty:
        coverage = coverage.with_gaps(cov.Gap(cov.NO_MATCH, 0, f"no span in {where}"))
    return cov.Fetched(spans, coverage)


def _unreadable(read: Any, what: str) -> list[cov.Gap]:
    """The gap a file reader's skips leave (a skipped line may have held any number of items)."""
    if read.complete:
        return []
    first = f" (first: {read.problems[0]})" if read.problems else ""
    return [
        cov.Gap(
            cov.UNREADABLE,
            max(1, read.items_skipped + read.lines_skipped),
            f"{read.items_skipped:,} {what} and {read.lines_skipped:,} whole line(s) could not "
            f"be read{first}",
        )
    ]


def window_spans(
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    traces_path: str = "",
    traceql: str = "",
    max_traces: int | None = None,
    known_trace_ids: Iterable[str] = (),
    progress: Callable[[str], None] | None = None,
) -> cov.Fetched:
    """The spans a trace audit reads: a file's, Tempo's for the window, or the reference run's.

    A file is read whole (its own time range is the report's window); Tempo is read for
    ``[start, end)`` (see :func:`~obslib.sources.tempo_window.window_spans`); with neither,
    the latest reference run is read (one is started when there is none).
    """
    if traces_path:
        return file_spans(traces_path)
    if is_configured("tempo"):
        from obslib.sources.tempo import TempoSource
        from obslib.sources.tempo_window import window_spans as read_tempo_window

        return read_tempo_window(
            TempoSource(),
            start,
            end,
            traceql_filter=traceql,
            max_traces=max_traces,
            known_trace_ids=known_trace_ids,
            progress=progress,
        )
    run = reference_run()
    fetched = file_spans(run.traces_path)
    notes = (f"the reference pipeline's latest run ({run.directory})",)
    return cov.Fetched(fetched.frame, replace(fetched.coverage, notes=notes))


def reads_window(traces_path: str = "") -> bool:
    """Whether :func:`window_spans` reads a backend for the window (not a whole file)."""
    return not traces_path and is_configured("tempo")


def spans_origin(traces_path: str = "") -> str:
    """Where :func:`window_spans` reads from, in words (before reading)."""
    if traces_path:
        return f"OTLP file {traces_path}"
    if is_configured("tempo"):
        return f"Tempo {endpoint_from_env('tempo').safe_url}"
    return f"the reference pipeline's latest run ({paths.reference_run_dir()})"


def reference_fleet_run(traces_path: str = "") -> str:
    """The reference run's ground truth when the spans are the reference run's, else ""."""
    if traces_path or is_configured("tempo"):
        return ""
    run = ReferenceRun(paths.reference_run_dir())
    return str(run.fleet_run_path) if run.exists() else ""


def no_spans() -> pd.DataFrame:
    """An empty span frame."""
    return empty_frame(SPAN_COLUMNS)


def file_logs(path: str | Path) -> cov.Fetched:
    """Every log record of an OTLP logs file."""
    from obslib.sources.otlp_files import read_logs_with_skips

    read = read_logs_with_skips(path)
    logs = read.frame
    coverage = cov.Coverage(f"OTLP file {path}", "log lines", len(logs))
    coverage = coverage.with_gaps(*_unreadable(read, "log records"))
    if logs.empty:
        coverage = coverage.with_gaps(cov.Gap(cov.NO_MATCH, 0, f"no log record in {path}"))
    return cov.Fetched(logs, coverage)


def window_logs(
    settings: Settings,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    logs_path: str = "",
    traces_path: str = "",
    cap: int | None = None,
) -> cov.Fetched | None:
    """The log lines of a window, or None when there is no log source to read.

    A file the caller names; else Loki when ``$OBSLIB_LOKI_URL`` is set (every line of the
    release's streams, selected by ``logs.namespaceLabel``); else, when the spans are the
    reference run's, that run's logs.
    """
    if logs_path:
        return file_logs(logs_path)
    if is_configured("loki"):
        from obslib.sources.loki import LokiSource, log_selector

        return LokiSource().window_logs(log_selector(settings), start, end, cap=cap)
    if not traces_path and not is_configured("tempo"):
        return file_logs(reference_run(settings).logs_path)
    return None


def logged_trace_ids(logs: cov.Fetched | None) -> list[str]:
    """The trace ids log lines carry: traces a window read must find (by id if search misses)."""
    if logs is None or logs.frame.empty:
        return []
    ids = logs.frame["trace_id"].astype(str)
    return sorted(set(ids[ids.str.fullmatch(r"[0-9a-f]{1,32}")]))


COMMITTED_PROPOSALS = "rules/proposed"  # where reviewed Pass-2 drafts are committed


def proposed_rules_dir(requested: str | Path) -> Path:
    """Where the baseline writes its draft Pass-2 rules.

    The requested directory, except that drafts drawn from the embedded synthetic history (no
    Prometheus configured) never land in the committed ``rules/proposed/``: they go to the
    workbench's state directory instead.
    """
    chosen = paths.owned(requested)
    if not is_configured("prometheus") and chosen == paths.owned(COMMITTED_PROPOSALS):
        return paths.state_dir() / "proposed-rules"
    return chosen


def sentinel(task_id: str, trace_id: str, traces_path: str) -> tuple[str, str, str, str]:
    """The Phase-5 sentinel to check: (task id, trace id, traces file, where it came from).

    The given one; else, on the embedded default (neither Prometheus nor Tempo configured),
    the reference run's (a task without faults). A configured cluster without a sentinel gets
    none: AC2 is then inconclusive, never judged on the reference pipeline's tasks.
    """
    if task_id or trace_id or is_configured("tempo") or is_configured("prometheus"):
        return task_id, trace_id, traces_path, "the parameters"
    run = reference_run()
    task, trace = run.sentinel()
    return task, trace, traces_path or str(run.traces_path), f"the reference run ({run.directory})"


def runbook_text() -> str:
    """The committed runbook the cross-check reads (from the workbench root, not the cwd)."""
    from obslib.emit import RUNBOOK_FILE

    return paths.committed(RUNBOOK_FILE).read_text()
