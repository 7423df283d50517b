"""obslib: the Daedalus observability workbench library.

The catalogue (metrics, alerts, panels, runbook entries, hop profiles) is the one source of
truth; emitters render the committed artifacts from it; sources read Prometheus, Tempo, Loki and
OTLP files into pandas DataFrames; analyses turn frames into verdicts for the notebooks.

The entry points below are imported on first use, so ``import obslib`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Catalogue": "obslib.catalogue",
    "build_catalogue": "obslib.catalogue",
    "Settings": "obslib.settings",
    "load_settings": "obslib.settings",
    "ObslibError": "obslib.errors",
    "ConfigError": "obslib.errors",
    "CatalogueError": "obslib.errors",
    "SourceError": "obslib.errors",
    "BackendUnavailable": "obslib.errors",
    "QueryRejected": "obslib.errors",
    "NoData": "obslib.errors",
    "NotFound": "obslib.errors",
    "MalformedResponse": "obslib.errors",
    "Verdict": "obslib.verdict",
    "PrometheusSource": "obslib.sources.prometheus",
    "TempoSource": "obslib.sources.tempo",
    "LokiSource": "obslib.sources.loki",
    "read_spans": "obslib.sources.otlp_files",
    "read_logs": "obslib.sources.otlp_files",
    "audit_traces": "obslib.analysis.traces",
    "replay_alerts": "obslib.analysis.slo",
    "run_crosscheck": "obslib.analysis.crosscheck",
    "LocalStack": "obslib.stack",
    "OtlpCollector": "obslib.collector",
    "run_fleet": "obslib.fleet",
    "run_notebook": "obslib.reports",
    "run_reports": "obslib.reports",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'obslib' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
