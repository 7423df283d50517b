"""Series of samples and their OpenMetrics text, split into one file per 2-hour block.

``promtool tsdb create-blocks-from openmetrics`` parses its whole input once for every 2-hour
block it writes, so one big file costs (blocks x samples). Writing one file per block window
makes the backfill linear in the number of samples; each file ends in ``# EOF``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

BLOCK_SECONDS = 2 * 3600


@dataclass(frozen=True)
class Series:
    """One time series: metric name, labels, timestamps (unix seconds) and values."""

    name: str
    labels: dict[str, str]
    t: np.ndarray  # int64 seconds, strictly increasing
    v: np.ndarray  # float64

    def head(self) -> str:
        """The series as OpenMetrics writes it before each value: ``name{a="b",...}``."""
        body = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(self.labels.items()))
        return f"{self.name}{{{body}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format(value: float) -> str:
    if np.isnan(value):
        return "NaN"
    if np.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return (
        str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))
    )


def write_blocks(series: Iterable[Series], out_dir: Path) -> list[Path]:
    """Write ``series`` as OpenMetrics files, one per 2-hour window; returns the files written.

    Files stay open while series stream through, so memory does not grow with the history.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    handles: dict[int, TextIO] = {}
    try:
        for s in series:
            if len(s.t) == 0:
                continue
            head = s.head()
            window_of = s.t // BLOCK_SECONDS
            cuts = np.flatnonzero(np.diff(window_of)) + 1
            for idx in np.split(np.arange(len(s.t)), cuts):
                window = int(window_of[idx[0]])
                if window not in handles:
                    handles[window] = (out_dir / f"block-{window * BLOCK_SECONDS}.om").open("w")
                times, values = s.t[idx].tolist(), s.v[idx].tolist()
                handles[window].writelines(
                    f"{head} {_format(v)} {t}\n" for t, v in zip(times, values, strict=True)
                )
    finally:
        for handle in handles.values():
            handle.write("# EOF\n")
            handle.close()
    return [out_dir / f"block-{w * BLOCK_SECONDS}.om" for w in sorted(handles)]
