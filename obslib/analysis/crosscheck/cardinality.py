"""``agent_type`` cardinality from data: the spec's open question, answered over a window.

Which ``agent_type`` values the Daedalus metrics carry, against the values file's bounded set:
a value outside it (a case twin, a leaking task id) is unbounded cardinality in the making.
"""

from __future__ import annotations

import re

import pandas as pd

from obslib.catalogue.contract import AGENT_TYPE, CONTRACT
from obslib.settings import TASK_SUBJECT_PREFIX, TASK_SUBJECT_RE, Settings
from obslib.sources.frames import conform
from obslib.sources.prometheus import PrometheusSource, TimeLike
from obslib.verdict import Verdict

# A value with a long digit run, a long hex run or a UUID is an id, not an agent type.
_ID_RE = re.compile(r"\d{6,}|[0-9a-f]{16,}|[0-9a-f]{8}-[0-9a-f]{4}-", re.IGNORECASE)

CARDINALITY_COLUMNS: dict[str, str] = {
    "agent_type": "str",  # "" stands for series without the label
    "in_set": "bool",  # one of the values file's agentTypes
    "seen": "bool",  # has series in the window
    "series": "int64",  # Daedalus series carrying this value
    "metrics": "object",  # list of contract metrics carrying it
    "valid_subject": "bool",  # agent.tasks.<value> is a valid task subject
    "note": "str",
}


def _note(value: str, settings: Settings) -> str:
    if value == "":
        return "series without an agent_type label"
    if value in settings.agent_types:
        return "a configured agent type"
    notes = []
    twins = [a for a in settings.agent_types if a.lower() == value.lower()]
    if twins:
        notes.append(f"differs from {twins[0]!r} only in case")
    if _ID_RE.search(value):
        notes.append("looks like an id (a task or trace id leaking into the label)")
    if TASK_SUBJECT_RE.match(TASK_SUBJECT_PREFIX + value):
        notes.append("a valid task subject name, but not in agentTypes")
    else:
        notes.append(f"not a valid task subject name ({TASK_SUBJECT_PREFIX}{value})")
    return "; ".join(notes)


def agent_type_cardinality(
    source: PrometheusSource, settings: Settings, start: TimeLike, end: TimeLike
) -> pd.DataFrame:
    """``agent_type`` values on the Daedalus metrics against the values file's bounded set.

    One row per value seen and per configured value never seen (``CARDINALITY_COLUMNS``), plus
    a row with ``agent_type == ""`` when some series lack the label. The verdict (see
    :func:`cardinality_verdict`) is also stored in ``frame.attrs["verdict"]``.
    """
    base = {name: m.name for m in CONTRACT for name in m.series_names}
    regex = "|".join(re.escape(n) for n in sorted(base))
    frame = source.series([f'{{__name__=~"{regex}"}}'], start, end)
    if frame.empty:
        frame = pd.DataFrame({"__name__": pd.Series(dtype=str), AGENT_TYPE: pd.Series(dtype=str)})
    if AGENT_TYPE not in frame.columns:
        frame[AGENT_TYPE] = ""
    frame = frame.assign(metric=frame["__name__"].map(base))
    grouped = frame.groupby(AGENT_TYPE)
    counts = grouped.size()
    metrics = grouped["metric"].agg(lambda m: sorted(set(m)))
    values = list(settings.agent_types) + sorted(set(counts.index) - set(settings.agent_types))
    rows = [
        {
            "agent_type": value,
            "in_set": value in settings.agent_types,
            "seen": value in counts.index,
            "series": int(counts.get(value, 0)),
            "metrics": list(metrics.get(value, [])),
            "valid_subject": bool(TASK_SUBJECT_RE.match(TASK_SUBJECT_PREFIX + value)),
            "note": _note(value, settings)
            + ("" if value in counts.index or value == "" else "; no series in the window"),
        }
        for value in values
    ]
    out = conform(pd.DataFrame(rows, columns=list(CARDINALITY_COLUMNS)), CARDINALITY_COLUMNS)
    out.attrs["verdict"] = cardinality_verdict(out)
    return out


def cardinality_verdict(cardinality: pd.DataFrame) -> Verdict:
    """Fail when any value outside the set is seen; inconclusive when no value is seen at all."""
    labelled = cardinality[cardinality["seen"] & (cardinality["agent_type"] != "")]
    if labelled.empty:
        return Verdict.INCONCLUSIVE
    return Verdict.PASS if labelled["in_set"].all() else Verdict.FAIL
