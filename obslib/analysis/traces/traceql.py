"""TraceQL that finds each class of broken trace in Tempo, built from a hop profile's names.

Paste a query into Grafana's Tempo explorer (or ``/api/search?q=``) to list the traces the audit
flags. Keys are the audit's checks (:data:`obslib.analysis.traces.checks.CHECKS`), as ``<check>:<hop>``
for checks about one hop and ``<check>`` for the others, plus ``error`` for spans with status
error. The missing-hop and detached-hop queries use Tempo's negated structural operators, which
Tempo marks experimental (they may return false positives); the recorded sample
``tests/samples/tempo/search-structural-missing-child.json`` shows ``!>`` finding the agent side
of the broken-pipe trace. TraceQL cannot compare a span with its parent's start, count span ids
or compare an attribute with the trace id, so ``skew``, ``duplicate_span_id`` and
``shared_trace`` have no query, and the envelope-mismatch query lists the envelope's trace id for
the reader to compare.
"""

from __future__ import annotations

from obslib.catalogue.hops import (
    ENVELOPE_TRACE_ID,
    PASS1,
    RESULT_SUBJECT_PREFIX,
    SERVICE_AGENT_PREFIX,
    TASK_ID,
    Hop,
    HopProfile,
)


def _literal_prefix(prefix: str) -> str:
    """A regex matching values that start with ``prefix`` (dots in brackets, no backslashes)."""
    return prefix.replace(".", "[.]") + ".*"


def hop_selector(hop: Hop, *extra: str) -> str:
    """The TraceQL spanset filter for the spans of ``hop`` (and any ``extra`` conditions)."""
    parts = [f'name = "{hop.span}"', f"kind = {hop.kind.lower()}"]
    if hop.match_prefix:
        parts.append(f'span.{hop.match_attribute} =~ "{_literal_prefix(hop.match_prefix)}"')
    return "{ " + " && ".join([*parts, *extra]) + " }"


def _service_filter(profile: HopProfile) -> str:
    names = dict.fromkeys(
        _literal_prefix(SERVICE_AGENT_PREFIX)
        if "{agent}" in h.service
        else h.service.replace(".", "[.]")
        for h in profile.hops
    )
    return f'resource.service.name =~ "{"|".join(names)}"'


def broken_trace_queries(profile: HopProfile = PASS1) -> dict[str, str]:
    """TraceQL per class of broken trace, for the hops of ``profile``.

    Returns:
        ``{"no_root": ..., "orphan": ..., "split": ..., "several_roots": ..., "error": ...,
        "missing:<hop>": ..., "detached:<hop>": ..., "orphan:<hop>": ...,
        "wrong_parent:<hop>": ..., "wrong_kind:<hop>": ..., "extra:<hop>": ...,
        "envelope_missing": ..., "envelope_mismatch": ...}``.
    """
    root = profile.root
    services = _service_filter(profile)
    # Spans with no parent span in their trace, other than the chain's root: orphans whose parent
    # was never exported, and the first span of a trace split off mid-chain.
    no_parent = f'{{ }} !> {{ {services} && name != "{root.span}" }}'
    queries = {
        "no_root": no_parent,
        "orphan": no_parent,
        "split": f'{{ nestedSetParent < 0 && {services} && name != "{root.span}" }}',
        "several_roots": f"{hop_selector(root, 'nestedSetParent < 0')} | select(span.{TASK_ID})",
        "error": f"{{ status = error && {services} }}",
        f"wrong_kind:{root.key}": _wrong_kind(root),
        f"extra:{root.key}": f"{hop_selector(root)} | count() > {root.count}",
    }
    for hop in profile.hops:
        if hop.parent is None:
            continue
        parent = hop_selector(profile.hop(hop.parent))
        # `{A} !< {B}`: spans B that are no parent of an A; `{A} !> {B}`: spans B under no A.
        queries[f"missing:{hop.key}"] = f"{hop_selector(hop)} !< {parent}"
        for check in ("detached", "orphan", "wrong_parent"):
            queries[f"{check}:{hop.key}"] = f"{parent} !> {hop_selector(hop)}"
        queries[f"wrong_kind:{hop.key}"] = _wrong_kind(hop)
        queries[f"extra:{hop.key}"] = f"{hop_selector(hop)} | count() > {hop.count}"
        if profile.hop(hop.parent).match_prefix == RESULT_SUBJECT_PREFIX:
            attribute = f"span.{ENVELOPE_TRACE_ID}"
            queries["envelope_missing"] = hop_selector(hop, f"{attribute} = nil")
            queries["envelope_mismatch"] = f"{hop_selector(hop)} | select({attribute})"
    queries[f"missing:{root.key}"] = no_parent
    return queries


def _wrong_kind(hop: Hop) -> str:
    selector = hop_selector(hop)
    return selector.replace(f"kind = {hop.kind.lower()}", f"kind != {hop.kind.lower()}")


def query_for(check: str, hop: str = "", profile: HopProfile = PASS1) -> str | None:
    """The TraceQL for one finding of the audit (a ``problems`` row), or None if it has none."""
    queries = broken_trace_queries(profile)
    return queries.get(f"{check}:{hop}") or queries.get(check)
