"""Structured logs in the platform's slog JSON shape, to a file and optionally over OTLP.

Each line is one JSON object: ``time`` (RFC 3339, UTC, nanoseconds), ``level``, ``msg``,
``taskId``, ``agent_type`` and, when a span is current, ``trace_id`` and ``span_id`` (the
fields the Loki source reads), plus any extra fields. The same record can go to an
OpenTelemetry ``Logger``, which stamps the current span's ids on it for ``/v1/logs``.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import Logger, SeverityNumber

_SEVERITY = {
    "DEBUG": SeverityNumber.DEBUG,
    "INFO": SeverityNumber.INFO,
    "WARN": SeverityNumber.WARN,
    "ERROR": SeverityNumber.ERROR,
}


def rfc3339_ns(unix_ns: int) -> str:
    """``unix_ns`` as ``2024-05-01T12:00:00.123456789Z``, the precision slog writes."""
    seconds, nanos = divmod(unix_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"


class JsonLog:
    """Write slog-shaped JSON lines for one service (thread-safe; a no-op without a path)."""

    def __init__(self, path: Path | None, otel_logger: Logger | None = None) -> None:
        self.path = path
        self._otel = otel_logger
        self._lock = threading.Lock()
        self._file = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")

    def info(self, msg: str, *, task_id: str = "", agent_type: str = "", **fields: Any) -> None:
        """Log at INFO."""
        self.write("INFO", msg, task_id=task_id, agent_type=agent_type, **fields)

    def warn(self, msg: str, *, task_id: str = "", agent_type: str = "", **fields: Any) -> None:
        """Log at WARN."""
        self.write("WARN", msg, task_id=task_id, agent_type=agent_type, **fields)

    def error(self, msg: str, *, task_id: str = "", agent_type: str = "", **fields: Any) -> None:
        """Log at ERROR."""
        self.write("ERROR", msg, task_id=task_id, agent_type=agent_type, **fields)

    def write(
        self, level: str, msg: str, *, task_id: str = "", agent_type: str = "", **fields: Any
    ) -> None:
        """Write one record at ``level`` (DEBUG, INFO, WARN or ERROR)."""
        now = time.time_ns()
        record: dict[str, Any] = {"time": rfc3339_ns(now), "level": level, "msg": msg}
        if task_id:
            record["taskId"] = task_id
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record["trace_id"] = format(span_context.trace_id, "032x")
            record["span_id"] = format(span_context.span_id, "016x")
        if agent_type:
            record["agent_type"] = agent_type
        record.update(fields)
        line = json.dumps(record, separators=(",", ":"), default=str)
        with self._lock:
            if self._file is not None and not self._file.closed:
                self._file.write(line + "\n")
                self._file.flush()
        if self._otel is not None:
            attributes = {k: v for k, v in record.items() if k not in ("time", "level", "msg")}
            attributes.pop("trace_id", None)
            attributes.pop("span_id", None)
            self._otel.emit(
                timestamp=now,
                severity_text=level,
                severity_number=_SEVERITY.get(level, SeverityNumber.INFO),
                body=msg,
                attributes={
                    k: v if isinstance(v, str | int | float | bool) else str(v)
                    for k, v in attributes.items()
                },
            )

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
