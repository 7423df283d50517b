"""Prometheus answers as frames: pure parsers of the API's ``data``, and their columns.

Query frames have the documented ``PROMETHEUS_COLUMNS`` (long format, one row per sample) plus
one ``str`` column per label, ``""`` where a series lacks the label. ``__name__`` keeps its
name; a label that collides with a documented column becomes ``exported_<label>``, as
Prometheus itself renames clashing labels. A body of another shape raises :class:`ShapeError`,
which :class:`~obslib.sources.prometheus.PrometheusSource` reports as ``MalformedResponse``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from obslib.sources.frames import PROMETHEUS_COLUMNS, conform, empty_frame

SERIES_COLUMNS: dict[str, str] = {"series": "str"}  # plus one column per label
METADATA_COLUMNS: dict[str, str] = {"metric": "str", "type": "str", "help": "str", "unit": "str"}
RULE_COLUMNS: dict[str, str] = {
    "group": "str",
    "file": "str",
    "name": "str",  # alert name or recorded series name
    "type": "str",  # alerting | recording
    "query": "str",
    "duration_s": "float64",  # the alert's `for`, 0 for recording rules
    "labels": "object",
    "annotations": "object",
    "health": "str",  # ok | err | unknown
    "last_error": "str",
    "state": "str",  # inactive | pending | firing, "" for recording rules
}
ALERT_COLUMNS: dict[str, str] = {
    "alertname": "str",
    "state": "str",  # pending | firing
    "active_at": "datetime64[ns, UTC]",
    "value": "float64",
    "labels": "object",
    "annotations": "object",
}


def series_text(labels: dict[str, str]) -> str:
    """A series' labels as PromQL selector text, e.g. ``up{job="api"}``."""
    name = labels.get("__name__", "")
    pairs = ",".join(
        f"{k}={json.dumps(str(v), ensure_ascii=False)}"
        for k, v in sorted(labels.items())
        if k != "__name__"
    )
    return f"{name}{{{pairs}}}" if pairs or not name else name


class ShapeError(ValueError):
    """A Prometheus answer does not have the documented shape; the message says how."""


def _samples(item: Any) -> tuple[dict[str, str], list[Any]]:
    if isinstance(item, dict) and isinstance(item.get("metric"), dict):
        if isinstance(item.get("values"), list):
            return item["metric"], item["values"]
        if isinstance(item.get("value"), list):
            return item["metric"], [item["value"]]
    raise ShapeError(f"a result entry has neither 'value' nor 'values': {str(item)[:200]}")


def frame_from_result(result: Any) -> pd.DataFrame:
    """The long frame of a query ``result`` (vector, matrix or scalar), as the client returns it."""
    if not isinstance(result, list):
        raise ShapeError(f"result is {type(result).__name__}, not a list")
    if len(result) == 2 and not isinstance(result[0], dict):  # scalar: [time, "value"]
        result = [{"metric": {}, "value": result}]
    times: list[float] = []
    values: list[float] = []
    label_sets: list[dict[str, str]] = []
    for item in result:
        labels, pairs = _samples(item)
        for pair in pairs:
            try:
                ts, text = pair
                times.append(float(ts))
                values.append(float(text))  # float() reads "NaN", "+Inf" and "-Inf"
            except (TypeError, ValueError):
                raise ShapeError(f"sample {str(pair)[:80]} is not [time, number]") from None
            label_sets.append(labels)
    if not times:
        return empty_frame(PROMETHEUS_COLUMNS)
    millis = np.round(np.asarray(times) * 1000).astype("int64")
    data: dict[str, Any] = {
        "timestamp": pd.to_datetime(millis, unit="ms", utc=True),
        "value": np.asarray(values, dtype="float64"),
        "series": [series_text(labels) for labels in label_sets],
    }
    names = sorted({k for labels in label_sets for k in labels}, key=lambda k: (k != "__name__", k))
    for name in names:
        column = f"exported_{name}" if name in PROMETHEUS_COLUMNS else name
        data[column] = [str(labels.get(name, "")) for labels in label_sets]
    frame = pd.DataFrame(data).sort_values(["series", "timestamp"], kind="stable")
    return conform(frame.reset_index(drop=True), PROMETHEUS_COLUMNS)


def metadata_frame(data: dict[str, list[dict[str, str]]]) -> pd.DataFrame:
    """``/api/v1/metadata`` data, one row per metric and entry (``METADATA_COLUMNS``)."""
    rows = [
        (str(metric), entry.get("type", ""), entry.get("help", ""), entry.get("unit", ""))
        for metric, entries in data.items()
        for entry in entries
    ]
    return conform(pd.DataFrame(rows, columns=list(METADATA_COLUMNS)), METADATA_COLUMNS)


def rules_frame(data: dict[str, Any]) -> pd.DataFrame:
    """``/api/v1/rules`` data, one row per rule (``RULE_COLUMNS``)."""
    rows = [
        (
            group["name"],
            group.get("file", ""),
            rule["name"],
            rule["type"],
            rule["query"],
            float(rule.get("duration", 0)),
            dict(rule.get("labels") or {}),
            dict(rule.get("annotations") or {}),
            rule.get("health", ""),
            rule.get("lastError", ""),
            rule.get("state", ""),  # recording rules have none
        )
        for group in data["groups"]
        for rule in group["rules"]
    ]
    return conform(pd.DataFrame(rows, columns=list(RULE_COLUMNS)), RULE_COLUMNS)


def alerts_frame(data: dict[str, Any]) -> pd.DataFrame:
    """``/api/v1/alerts`` data, one row per pending or firing alert (``ALERT_COLUMNS``)."""
    rows = [
        (
            alert["labels"].get("alertname", ""),
            alert["state"],
            pd.Timestamp(alert["activeAt"]).tz_convert("UTC"),
            float(alert["value"]),
            dict(alert["labels"]),
            dict(alert.get("annotations") or {}),
        )
        for alert in data["alerts"]
    ]
    return conform(pd.DataFrame(rows, columns=list(ALERT_COLUMNS)), ALERT_COLUMNS)
