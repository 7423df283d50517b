"""Daedalus log entries to the columns of :data:`obslib.sources.frames.LOG_COLUMNS`.

Logs reach Loki on two paths, and both land in the same columns:

- **JSON lines** (the platform logs JSON with Go's slog, shipped by an agent such as promtail):
  ``time``, ``level``, ``msg``, ``trace_id``, ``span_id``, and a task id named differently per
  package. The fields come from the line itself, never from the labels a LogQL ``| json`` stage
  added: those are renamed, stringified and mixed with the stream's own labels, and a line that
  is not JSON gets ``__error__`` instead of fields.
- **OTLP logs** (``POST /otlp/v1/logs``): the line is the record's body, and Loki keeps the
  trace context, the severity and the record attributes as *structured metadata*, with every
  character outside ``[A-Za-z0-9_]`` turned into ``_`` (``daedalus.task.id`` becomes
  ``daedalus_task_id``; see :func:`loki_label_name`). A field the line lacks is taken from the
  structured metadata, then from the stream labels (where Loki puts the metadata when the
  client did not ask for ``categorize-labels``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from obslib.catalogue.hops import TASK_ID
from obslib.sources.frames import LOG_COLUMNS, conform, empty_frame


def loki_label_name(attribute: str) -> str:
    """The name Loki gives an OTLP attribute as a label or structured metadata.

    Loki normalises names as Prometheus does: every character outside ``[A-Za-z0-9_]`` becomes
    ``_``, a name starting with a digit gets the prefix ``key_`` and one starting with a single
    ``_`` the prefix ``key``. ``daedalus.task.id`` becomes ``daedalus_task_id``.
    """
    name = re.sub(r"[^A-Za-z0-9_]", "_", attribute)
    if name[:1].isdigit():
        return "key_" + name
    if name.startswith("_") and not name.startswith("__"):
        return "key" + name
    return name


# First name present wins; the others stay in ``fields`` so nothing a line said is lost. The
# last two are the catalogue's span attribute, as a JSON key and as Loki stores it from OTLP.
TASK_ID_KEYS = ("taskId", "taskID", "task_id", TASK_ID, loki_label_name(TASK_ID))
TRACE_ID_KEYS = ("trace_id", "traceId", "traceID")
SPAN_ID_KEYS = ("span_id", "spanId", "spanID")
LEVEL_KEYS = ("level",)
SEVERITY_TEXT = "severity_text"  # Loki's structured metadata for an OTLP record's severity
MSG_KEYS = ("msg", "message")
AGENT_TYPE_KEYS = ("agent_type", "agentType")
# The pod label app.kubernetes.io/component names the worker's agent type; Loki spells it so.
AGENT_TYPE_LABEL = "app_kubernetes_io_component"
DETECTED_LEVEL_LABEL = "detected_level"
# Structured metadata that only Loki's OTLP ingestion writes: an entry carrying any of them is
# an OTLP record, whose line is its body (plain text is a message, not a line that failed JSON).
OTLP_METADATA = frozenset(
    {"observed_timestamp", "severity_number", SEVERITY_TEXT, "scope_name", "flags"}
)


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


def _attribute(attributes: Mapping[str, str], keys: Iterable[str]) -> str:
    """The first of ``keys`` with a value in a label or metadata mapping ("" if none)."""
    return next((str(attributes[k]) for k in keys if attributes.get(k) not in (None, "")), "")


def parse_line(
    line: str, labels: Mapping[str, str], metadata: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The parsed columns of one log entry (everything in LOG_COLUMNS but the timestamps).

    Args:
        line: the raw log line as Loki returned it (for OTLP logs, the record's body).
        labels: the entry's stream labels (with a parser stage's labels, and with the
            structured metadata when Loki merged it in).
        metadata: the entry's structured metadata, when Loki returned it apart.

    Returns:
        A dict with ``line``, ``labels``, ``metadata``, ``level``, ``msg``, ``trace_id``,
        ``span_id``, ``task_id``, ``agent_type``, ``fields`` and ``parse_error``. A field the
        JSON line lacks comes from the metadata, then the labels: ``level`` from
        ``severity_text`` or Loki's ``detected_level``, ``agent_type`` also from the pod's
        component label. A line that is not a JSON object keeps its text in ``line`` and
        ``msg``; ``parse_error`` says why, unless the entry is an OTLP record (its body may be
        plain text).
    """
    metadata = dict(metadata or {})
    attributes = {**labels, **metadata}  # structured metadata wins over a label of its name
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
    text_body = bool(parse_error) and not OTLP_METADATA.isdisjoint(attributes)
    detected = attributes.get(DETECTED_LEVEL_LABEL, "")
    level = (
        take_field(fields, LEVEL_KEYS)
        or _attribute(attributes, (*LEVEL_KEYS, SEVERITY_TEXT))
        or ("" if detected == "unknown" else detected)
    )
    return {
        "line": line,
        "labels": dict(labels),
        "metadata": metadata,
        "level": level,
        "msg": take_field(fields, MSG_KEYS) or (line if parse_error else ""),
        "trace_id": (
            take_field(fields, TRACE_ID_KEYS) or _attribute(attributes, TRACE_ID_KEYS)
        ).lower(),
        "span_id": (
            take_field(fields, SPAN_ID_KEYS) or _attribute(attributes, SPAN_ID_KEYS)
        ).lower(),
        "task_id": take_field(fields, TASK_ID_KEYS) or _attribute(attributes, TASK_ID_KEYS),
        "agent_type": take_field(fields, AGENT_TYPE_KEYS)
        or _attribute(attributes, (*AGENT_TYPE_KEYS, AGENT_TYPE_LABEL)),
        "fields": fields,
        "parse_error": "" if text_body else parse_error,
    }


def log_frame(
    entries: Iterable[tuple[int, Mapping[str, str], str, Mapping[str, str]]],
) -> pd.DataFrame:
    """A LOG_COLUMNS frame from ``(timestamp_ns, labels, line, metadata)`` in the order given."""
    rows = [
        {"timestamp_ns": ts, **parse_line(line, labels, metadata)}
        for ts, labels, line, metadata in entries
    ]
    if not rows:
        return empty_frame(LOG_COLUMNS)
    frame = pd.DataFrame(rows)
    frame["time"] = pd.to_datetime(frame["timestamp_ns"], unit="ns", utc=True)
    return conform(frame, LOG_COLUMNS).reset_index(drop=True)
