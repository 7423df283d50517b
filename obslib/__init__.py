"""obslib: the Daedalus observability workbench library.

The catalogue (metrics, alerts, panels, runbook entries) is the one source of truth; emitters
render the committed artifacts from it; sources read Prometheus, Tempo, Loki and OTLP files into
pandas DataFrames; analyses turn frames into verdicts for the notebooks.
"""

from obslib.catalogue import Catalogue, build_catalogue
from obslib.errors import (
    BackendUnavailable,
    CatalogueError,
    ConfigError,
    MalformedResponse,
    NoData,
    NotFound,
    ObslibError,
    QueryRejected,
    SourceError,
)
from obslib.settings import Settings, load_settings

__all__ = [
    "BackendUnavailable",
    "Catalogue",
    "CatalogueError",
    "ConfigError",
    "MalformedResponse",
    "NoData",
    "NotFound",
    "ObslibError",
    "QueryRejected",
    "Settings",
    "SourceError",
    "build_catalogue",
    "load_settings",
]
