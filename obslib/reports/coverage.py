"""The "Data coverage" section every report shows first: what each read got and did not get."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from obslib.sources.coverage import Coverage


def coverage_table(coverages: Iterable[Coverage | None]) -> pd.DataFrame:
    """One row per read: source, what, rows, window read, complete or partial, and why."""
    rows = []
    for c in coverages:
        if c is None:
            continue
        window = c.covered or c.requested
        partial = [g.detail for g in c.gaps if g.partial]
        tidied = [g.detail for g in c.gaps if not g.partial]
        rows.append(
            {
                "source": c.source,
                "read": f"{c.items:,} {c.what}",
                "window (UTC)": ""
                if window is None
                else f"{window[0]:%Y-%m-%d %H:%M:%S} to {window[1]:%Y-%m-%d %H:%M:%S}",
                "data": "partial" if c.partial else "complete",
                "not read": "; ".join(partial) or "nothing",
                "tidied": "; ".join(tidied) or "",
            }
        )
    return pd.DataFrame(
        rows, columns=["source", "read", "window (UTC)", "data", "not read", "tidied"]
    )


def coverage_markdown(coverages: Iterable[Coverage | None], reasons: list[str]) -> str:
    """The section's words: whether every read was whole, and what lowered the verdict."""
    present = [c for c in coverages if c is not None]
    if not present:
        return "No data source was read."
    if not any(c.partial for c in present):
        return "Every read covered its whole window: the verdict rests on all the data."
    lines = ["**Partial data.** Part of the window was not read, so a pass cannot be given:"]
    lines += [f"- {r}" for r in reasons or [c.headline() for c in present if c.partial]]
    return "\n".join(lines)


def coverage_json(coverages: Iterable[Coverage | None]) -> list[dict[str, Any]]:
    """Every read's coverage for the results JSON."""
    return [c.to_json() for c in coverages if c is not None]
