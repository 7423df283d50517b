"""HTTP plumbing of the collector: a threaded server on the standard library, body framing.

The server knows nothing of OTLP: each request goes to ``dispatch(handler)``, and ``track``
hears of every connection opened and closed so the owner can close idle keep-alive
connections when it stops.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from obslib.collector import codec
from obslib.collector.codec import Rejection

_DRAIN_CHUNK = 64 * 1024

_log = logging.getLogger("obslib.collector")


class Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer that hands every request to ``dispatch``."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        dispatch: Callable[[Handler], None],
        track: Callable[[socket.socket, bool], None],
    ) -> None:
        self.dispatch = dispatch
        self.track = track
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    """Routes every method to the server's ``dispatch``."""

    protocol_version = "HTTP/1.1"  # keep-alive, as OTLP clients expect
    server_version = "obslib-otlp-collector"
    sys_version = ""
    server: Server

    def setup(self) -> None:
        """Set up the connection and report it open."""
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        """Close the connection and report it closed."""
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def do_POST(self) -> None:
        """Dispatch (every other method is routed here too, to be refused there)."""
        self.server.dispatch(self)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Access log at DEBUG level rather than on stderr."""
        _log.debug("OTLP collector: " + format, *args)


def _drain(rfile: Any, n: int) -> None:
    while n > 0:
        chunk = rfile.read(min(n, _DRAIN_CHUNK))
        if not chunk:
            raise ConnectionError("client closed the connection mid-body")
        n -= len(chunk)


def _read_chunked(handler: Handler, limit: int) -> tuple[bytes, bool]:
    rfile = handler.rfile
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = rfile.readline(1024)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            handler.close_connection = True  # the framing is lost
            raise Rejection(400, codec.MALFORMED_HTTP, "malformed chunked body") from None
        if size == 0:
            while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers are ignored
            return b"".join(parts), total > limit
        total += size
        if total > limit:
            parts = []
            _drain(rfile, size)
        else:
            chunk = rfile.read(size)
            if len(chunk) < size:
                raise ConnectionError("client closed the connection mid-body")
            parts.append(chunk)
        rfile.readline(8)  # the CRLF after each chunk


def read_body(handler: Handler, limit: int) -> tuple[bytes, bool]:
    """The request body, and whether it was over ``limit`` (it is then read and dropped).

    Raises:
        Rejection: the framing (Content-Length, chunks) is broken; the connection is closed.
        ConnectionError: the client hung up before the body ended.
    """
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        return _read_chunked(handler, limit)
    try:
        length = int(handler.headers.get("Content-Length") or 0)
    except ValueError:
        handler.close_connection = True
        raise Rejection(400, codec.MALFORMED_HTTP, "Content-Length is not a number") from None
    if length > limit:
        _drain(handler.rfile, length)
        return b"", True
    body = handler.rfile.read(length)
    if len(body) < length:
        raise ConnectionError("client closed the connection mid-body")
    return body, False


def reply(
    handler: Handler,
    status: int,
    body: bytes,
    content_type: str,
    headers: dict[str, str] | None = None,
) -> None:
    """Send ``status`` with ``body`` (left out for HEAD) and ``headers``."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)
