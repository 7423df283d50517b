"""Runbook completeness: every alert has its section, every alert section an alert, none with gaps.

The spec's template for each alert: **Means**, **Reproduce in test cluster** (commands),
**Diagnose** (a Grafana dashboard panel, a LogQL query, a TraceQL query), **Mitigate** (short-term
actions and a ticket-the-fix link). A section is found by its heading's GitHub anchor, which
must be the alert's runbook anchor. A panel must be a real panel title of the catalogue; the
queries must at least look like queries (a braced stream selector or spanset with a condition,
balanced braces and quotes).
"""

from __future__ import annotations

import re

import pandas as pd

from obslib.catalogue import Catalogue
from obslib.emit.runbook import github_anchor
from obslib.sources.frames import conform

RUNBOOK_COLUMNS: dict[str, str] = {
    "alert": "str",  # "" for a section that names no known alert
    "anchor": "str",
    "section": "bool",  # a section with the alert's anchor exists
    "panel": "str",  # the panel title it names ("" if none)
    "logql": "str",
    "traceql": "str",
    "ticket": "str",  # the ticket-the-fix URL
    "missing": "object",  # list of what is missing or wrong, e.g. ["traceql", "panel 'X' does not exist"]
    "complete": "bool",
}
PARTS = ("means", "reproduce", "diagnose", "panel", "logql", "traceql", "mitigate", "ticket")

_HEADING_RE = re.compile(r"^## +(.+?)\s*$", re.M)
_ALERT_RE = re.compile(r"\*\*Alert:\*\*\s*`([^`]+)`")
_MEANS_RE = re.compile(r"\*\*Means:\*\*[ \t]*(\S.*)")
_PANEL_RE = re.compile(r"[Dd]ashboard panel \*\*(.+?)\*\*")
_LOGQL_RE = re.compile(r"\(LogQL\):\s*`([^`]*)`")
_TRACEQL_RE = re.compile(r"\(TraceQL\):\s*`([^`]*)`")
_LINK_RE = re.compile(r"\[[^\]]+\]\((https?://[^)\s]+)\)")
_FENCE_RE = re.compile(r"```[a-z]*\n(.*?)```", re.S)
_MATCHER = r'[A-Za-z_]\w*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"'
_STREAM_SELECTOR_RE = re.compile(rf"^\{{\s*{_MATCHER}(?:\s*,\s*{_MATCHER})*\s*\}}")
_CONDITION_RE = re.compile(r"[\w.]+\s*(?:=~|!~|!=|>=|<=|=|>|<)\s*\S")
_PART_RE = re.compile(r"^\*\*([A-Z][^*]*?):\*\*", re.M)


def sections(text: str) -> list[tuple[str, str]]:
    """``(heading, body)`` of every ``## `` section, in order."""
    heads = list(_HEADING_RE.finditer(text))
    return [
        (m.group(1), text[m.end() : heads[i + 1].start() if i + 1 < len(heads) else len(text)])
        for i, m in enumerate(heads)
    ]


def _part(body: str, name: str) -> str:
    """Text of the ``**<name>:**`` part of a section, up to the next bold part heading."""
    start = body.find(f"**{name}:**")
    if start < 0:
        return ""
    rest = body[start + len(name) + 5 :]
    following = _PART_RE.search(rest)
    return rest[: following.start()] if following else rest


def _balanced(query: str) -> bool:
    depth = 0
    for ch in re.sub(r'"(?:[^"\\]|\\.)*"', '""', query):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0 and query.count('"') % 2 == 0


def looks_like_logql(query: str) -> bool:
    """A stream selector of label matchers (``{a="b", c=~"d"}``), then a balanced pipeline."""
    return bool(_STREAM_SELECTOR_RE.match(query)) and _balanced(query)


def looks_like_traceql(query: str) -> bool:
    """A spanset filter ``{ <attribute> <op> <value> ... }``, braces and quotes balanced."""
    inner = query.strip()
    return (
        inner.startswith("{")
        and inner.endswith("}")
        and bool(_CONDITION_RE.search(inner[1:-1]))
        and _balanced(inner)
    )


def _commands(part: str) -> bool:
    blocks = _FENCE_RE.findall(part)
    lines = [ln.strip() for block in blocks for ln in block.splitlines()]
    return any(ln and not ln.startswith("#") for ln in lines)


def _check_section(body: str, alert: str, catalogue: Catalogue) -> tuple[dict[str, str], list[str]]:
    """What the section names (panel, queries, ticket URL), and what it lacks."""
    titles = {p.title for p in catalogue.panels}
    missing: list[str] = []
    named = _ALERT_RE.search(body)
    if named and named.group(1) != alert:
        missing.append(f"section names alert {named.group(1)!r}")
    if not _MEANS_RE.search(body):
        missing.append("means")
    if not _commands(_part(body, "Reproduce in test cluster")):
        missing.append("reproduce")
    diagnose = _part(body, "Diagnose")
    if not diagnose:
        missing.append("diagnose")
    panel = _PANEL_RE.search(diagnose)
    logql = _LOGQL_RE.search(diagnose)
    traceql = _TRACEQL_RE.search(diagnose)
    if not panel:
        missing.append("panel")
    elif panel.group(1) not in titles:
        missing.append(f"panel {panel.group(1)!r} does not exist")
    if not logql:
        missing.append("logql")
    elif not looks_like_logql(logql.group(1)):
        missing.append(f"logql {logql.group(1)!r} is not a LogQL query")
    if not traceql:
        missing.append("traceql")
    elif not looks_like_traceql(traceql.group(1)):
        missing.append(f"traceql {traceql.group(1)!r} is not a TraceQL query")
    mitigate = _part(body, "Mitigate")
    bullets = [ln for ln in mitigate.splitlines() if ln.lstrip().startswith(("- ", "* "))]
    tickets = [u for u in _LINK_RE.findall(mitigate) if u.startswith(catalogue.settings.ticket_url)]
    if not [b for b in bullets if not _LINK_RE.search(b)]:
        missing.append("mitigate")
    if not tickets:
        missing.append("ticket")
    named_parts = {
        "panel": panel.group(1) if panel else "",
        "logql": logql.group(1) if logql else "",
        "traceql": traceql.group(1) if traceql else "",
        "ticket": tickets[0] if tickets else "",
    }
    return named_parts, missing


def check_runbook(text: str, catalogue: Catalogue) -> pd.DataFrame:
    """One row per alert (and per alert section without an alert) with what its section lacks.

    A section counts as an alert section when it has an ``**Alert:**`` line or a ``**Means:**``
    part; other sections (such as how to switch the receiver) are prose and are not checked.

    Args:
        text: the runbook Markdown (e.g. ``runbooks/runbook.md``).
        catalogue: the release whose alerts, anchors, panel titles and ticket URL apply.

    Returns:
        ``RUNBOOK_COLUMNS`` rows; ``complete`` is True when nothing is missing.
    """
    found: dict[str, list[str]] = {}
    for heading, body in sections(text):
        found.setdefault(github_anchor(heading), []).append(body)
    rows = []
    for alert in catalogue.alerts:
        bodies = found.get(alert.anchor, [])
        row: dict[str, object] = {"alert": alert.name, "anchor": alert.anchor}
        if not bodies:
            row.update(section=False, panel="", logql="", traceql="", ticket="")
            row["missing"] = ["section", *PARTS]
        else:
            named_parts, missing = _check_section(bodies[0], alert.name, catalogue)
            if len(bodies) > 1:
                missing.append(f"{len(bodies)} sections share the anchor")
            row.update(section=True, missing=missing, **named_parts)
        rows.append(row)
    anchors = {a.anchor for a in catalogue.alerts}
    known = {a.name for a in catalogue.alerts}
    for anchor, bodies in found.items():
        body = bodies[0]
        named = _ALERT_RE.search(body)
        if anchor in anchors or not (named or _MEANS_RE.search(body)):
            continue
        name = named.group(1) if named else ""
        rows.append(
            {
                "alert": name if name in known else "",
                "anchor": anchor,
                "section": True,
                "panel": "",
                "logql": "",
                "traceql": "",
                "ticket": "",
                "missing": [f"alert: no alert has the anchor {anchor!r}"],
            }
        )
    frame = pd.DataFrame(rows)
    frame["complete"] = frame["missing"].map(lambda m: not m)
    return conform(frame, RUNBOOK_COLUMNS)
