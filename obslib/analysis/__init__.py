"""Analyses: span, metric and log frames in, findings and verdicts out.

Three families, and the acceptance gate built on them:

- :mod:`.traces`: the trace audit (does each task's trace survive every hop?);
- :mod:`.slo`: SLO work (baselines, their stability, proposed Pass-2 thresholds and rules, alert
  replay);
- :mod:`.crosscheck`: the observability cross-check (do the emitted artifacts agree with live
  data?);
- :mod:`.acceptance`: the Phase-5 acceptance criteria AC1, AC2 and AC5.

The trace audit's entry points are here too, as before: :func:`audit_traces` checks every
task's trace against a hop profile, :func:`broken_trace_queries` gives the TraceQL that finds
each kind of break in Tempo, and ``trace_stats`` is the module of the report's other figures.
"""

from obslib.analysis.traces import (
    CHECKS,
    AuditResult,
    audit_traces,
    broken_trace_queries,
    query_for,
    sub_profile,
)
from obslib.analysis.traces import stats as trace_stats

__all__ = [
    "CHECKS",
    "AuditResult",
    "audit_traces",
    "broken_trace_queries",
    "query_for",
    "sub_profile",
    "trace_stats",
]
