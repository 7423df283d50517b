"""HTTP plumbing of the collector: a bounded threaded server on the standard library, framing.

The server knows nothing of OTLP: each request goes to ``dispatch(handler)``, every error the
HTTP layer itself finds (a bad request line, headers too long, a timeout) to
``refuse(handler, rejection)``, so it too is answered with a ``google.rpc.Status``, and
``track`` hears of every connection opened and closed so the owner can close idle keep-alive
connections when it stops.

Bounds, so that no client can hold the collector: at most ``max_connections`` connections are
served at once (more wait, unaccepted, in the kernel's listen queue until one ends); a
connection may sit idle for ``timeout_s`` between requests, and a request must arrive whole
within ``timeout_s`` of its first byte, however slowly it trickles in (else 408). A body is
framed by one Content-Length of decimal digits or by chunks with hex sizes, nothing else, and
is never read beyond the limit into memory.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from obslib.collector import codec
from obslib.collector.codec import Rejection

_DRAIN_CHUNK = 64 * 1024
_MAX_LINE = 65536  # request line and chunk-size line, as http.server bounds a header line
_MAX_TRAILERS = 100  # as http.server bounds the header lines
_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")
# After an error that closes the connection, read (and drop) this much of what the client still
# sends, so that closing with unread input does not reset the connection before the client has
# read the error.
_LINGER_S = 0.25
_LINGER_BYTES = 1024 * 1024

_log = logging.getLogger("obslib.collector")


class Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer that hands every request to ``dispatch``, with bounded threads.

    Args:
        address: ``(host, port)`` to listen on.
        dispatch: answers one request (its body still unread).
        refuse: answers an error found by the HTTP layer.
        track: told ``(connection, True)`` when one opens and ``(connection, False)`` at close.
        max_connections: connections served at once.
        timeout_s: the longest a connection may idle, and a request may take to arrive.
    """

    daemon_threads = True
    request_queue_size = 128  # the listen backlog: where connections wait for a free slot

    def __init__(
        self,
        address: tuple[str, int],
        dispatch: Callable[[Handler], None],
        refuse: Callable[[Handler, Rejection], None],
        track: Callable[[socket.socket, bool], None],
        max_connections: int,
        timeout_s: float,
    ) -> None:
        self.dispatch = dispatch
        self.refuse = refuse
        self.track = track
        self.timeout_s = timeout_s
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stopping = threading.Event()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a thread once a slot is free (waiting keeps it unread)."""
        while not self._slots.acquire(timeout=0.05):
            if self._stopping.is_set():
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve one connection, then free its slot."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def shutdown(self) -> None:
        """Stop serving, also while waiting for a free slot."""
        self._stopping.set()
        super().shutdown()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log what escaped a handler (a client gone mid-reply) at DEBUG, not on stderr."""
        _log.debug(
            "OTLP collector: connection from %s ended with an error", client_address, exc_info=True
        )


class _Reads(io.RawIOBase):
    """The connection's reads under the server's timeout: idle before a request, then total.

    ``request_started`` is None between requests; the first byte of a request sets it, and the
    rest of the request must arrive within ``timeout_s`` of it.
    """

    def __init__(self, sock: socket.socket, timeout_s: float) -> None:
        super().__init__()
        self._sock = sock
        self._timeout_s = timeout_s
        self.request_started: float | None = None

    def readable(self) -> bool:
        """Always: it is the reading side of the socket."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Read what the socket has, within the idle timeout or what is left of the request's.

        Raises:
            TimeoutError: the connection idled too long, or the request is late.
        """
        if self.request_started is None:
            self._sock.settimeout(self._timeout_s)
        else:
            left = self.request_started + self._timeout_s - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the request did not arrive within {self._timeout_s:g} s")
            self._sock.settimeout(left)
        try:
            n = self._sock.recv_into(buffer)
        except TimeoutError:
            raise TimeoutError(
                f"the request did not arrive within {self._timeout_s:g} s"
                if self.request_started is not None
                else f"the connection was idle for {self._timeout_s:g} s"
            ) from None
        if n and self.request_started is None:
            self.request_started = time.monotonic()
        return n


class Handler(BaseHTTPRequestHandler):
    """Routes every request, whatever its method, to the server's ``dispatch``."""

    protocol_version = "HTTP/1.1"  # keep-alive, as OTLP clients expect
    # Buffered, so that the status line, headers and body leave in one segment: written apart,
    # Nagle's algorithm and the client's delayed ACK held each reply with a body by 40 ms.
    wbufsize = 64 * 1024
    server_version = "obslib-otlp-collector"
    sys_version = ""
    server: Server

    def setup(self) -> None:
        """Set up the connection with time-bounded reads, and report it open."""
        super().setup()
        self.rfile.close()
        self._reads = _Reads(self.connection, self.server.timeout_s)
        self.rfile = io.BufferedReader(self._reads)
        self.replied = self.refused = False
        self.server.track(self.connection, True)

    def finish(self) -> None:
        """Close the connection (lingering after an error) and report it closed."""
        try:
            super().finish()
            if self.close_connection and self.refused:
                self._linger()
        finally:
            self.server.track(self.connection, False)

    def _linger(self) -> None:
        ends = time.monotonic() + _LINGER_S
        dropped = 0
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)
            while dropped < _LINGER_BYTES and (left := ends - time.monotonic()) > 0:
                self.connection.settimeout(left)
                data = self.connection.recv(_DRAIN_CHUNK)
                if not data:
                    return
                dropped += len(data)

    def handle_one_request(self) -> None:
        """Read one request line and its headers, and dispatch (http.server's, bounded)."""
        self._reads.request_started = None
        self.replied = False
        self.command, self.path, self.requestline, self.request_version = "", "", "", "HTTP/1.1"
        try:
            self.raw_requestline = self.rfile.readline(_MAX_LINE + 1)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if len(self.raw_requestline) > _MAX_LINE:
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG, f"over {_MAX_LINE} bytes")
                return
            if not self.parse_request():
                return  # parse_request has sent the error
            self.server.dispatch(self)
            self.wfile.flush()
        except TimeoutError as exc:
            self.close_connection = True
            if self._reads.request_started is not None and not self.replied:
                with contextlib.suppress(OSError):
                    self.send_error(HTTPStatus.REQUEST_TIMEOUT, str(exc))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer an error of the HTTP layer with a google.rpc.Status, and close."""
        self.close_connection = True
        short, _long = self.responses.get(code, ("error", ""))
        text = f"{short}: {message}" if message and message != short else short
        if explain:
            text += f" ({explain})"
        reason = codec.TIMEOUT if code == HTTPStatus.REQUEST_TIMEOUT else codec.MALFORMED_HTTP
        self.server.refuse(self, Rejection(code, reason, text))

    def log_message(self, format: str, *args: Any) -> None:
        """Access log at DEBUG level rather than on stderr."""
        _log.debug("OTLP collector: " + format, *args)


# --- bodies ------------------------------------------------------------------------------------


def _framing(handler: Handler, status: int, message: str) -> Rejection:
    handler.close_connection = True  # where the next request begins is lost
    return Rejection(status, codec.MALFORMED_HTTP, message)


def _read_exactly(rfile: Any, n: int) -> bytes:
    data = rfile.read(n)
    if len(data) < n:
        raise ConnectionError("client closed the connection mid-body")
    return data


def _drain(rfile: Any, n: int) -> None:
    while n > 0:
        n -= len(_read_exactly(rfile, min(n, _DRAIN_CHUNK)))


def _read_chunked(handler: Handler, limit: int) -> tuple[bytes, bool]:
    rfile = handler.rfile
    parts: list[bytes] = []
    total = 0
    while True:
        line = rfile.readline(_MAX_LINE + 1)
        if not line:
            raise ConnectionError("client closed the connection mid-body")
        size_text = line.split(b";", 1)[0].strip()
        if len(line) > _MAX_LINE or not _CHUNK_SIZE.fullmatch(size_text):
            raise _framing(handler, 400, f"malformed chunk size line {line[:40]!r}")
        size = int(size_text, 16)
        if size == 0:
            break
        total += size
        if total > 2 * limit:  # too much to read just to refuse it: hang up after the 400
            handler.close_connection = True
            return b"", True
        if total > limit:
            parts = []
            _drain(rfile, size)
        else:
            parts.append(_read_exactly(rfile, size))
        if rfile.read(2) != b"\r\n":
            raise _framing(handler, 400, "a chunk does not end with CRLF where its size says")
    for _ in range(_MAX_TRAILERS):  # trailer fields are read and ignored
        if rfile.readline(_MAX_LINE + 1) in (b"\r\n", b"\n", b""):
            return b"".join(parts), total > limit
    raise _framing(handler, 400, f"more than {_MAX_TRAILERS} trailer lines")


def read_body(handler: Handler, limit: int) -> tuple[bytes, bool]:
    """The request body, and whether it was over ``limit`` (it is then dropped).

    An oversized body is read and dropped up to ``limit`` bytes more, so the client sees the
    400 on a connection still in step; beyond that the connection is closed unread.

    Raises:
        Rejection: the framing is broken (not one Content-Length of digits, a bad chunk, a
            transfer coding other than chunked); the connection is then closed.
        ConnectionError: the client hung up before the body ended.
        TimeoutError: the body did not arrive in time.
    """
    headers = handler.headers
    codings = ",".join(headers.get_all("Transfer-Encoding") or [])
    lengths = ",".join(headers.get_all("Content-Length") or [])
    if codings:
        if lengths:
            raise _framing(handler, 400, "Transfer-Encoding and Content-Length: send only one")
        if [c.strip().lower() for c in codings.split(",")] != ["chunked"]:
            raise _framing(
                handler, 501, f"Transfer-Encoding {codings[:40]!r} is not supported: use chunked"
            )
        return _read_chunked(handler, limit)
    if not lengths:
        return b"", False  # a request without Content-Length or chunks has no body (RFC 9112)
    values = {v.strip() for v in lengths.split(",")}
    value = values.pop()
    if values or not (value.isascii() and value.isdigit()):
        raise _framing(handler, 400, f"Content-Length {lengths[:40]!r} is not a number of bytes")
    length = int(value)
    if length > limit:
        if length > 2 * limit:
            handler.close_connection = True
        else:
            _drain(handler.rfile, length)
        return b"", True
    return _read_exactly(handler.rfile, length), False


def reply(
    handler: Handler,
    status: int,
    body: bytes,
    content_type: str,
    headers: dict[str, str] | None = None,
) -> None:
    """Send ``status`` with ``body`` (left out for HEAD) and ``headers``."""
    handler.replied = True
    handler.refused = handler.refused or status >= 400
    # http.server takes an unparsable request line for HTTP/0.9 and would then leave the
    # status line and headers out; nobody speaks 0.9, every client needs them.
    handler.request_version = "HTTP/1.1"
    handler.connection.settimeout(handler.server.timeout_s)  # a client must read, too
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    if handler.close_connection:
        handler.send_header("Connection", "close")
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)
