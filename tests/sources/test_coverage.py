"""Data coverage: which gaps make data partial, and what a verdict on partial data becomes."""

from __future__ import annotations

import pandas as pd
import pytest

from obslib.sources.coverage import (
    CUT_BY_LIMIT,
    NO_MATCH,
    OUTSIDE_WINDOW,
    REDELIVERED,
    Coverage,
    Gap,
    verdict_on,
)
from obslib.verdict import Verdict

WINDOW = (pd.Timestamp("2026-11-16T11:00Z"), pd.Timestamp("2026-11-16T12:00Z"))


def test_informing_gaps_leave_the_data_whole_and_a_cap_makes_it_partial():
    tidy = Coverage("Tempo http://tempo", "spans", 24, WINDOW).with_gaps(
        Gap(REDELIVERED, 12, "12 spans arrived twice"), Gap(OUTSIDE_WINDOW, 0, "none outside")
    )
    assert not tidy.partial and [g.kind for g in tidy.gaps] == [REDELIVERED]
    cut = tidy.with_gaps(Gap(CUT_BY_LIMIT, 500, "at least 500 traces matched; 400 audited"))
    assert cut.partial
    assert cut.headline() == (
        "Tempo http://tempo: 24 spans, partial (at least 500 traces matched; 400 audited)"
    )
    assert cut.to_json()["partial"] is True
    assert cut.to_json()["requested"] == {
        "start": "2026-11-16T11:00:00+00:00",
        "end": "2026-11-16T12:00:00+00:00",
    }
    assert list(cut.table()["kind"]) == [REDELIVERED, CUT_BY_LIMIT]


def test_a_pass_on_partial_data_is_inconclusive_and_a_fail_stands():
    whole = Coverage("OTLP file t.jsonl", "spans", 10)
    cut = whole.with_gaps(Gap(CUT_BY_LIMIT, 5, "cap of 5 reached"))
    assert verdict_on(Verdict.PASS, [whole]) == (Verdict.PASS, [])
    verdict, reasons = verdict_on(Verdict.PASS, [whole, cut])
    assert verdict is Verdict.INCONCLUSIVE and reasons == [cut.headline()]
    assert verdict_on(Verdict.FAIL, [cut])[0] is Verdict.FAIL


def test_matching_nothing_is_recorded_and_unknown_kinds_are_refused():
    empty = Coverage("Loki http://loki", "log lines", 0).with_gaps(
        Gap(NO_MATCH, 0, '{k8s_namespace_name="daedalus"} matched no stream')
    )
    assert empty.matched_nothing and not empty.partial
    with pytest.raises(ValueError, match="unknown gap kind"):
        Gap("lost", 1, "?")
