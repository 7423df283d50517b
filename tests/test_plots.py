"""Waterfall order: depth first from the roots, and safe on spans that are their own ancestors."""

from __future__ import annotations

import pandas as pd
import pytest

from obslib.reports.plots import tree_order, waterfall_figure


def spans(*rows: tuple[str, str, int]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["span_id", "parent_span_id", "start_ns"])
    return frame.assign(
        name=frame.span_id, duration_ns=5, service_name="svc", kind="INTERNAL",
        status_code="UNSET", trace_id="t",
    )  # fmt: skip


def test_children_follow_their_parent_by_start_time():
    frame = spans(("a", "", 0), ("c", "a", 3), ("b", "a", 1), ("d", "b", 2))
    order, stray = tree_order(frame)
    assert list(frame.loc[order, "span_id"]) == ["a", "b", "d", "c"] and stray == 0


@pytest.mark.timeout(10)
def test_a_span_that_is_its_own_parent_ends_the_walk():
    frame = spans(("a", "", 0), ("s", "s", 1), ("x", "s", 2))
    order, stray = tree_order(frame)
    assert sorted(frame.loc[order, "span_id"]) == ["a", "s", "x"] and stray == 0


@pytest.mark.timeout(10)
def test_a_cycle_and_a_repeated_id_are_placed_once_and_counted():
    frame = spans(("a", "", 0), ("p", "q", 1), ("q", "p", 2), ("d", "a", 3), ("d", "a", 4))
    order, stray = tree_order(frame)
    assert len(order) == len(frame) == len(set(order)) and stray == 2
    assert "2 span(s) in a parent cycle" in waterfall_figure(frame, "t").layout.title.text
