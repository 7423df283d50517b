"""Phase 5 acceptance: the three observability-gated criteria, each with a verdict and its proof.

Work item 5 of the spec maps AC1, AC2 and AC5 to a panel and a query. Each ``check_ac*``
returns a :class:`CriterionResult` carrying the query or request that proves it, the value
found, a link and one line on what to do next, so a report of them is enough to validate the
criteria. Missing evidence is never a pass: it is ``INCONCLUSIVE``. Where the spec's queries
cannot be used as written, each criterion's module says what replaces them:

- :mod:`.ac1`: the p99 cold start after a deploy, decided by a bucket ratio;
- :mod:`.ac2`: the sentinel task's trace, found by id, audited and timed;
- :mod:`.ac5`: a Grafana snapshot of the fleet overview, else the rendered report;
- :mod:`.criteria`: what every check returns (:class:`CriterionResult`, :class:`Evidence`);
- :mod:`.summary`: the run's results-JSON summary and the spec's coverage table.
"""

from obslib.analysis.acceptance.ac1 import AC1_SHARE, BREAKDOWN_COLUMNS, ac1_queries, check_ac1
from obslib.analysis.acceptance.ac2 import check_ac2, trace_duration
from obslib.analysis.acceptance.ac5 import check_ac5
from obslib.analysis.acceptance.criteria import TITLES, CriterionResult, Evidence, panel_link
from obslib.analysis.acceptance.summary import acceptance_summary, coverage_table

__all__ = [
    "AC1_SHARE",
    "BREAKDOWN_COLUMNS",
    "TITLES",
    "CriterionResult",
    "Evidence",
    "ac1_queries",
    "acceptance_summary",
    "check_ac1",
    "check_ac2",
    "check_ac5",
    "coverage_table",
    "panel_link",
    "trace_duration",
]
