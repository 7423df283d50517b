"""Do the emitted rules' and dashboards' selectors match live series? If not, why not.

The online half of the spec's cross-checks, after pint's ``promql/series`` check: every
selector of the rendered rule file and of every dashboard (interpolated for each agent-type
binding) is asked of Prometheus's series API over a window. A selector that matches nothing is
diagnosed against the series its metric does have:

``no_series``
    the metric name has no series at all in the window;
``label_missing``
    the metric exists, but a label a matcher needs is on none of its series;
``value_missing``
    the label exists, but no series has a matching value (the values that exist are listed,
    with generated Kubernetes name suffixes folded to ``*``: ``daedalus-copilot-*``);
``conflict``
    every matcher matches some series, but no series matches them all;
``state_absent``
    only matchers on a state label (``reason``, ``status``...) match nothing: the state did
    not occur in the window, which says nothing about drift;
``unexplained``
    Prometheus matched nothing, yet the metric's series satisfy the matchers read here;
``ok``
    the selector matched series.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from obslib.analysis.crosscheck.exporters import exporter_of_series, keda_identity
from obslib.catalogue import Catalogue
from obslib.catalogue.exporters import MetricCatalogue
from obslib.emit.dashboards import dashboard_models
from obslib.emit.rules import render_rule_file
from obslib.lint import variable_bindings
from obslib.promql import Selector, interpolate, selectors, variables_in
from obslib.sources.frames import conform
from obslib.sources.prometheus import PrometheusSource, TimeLike

# Labels whose values name a transient state: no series with reason="ImagePullBackOff" in a
# quiet week means nothing pulled badly, not that the rule is wrong.
STATE_LABELS = frozenset({"reason", "status", "phase", "condition"})
MAX_VALUES = 12
# Kubernetes generates name suffixes from consonants and the digits 2,4-9 (no vowels, so no words).
_GENERATED = re.compile(r"^[bcdfghjklmnpqrstvwxz2456789]{5,10}$")

SELECTOR_COLUMNS: dict[str, str] = {
    "kind": "str",  # rule | dashboard
    "name": "str",  # alert name or dashboard title
    "panel": "str",  # panel title ("" for a rule)
    "binding": "str",  # the template variables the query was interpolated with, e.g. agent_type=copilot
    "selector": "str",  # the selector as PromQL text
    "metric": "str",
    "matchers": "object",  # tuple of (label, op, value)
    "functions": "object",  # tuple of the functions enclosing it anywhere in the expression
    "matched": "bool",
    "series": "int64",  # series matched in the window
    "diagnosis": "str",  # see the module docstring
    "label": "str",  # the label the diagnosis is about ("" for ok / no_series)
    "values": "object",  # list: values of `label` that exist (label_missing: labels that exist)
    "similar": "object",  # list: labels that exist and resemble a missing one
    "detail": "str",  # one sentence for the report
    "expected_exporter": "str",  # who the catalogue says emits the metric
    "exporter": "str",  # who the data looks like ("" without data; "a+b" when both)
    "exporter_version": "str",  # KEDA: version range the data implies
}


@dataclass(frozen=True)
class Use:
    """One place an emitted artifact reads a selector."""

    kind: str
    name: str
    panel: str
    binding: str
    selector: Selector
    functions: tuple[str, ...] = field(default=())


def selector_text(sel: Selector) -> str:
    """The selector as PromQL, e.g. ``up{job="x"}``."""

    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    body = ", ".join(f"{label}{op}{quoted(value)}" for label, op, value in sel.matchers)
    return f"{sel.metric or ''}{{{body}}}"


def selector_uses(c: Catalogue) -> list[Use]:
    """Every selector of the rendered rules and dashboards (each agent-type binding)."""
    uses: list[Use] = []
    for group in render_rule_file(c)["groups"]:
        for rule in group["rules"]:
            for sel in selectors(rule["expr"]):
                uses.append(Use("rule", rule["alert"], "", "", sel, sel.enclosing))
    for dashboard in dashboard_models(c).values():
        bindings = variable_bindings(dashboard)
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                if "expr" not in target:
                    continue  # TraceQL, not Prometheus
                used = variables_in(target["expr"])
                for binding in bindings:
                    shown = ", ".join(
                        f"{k}={v if isinstance(v, str) else '|'.join(v)}"
                        for k, v in sorted(binding.items())
                        if k in used
                    )
                    for sel in selectors(interpolate(target["expr"], binding)):
                        uses.append(
                            Use(
                                "dashboard",
                                dashboard["title"],
                                panel["title"],
                                shown,
                                sel,
                                sel.enclosing,
                            )
                        )
    return uses


def matcher_mask(frame: pd.DataFrame, label: str, op: str, value: str) -> np.ndarray:
    """Which series of ``frame`` (one column per label, "" when absent) the matcher selects."""
    column = frame[label] if label in frame.columns else pd.Series("", index=frame.index)
    column = column.fillna("").astype(str)
    if op in ("=", "!="):
        hit = (column == value).to_numpy()
    else:
        try:
            hit = column.str.fullmatch(value).to_numpy(dtype=bool)  # PromQL regexes are anchored
        except re.error:
            hit = np.zeros(len(column), dtype=bool)
    return hit if op in ("=", "=~") else ~hit


def name_shape(value: str) -> str:
    """``daedalus-copilot-b7x2k-9qzvd`` -> ``daedalus-copilot-*``; other values unchanged."""
    parts = value.split("-")
    keep = len(parts)
    while keep > 1 and _GENERATED.match(parts[keep - 1]):
        keep -= 1
    return value if keep == len(parts) else "-".join(parts[:keep]) + "-*"


def value_shapes(values: pd.Series) -> list[str]:
    """Distinct non-empty values folded by :func:`name_shape`, most frequent first."""
    shapes = values[values != ""].map(name_shape).value_counts(sort=True)
    return [str(s) for s in shapes.index[:MAX_VALUES]]


@dataclass(frozen=True)
class Diagnosis:
    """Why a selector matched nothing, as far as the metric's series tell."""

    diagnosis: str
    label: str = ""
    values: tuple[str, ...] = ()
    similar: tuple[str, ...] = ()
    detail: str = ""


def _present_labels(frame: pd.DataFrame) -> list[str]:
    skip = {"series", "__name__"}
    return sorted(c for c in frame.columns if c not in skip and (frame[c] != "").any())


def _all(masks: list[np.ndarray], n: int) -> np.ndarray:
    out = np.ones(n, dtype=bool)
    for mask in masks:
        out &= mask
    return out


def diagnose(sel: Selector, frame: pd.DataFrame) -> Diagnosis:
    """Diagnose ``sel`` against ``frame``, the series of its metric (``PrometheusSource.series``)."""
    text = selector_text(sel)
    if frame.empty:
        return Diagnosis("no_series", detail=f"{sel.metric} has no series in the window")
    matchers = [m for m in sel.matchers if m[0] != "__name__"]
    masks = [matcher_mask(frame, *m) for m in matchers]
    if _all(masks, len(frame)).any():
        return Diagnosis("ok", detail=f"{text} matches series")
    culprits = [i for i, mask in enumerate(masks) if not mask.any()]
    kind = ""
    if not culprits:  # each matcher matches alone: find one that conflicts with the rest
        kind = "conflict"
        for i in range(len(masks)):
            if _all(masks[:i] + masks[i + 1 :], len(frame)).any():
                culprits = [i]
                break
        culprits = culprits or list(range(len(masks)))  # only several together conflict
    culprits.sort(key=lambda i: matchers[i][0] in STATE_LABELS)  # drift before state
    first = culprits[0]
    label, op, value = matchers[first]
    context = _all([m for i, m in enumerate(masks) if i not in culprits], len(frame))
    scope = [f'{lb}{o}"{v}"' for i, (lb, o, v) in enumerate(matchers) if i not in culprits]
    if not context.any():
        context, scope = np.ones(len(frame), dtype=bool), []
    where = f" (among series with {', '.join(scope)})" if scope else ""
    present = _present_labels(frame)
    matcher = f'{label}{op}"{value}"'
    if label not in present and not matcher_mask(pd.DataFrame({label: [""]}), *matchers[first])[0]:
        similar = tuple(difflib.get_close_matches(label, present, n=3, cutoff=0.6))
        hint = f"; similar: {', '.join(similar)}" if similar else ""
        return Diagnosis(
            "label_missing",
            label,
            tuple(present),
            similar,
            f"no series of {sel.metric} has label {label}{hint}; its labels: {', '.join(present)}",
        )
    values = tuple(value_shapes(frame.loc[context, label])) if label in frame.columns else ()
    shown = ", ".join(values) or "none"
    if all(matchers[i][0] in STATE_LABELS for i in culprits):
        return Diagnosis(
            "state_absent",
            label,
            values,
            detail=f"no series has {matcher}{where}: that state did not occur in the window; "
            f"{label} values: {shown}",
        )
    others = [matchers[i][0] for i in culprits[1:] if matchers[i][0] != label]
    also = f"; {', '.join(others)} also matches nothing" if others else ""
    if kind == "conflict":
        detail = f"each matcher matches some series, but none has {matcher}{where}; {label} values there: {shown}"
    else:
        detail = f"no series has {matcher}{where}; {label} values: {shown}{also}"
    return Diagnosis(kind or "value_missing", label, values, detail=detail)


def _expected(metrics: MetricCatalogue, metric: str) -> str:
    return "+".join(dict.fromkeys(d.exporter for d in metrics.lookup(metric)))


def _keyed(uses: Sequence[Use]) -> dict[tuple[str, str, str, str], list[Use]]:
    rows: dict[tuple[str, str, str, str], list[Use]] = {}
    for use in uses:
        key = (use.kind, use.name, use.panel, selector_text(use.selector))
        rows.setdefault(key, []).append(use)
    return rows


def selector_report(
    source: PrometheusSource, catalogue: Catalogue, start: TimeLike, end: TimeLike
) -> pd.DataFrame:
    """One row per (where, selector) of the emitted rules and dashboards (``SELECTOR_COLUMNS``).

    Args:
        source: the Prometheus to ask.
        catalogue: the release whose rules and dashboards are checked.
        start: window start (datetime or unix seconds).
        end: window end.

    Returns:
        The report, rules first, in the order the artifacts read the selectors.
    """
    metrics = catalogue.metrics
    matched: dict[str, pd.DataFrame] = {}
    by_metric: dict[str, pd.DataFrame] = {}

    def series_of(match: str, cache: dict[str, pd.DataFrame]) -> pd.DataFrame:
        if match not in cache:
            cache[match] = source.series([match], start, end)
        return cache[match]

    keda: tuple[str, str] | None = None
    rows = []
    for (kind, name, panel, text), uses in _keyed(selector_uses(catalogue)).items():
        sel = uses[0].selector
        metric = sel.metric or ""
        found = series_of(text, matched)
        if not found.empty or not metric:
            ok = not found.empty
            detail = f"matches {len(found)} series" if ok else "a selector without a metric name"
            diagnosis = Diagnosis("ok" if ok else "no_series", detail=detail)
            evidence = found
        else:
            evidence = series_of(f'{{__name__="{metric}"}}', by_metric)
            diagnosis = diagnose(sel, evidence)
            if diagnosis.diagnosis == "ok":  # Prometheus disagrees with the local reading
                diagnosis = Diagnosis(
                    "unexplained",
                    detail="Prometheus finds no series, but the metric's series match when "
                    "read here: check the regexes (RE2 and Python differ on a few features)",
                )
        expected = _expected(metrics, metric)
        exporter = exporter_of_series(evidence, metric, metrics)
        version = ""
        if "keda-operator" in (expected, exporter):
            keda = keda or keda_identity(source, catalogue, start, end)
            version = keda[0]
        rows.append(
            {
                "kind": kind,
                "name": name,
                "panel": panel,
                "binding": "; ".join(dict.fromkeys(u.binding for u in uses if u.binding)),
                "selector": text,
                "metric": metric,
                "matchers": sel.matchers,
                "functions": tuple(sorted({f for u in uses for f in u.functions})),
                "matched": not found.empty,
                "series": len(found),
                "diagnosis": diagnosis.diagnosis,
                "label": diagnosis.label,
                "values": list(diagnosis.values),
                "similar": list(diagnosis.similar),
                "detail": diagnosis.detail,
                "expected_exporter": expected,
                "exporter": exporter,
                "exporter_version": version,
            }
        )
    frame = pd.DataFrame(rows, columns=list(SELECTOR_COLUMNS))
    return conform(frame, SELECTOR_COLUMNS)


def unmatched(report: pd.DataFrame, kind: str | None = None) -> pd.DataFrame:
    """Rows that matched nothing for a reason other than an absent state (``kind``: rule|dashboard)."""
    rows = report[~report["matched"] & (report["diagnosis"] != "state_absent")]
    return rows if kind is None else rows[rows["kind"] == kind]
