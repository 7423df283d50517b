"""Load one trace's spans by id: from Tempo, or from OTLP files when there is no Tempo.

A loader is a callable ``trace id -> span frame`` raising ``NotFound`` for an unknown id; with
``describe(trace_id) -> (request, link)`` it also says where it looked (for a report's evidence).
Which one a report uses is decided by :func:`obslib.reports.inputs.trace_loader`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from obslib.errors import NotFound
from obslib.sources.otlp_files import read_spans
from obslib.sources.tempo import TempoSource
from obslib.sources.tempo_frames import hex_trace_id

SpansLoader = Callable[[str], pd.DataFrame]  # trace id -> span frame; NotFound when unknown


class OtlpTraceLoader:
    """Spans of one trace from OTLP files (the embedded default, where Tempo is absent)."""

    def __init__(self, paths: str | Path | Sequence[str | Path]) -> None:
        self.paths = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
        self._spans: pd.DataFrame | None = None

    def __call__(self, trace_id: str) -> pd.DataFrame:
        """Every span of ``trace_id`` in the files; ``NotFound`` when there is none."""
        hex_id = hex_trace_id(trace_id)
        if self._spans is None:
            self._spans = read_spans(self.paths)
        found = self._spans[self._spans["trace_id"] == hex_id]
        if found.empty:
            where = ", ".join(str(p) for p in self.paths) or "no file"
            raise NotFound("otlp-file", where, hex_id, "no span of this trace in the files")
        return found.reset_index(drop=True)

    def describe(self, trace_id: str) -> tuple[str, str]:
        """The request (spans of the trace in the files) and the link (the files)."""
        files = ", ".join(str(p) for p in self.paths)
        return f"spans with trace_id {trace_id} in {files}", files


class TempoTraceLoader:
    """Spans of one trace from Tempo by id (``GET /api/v2/traces/<id>``)."""

    def __init__(self, source: TempoSource | None = None) -> None:
        self.source = source or TempoSource()

    def __call__(self, trace_id: str) -> pd.DataFrame:
        """Every span of ``trace_id``; ``NotFound`` when Tempo has no such trace."""
        return self.source.trace(trace_id)

    def describe(self, trace_id: str) -> tuple[str, str]:
        """The request and the link: the trace-by-id URL (no credentials)."""
        url = f"{self.source.endpoint.safe_url}/api/v2/traces/{trace_id}"
        return f"GET {url}", url
