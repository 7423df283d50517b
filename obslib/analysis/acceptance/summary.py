"""The acceptance run as a whole: its results-JSON summary, and the spec's coverage table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from obslib.analysis.acceptance.ac1 import ac1_queries
from obslib.analysis.acceptance.criteria import TITLES, CriterionResult
from obslib.catalogue import Catalogue
from obslib.catalogue.contract import TASK_DURATION
from obslib.catalogue.hops import TASK_ID
from obslib.emit.dashboards import render_dashboard
from obslib.verdict import Verdict


def coverage_table(catalogue: Catalogue) -> pd.DataFrame:
    """The spec's "Phase 5 Acceptance Criteria Coverage" section as data, one row per AC.

    Columns: ``criterion``, ``title``, ``dashboard``, ``panel`` (a panel title of the
    catalogue), ``query`` (what proves it here), ``spec_query`` (the spec's wording) and
    ``procedure`` (what the engineer does to validate it by hand).
    """
    q = ac1_queries("<window>")
    dashboard = render_dashboard(catalogue)["title"]
    rows = [
        ("AC1", catalogue.panel("cold-start").title, f"{q['share']} (decides); {q['p99']} (value)",
         "histogram_quantile(0.99, daedalus_cold_start_seconds_bucket) below 1500 s",
         "Set the dashboard to the post-deploy window; run both queries at its end with <window> its "
         "length. Pass when the share is at least 0.99, which puts the p99 at or below 1500 s."),
        ("AC2", catalogue.panel("slowest-tasks").title,
         f'Tempo GET /api/v2/traces/<trace_id>; by task: {{ span.{TASK_ID} = "<sentinel>" }}',
         f'{TASK_DURATION.name}{{task_id="<sentinel>"}}: cannot work, no task_id label by design',
         f"Open the trace by the id in the e2e output. It must carry the sentinel's {TASK_ID}, "
         "every PASS1 hop, and a completed result; its duration is root start to result collection."),
        ("AC5", "every panel", "POST /api/snapshots: the fleet overview, time range the run window, "
         "each Prometheus panel's data embedded",
         "GHA uploads a Grafana snapshot URL of the fleet overview scoped to the run window",
         "Open the snapshot URL the workflow uploaded: its time range is the run and its panels show "
         "data. Without Grafana, the rendered fleet-overview report is the artifact."),
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=["criterion", "panel", "query", "spec_query", "procedure"])
    table.insert(1, "title", table["criterion"].map(TITLES))
    table.insert(2, "dashboard", dashboard)
    return table


def acceptance_summary(results: Sequence[CriterionResult]) -> dict[str, Any]:
    """The results-JSON summary: each AC's verdict, value and evidence, and the overall verdict.

    ``failed`` lists the criteria that failed: a run with any must exit non-zero.
    """
    overall = Verdict.combine([r.verdict for r in results])
    return {
        "verdict": overall.value,
        "failed": [r.criterion for r in results if r.verdict is Verdict.FAIL],
        "inconclusive": [r.criterion for r in results if r.verdict is Verdict.INCONCLUSIVE],
        "criteria": {r.criterion: r.to_dict() for r in results},
    }
