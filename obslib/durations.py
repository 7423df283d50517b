"""Durations as Prometheus writes them (``30s``, ``10m``, ``1h30m``), in seconds.

The one parser of duration text: query steps, a rule's ``for`` and range windows all go through
:func:`seconds`. Reading the wall clock is :mod:`obslib.clock`'s business, not this module's.
"""

from __future__ import annotations

import re
from datetime import timedelta

DurationLike = float | int | str | timedelta

_DURATION_RE = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(value: DurationLike) -> float:
    """Seconds of ``value``: a number of seconds, a ``timedelta`` or text such as ``1m30s``.

    Raises:
        ValueError: text that is neither a number nor a Prometheus duration.
    """
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, str) and (parts := _DURATION_RE.findall(value)):
        if "".join(map("".join, parts)) != value:
            raise ValueError(f"{value!r} is not seconds or a duration like 5m")
        return float(sum(int(n) * _UNIT_S[u] for n, u in parts))
    return float(value)


def step_seconds(step: DurationLike) -> float:
    """Seconds of a query step, which must be positive (see :func:`seconds`).

    Raises:
        ValueError: the step is not a duration, or not positive.
    """
    value = seconds(step)
    if not value > 0:
        raise ValueError(f"step must be positive, got {step!r}")
    return value
