"""OTLP files to span and log frames: the OpenTelemetry Collector file exporter's output.

The file exporter writes one JSON object per line, ``{"resourceSpans":[...]}`` or
``{"resourceLogs":[...]}``, in the OTLP JSON mapping, where trace and span ids are hex (not the
base64 of the plain protobuf JSON mapping) and enums are integers. Such files may be gzipped
(``.gz``). A protobuf file (``.pb``/``.binpb``) holds one ``ExportTraceServiceRequest`` (or
``ExportLogsServiceRequest``); ``TracesData``, and Tempo's v1 trace, share its wire format.

Nothing is skipped silently: a line or file that is not OTLP raises :class:`OtlpFileError`
naming the file and line. Lines of another signal (a logs line in a file read for spans) are
not errors: one file exporter may serve several pipelines and write them all to one file.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from obslib.errors import SourceError
from obslib.sources.frames import LOG_COLUMNS, SPAN_COLUMNS, conform, empty_frame
from obslib.sources.logfields import AGENT_TYPE_KEYS, TASK_ID_KEYS, take_field
from obslib.sources.otlp import (
    SPAN_ID_BYTES,
    TRACE_ID_BYTES,
    OtlpFormatError,
    any_value,
    attributes,
    decode_id,
    spans_from_json,
    spans_from_proto,
)

PathArg = str | Path | Iterable[str | Path]

PROTOBUF_SUFFIXES = (".pb", ".binpb")
# Top-level keys of the four OTLP signals; a line with none of them is not OTLP.
_SIGNAL_KEYS = ("resourceSpans", "resourceLogs", "resourceMetrics", "resourceProfiles")
# OTLP SeverityNumber ranges (1-4 TRACE ... 21-24 FATAL), for records without severityText.
_SEVERITIES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")


class OtlpFileError(SourceError):
    """An OTLP file, or one line of it, could not be read.

    ``url`` is the file path and ``query`` is ``"line N"`` (or "" for the whole file), so the
    message reads ``otlp-file traces.jsonl:3: ...``.
    """

    hint = (
        "A JSON-lines file holds one OTLP JSON object with hex ids per line (as the OpenTelemetry "
        "Collector file exporter writes), a .pb file one Export*ServiceRequest; fix or remove "
        "what is named above and read again."
    )

    def __init__(self, backend: str, url: str, query: str, detail: str) -> None:
        super().__init__(backend, url, query, detail)
        self.url = url  # a file path: nothing to redact, and "?" or "#" must survive

    @classmethod
    def at(cls, path: Path, detail: str, line: int | None = None) -> OtlpFileError:
        """The error for ``path`` (and ``line``, 1-based) with ``detail``."""
        return cls("otlp-file", str(path), f"line {line}" if line else "", detail)

    @property
    def line(self) -> int | None:
        """The 1-based line number, or None when the whole file is at fault."""
        return int(self.query.removeprefix("line ")) if self.query else None

    def __str__(self) -> str:
        where = f"{self.url}:{self.line}" if self.line else self.url
        return f"{self.backend} {where}: {self.detail}. {self.hint}"


# --- id fields: the OTLP JSON mapping writes them hex, protobuf's own mapping base64 --------


class InvalidIdError(OtlpFormatError):
    """A trace or span id in OTLP JSON is not hex."""


def _id_holders(data: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every object of an OTLP JSON request that carries trace or span ids."""
    for rs in data.get("resourceSpans") or ():
        for ss in rs.get("scopeSpans") or ():
            for span in ss.get("spans") or ():
                yield span
                yield from span.get("links") or ()
    for rl in data.get("resourceLogs") or ():
        for sl in rl.get("scopeLogs") or ():
            yield from sl.get("logRecords") or ()


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId"})


def _convert_ids(data: dict[str, Any], convert: Callable[[str, Any], Any]) -> dict[str, Any]:
    for holder in _id_holders(data):
        for key in _ID_KEYS & holder.keys():
            holder[key] = convert(key, holder[key])
    return data


def request_to_json(message: Any) -> dict[str, Any]:
    """A protobuf OTLP request (or TracesData/LogsData) in the file exporter's JSON form.

    lowerCamelCase keys, integer enums, int64 as strings, default values left out, and trace and
    span ids as lowercase hex.
    """
    from google.protobuf.json_format import MessageToDict

    def to_hex(_key: str, value: str) -> str:
        return base64.b64decode(value).hex()

    return _convert_ids(MessageToDict(message, use_integers_for_enums=True), to_hex)


def request_from_json(data: Any, message: Any) -> Any:
    """Fill protobuf ``message`` from an OTLP JSON request with hex ids, and return it.

    Unknown fields are ignored, as the OTLP JSON mapping requires of receivers. Enum names are
    accepted as well as integers. The ids in ``data`` are rewritten in place.

    Raises:
        InvalidIdError: an id is not hex.
        OtlpFormatError: ``data`` does not have the request's shape.
    """
    from google.protobuf.json_format import ParseDict, ParseError

    def to_base64(key: str, value: Any) -> Any:
        if value is None:  # JSON null is the field's default, as for any other field
            return None
        # bytes.fromhex alone would also take spaces between the digits.
        if not isinstance(value, str) or not set(value) <= _HEX_DIGITS or len(value) % 2:
            raise InvalidIdError(f"{key} {value!r} is not a hex string")
        return base64.b64encode(bytes.fromhex(value)).decode("ascii")

    if not isinstance(data, dict):
        raise OtlpFormatError(f"an OTLP request is a JSON object, not {type(data).__name__}")
    try:
        _convert_ids(data, to_base64)
    except (AttributeError, TypeError) as exc:
        raise OtlpFormatError(f"not an OTLP request: {exc}") from exc
    try:
        return ParseDict(data, message, ignore_unknown_fields=True)
    except ParseError as exc:
        raise OtlpFormatError(f"not an OTLP request: {exc}") from exc


# --- log records -------------------------------------------------------------------------------


def _level(record: Mapping[str, Any]) -> str:
    if record.get("severityText"):
        return str(record["severityText"])
    number = record.get("severityNumber") or 0
    if isinstance(number, str):  # an enum name, e.g. SEVERITY_NUMBER_ERROR2
        name = number.removeprefix("SEVERITY_NUMBER_").rstrip("234")
        return name if name in _SEVERITIES else ""
    return _SEVERITIES[(int(number) - 1) // 4] if 1 <= int(number) <= 24 else ""


def _log_row(record: Mapping[str, Any], resource: dict[str, Any], encoding: str) -> dict[str, Any]:
    body = any_value(record["body"]) if record.get("body") else None
    line = body if isinstance(body, str) else ("" if body is None else json.dumps(body))
    msg = line
    if isinstance(body, dict):
        msg = str(body.get("msg") or body.get("message") or line)
    timestamp = int(record.get("timeUnixNano") or 0) or int(record.get("observedTimeUnixNano") or 0)
    fields = attributes(record.get("attributes"))
    return {
        "timestamp_ns": timestamp,
        "line": line,
        "labels": resource,
        "metadata": {},  # Loki's structured metadata; a file's attributes are in ``fields``
        "level": _level(record),
        "msg": msg,
        "trace_id": decode_id(record.get("traceId") or "", TRACE_ID_BYTES, encoding),
        "span_id": decode_id(record.get("spanId") or "", SPAN_ID_BYTES, encoding),
        "task_id": take_field(fields, TASK_ID_KEYS),
        "agent_type": take_field(fields, AGENT_TYPE_KEYS),
        "fields": fields,
        "parse_error": "",
    }


def logs_from_json(
    resource_logs: Iterable[Mapping[str, Any]], id_encoding: str = "hex"
) -> pd.DataFrame:
    """Log frame (LOG_COLUMNS) from OTLP JSON ``resourceLogs``.

    ``level`` is the severityText (or the severityNumber's range), ``msg`` and ``line`` the body
    (a structured body is ``line`` as JSON, ``msg`` its ``msg``/``message``), ``labels`` the
    resource attributes, ``task_id`` and ``agent_type`` come from the record's attributes and
    every other attribute stays in ``fields``. ``id_encoding`` is as in ``spans_from_json``.
    """
    rows = []
    try:
        for rl in resource_logs:
            resource = attributes((rl.get("resource") or {}).get("attributes"))
            for sl in rl.get("scopeLogs") or []:
                for record in sl.get("logRecords") or []:
                    rows.append(_log_row(record, resource, id_encoding))
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        raise OtlpFormatError(f"not OTLP resourceLogs: {exc}") from exc
    if not rows:
        return empty_frame(LOG_COLUMNS)
    frame = pd.DataFrame(rows)
    frame["time"] = pd.to_datetime(frame["timestamp_ns"], unit="ns", utc=True)
    return conform(frame, LOG_COLUMNS).reset_index(drop=True)


# --- files -------------------------------------------------------------------------------------


def _paths(paths: PathArg) -> list[Path]:
    if isinstance(paths, str | Path):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except IsADirectoryError:
        raise OtlpFileError.at(path, "is a directory; pass the files in it") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise OtlpFileError.at(path, f"is not a complete gzip stream ({exc})") from exc
    except OSError as exc:
        raise OtlpFileError.at(path, f"cannot be read ({exc})") from exc


def _is_protobuf(path: Path) -> bool:
    name = path.name.removesuffix(".gz")
    return name.endswith(PROTOBUF_SUFFIXES)


def _json_lines(path: Path, key: str) -> Iterator[tuple[int, list[Any]]]:
    """``(line number, data[key])`` for each non-blank line holding signal ``key``."""
    try:
        text = _read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OtlpFileError.at(path, f"is not UTF-8 text ({exc})") from exc
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and other line separators.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise OtlpFileError.at(path, f"not JSON ({exc})", number) from exc
        if not isinstance(data, dict) or (data and not data.keys() & set(_SIGNAL_KEYS)):
            shape = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise OtlpFileError.at(path, f"not an OTLP JSON object (found {shape})", number)
        if key in data:
            if not isinstance(data[key], list):
                raise OtlpFileError.at(path, f"{key} is not a list", number)
            yield number, data[key]


def _frame_from_lines(
    path: Path, key: str, parse: Callable[[list[Any]], pd.DataFrame]
) -> list[pd.DataFrame]:
    lines = list(_json_lines(path, key))
    try:
        return [parse([item for _, items in lines for item in items])]
    except (ValueError, TypeError) as whole:
        # Parse line by line only on failure, to name the line that broke.
        for number, items in lines:
            try:
                parse(items)
            except (ValueError, TypeError) as exc:
                raise OtlpFileError.at(path, str(exc), number) from exc
        raise OtlpFileError.at(path, str(whole)) from whole


def _proto_frame(
    path: Path, message_type: Any, to_frame: Callable[[Any], pd.DataFrame]
) -> pd.DataFrame:
    from google.protobuf.message import DecodeError

    name = message_type.DESCRIPTOR.name
    raw = _read_bytes(path)
    try:
        frame = to_frame(message_type.FromString(raw))
    except DecodeError as exc:
        raise OtlpFileError.at(path, f"is not a protobuf {name} ({exc})") from exc
    except (ValueError, TypeError) as exc:
        raise OtlpFileError.at(path, str(exc)) from exc
    # Protobuf cannot tell messages apart: another message often decodes as an empty request.
    if raw and frame.empty:
        raise OtlpFileError.at(
            path,
            f"decodes as an empty {name}, so it probably holds another message "
            "(Tempo's /api/v2/traces protobuf is a response envelope; /api/traces is a trace)",
        )
    return frame


def read_spans(paths: PathArg) -> pd.DataFrame:
    """Span frame (SPAN_COLUMNS) from OTLP files, in file and line order.

    Args:
        paths: one path or several: JSON-lines files as the collector file exporter writes
            them (hex ids; ``.gz`` for gzipped) and protobuf ``ExportTraceServiceRequest``
            files (``.pb``/``.binpb``, one message each). Lines of other signals are passed over.

    Raises:
        OtlpFileError: a file is missing or unreadable, or a line or file is not OTLP (the
            message names the file and line).
    """
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    frames: list[pd.DataFrame] = []
    for path in _paths(paths):
        if _is_protobuf(path):
            frames.append(
                _proto_frame(
                    path, ExportTraceServiceRequest, lambda m: spans_from_proto(m.resource_spans)
                )
            )
        else:
            frames += _frame_from_lines(
                path, "resourceSpans", lambda items: spans_from_json(items, "hex")
            )
    return _concat(frames, empty_frame(SPAN_COLUMNS))


def read_logs(paths: PathArg) -> pd.DataFrame:
    """Log frame (LOG_COLUMNS, see :func:`logs_from_json`) from OTLP files, in order.

    Args:
        paths: JSON-lines files of ``{"resourceLogs": [...]}`` objects (``.gz`` too) and
            protobuf ``ExportLogsServiceRequest`` files (``.pb``/``.binpb``).

    Raises:
        OtlpFileError: as for :func:`read_spans`.
    """
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    frames: list[pd.DataFrame] = []
    for path in _paths(paths):
        if _is_protobuf(path):
            frames.append(
                _proto_frame(
                    path,
                    ExportLogsServiceRequest,
                    lambda m: logs_from_json(request_to_json(m).get("resourceLogs", [])),
                )
            )
        else:
            frames += _frame_from_lines(path, "resourceLogs", logs_from_json)
    return _concat(frames, empty_frame(LOG_COLUMNS))


def _concat(frames: list[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return empty
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
