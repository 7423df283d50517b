"""Analyses: span, metric and log frames in, findings and verdicts out.

The trace-propagation audit lives here: :func:`audit_traces` checks every task's trace against
a hop profile, and :func:`broken_trace_queries` gives the TraceQL that finds each kind of break
in Tempo.
"""

from obslib.analysis.audit import CHECKS, AuditResult, audit_traces
from obslib.analysis.trace_index import sub_profile
from obslib.analysis.traceql import broken_trace_queries, query_for

__all__ = [
    "CHECKS",
    "AuditResult",
    "audit_traces",
    "broken_trace_queries",
    "query_for",
    "sub_profile",
]
