"""The documented columns of the DataFrames sources return and analyses take.

One place defines them so Tempo, OTLP files and the test collector produce the same span
frame, and analyses can rely on it. ``empty_frame(COLUMNS)`` gives a typed empty frame and
``conform(frame, COLUMNS)`` orders and types a built one. Text columns hold Python ``str``
(never None: absent text is ""); ``object`` columns hold dicts or lists.
"""

from __future__ import annotations

import pandas as pd

# One row per span (Tempo trace by id, OTLP JSON-lines or protobuf files, the test collector).
SPAN_COLUMNS: dict[str, str] = {
    "trace_id": "str",  # 32 lowercase hex characters
    "span_id": "str",  # 16 lowercase hex characters
    "parent_span_id": "str",  # 16 lowercase hex, or "" for a root span
    "name": "str",  # span name, e.g. "nats.publish"
    "kind": "str",  # SERVER | CLIENT | PRODUCER | CONSUMER | INTERNAL | UNSPECIFIED
    "service_name": "str",  # resource attribute service.name ("" if absent)
    "scope_name": "str",  # instrumentation scope name
    "start_ns": "int64",  # unix nanoseconds
    "end_ns": "int64",
    "duration_ns": "int64",  # end_ns - start_ns
    "status_code": "str",  # UNSET | OK | ERROR
    "status_message": "str",
    "task_id": "str",  # attribute daedalus.task.id, "" if absent
    "agent_type": "str",  # attribute agent_type, "" if absent
    "destination": "str",  # attribute messaging.destination.name (NATS subject), "" if absent
    "attributes": "object",  # dict of span attributes (str -> str | int | float | bool | list)
    "resource_attributes": "object",  # dict of resource attributes
    "partial": "bool",  # the backend said the trace was cut (Tempo status PARTIAL)
}

# One row per trace found by a TraceQL search (Tempo /api/search).
TRACE_SUMMARY_COLUMNS: dict[str, str] = {
    "trace_id": "str",  # 32 lowercase hex
    "root_service_name": "str",  # "" when the root span was never received
    "root_trace_name": "str",  # "" when the root span was never received
    "has_root": "bool",  # False when Tempo has not received the root span
    "start_ns": "int64",
    "duration_ms": "float64",  # NaN when unknown (no root)
    "matched": "int64",  # spans matched by the query in this trace
    "span_ids": "object",  # list of hex span ids in the matched span sets
}

# One row per log entry (Loki streams, OTLP log files). A JSON line's fields and an OTLP record's
# structured metadata fill the same columns (obslib.sources.logfields).
LOG_COLUMNS: dict[str, str] = {
    "timestamp_ns": "int64",  # unix nanoseconds, as Loki returns them
    "time": "datetime64[ns, UTC]",
    "line": "str",  # the raw log line (an OTLP record's body)
    "labels": "object",  # dict of stream labels, plus those a LogQL parser stage added
    "metadata": "object",  # dict of structured metadata; {} when Loki merged it into labels
    "level": "str",  # JSON level, else severity_text, else detected_level; "" if none
    "msg": "str",  # JSON msg/message; the line itself when it is not a JSON object
    "trace_id": "str",  # lowercase hex or ""
    "span_id": "str",
    "task_id": "str",  # taskId / taskID / task_id / daedalus.task.id / daedalus_task_id
    "agent_type": "str",  # agent_type field or metadata, or the app_kubernetes_io_component label
    "fields": "object",  # dict of every other JSON field
    "parse_error": "str",  # "" when the line parsed as JSON or is an OTLP body, else why not
}

# One row per sample of a Prometheus matrix or vector; label columns are added per query.
PROMETHEUS_COLUMNS: dict[str, str] = {
    "timestamp": "datetime64[ns, UTC]",
    "value": "float64",  # NaN, +Inf and -Inf are kept as floats
    "series": "str",  # the series' labels as PromQL text, e.g. '{agent_type="claude"}'
}


def empty_frame(columns: dict[str, str]) -> pd.DataFrame:
    """An empty frame with ``columns`` and their dtypes."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


def conform(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """``frame`` with exactly ``columns``, in order, cast to their dtypes (extra columns kept last)."""
    if frame.empty:
        out = empty_frame(columns)
        for extra in frame.columns.difference(list(columns)):
            out[extra] = pd.Series(dtype=frame[extra].dtype)
        return out
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks documented columns: {missing}")
    ordered = frame[[*columns, *[c for c in frame.columns if c not in columns]]].copy()
    for name, dtype in columns.items():
        if dtype.startswith("datetime64") and "UTC" in dtype:
            # astype cannot make naive values (e.g. an all-NaT column) UTC; to_datetime can.
            ordered[name] = pd.to_datetime(ordered[name], utc=True).astype(dtype)
    return ordered.astype({name: dtype for name, dtype in columns.items() if dtype != "object"})


def _canonical(value: object) -> str:
    if isinstance(value, dict):
        return repr(sorted((str(k), _canonical(v)) for k, v in value.items()))
    return repr(value)


def collapse_copies(
    spans: pd.DataFrame, same_id: pd.Series | None = None
) -> tuple[pd.DataFrame, int]:
    """``spans`` with identical copies of a span (same ids, same content) collapsed into one.

    An exporter that retries after a timeout sends the same batch twice, and Tempo keeps both.
    Two *different* spans sharing an id are kept: that is a finding, not a copy. ``same_id``
    may give the rows whose (trace, span) id pair repeats, when the caller knows them. Returns
    the frame (index reset) and how many copies were removed.
    """
    spans = spans.reset_index(drop=True)
    if spans.empty:
        return spans, 0
    if same_id is None:
        same_id = spans.duplicated(["trace_id", "span_id"], keep=False)
    if not same_id.any():
        return spans, 0
    candidates = spans[same_id.to_numpy()]
    key = candidates.apply(
        lambda row: "\x1f".join(_canonical(row[c]) for c in candidates.columns), axis=1
    )
    copies = key.duplicated(keep="first")
    kept = spans.drop(index=copies[copies].index).reset_index(drop=True)
    return kept, int(copies.sum())
