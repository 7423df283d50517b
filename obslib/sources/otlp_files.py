"""OTLP files to span and log frames: the OpenTelemetry Collector file exporter's output.

The file exporter writes one JSON object per line, ``{"resourceSpans":[...]}`` or
``{"resourceLogs":[...]}``, in the OTLP JSON mapping, where trace and span ids are hex (not the
base64 of the plain protobuf JSON mapping) and enums are integers. Such files may be gzipped
(``.gz``). A protobuf file (``.pb``/``.binpb``) holds one ``ExportTraceServiceRequest`` (or
``ExportLogsServiceRequest``); ``TracesData``, and Tempo's v1 trace, share its wire format.

What cannot be read is skipped and counted, never silently and never at the cost of the rest of
the file: a line that is not UTF-8, not JSON or not an OTLP object is left out whole, a span or
log record that breaks the rule of :func:`obslib.sources.otlp.span_rows` (or its resource or
scope) is left out alone. :func:`read_spans_with_skips` returns the counts and the first problems
with the frame (a report's data coverage); :func:`read_spans` logs them as a warning, and with
``strict=True`` raises :class:`OtlpFileError` naming the file and line instead. A file that
cannot be read at all (missing, not gzip, an undecodable ``.pb``) always raises. Lines of another
signal (a logs line in a file read for spans) are not errors: one file exporter may serve
several pipelines and write them all to one file.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from obslib.errors import SourceError
from obslib.sources.frames import LOG_COLUMNS, conform, empty_frame
from obslib.sources.logfields import AGENT_TYPE_KEYS, TASK_ID_KEYS, take_field
from obslib.sources.otlp import (
    MALFORMED,
    SPAN_ID_BYTES,
    TRACE_ID_BYTES,
    OtlpFormatError,
    Skip,
    any_value,
    attributes,
    count_items,
    decode_id,
    json_list,
    malformed,
    span_frame,
    span_rows,
    unix_nano,
)

PathArg = str | Path | Iterable[str | Path]

PROTOBUF_SUFFIXES = (".pb", ".binpb")
# Top-level keys of the four OTLP signals; a line with none of them is not OTLP.
_SIGNAL_KEYS = ("resourceSpans", "resourceLogs", "resourceMetrics", "resourceProfiles")
# OTLP SeverityNumber ranges (1-4 TRACE ... 21-24 FATAL), for records without severityText.
_SEVERITIES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
MAX_PROBLEMS = 20  # problems kept, with their place, in an OtlpRead (the counts go on)

_log = logging.getLogger(__name__)


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
            shown = repr(value[:40] if isinstance(value, str) else value)[:60]
            raise InvalidIdError(f"{key} {shown} is not a hex string")
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
    timestamp = unix_nano(record.get("timeUnixNano"), "timeUnixNano") or unix_nano(
        record.get("observedTimeUnixNano"), "observedTimeUnixNano"
    )
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


def log_rows(
    resource_logs: Iterable[Any], id_encoding: str = "hex", skip: Skip | None = None
) -> list[dict[str, Any]]:
    """Rows of the log frame from OTLP JSON ``resourceLogs``, as :func:`span_rows` for spans.

    A log record is malformed on the same terms as a span (timestamps ``timeUnixNano`` and
    ``observedTimeUnixNano``, its ids if present, attribute keys and values, its ``body``).

    Raises:
        OtlpFormatError: without ``skip``, the first malformed part, named by its path.
    """
    rows: list[dict[str, Any]] = []
    for i, rl in enumerate(resource_logs):
        at = f"resourceLogs[{i}]"
        try:
            scopes = json_list(rl, "scopeLogs", at)
            resource = attributes(
                json_list(rl.get("resource") or {}, "attributes", f"{at}.resource")
            )
        except MALFORMED as exc:
            malformed(skip, at, exc, count_items(rl, "scopeLogs", "logRecords"))
            continue
        for j, sl in enumerate(scopes):
            where = f"{at}.scopeLogs[{j}]"
            try:
                records = json_list(sl, "logRecords", where)
            except MALFORMED as exc:
                malformed(skip, where, exc, count_items(sl, "logRecords"))
                continue
            for k, record in enumerate(records):
                try:
                    rows.append(_log_row(record, resource, id_encoding))
                except MALFORMED as exc:
                    malformed(skip, f"{where}.logRecords[{k}]", exc, 1)
    return rows


def log_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The log frame (LOG_COLUMNS) of rows from :func:`log_rows`."""
    if not rows:
        return empty_frame(LOG_COLUMNS)
    frame = pd.DataFrame(rows)
    frame["time"] = pd.to_datetime(frame["timestamp_ns"], unit="ns", utc=True)
    return conform(frame, LOG_COLUMNS).reset_index(drop=True)


def logs_from_json(
    resource_logs: Iterable[Mapping[str, Any]], id_encoding: str = "hex"
) -> pd.DataFrame:
    """Log frame (LOG_COLUMNS) from OTLP JSON ``resourceLogs``.

    ``level`` is the severityText (or the severityNumber's range), ``msg`` and ``line`` the body
    (a structured body is ``line`` as JSON, ``msg`` its ``msg``/``message``), ``labels`` the
    resource attributes, ``task_id`` and ``agent_type`` come from the record's attributes and
    every other attribute stays in ``fields``. ``id_encoding`` is as in ``spans_from_json``.

    Raises:
        OtlpFormatError: a log record is malformed (see :func:`log_rows`); the message names it.
    """
    return log_frame(log_rows(resource_logs, id_encoding))


# --- files -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OtlpRead:
    """What reading OTLP files gave: the frame, and what in the files could not be read.

    Attributes:
        frame: every span (SPAN_COLUMNS) or log record (LOG_COLUMNS) that could be read.
        items_skipped: spans or log records left out because they (or their resource or
            scope) are malformed.
        lines_skipped: lines left out whole (not UTF-8, not JSON, not an OTLP object); how many
            items they held is unknown.
        problems: the first ``MAX_PROBLEMS`` parts skipped, each ``file:line: where: what``
            (a part may hold no item, e.g. a resource entry that is not an object).
    """

    frame: pd.DataFrame
    items_skipped: int = 0
    lines_skipped: int = 0
    problems: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """True when nothing was skipped (not even a part that held no items)."""
        return not self.problems


@dataclass
class _Skips:
    """What was skipped so far; raises at the first problem when ``strict``."""

    strict: bool
    items: int = 0
    lines: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self, path: Path, number: int | None, reason: str) -> None:
        if self.strict:
            raise OtlpFileError.at(path, reason, number)
        self.lines += 1
        self._note(path, number, reason)

    def item(self, path: Path, number: int | None, where: str, reason: str, items: int) -> None:
        if self.strict:
            raise OtlpFileError.at(path, f"{where}: {reason}", number)
        self.items += items
        self._note(path, number, f"{where}: {reason}")

    def _note(self, path: Path, number: int | None, reason: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"{path}:{number}: {reason}" if number else f"{path}: {reason}")

    def for_line(self, path: Path, number: int | None) -> Skip:
        return lambda where, reason, items: self.item(path, number, where, reason, items)


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


def _json_lines(path: Path, key: str, skips: _Skips) -> Iterator[tuple[int, list[Any]]]:
    """``(line number, data[key])`` for each line holding signal ``key``; others are skipped."""
    # split on b"\n" alone: JSON strings may hold U+2028 and other line separators.
    for number, raw in enumerate(_read_bytes(path).split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            skips.line(path, number, f"not UTF-8 text ({exc})")
            continue
        except (ValueError, RecursionError) as exc:
            skips.line(path, number, f"not JSON ({str(exc)[:200]})")
            continue
        if not isinstance(data, dict) or (data and not data.keys() & set(_SIGNAL_KEYS)):
            shape = sorted(data)[:5] if isinstance(data, dict) else type(data).__name__
            skips.line(path, number, f"not an OTLP JSON object (found {str(shape)[:200]})")
        elif key in data:
            if isinstance(data[key], list):
                yield number, data[key]
            else:
                skips.line(path, number, f"{key} is not a list")


def _proto_dicts(path: Path, message_type: Any, key: str) -> list[Any]:
    """``key`` of the one protobuf ``message_type`` in ``path``, in the file exporter's JSON."""
    from google.protobuf.message import DecodeError

    name = message_type.DESCRIPTOR.name
    raw = _read_bytes(path)
    try:
        message = message_type.FromString(raw)
    except DecodeError as exc:
        raise OtlpFileError.at(path, f"is not a protobuf {name} ({exc})") from exc
    data = request_to_json(message)
    # Protobuf cannot tell messages apart: another message often decodes as an empty request.
    if raw and not count_items(data, key, *_NESTED[key]):
        raise OtlpFileError.at(
            path,
            f"decodes as an empty {name}, so it probably holds another message "
            "(Tempo's /api/v2/traces protobuf is a response envelope; /api/traces is a trace)",
        )
    return data.get(key, [])


_NESTED = {"resourceSpans": ("scopeSpans", "spans"), "resourceLogs": ("scopeLogs", "logRecords")}


def _read(
    paths: PathArg,
    key: str,
    message_type: Any,
    rows_of: Callable[[list[Any], Skip], list[dict[str, Any]]],
    strict: bool,
) -> tuple[list[dict[str, Any]], _Skips]:
    skips = _Skips(strict)
    rows: list[dict[str, Any]] = []
    for path in _paths(paths):
        if _is_protobuf(path):
            rows += rows_of(_proto_dicts(path, message_type, key), skips.for_line(path, None))
            continue
        for number, items in _json_lines(path, key, skips):
            rows += rows_of(items, skips.for_line(path, number))
    return rows, skips


def _result(frame: pd.DataFrame, skips: _Skips) -> OtlpRead:
    return OtlpRead(frame, skips.items, skips.lines, tuple(skips.problems))


def _warn(read: OtlpRead, what: str) -> pd.DataFrame:
    if not read.complete:
        _log.warning(
            "OTLP files: skipped %d malformed %s and %d unreadable line(s); first: %s",
            read.items_skipped,
            what,
            read.lines_skipped,
            read.problems[0],
        )
    return read.frame


def read_spans_with_skips(paths: PathArg, strict: bool = False) -> OtlpRead:
    """Span frame (SPAN_COLUMNS) from OTLP files, with what was skipped in them.

    Args:
        paths: one path or several: JSON-lines files as the collector file exporter writes
            them (hex ids; ``.gz`` for gzipped) and protobuf ``ExportTraceServiceRequest``
            files (``.pb``/``.binpb``, one message each). Lines of other signals are passed over.
        strict: raise at the first malformed line or span instead of skipping it.

    Raises:
        OtlpFileError: a file is missing or unreadable as a whole, or (``strict``) a line or
            span is malformed; the message names the file and line.
    """
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    def rows_of(items: list[Any], skip: Skip) -> list[dict[str, Any]]:
        return span_rows(items, "hex", skip)

    rows, skips = _read(paths, "resourceSpans", ExportTraceServiceRequest, rows_of, strict)
    return _result(span_frame(rows), skips)


def read_spans(paths: PathArg, strict: bool = False) -> pd.DataFrame:
    """Span frame (SPAN_COLUMNS) from OTLP files, in file and line order.

    What is malformed is skipped with a logged warning; :func:`read_spans_with_skips` returns
    the counts. Arguments and errors as there.
    """
    return _warn(read_spans_with_skips(paths, strict), "span(s)")


def read_logs_with_skips(paths: PathArg, strict: bool = False) -> OtlpRead:
    """Log frame (LOG_COLUMNS, see :func:`logs_from_json`) from OTLP files, with the skips.

    Args:
        paths: JSON-lines files of ``{"resourceLogs": [...]}`` objects (``.gz`` too) and
            protobuf ``ExportLogsServiceRequest`` files (``.pb``/``.binpb``).
        strict: raise at the first malformed line or log record instead of skipping it.

    Raises:
        OtlpFileError: as for :func:`read_spans_with_skips`.
    """
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    def rows_of(items: list[Any], skip: Skip) -> list[dict[str, Any]]:
        return log_rows(items, "hex", skip)

    rows, skips = _read(paths, "resourceLogs", ExportLogsServiceRequest, rows_of, strict)
    return _result(log_frame(rows), skips)


def read_logs(paths: PathArg, strict: bool = False) -> pd.DataFrame:
    """Log frame (LOG_COLUMNS) from OTLP files, in order, skipping what is malformed.

    As :func:`read_spans`, for log records; :func:`read_logs_with_skips` returns the counts.
    """
    return _warn(read_logs_with_skips(paths, strict), "log record(s)")
