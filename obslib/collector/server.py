"""The test OTLP collector: an OTLP/HTTP receiver on 127.0.0.1 that keeps what it accepts.

Accepted requests are appended to ``traces.jsonl`` / ``logs.jsonl`` (the OpenTelemetry Collector
file exporter's format, read back by :mod:`obslib.sources.otlp_files`) before the 200 is sent,
and kept in memory for :meth:`OtlpCollector.spans_frame` and :meth:`OtlpCollector.logs_frame`.
A rejected request changes nothing but a counter, so a bad client cannot cost accepted data;
every request is bounded (body bytes, items, time, connections) so a bad client cannot take the
collector down either, and everything accepted is checked with the file reader's own rule so
the file stays readable.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import pandas as pd

from obslib.collector import codec, transport
from obslib.collector.codec import Rejection
from obslib.errors import ConfigError, StackError
from obslib.sources.otlp import spans_from_json
from obslib.sources.otlp_files import logs_from_json

# The OTLP specification's recommended limit, applied before and after decompression.
DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024
DEFAULT_TIMEOUT_S = 10.0  # as the OTel SDK exporters' own timeout
DEFAULT_MAX_CONNECTIONS = 64
FILES = {"traces": "traces.jsonl", "logs": "logs.jsonl"}

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollectorStats:
    """What the collector has seen since it was created.

    Attributes:
        accepted: accepted requests by ``signal/encoding``, e.g. ``traces/protobuf+gzip``.
        rejected: rejected requests by reason, e.g. ``malformed_json`` (see ``codec``).
        spans_accepted: spans in accepted trace requests.
        log_records_accepted: log records in accepted log requests.
    """

    accepted: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    spans_accepted: int = 0
    log_records_accepted: int = 0

    @property
    def requests_accepted(self) -> int:
        """Accepted requests of every signal and encoding."""
        return sum(self.accepted.values())

    @property
    def requests_rejected(self) -> int:
        """Rejected requests for every reason."""
        return sum(self.rejected.values())


def _loopback(host: str) -> str:
    try:
        address = ipaddress.ip_address(socket.gethostbyname(host))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"collector host {host!r} does not resolve: {exc}") from exc
    if not address.is_loopback:
        raise ConfigError(
            f"collector host {host!r} is not a loopback address: the test collector has no "
            "authentication and only listens on 127.0.0.1"
        )
    return str(address)


class OtlpCollector:
    """An OTLP/HTTP receiver for traces and logs, in-process, on 127.0.0.1.

    Use it as a context manager (or ``start()``/``stop()``); point OTel SDK exporters at
    ``f"{collector.endpoint}/v1/traces"`` and ``.../v1/logs``. Thread-safe.

    Args:
        out_dir: directory for ``traces.jsonl`` and ``logs.jsonl`` (created; lines are appended
            to files already there, as the file exporter does).
        host: a loopback host name or address.
        port: TCP port; 0 picks a free one (see ``endpoint``).
        max_body_bytes: largest body accepted, compressed and after decompression.
        max_items: most items (embedded messages, JSON objects and arrays) a body may hold;
            default one per ``codec.BYTES_PER_ITEM`` (16) bytes of ``max_body_bytes``.
        timeout_s: the longest a connection may idle between requests, and the longest a
            request may take to arrive from its first byte to its last (then 408).
        max_connections: connections served at once; more wait to be accepted.
    """

    def __init__(
        self,
        out_dir: Path | str,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_items: int | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.host = _loopback(host)
        self.max_body_bytes = max_body_bytes
        self.max_items = max_body_bytes // codec.BYTES_PER_ITEM if max_items is None else max_items
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self._port = port
        self._signals = codec.signals()
        self._cond = threading.Condition()  # guards all the state below
        self._resource_spans: list[dict[str, Any]] = []
        self._resource_logs: list[dict[str, Any]] = []
        self._accepted: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()  # items accepted by signal name
        self._connections: set[socket.socket] = set()
        self._server: transport.Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> OtlpCollector:
        """Create ``out_dir`` and start serving in a background thread; returns self."""
        if self._server is not None:
            return self
        self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            server = transport.Server(
                (self.host, self._port),
                self._handle,
                self._refuse_http,
                self._track,
                self.max_connections,
                self.timeout_s,
            )
        except OSError as exc:
            raise StackError(
                f"OTLP collector cannot listen on {self.host}:{self._port}: {exc}. Stop what "
                "holds the port or choose another one (port 0 picks a free port)."
            ) from exc
        self._server = server
        # A short poll interval makes stop() quick (shutdown waits for the next poll).
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="otlp-collector",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close open connections; what was accepted stays readable."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with self._cond:
            connections = list(self._connections)
        for conn in connections:  # idle keep-alive connections would outlive the server
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> OtlpCollector:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        """The ``(host, port)`` the server socket is bound to."""
        if self._server is None:
            raise StackError("the OTLP collector is not running: call start() first")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def endpoint(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:4318``; exporters append ``/v1/traces``."""
        host, port = self.address
        return f"http://{host}:{port}"

    @property
    def traces_path(self) -> Path:
        """The JSON-lines file accepted trace requests are appended to."""
        return self.out_dir / FILES["traces"]

    @property
    def logs_path(self) -> Path:
        """The JSON-lines file accepted log requests are appended to."""
        return self.out_dir / FILES["logs"]

    # --- what was received -------------------------------------------------------------------

    def spans_frame(self) -> pd.DataFrame:
        """Every accepted span (SPAN_COLUMNS), in the order received."""
        with self._cond:
            resource_spans = list(self._resource_spans)
        return spans_from_json(resource_spans, id_encoding="hex")

    def logs_frame(self) -> pd.DataFrame:
        """Every accepted log record (LOG_COLUMNS), in the order received."""
        with self._cond:
            resource_logs = list(self._resource_logs)
        return logs_from_json(resource_logs, id_encoding="hex")

    @property
    def stats(self) -> CollectorStats:
        """A snapshot of the request and item counters."""
        with self._cond:
            return CollectorStats(
                accepted=dict(self._accepted),
                rejected=dict(self._rejected),
                spans_accepted=self._counts["traces"],
                log_records_accepted=self._counts["logs"],
            )

    def wait_for_spans(self, n: int, timeout_s: float = 10.0) -> bool:
        """Block until at least ``n`` spans were accepted; False if ``timeout_s`` ran out."""
        with self._cond:
            return self._cond.wait_for(lambda: self._counts["traces"] >= n, timeout_s)

    def wait_for_log_records(self, n: int, timeout_s: float = 10.0) -> bool:
        """Block until at least ``n`` log records were accepted; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._counts["logs"] >= n, timeout_s)

    # --- serving (called from the handler threads) -------------------------------------------

    def _track(self, conn: socket.socket, open_: bool) -> None:
        with self._cond:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _handle(self, handler: transport.Handler) -> None:
        content_type = handler.headers.get("Content-Type")
        encoding = codec.encoding_of(content_type)
        path = urlsplit(handler.path).path
        signal = self._signals.get(path)
        try:
            body, too_large = transport.read_body(handler, self.max_body_bytes)
            if signal is None:
                raise Rejection(
                    404, codec.NOT_FOUND, f"no OTLP endpoint at {path}: use /v1/traces or /v1/logs"
                )
            if handler.command != "POST":
                raise Rejection(
                    405, codec.METHOD_NOT_ALLOWED, f"{handler.command} {path}: OTLP exports POST"
                )
            if encoding is None:
                raise Rejection(
                    415,
                    codec.UNSUPPORTED_MEDIA_TYPE,
                    f"Content-Type {codec.media_type(content_type)!r} is not OTLP: use "
                    f"{codec.PROTOBUF} or {codec.JSON}",
                )
            if too_large:
                raise Rejection(
                    400, codec.TOO_LARGE, f"the body exceeds {self.max_body_bytes} bytes"
                )
            content_encoding = handler.headers.get("Content-Encoding")
            raw = codec.decompress(body, content_encoding, self.max_body_bytes)
            codec.check_items(raw, encoding, signal, self.max_items)
            request = codec.decode_request(raw, encoding, signal)
            del body, raw  # the request holds it all now
            count = signal.count(request)
            # Empty envelopes are acknowledged but not written, as the spec allows.
            data = codec.file_json(request, signal) if count else {}
            coding = (content_encoding or "identity").strip().lower()
            fmt = f"{signal.name}/{encoding}" + ("" if coding == "identity" else f"+{coding}")
            self._accept(signal, count, data, fmt)
        except ConnectionError as exc:  # the client went away mid-request: nothing to answer
            _log.debug("OTLP collector: %s %s: %s", handler.command, path, exc)
            handler.close_connection = True
            return
        except TimeoutError as exc:  # the client is too slow: answer (if it still listens)
            handler.close_connection = True
            late = Rejection(408, codec.TIMEOUT, str(exc))
            with contextlib.suppress(OSError):
                self._refuse(handler, late, content_type, encoding, path)
            return
        except Rejection as rejection:
            self._refuse(handler, rejection, content_type, encoding, path)
            return
        except Exception as exc:  # a bug here must not look like a network fault to the client
            _log.exception("OTLP collector: %s %s failed", handler.command, path)
            handler.close_connection = True  # the request may not have been read to its end
            failure = Rejection(500, codec.INTERNAL_ERROR, f"collector error: {exc!r}")
            self._refuse(handler, failure, content_type, encoding, path)
            return
        success = codec.success_body(signal, encoding)
        transport.reply(handler, 200, success, codec.media_type(content_type))

    def _refuse_http(self, handler: transport.Handler, rejection: Rejection) -> None:
        headers = getattr(handler, "headers", None)
        content_type = headers.get("Content-Type") if headers is not None else None
        encoding = codec.encoding_of(content_type)
        self._refuse(handler, rejection, content_type, encoding, urlsplit(handler.path).path)

    def _refuse(
        self,
        handler: transport.Handler,
        rejection: Rejection,
        content_type: str | None,
        encoding: str | None,
        path: str,
    ) -> None:
        with self._cond:
            self._rejected[rejection.reason] += 1
        _log.warning(
            "OTLP collector: %s %s rejected with %d (%s): %s",
            handler.command or "-",
            path or "-",
            rejection.status,
            rejection.reason,
            rejection.message,
        )
        # The Status is encoded like the request, or as protobuf (the spec's own encoding)
        # when the request's content type is not one OTLP defines.
        reply_type = codec.media_type(content_type) if encoding else codec.PROTOBUF
        body = codec.status_body(rejection, encoding or "protobuf")
        extra = {"Allow": "POST"} if rejection.status == 405 else {}
        transport.reply(handler, rejection.status, body, reply_type, extra)

    def _accept(self, signal: codec.Signal, count: int, data: dict[str, Any], fmt: str) -> None:
        line = json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n"
        store = self._resource_spans if signal.name == "traces" else self._resource_logs
        with self._cond:
            if count:
                path = self.out_dir / FILES[signal.name]
                try:
                    with path.open("a", encoding="utf-8") as out:
                        out.write(line)
                except OSError as exc:
                    raise Rejection(
                        500, codec.WRITE_FAILED, f"cannot append to {path}: {exc}"
                    ) from exc
                store.extend(data.get(signal.list_key, []))
            self._accepted[fmt] += 1
            self._counts[signal.name] += count
            self._cond.notify_all()


def run_collector(
    out_dir: Path | str,
    port: int = 4318,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    out: TextIO = sys.stdout,
) -> CollectorStats:
    """Serve in the foreground until Ctrl-C (KeyboardInterrupt); return the final stats.

    The other limits are :class:`OtlpCollector`'s defaults.
    """
    with OtlpCollector(out_dir, port=port, max_body_bytes=max_body_bytes) as collector:
        print(
            f"OTLP collector on {collector.endpoint} (/v1/traces, /v1/logs), appending to "
            f"{collector.traces_path} and {collector.logs_path}; Ctrl-C stops it",
            file=out,
            flush=True,
        )
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return collector.stats
