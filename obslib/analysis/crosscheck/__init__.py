"""The observability cross-check: do the emitted artifacts agree with a live Prometheus?

Over one window, frames in and frames out, for the cross-check notebook:

- :mod:`.selectors`: does every selector of the rules and dashboards match series, and if not,
  why (pint-style);
- :mod:`.exporters`: which exporters (and KEDA version) the data comes from;
- :mod:`.cardinality`: the ``agent_type`` values seen against the bounded set (the spec's open
  question, answered from data);
- :mod:`.noise`: how often each alert would have fired;
- :mod:`.runbook`: runbook completeness;
- :mod:`.platform`: the findings as the platform naming mismatches they reveal, each with what
  to change;
- :mod:`.run`: :func:`run_crosscheck` runs them all; :func:`crosscheck_summary` is the
  results-JSON summary with its verdict.
"""

from obslib.analysis.crosscheck.cardinality import (
    CARDINALITY_COLUMNS,
    agent_type_cardinality,
    cardinality_verdict,
)
from obslib.analysis.crosscheck.exporters import exporter_report
from obslib.analysis.crosscheck.noise import NOISE_COLUMNS, alert_noise
from obslib.analysis.crosscheck.platform import MISMATCH_COLUMNS, platform_mismatches
from obslib.analysis.crosscheck.run import CrossCheck, crosscheck_summary, run_crosscheck
from obslib.analysis.crosscheck.runbook import check_runbook
from obslib.analysis.crosscheck.selectors import selector_report

__all__ = [
    "CARDINALITY_COLUMNS",
    "MISMATCH_COLUMNS",
    "NOISE_COLUMNS",
    "CrossCheck",
    "agent_type_cardinality",
    "alert_noise",
    "cardinality_verdict",
    "check_runbook",
    "crosscheck_summary",
    "exporter_report",
    "platform_mismatches",
    "run_crosscheck",
    "selector_report",
]
