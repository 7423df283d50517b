"""The one place obslib reads the wall clock.

Library functions take their times in (``end``, ``now``); only the entry points (the command
line, the embedded default, the notebook runner and a notebook's own window cell) ask this module
what time it is. ``$OBSLIB_NOW`` pins that time for a whole run: a report regenerated with the
same value reads the same window, and tests use it to pin the world they build.
"""

from __future__ import annotations

import os
import time

import pandas as pd

from obslib.errors import ConfigError

NOW_ENV = "OBSLIB_NOW"


def now() -> pd.Timestamp:
    """The current time of this run (UTC, whole seconds): ``$OBSLIB_NOW`` or the wall clock."""
    pinned = os.environ.get(NOW_ENV, "").strip()
    if not pinned:
        return pd.Timestamp(int(time.time()), unit="s", tz="UTC")
    try:
        stamp = (
            pd.Timestamp(float(pinned), unit="s", tz="UTC")
            if pinned.replace(".", "", 1).isdigit()
            else pd.Timestamp(pinned)
        )
    except ValueError as exc:
        raise ConfigError(
            f"{NOW_ENV}={pinned!r} is not a time: give ISO 8601 (2026-11-28T10:00:00Z) or unix "
            "seconds, or unset it to use the wall clock"
        ) from exc
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.floor("s")


def now_seconds() -> int:
    """:func:`now` as unix seconds."""
    return int(now().timestamp())
