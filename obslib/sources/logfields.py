"""Daedalus JSON log lines to the columns of :data:`obslib.sources.frames.LOG_COLUMNS`.

The platform logs JSON with Go's slog (``time``, ``level``, ``msg``, ``trace_id``, ``span_id``)
but names the task id differently per package. This module reads the line itself, never the
labels a LogQL ``| json`` stage added: those are renamed, stringified and mixed with the stream's
own labels, and a line that is not JSON gets ``__error__`` instead of fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from obslib.sources.frames import LOG_COLUMNS, conform, empty_frame

# First name present wins; the others stay in ``fields`` so nothing a line said is lost.
TASK_ID_KEYS = ("taskId", "taskID", "task_id", "daedalus.task.id")
TRACE_ID_KEYS = ("trace_id", "traceId", "traceID")
SPAN_ID_KEYS = ("span_id", "spanId", "spanID")
LEVEL_KEYS = ("level",)
MSG_KEYS = ("msg", "message")
AGENT_TYPE_KEYS = ("agent_type", "agentType")
# The pod label app.kubernetes.io/component names the worker's agent type; Loki spells it so.
AGENT_TYPE_LABEL = "app_kubernetes_io_component"
DETECTED_LEVEL_LABEL = "detected_level"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _nested(obj: Mapping[str, Any], dotted: str) -> Any:
    """``obj["a"]["b"]["c"]`` for ``"a.b.c"`` (slog groups nest), or None."""
    current: Any = obj
    for part in dotted.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def take_field(fields: dict[str, Any], keys: Iterable[str]) -> str:
    """Remove and return the first of ``keys`` present with a value ("" if none)."""
    for key in keys:
        if key in fields and fields[key] not in (None, ""):
            return _text(fields.pop(key))
        if "." in key:
            value = _nested(fields, key)
            if value not in (None, ""):
                return _text(value)  # the enclosing group stays in ``fields``
    return ""


def parse_line(line: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """The parsed columns of one log line (everything in LOG_COLUMNS but the timestamps).

    Args:
        line: the raw log line as Loki returned it.
        labels: the stream labels of the entry.

    Returns:
        A dict with ``line``, ``labels``, ``level``, ``msg``, ``trace_id``, ``span_id``,
        ``task_id``, ``agent_type``, ``fields`` and ``parse_error``. A line that is not a JSON
        object keeps its text in ``line`` and says why in ``parse_error``; ``level`` then falls
        back to Loki's ``detected_level`` label and ``agent_type`` to the pod's component label.
    """
    parse_error = ""
    fields: dict[str, Any] = {}
    try:
        decoded = json.loads(line)
    except ValueError as exc:
        parse_error = f"not JSON: {exc}"
    else:
        if isinstance(decoded, dict):
            fields = decoded
        else:
            parse_error = f"JSON {type(decoded).__name__}, not an object"
    detected = labels.get(DETECTED_LEVEL_LABEL, "")
    level = take_field(fields, LEVEL_KEYS) or ("" if detected == "unknown" else detected)
    return {
        "line": line,
        "labels": dict(labels),
        "level": level,
        "msg": take_field(fields, MSG_KEYS),
        "trace_id": take_field(fields, TRACE_ID_KEYS).lower(),
        "span_id": take_field(fields, SPAN_ID_KEYS).lower(),
        "task_id": take_field(fields, TASK_ID_KEYS),
        "agent_type": take_field(fields, AGENT_TYPE_KEYS) or labels.get(AGENT_TYPE_LABEL, ""),
        "fields": fields,
        "parse_error": parse_error,
    }


def log_frame(entries: Iterable[tuple[int, Mapping[str, str], str]]) -> pd.DataFrame:
    """A LOG_COLUMNS frame from ``(timestamp_ns, stream_labels, line)`` in the order given."""
    rows = [{"timestamp_ns": ts, **parse_line(line, labels)} for ts, labels, line in entries]
    if not rows:
        return empty_frame(LOG_COLUMNS)
    frame = pd.DataFrame(rows)
    frame["time"] = pd.to_datetime(frame["timestamp_ns"], unit="ns", utc=True)
    return conform(frame, LOG_COLUMNS).reset_index(drop=True)
