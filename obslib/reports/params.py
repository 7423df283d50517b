"""Notebook parameters: the time window, given as text so papermill can pass it from a shell."""

from __future__ import annotations

import pandas as pd

from obslib import clock
from obslib.errors import ConfigError


def parse_time(text: str | float | int) -> pd.Timestamp:
    """An ISO 8601 time (naive means UTC), unix seconds, or ``now``, as a UTC timestamp."""
    if isinstance(text, int | float) or (
        isinstance(text, str) and text.replace(".", "", 1).isdigit()
    ):
        return pd.Timestamp(float(text), unit="s", tz="UTC")
    if str(text).strip().lower() == "now":
        return clock.now()
    try:
        stamp = pd.Timestamp(str(text))
    except ValueError as exc:
        raise ConfigError(
            f"time {text!r} is not ISO 8601 (2026-11-28T10:00:00Z), unix seconds or 'now'"
        ) from exc
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def window(
    start: str = "", end: str = "", hours: float = 24.0, *, now: pd.Timestamp | None = None
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The report window: ``[start, end]``, or the ``hours`` before ``end``.

    An empty ``end`` is ``now``, by default the run's clock (:func:`obslib.clock.now`).
    """
    stop = parse_time(end) if end else (clock.now() if now is None else now).floor("s")
    begin = parse_time(start) if start else stop - pd.Timedelta(hours=float(hours))
    if begin >= stop:
        raise ConfigError(
            f"the window's start {begin.isoformat()} is not before its end {stop.isoformat()}"
        )
    return begin, stop
