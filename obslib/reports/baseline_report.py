"""The SLO baseline report: what it measured, whether thresholds can be proposed, and why not.

What the verdict means here: **pass** when every SLI of every agent type got a proposed
threshold from a stable baseline and the drafted rules pass promtool; **inconclusive** when
thresholds cannot be proposed yet (too little data, or a period flagged as unstable: a threshold
drawn from a moving baseline would be wrong, but nothing has failed); **fail** only when the
drafted Pass-2 rules themselves are invalid (promtool rejects them), a defect to fix.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from obslib.analysis.slo.baseline import summarise
from obslib.analysis.slo.counts import bucket_counts, task_counts
from obslib.analysis.slo.proposed_rules import write_proposed_rules
from obslib.analysis.slo.stability import stability
from obslib.analysis.slo.thresholds import propose_thresholds
from obslib.catalogue import Catalogue
from obslib.verdict import Verdict

FLAGGED_COLUMNS = ["granularity", "period_start", "period_end", "agent_type", "sli", "flagged_by"]


@dataclass(frozen=True)
class BaselineReport:
    """Everything the SLO baseline report shows and saves."""

    window: tuple[pd.Timestamp, pd.Timestamp]
    buckets: pd.DataFrame
    baseline: pd.DataFrame
    stability: pd.DataFrame
    thresholds: pd.DataFrame
    rules_path: Path
    promtool: tuple[bool, str] | None  # (passed, its words); None when promtool is absent

    @property
    def flagged(self) -> pd.DataFrame:
        """Periods flagged as unstable."""
        return self.stability.loc[self.stability["flagged"], FLAGGED_COLUMNS]

    @property
    def not_proposed(self) -> list[str]:
        """``agent_type/sli`` pairs that got no threshold."""
        rows = self.thresholds[self.thresholds["status"] != "proposed"]
        return sorted(set(rows["agent_type"] + "/" + rows["sli"]))

    @property
    def verdict(self) -> Verdict:
        """See the module docstring."""
        if self.promtool is not None and not self.promtool[0]:
            return Verdict.FAIL
        proposed = (self.thresholds["status"] == "proposed").any()
        if not proposed or self.not_proposed or not self.flagged.empty:
            return Verdict.INCONCLUSIVE
        return Verdict.PASS

    def verdict_note(self) -> str:
        """Why the verdict is what it is, in a few words."""
        if self.verdict is Verdict.FAIL:
            return "the drafted Pass-2 rules fail promtool"
        if not self.flagged.empty:
            return "thresholds wait for a stable baseline: periods were flagged as unstable"
        if self.not_proposed:
            return "too little data for some thresholds"
        return ""

    def headline(self) -> str:
        """One line for the index."""
        total = len(self.thresholds)
        proposed = int((self.thresholds["status"] == "proposed").sum())
        text = f"thresholds proposed for {proposed} of {total} SLIs"
        flagged = self.flagged
        if not flagged.empty:
            which = sorted(set(flagged["agent_type"] + " " + flagged["sli"].str.replace("_", " ")))
            text += f"; {len(flagged)} unstable period(s): {', '.join(which)}"
        return text

    def summary(self) -> dict[str, Any]:
        """The results JSON's summary."""
        return {
            "headline": self.headline(),
            "baseline": self.baseline.drop(columns=["period_start", "period_end"]).to_dict(
                "records"
            ),
            "thresholds": self.thresholds.drop(columns=["period_start", "period_end"]).to_dict(
                "records"
            ),
            "flagged": self.flagged.to_dict("records"),
            "not_proposed": self.not_proposed,
            "proposed_rules": str(self.rules_path),
            "promtool_check": None if self.promtool is None else self.promtool[0],
        }


def promtool_check(rules_path: Path) -> tuple[bool, str] | None:
    """``promtool check rules`` on the drafted file: (passed, what it said); None without it."""
    promtool = shutil.which("promtool") or next(
        (str(p) for p in (Path("/usr/bin/promtool"), Path("/usr/sbin/promtool")) if p.exists()),
        None,
    )
    if promtool is None:
        return None
    done = subprocess.run(
        [promtool, "check", "rules", str(rules_path)], capture_output=True, text=True, check=False
    )
    return done.returncode == 0, (done.stdout.strip() or done.stderr.strip())


def baseline_report(
    source: Any,
    catalogue: Catalogue,
    start: pd.Timestamp,
    end: pd.Timestamp,
    proposed_rules_dir: str | Path,
) -> BaselineReport:
    """Measure the baseline over ``[start, end]``, its stability, and draft the Pass-2 rules."""
    settings = catalogue.settings
    buckets = bucket_counts(source, settings, start, end)
    baseline = summarise(buckets, task_counts(source, settings, start, end))
    thresholds = propose_thresholds(baseline, buckets)
    rules_path = write_proposed_rules(proposed_rules_dir, catalogue, thresholds)
    return BaselineReport(
        (start, end),
        buckets,
        baseline,
        stability(source, settings, start, end),
        thresholds,
        rules_path,
        promtool_check(rules_path),
    )
