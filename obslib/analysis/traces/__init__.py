"""The trace audit: does each task's trace survive every hop of the Pass-1 chain?

:func:`audit_traces` checks every task's spans against a hop profile (the expected tree) and
says, per task, whether its trace is whole and where it first breaks. The modules, in the order
the audit uses them:

- :mod:`.index`: a span frame as arrays (trace codes, parent rows, the hop of each span);
- :mod:`.membership`: which task each span belongs to (by task id, trace, or adoption);
- :mod:`.checks`: the checks, and what each means (:data:`CHECKS`);
- :mod:`.findings`: what the checks found (:class:`Findings`) and the result's frames;
- :mod:`.audit`: :func:`audit_traces` and its :class:`AuditResult`;
- :mod:`.stats`: figures the report shows beside it (hop latency, logs without a trace,
  sample traces, the injected faults against what was found);
- :mod:`.traceql`: the TraceQL that finds each kind of break in Tempo.
"""

from obslib.analysis.traces.audit import AuditResult, audit_traces
from obslib.analysis.traces.checks import CHECKS
from obslib.analysis.traces.findings import Findings
from obslib.analysis.traces.traceql import broken_trace_queries, query_for
from obslib.catalogue.hops import sub_profile

__all__ = [
    "CHECKS",
    "AuditResult",
    "Findings",
    "audit_traces",
    "broken_trace_queries",
    "query_for",
    "sub_profile",
]
