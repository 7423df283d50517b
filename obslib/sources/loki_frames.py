"""Loki answers as plain data and frames: pure parsers of the API's bodies.

Log entries come as ``(timestamp_ns, labels, line, structured metadata)``; with
``categorize-labels`` each value is ``[ts, line, {"structuredMetadata": {...}, "parsed":
{...}}]``, parsed labels joining the stream's. Metric answers become ``PROMETHEUS_COLUMNS`` plus
one ``str`` column per label (a label named like a base column gets a ``label_`` prefix). A body
of another shape raises :class:`LokiFormatError`, an answer of the other kind (log lines to a
metric query, or the reverse) :class:`WrongResultType`; :class:`~obslib.sources.loki.LokiSource`
reports them as ``MalformedResponse`` and ``QueryRejected``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from obslib.sources.frames import PROMETHEUS_COLUMNS, conform
from obslib.sources.loki_paging import Entry


class LokiFormatError(ValueError):
    """A Loki body does not have the documented shape; the message says what is wrong."""


class WrongResultType(ValueError):
    """Loki answered with another kind of result than the method reads (the message says which)."""


def series_text(metric: Mapping[str, str]) -> str:
    """A stream's or series' labels as LogQL selector text, e.g. ``{app="api", level="warn"}``."""
    body = ", ".join(
        f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in sorted(metric.items())
    )
    return "{" + body + "}"


def data_of(body: Any) -> Any:
    """The ``data`` of a successful answer (None when Loki left it out)."""
    if not isinstance(body, dict) or body.get("status") != "success":
        shown = body.get("status") if isinstance(body, dict) else type(body).__name__
        raise LokiFormatError(f"expected status 'success', got {shown!r}")
    return body.get("data")  # discovery on an empty store may leave it out


def result_of(data: Any, kind: str) -> list[Any]:
    """The ``result`` list of ``data``, which must be of ``resultType`` ``kind``."""
    if not isinstance(data, dict) or not isinstance(data.get("result"), list):
        raise LokiFormatError("'data' has no 'result' list")
    got = data.get("resultType")
    if got == kind:
        return data["result"]
    if {got, kind} <= {"streams", "matrix", "vector"}:
        use = "query_range" if got == "streams" else "metric_range or metric_instant"
        raise WrongResultType(f"the query returned {got}, not {kind}: use {use}() for this query")
    raise LokiFormatError(f"unknown resultType {got!r}")


def stream_entries(streams: list[Any], categorized: bool) -> list[Entry]:
    """Every entry of a ``streams`` result, stream by stream."""
    entries: list[Entry] = []
    for stream in streams:
        labels = stream.get("stream") if isinstance(stream, dict) else None
        values = stream.get("values") if isinstance(stream, dict) else None
        if not isinstance(labels, dict) or not isinstance(values, list):
            raise LokiFormatError("a stream lacks 'stream' or 'values'")
        entries += [entry(value, labels, categorized) for value in values]
    return entries


def entry(value: Any, labels: dict[str, str], categorized: bool) -> Entry:
    """One log entry of a stream: ``[ts, line]``, or ``[ts, line, {...}]`` when categorized."""
    if not (isinstance(value, list) and len(value) >= 2 and isinstance(value[1], str)):
        raise LokiFormatError(f"log entry {value!r:.80} is not [ts, line]")
    try:
        ts = int(value[0])
    except (TypeError, ValueError):
        raise LokiFormatError(f"timestamp {value[0]!r} is not unix ns") from None
    if not categorized:
        return ts, labels, value[1], {}
    extra = value[2] if len(value) > 2 else {}
    metadata = extra.get("structuredMetadata", {}) if isinstance(extra, dict) else None
    parsed = extra.get("parsed", {}) if isinstance(extra, dict) else None
    if not (isinstance(metadata, dict) and isinstance(parsed, dict)):
        raise LokiFormatError(
            f"categorized entry {value!r:.80} has no {{structuredMetadata, parsed}} object"
        )
    return ts, ({**labels, **parsed} if parsed else labels), value[1], metadata


def metric_rows(result: list[Any], key: str) -> list[dict[str, Any]]:
    """The samples of a ``matrix`` (``key`` "values") or ``vector`` (``key`` "value") result."""
    rows = []
    for series in result:
        if not isinstance(series, dict) or not isinstance(series.get("metric"), dict):
            raise LokiFormatError("a series lacks its 'metric' labels")
        metric, found = series["metric"], series.get(key)
        if key == "value":
            pairs = [found]
        elif isinstance(found, list):
            pairs = found
        else:
            raise LokiFormatError("a series' 'values' is not a list")
        rows += [_sample(metric, pair) for pair in pairs]
    return rows


def _sample(metric: dict[str, str], pair: Any) -> dict[str, Any]:
    if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], str)):
        raise LokiFormatError(f'sample {pair!r:.80} is not [unix s, "value"]')
    try:
        millis = round(float(pair[0]) * 1000)  # Loki's sample times have ms resolution
        value = float(pair[1])  # "NaN", "+Inf" and "-Inf" parse as floats
    except (TypeError, ValueError):
        raise LokiFormatError(f"sample {pair!r:.80} has a non-numeric time or value") from None
    return {"millis": millis, "value": value, "metric": metric}


def metric_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The frame of :func:`metric_rows` (at least one row)."""
    names = sorted({name for row in rows for name in row["metric"]})
    columns = {n: f"label_{n}" if n in PROMETHEUS_COLUMNS else n for n in names}
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime([r["millis"] for r in rows], unit="ms", utc=True),
            "value": [r["value"] for r in rows],
            "series": [series_text(r["metric"]) for r in rows],
            **{col: [r["metric"].get(n, "") for r in rows] for n, col in columns.items()},
        }
    )
    frame = frame.astype({col: "str" for col in columns.values()})
    return conform(frame, PROMETHEUS_COLUMNS)


def series_frame(data: Any) -> pd.DataFrame:
    """Streams of a ``/series`` answer: one row each, ``series`` and one column per label."""
    if not isinstance(data, list) or not all(isinstance(s, dict) for s in data):
        raise LokiFormatError("'data' is not a list of label sets")
    names = sorted({name for labels in data for name in labels})
    columns = {"series": [series_text(labels) for labels in data]}
    for name in names:
        column = "label_series" if name == "series" else name
        columns[column] = [labels.get(name, "") for labels in data]
    return pd.DataFrame(columns, dtype="str")


def strings(data: Any) -> list[str]:
    """A list of names or values (``/labels``, ``/label/<name>/values``); none when left out."""
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(s, str) for s in data):
        raise LokiFormatError("'data' is not a list of strings")
    return data
