"""Lint emitted rules and dashboards against the exporters' real metrics.

The automated form of the spec's two cross-checks: every selector's metric must exist in an
exporter the release reads (at its version), every matcher's label must exist on that metric,
counters are read through ``rate``-like functions and gauges are not, alert templates only read
labels every output series carries, and dashboards follow Grafana's linter rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from obslib.catalogue.alerts import SEVERITIES
from obslib.catalogue.exporters import MetricCatalogue
from obslib.errors import CatalogueError
from obslib.promql import (
    BUILTIN_VARIABLES,
    COUNTER_FUNCTIONS,
    interpolate,
    output_labels,
    selectors,
    template_labels,
    variables_in,
)

_RATE_FUNCTIONS = {"rate", "irate", "increase"}
_LITERAL_WINDOW_RE = re.compile(r"\b(rate|irate|increase)\([^\[]*\[(\d+[smhdwy])\]")


@dataclass(frozen=True)
class Problem:
    """One lint finding: where it is and what is wrong."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def lint_expression(expr: str, metrics: MetricCatalogue, where: str) -> list[Problem]:
    """Problems with one PromQL expression's selectors."""
    try:
        found = selectors(expr)
    except CatalogueError as exc:
        return [Problem(where, str(exc))]
    problems: list[Problem] = []
    absent = metrics.absent_names()
    for sel in found:
        if not sel.metric:
            problems.append(Problem(where, "selector without a metric name cannot be checked"))
            continue
        defs = metrics.lookup(sel.metric)
        if not defs:
            problems.append(Problem(where, _unknown_metric(sel.metric, metrics, absent)))
            continue
        known = frozenset.union(*(d.labels for d in defs))
        for label in sorted(sel.label_names() - known):
            problems.append(Problem(where, _unknown_label(sel.metric, label, known, metrics)))
        for d in defs:
            exporter = metrics.exporter(d.exporter)
            ns_label = exporter.object_namespace_label
            if (
                ns_label == "namespace"
                and not exporter.honor_labels
                and "namespace" in sel.label_names()
            ):
                problems.append(
                    Problem(
                        where,
                        f"{sel.metric}: `namespace` is the {exporter.name} scrape target's namespace "
                        "(honorLabels is off); the object's namespace is `exported_namespace`",
                    )
                )
            if d.type in ("counter", "histogram") and not (set(sel.enclosing) & COUNTER_FUNCTIONS):
                problems.append(
                    Problem(
                        where, f"{sel.metric} is a counter: read it through rate() or increase()"
                    )
                )
            if d.type == "gauge" and set(sel.enclosing) & _RATE_FUNCTIONS:
                problems.append(
                    Problem(
                        where,
                        f"{sel.metric} is a gauge: rate()/increase() of a gauge is meaningless",
                    )
                )
    return _unique(problems)


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def _unknown_metric(name: str, metrics: MetricCatalogue, absent: frozenset[str]) -> str:
    if name in absent:
        return f"metric {name} does not exist: no exporter emits it (checked in the exporters' sources)"
    others = metrics.lookup(name, lint_only=False)
    if others:
        return f"metric {name} is emitted only by {others[0].exporter}, which this release does not read"
    return f"metric {name} is not emitted by any exporter this release reads"


def _unknown_label(metric: str, label: str, known: frozenset[str], metrics: MetricCatalogue) -> str:
    other = [d for d in metrics.lookup(metric, lint_only=False) if label in d.labels]
    hint = f" ({label} is {other[0].exporter}'s label)" if other else ""
    return f"metric {metric} has no label {label}{hint}; it has: {', '.join(sorted(known))}"


def lint_rules(groups: Sequence[Mapping[str, Any]], metrics: MetricCatalogue) -> list[Problem]:
    """Problems in a rule file's groups (the ``groups:`` list of a Prometheus rule file)."""
    problems: list[Problem] = []
    for group in groups:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            where = f"alert {name}"
            problems += lint_expression(rule["expr"], metrics, where)
            if "alert" not in rule:
                continue
            labels = rule.get("labels", {})
            if labels.get("severity") not in SEVERITIES:
                problems.append(Problem(where, f"severity must be one of {sorted(SEVERITIES)}"))
            if not labels.get("namespace"):
                problems.append(
                    Problem(where, "no static namespace label: AMC routing would miss it")
                )
            annotations = rule.get("annotations", {})
            for key in ("summary", "description", "runbook_url"):
                if not annotations.get(key):
                    problems.append(Problem(where, f"annotation {key} is missing"))
            problems += _template_problems(rule, metrics, where)
    return problems


def _template_problems(
    rule: Mapping[str, Any], metrics: MetricCatalogue, where: str
) -> list[Problem]:
    try:
        available = output_labels(rule["expr"], metrics.labels_of)
    except CatalogueError as exc:
        return [Problem(where, str(exc))]
    if available is None:
        return []  # an unknown metric is already reported
    problems = []
    for key, text in rule.get("annotations", {}).items():
        for label in sorted(template_labels(text) - available):
            problems.append(
                Problem(
                    where,
                    f"annotation {key} reads $labels.{label}, which not every firing series has",
                )
            )
    return problems


def dashboard_variables(dashboard: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each template variable of a dashboard with the values it can take."""
    out: dict[str, list[str]] = {}
    for var in dashboard.get("templating", {}).get("list", []):
        options = [o["value"] for o in var.get("options", []) if o.get("value") != "$__all"]
        out[var["name"]] = options or [str(var.get("query", ""))]
    return out


def variable_bindings(dashboard: Mapping[str, Any]) -> list[dict[str, str | list[str]]]:
    """Variable bindings to check queries with: each single value, and all values together."""
    variables = dashboard_variables(dashboard)
    multi = {v["name"] for v in dashboard.get("templating", {}).get("list", []) if v.get("multi")}
    base: dict[str, str | list[str]] = {k: v[0] for k, v in variables.items()}
    bindings = []
    for name, values in variables.items():
        bindings += [{**base, name: value} for value in values]
        if name in multi:
            bindings.append({**base, name: values})
    return bindings or [base]


def lint_dashboard(dashboard: Mapping[str, Any], metrics: MetricCatalogue) -> list[Problem]:
    """Problems with a Grafana dashboard model: structure, conventions and every PromQL target."""
    title = dashboard.get("title", "?")
    problems = _structure_problems(dashboard)
    defined = list(dashboard_variables(dashboard))
    for panel in dashboard.get("panels", []):
        where = f"dashboard {title!r} panel {panel.get('title')!r}"
        if not panel.get("description"):
            problems.append(Problem(where, "no description"))
        if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            problems.append(Problem(where, "no unit"))
        datasource = panel.get("datasource", {}).get("uid", "")
        if not variables_in(datasource):
            problems.append(Problem(where, f"datasource {datasource!r} is not a template variable"))
        for target in panel.get("targets", []):
            text = target.get("expr") or target.get("query") or ""
            undefined = sorted(variables_in(text) - set(defined) - set(BUILTIN_VARIABLES))
            problems += [Problem(where, f"uses undefined variable ${var}") for var in undefined]
            if "expr" not in target or undefined:
                continue
            for func, window in _LITERAL_WINDOW_RE.findall(text):
                problems.append(
                    Problem(where, f"{func}() over a literal [{window}]: use $__rate_interval")
                )
            for binding in variable_bindings(dashboard):
                problems += lint_expression(interpolate(text, binding), metrics, where)
    return _unique(problems)


def _structure_problems(dashboard: Mapping[str, Any]) -> list[Problem]:
    title = dashboard.get("title", "?")
    where = f"dashboard {title!r}"
    problems = []
    ids = [p.get("id") for p in dashboard.get("panels", [])]
    if len(ids) != len(set(ids)):
        problems.append(Problem(where, f"panel ids are not unique: {ids}"))
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard.get("panels", []):
        g = panel["gridPos"]
        if g["x"] + g["w"] > 24:
            problems.append(Problem(where, f"panel {panel['title']!r} is wider than the grid"))
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    problems.append(
                        Problem(where, f"panels {cells[(x, y)]!r} and {panel['title']!r} overlap")
                    )
                cells[(x, y)] = panel["title"]
    seen: list[str] = []
    for var in dashboard.get("templating", {}).get("list", []):
        text = f"{var.get('query', '')} {var.get('datasource', {}).get('uid', '')}"
        for used in variables_in(text) - set(BUILTIN_VARIABLES):
            if used not in seen:
                problems.append(
                    Problem(where, f"variable ${var['name']} uses ${used} before it is defined")
                )
        seen.append(var["name"])
    return _unique(problems)


def format_problems(problems: Iterable[Problem]) -> str:
    """One problem per line."""
    return "\n".join(str(p) for p in problems)
