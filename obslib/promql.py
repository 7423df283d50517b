"""PromQL helpers: Grafana-style variable interpolation, parsing, selectors, output labels.

Parsing uses ``promql-parser`` (a Rust PromQL parser with Python bindings). Output-label
inference answers "which labels does every series of this expression carry?", so alert
templates can be checked: ``$labels.x`` on a leg of an ``or`` that lacks ``x`` renders empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import promql_parser

from obslib.errors import CatalogueError

# Grafana's built-in variables, and what they become when a query runs outside Grafana.
BUILTIN_VARIABLES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
    "__interval_ms": "60000",
}
_VARIABLE_RE = re.compile(
    r"\$\{([A-Za-z_]\w*)(?::(\w+))?\}|\$([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)\]\]"
)
_TEMPLATE_LABEL_RE = re.compile(r"\$labels\.(\w+)")

# Functions whose result keeps the labels of their (first) vector argument, minus __name__.
_KEEP_LABELS = {
    "abs",
    "absent_over_time",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "count_over_time",
    "delta",
    "deriv",
    "exp",
    "floor",
    "holt_winters",
    "idelta",
    "increase",
    "irate",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "max_over_time",
    "min_over_time",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rate",
    "resets",
    "round",
    "sgn",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "timestamp",
}
# Functions a counter may be read through; reading a counter's raw value is almost always a bug.
COUNTER_FUNCTIONS = {"rate", "irate", "increase", "resets", "absent", "absent_over_time"}


@dataclass(frozen=True)
class Selector:
    """A vector selector found in an expression."""

    metric: str | None
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value), op in = != =~ !~
    enclosing: tuple[str, ...] = ()  # names of the functions around it, innermost first

    def label_names(self) -> set[str]:
        """Labels its matchers name."""
        return {name for name, _, _ in self.matchers}


def variables_in(text: str) -> set[str]:
    """Names of the Grafana variables ``text`` uses (``$x``, ``${x}``, ``${x:fmt}``, ``[[x]]``)."""
    return {next(g for g in (m[0], m[2], m[3]) if g) for m in _VARIABLE_RE.findall(text)}


def interpolate(text: str, variables: Mapping[str, str | Sequence[str]]) -> str:
    """Replace Grafana variables as Grafana does for a Prometheus query.

    A list value is formatted as a regex alternation ``(a|b)``; built-ins get fixed stand-ins.
    An unknown variable raises ``CatalogueError``.
    """

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3) or match.group(4)
        if name in variables:
            raw = variables[name]
        elif name in BUILTIN_VARIABLES:
            raw = BUILTIN_VARIABLES[name]
        else:
            raise CatalogueError(f"variable ${name} is not defined")
        if isinstance(raw, str):
            return re.escape(raw) if match.group(2) == "regex" else raw
        escaped = [re.escape(v) for v in raw]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"

    return _VARIABLE_RE.sub(value, text)


def parse(expr: str) -> object:
    """Parse PromQL, raising ``CatalogueError`` with the parser's message on failure."""
    try:
        return promql_parser.parse(expr)
    except Exception as exc:  # the binding raises ValueError/RuntimeError variants
        raise CatalogueError(f"invalid PromQL {expr!r}: {exc}") from exc


def _kind(node: object) -> str:
    return type(node).__name__


def _matchers(vs: object) -> tuple[tuple[str, str, str], ...]:
    ops = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}
    out = []
    for m in vs.matchers.matchers:  # type: ignore[attr-defined]
        op = str(m.op).rsplit(".", 1)[-1]
        out.append((m.name, ops.get(op, op), m.value))
    return tuple(out)


def _children(node: object) -> list[object]:
    kind = _kind(node)
    if kind == "BinaryExpr":
        return [node.lhs, node.rhs]  # type: ignore[attr-defined]
    if kind in ("ParenExpr", "UnaryExpr", "SubqueryExpr", "AggregateExpr"):
        return [node.expr]  # type: ignore[attr-defined]
    if kind == "Call":
        return list(node.args)  # type: ignore[attr-defined]
    if kind == "MatrixSelector":
        return [node.vector_selector]  # type: ignore[attr-defined]
    return []


def selectors(expr: str) -> list[Selector]:
    """Every vector selector in ``expr``, with the functions that enclose it."""
    found: list[Selector] = []

    def visit(node: object, enclosing: tuple[str, ...]) -> None:
        kind = _kind(node)
        if kind == "VectorSelector":
            found.append(Selector(node.name, _matchers(node), enclosing))  # type: ignore[attr-defined]
            return
        inner = (node.func.name, *enclosing) if kind == "Call" else enclosing  # type: ignore[attr-defined]
        for child in _children(node):
            visit(child, inner)

    visit(parse(expr), ())
    return found


LabelLookup = Callable[[str], "frozenset[str] | None"]


def output_labels(expr: str, labels_of: LabelLookup) -> frozenset[str] | None:
    """Labels every output series of ``expr`` carries; ``None`` when a metric is unknown.

    ``labels_of(metric)`` gives a series name's label names. Scalars give an empty set.
    """

    def walk(node: object) -> frozenset[str] | None:
        kind = _kind(node)
        if kind == "VectorSelector":
            return labels_of(node.name) if node.name else None  # type: ignore[attr-defined]
        if kind == "MatrixSelector":
            return walk(node.vector_selector)  # type: ignore[attr-defined]
        if kind in ("NumberLiteral", "StringLiteral"):
            return frozenset()
        if kind in ("ParenExpr", "UnaryExpr", "SubqueryExpr"):
            return walk(node.expr)  # type: ignore[attr-defined]
        if kind == "AggregateExpr":
            return _aggregate(node, walk(node.expr))  # type: ignore[attr-defined]
        if kind == "Call":
            return _call(node, walk)
        if kind == "BinaryExpr":
            return _binary(node, walk)
        raise CatalogueError(f"cannot infer labels of a {kind} in {expr!r}")

    return walk(parse(expr))


def _aggregate(node: object, inner: frozenset[str] | None) -> frozenset[str] | None:
    op = str(node.op)  # type: ignore[attr-defined]
    modifier = node.modifier  # type: ignore[attr-defined]
    if op in ("topk", "bottomk"):
        return inner
    if inner is None:
        return None
    if modifier is None:
        return frozenset()
    names = frozenset(modifier.labels)
    return inner & names if str(modifier.type).endswith("By") else inner - names


def _call(node: object, walk: Callable[[object], frozenset[str] | None]) -> frozenset[str] | None:
    name = node.func.name  # type: ignore[attr-defined]
    args = list(node.args)  # type: ignore[attr-defined]
    if name in ("absent", "absent_over_time"):
        arg = args[0]
        vs = arg.vector_selector if _kind(arg) == "MatrixSelector" else arg
        if _kind(vs) != "VectorSelector":
            return frozenset()
        return frozenset(n for n, op, _ in _matchers(vs) if op == "=")
    if name in ("vector", "time", "scalar", "pi"):
        return frozenset()
    if name == "histogram_quantile":
        buckets = walk(args[1])
        return None if buckets is None else buckets - {"le"}
    inner = walk(args[0]) if args else frozenset()
    if inner is None:
        return None
    if name in ("label_replace", "label_join"):
        return inner | {args[1].val}
    if name in _KEEP_LABELS:
        return inner
    raise CatalogueError(f"output labels of {name}() are not known to obslib")


def _binary(node: object, walk: Callable[[object], frozenset[str] | None]) -> frozenset[str] | None:
    op = str(node.op)  # type: ignore[attr-defined]
    lhs, rhs = walk(node.lhs), walk(node.rhs)  # type: ignore[attr-defined]
    if op == "or":
        return None if lhs is None or rhs is None else lhs & rhs
    if lhs is None:
        return None
    lhs_scalar = _kind(node.lhs) == "NumberLiteral"  # type: ignore[attr-defined]
    if lhs_scalar:
        return rhs
    modifier = node.modifier  # type: ignore[attr-defined]
    if modifier is not None and modifier.group_labels and op not in ("and", "unless"):
        return lhs | frozenset(modifier.group_labels)
    return lhs


def template_labels(text: str) -> set[str]:
    """Label names an alert template reads through ``$labels.<name>``."""
    return set(_TEMPLATE_LABEL_RE.findall(text))
