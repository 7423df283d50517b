"""Notebook parameters: what each kind accepts, the report window, and the points cap.

Parameters arrive as text from a shell (``obslib report NAME -p hours 6``) or as Python values
from :func:`obslib.reports.run_notebook`. A :class:`Kind` turns either into the value the
notebook uses, or raises ``ValueError``; :func:`obslib.reports.notebooks.checked_parameters`
turns that into a :class:`ConfigError` naming the parameter and what it allows.

Range queries are capped so that no parameter can make a report fetch millions of points:
a query evaluates at most :data:`MAX_POINTS_PER_QUERY` steps (Prometheus's own limit per
request, so every query of a report is one request) and a report at most
:data:`MAX_POINTS_PER_REPORT` steps over all its queries. A step that would exceed either is
refused before any request, with the smallest step that fits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import pandas as pd

from obslib import clock, paths
from obslib.errors import ConfigError

MAX_WINDOW_HOURS = 2160.0  # 90 days: more than any Prometheus retention these reports read
MAX_POINTS_PER_QUERY = 11_000  # Prometheus refuses more points per series in one request
MAX_POINTS_PER_REPORT = 50_000  # over all of a report's range queries (per series)
AUTO_POINTS = 300  # an empty step: about this many points over the window
MIN_AUTO_STEP_S = 60.0  # an empty step is never finer than the synthetic history's scrape
EARLIEST = pd.Timestamp("1970-01-01", tz="UTC")
LATEST = pd.Timestamp("2200-01-01", tz="UTC")
TIME_ALLOWED = (
    "a time as ISO 8601 (2026-11-28T10:00:00Z; naive means UTC), unix seconds or 'now', "
    "between 1970 and 2200"
)
_UNIX_RE = re.compile(r"\d+(\.\d+)?")
_ISO_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?", re.IGNORECASE
)


@dataclass(frozen=True)
class Kind:
    """What a parameter accepts: ``allowed`` says it in words, ``parse`` converts a value.

    ``parse`` returns the value the notebook uses, or raises ``ValueError`` (or ``TypeError``).
    """

    allowed: str
    parse: Callable[[Any], Any]


def parse_time(text: str | float | int) -> pd.Timestamp:
    """An ISO 8601 time (naive means UTC), unix seconds, or ``now``, as a UTC timestamp."""
    stamp: pd.Timestamp | None = None
    number = isinstance(text, int | float) and not isinstance(text, bool)
    word = text.strip() if isinstance(text, str) else None
    try:
        if number or (word is not None and _UNIX_RE.fullmatch(word)):
            stamp = pd.Timestamp(float(text), unit="s", tz="UTC")
        elif word is not None and word.lower() == "now":
            stamp = clock.now()
        elif word is not None and _ISO_RE.fullmatch(word):
            stamp = pd.Timestamp(word)
            stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    except (ValueError, OverflowError):  # pandas' OutOfBoundsDatetime is a ValueError
        stamp = None
    if stamp is None or pd.isna(stamp) or not EARLIEST <= stamp <= LATEST:
        raise ConfigError(f"time {text!r} is not {TIME_ALLOWED}")
    return stamp


def parse_hours(value: Any) -> float:
    """A window length in hours: a finite number above 0 and at most :data:`MAX_WINDOW_HOURS`."""
    hours = _number(value)
    if not 0 < hours <= MAX_WINDOW_HOURS:
        raise ValueError(f"{hours:g} hours is out of range")
    return hours


def window(
    start: str = "", end: str = "", hours: float | str = 24.0, *, now: pd.Timestamp | None = None
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The report window: ``[start, end]``, or the ``hours`` before ``end``.

    An empty ``end`` is ``now``, by default the run's clock (:func:`obslib.clock.now`).
    """
    stop = parse_time(end) if end else (clock.now() if now is None else now).floor("s")
    if start:
        begin = parse_time(start)
    else:
        try:
            begin = stop - pd.Timedelta(hours=parse_hours(hours))
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"hours {hours!r} is not {HOURS.allowed}") from exc
    if begin >= stop:
        raise ConfigError(
            f"the window's start {begin.isoformat()} is not before its end {stop.isoformat()}"
        )
    return begin, stop


def points(start: pd.Timestamp, end: pd.Timestamp, step_s: float) -> int:
    """Points per series of a range query from ``start`` to ``end`` every ``step_s`` seconds."""
    return math.floor((end - start).total_seconds() / step_s) + 1


def report_step(step: float | str, start: pd.Timestamp, end: pd.Timestamp, queries: int) -> float:
    """The step of a report's ``queries`` range queries over ``[start, end]``, within the caps.

    An empty ``step`` gives about :data:`AUTO_POINTS` points (never finer than a minute). A
    step that would make one query exceed :data:`MAX_POINTS_PER_QUERY` points, or the report
    exceed :data:`MAX_POINTS_PER_REPORT`, is refused with the smallest step that fits.
    """
    span_s = (end - start).total_seconds()
    step_s = _step(step) if step != "" else max(MIN_AUTO_STEP_S, span_s / AUTO_POINTS)
    per_query = points(start, end, step_s)
    if per_query <= MAX_POINTS_PER_QUERY and per_query * queries <= MAX_POINTS_PER_REPORT:
        return step_s
    limit = min(MAX_POINTS_PER_QUERY, MAX_POINTS_PER_REPORT // max(queries, 1))
    smallest = math.floor(span_s / limit) + 1  # whole seconds: floor(span / s) + 1 <= limit
    raise ConfigError(
        f"parameter step: one point every {step_s:g} s over the {span_s / 3600:g} h "
        f"window makes {per_query:,} points per query and {per_query * queries:,} for the "
        f"report's {queries} queries; the caps are {MAX_POINTS_PER_QUERY:,} per query and "
        f"{MAX_POINTS_PER_REPORT:,} per report. Give step {smallest} or more (seconds), a "
        "shorter window, or an empty step (about 300 points)."
    )


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    number = float(value.strip() if isinstance(value, str) else value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not finite")
    return number


def _step(value: Any) -> float:
    seconds = _number(value)
    if seconds <= 0:
        raise ValueError(f"step {seconds:g} is not above 0")
    return seconds


def _time(value: Any) -> str | float | int:
    if value == "":
        return ""
    parse_time(value)  # raises ConfigError, reported with the parameter's name
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{type(value).__name__} is not text")
    return value


def _path(value: Any) -> str:
    """A path parameter: empty stays empty, a relative path is taken from the workbench root.

    So a notebook run in JupyterLab (working directory ``notebooks/``) writes ``rendered/``
    where a headless run does.
    """
    if isinstance(value, PathLike):
        value = str(value)
    text = _text(value)
    return str(paths.owned(text)) if text else ""


def _count(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        number = _number(value)
        if number != int(number) or not low <= number <= high:
            raise ValueError(f"{value!r} is not a whole number from {low} to {high}")
        return int(number)

    return parse


def _choice(choices: Sequence[str]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return str(value)

    return parse


def _hex_id(length: int) -> Callable[[Any], str]:
    pattern = re.compile(rf"[0-9a-fA-F]{{{length}}}")

    def parse(value: Any) -> str:
        if value != "" and not (isinstance(value, str) and pattern.fullmatch(value)):
            raise ValueError(f"{value!r} is not {length} hex characters")
        return str(value)

    return parse


TIME = Kind(f"empty or {TIME_ALLOWED}", _time)
HOURS = Kind(
    f"a number of hours above 0 and at most {MAX_WINDOW_HOURS:g} ({MAX_WINDOW_HOURS / 24:g} days)",
    parse_hours,
)
STEP = Kind(
    "empty (about 300 points over the window) or a number of seconds above 0, at most "
    f"{MAX_POINTS_PER_QUERY:,} points per query and {MAX_POINTS_PER_REPORT:,} per report",
    lambda value: "" if value == "" else _step(value),
)
TEXT = Kind("text", _text)
PATH = Kind("a file or directory path (text; empty where the notebook allows it)", _path)
TRACE_ID = Kind("empty or a trace id of 32 hex characters", _hex_id(32))


def count(low: int, high: int) -> Kind:
    """A whole number from ``low`` to ``high``."""
    return Kind(f"a whole number from {low:,} to {high:,}", _count(low, high))


def choice(choices: Sequence[str]) -> Kind:
    """One of ``choices``."""
    return Kind(f"one of {', '.join(choices)}", _choice(tuple(choices)))
