"""Tables that read like a report: no index column, counts as integers, units in the headers.

``table(frame, ...)`` returns a pandas Styler for ``display``: the index hidden, whole counts
with thousands separators, counts Prometheus estimated (``increase()`` extrapolates, so 3393.168
observations) as "about 3,393", shares as percentages, seconds with their unit in the header.
The HTML report makes wide tables scroll (see :data:`REPORT_CSS`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

# Injected into every HTML report: wide outputs scroll instead of overflowing the page.
REPORT_CSS = (
    "<style>.jp-OutputArea-output { overflow-x: auto; } "
    ".jp-RenderedHTMLCommon table { font-size: .85rem; } "
    ".jp-RenderedHTMLCommon td { white-space: normal; max-width: 48rem; }</style>"
)


def count_text(value: Any, *, estimated: bool = False) -> str:
    """A count as an integer with thousands separators ("about" when it is an estimate)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    number = float(value)
    if estimated and not number.is_integer():
        return f"about {round(number):,}"
    return f"{round(number):,}"


def seconds_text(value: Any) -> str:
    """Seconds, with a precision that suits the size ("" for NaN, "unbounded" for inf)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    number = float(value)
    if math.isinf(number):
        return "unbounded"
    return f"{number:,.0f}" if abs(number) >= 100 else f"{number:,.2f}".rstrip("0").rstrip(".")


def share_text(value: Any) -> str:
    """A share of 1 as a percentage."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{100 * float(value):.1f}%".replace(".0%", "%")


def table(
    frame: pd.DataFrame,
    *,
    counts: Iterable[str] = (),
    estimated: Iterable[str] = (),
    seconds: Iterable[str] = (),
    shares: Iterable[str] = (),
    rename: Mapping[str, str] | None = None,
) -> Any:
    """``frame`` styled for a report (a Styler; display it).

    Args:
        frame: the rows to show, in order; its index is not shown.
        counts: columns of whole counts (thousands separators).
        estimated: columns of estimated counts ("about 3,393").
        seconds: columns of seconds; their header gains " (s)".
        shares: columns of shares of 1, shown as percentages; their header gains " (%)".
        rename: other header texts, applied after the unit suffixes.
    """
    formats: dict[str, Any] = {}
    headers: dict[str, str] = {}
    for column in counts:
        formats[column] = count_text
    for column in estimated:
        formats[column] = lambda v: count_text(v, estimated=True)
    for column in seconds:
        formats[column] = seconds_text
        headers[column] = f"{column} (s)"
    for column in shares:
        formats[column] = share_text
        headers[column] = f"{column} (%)"
    present = {c: f for c, f in formats.items() if c in frame.columns}
    shown = frame.reset_index(drop=True)
    text = [c for c in shown.columns if c not in present and not _numeric(shown[c])]
    styler = (
        shown.style.format(present, na_rep="")
        .hide(axis="index")
        .set_properties(subset=text, **{"text-align": "left"})
        .set_table_styles([{"selector": "th", "props": [("text-align", "left")]}])
    )
    labels = {**headers, **(rename or {})}
    return styler.relabel_index([labels.get(c, c) for c in shown.columns], axis="columns")


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def window_text(start: pd.Timestamp, end: pd.Timestamp, *, seconds: bool = False) -> str:
    """``2026-12-01 06:00 to 2026-12-02 07:04 UTC`` (to the second when asked)."""
    shape = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return f"{start.strftime(shape)} to {end.strftime(shape)} UTC"
