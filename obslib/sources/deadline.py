"""Read one HTTP answer against a wall-clock deadline, however slowly the server sends it.

requests' ``timeout`` bounds each socket read, not the answer: a server that sends a byte a
second never trips it. Here both halves of an answer are bounded by the deadline instead:

- the status line and headers: a timer on urllib3's ``getresponse`` shuts the socket down at
  the deadline (the connection classes below, installed by :class:`DeadlineAdapter`);
- the body: streamed with ``read1``, which returns after one socket read, the socket's timeout
  set to the time left before each read.

The body is read undecoded and decompressed here, because urllib3's decoder keeps reading
until it has output and would not notice the deadline. :func:`fetch` raises
:class:`OutOfTime` when the deadline passes; transport errors are requests' and urllib3's own.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions

ACCEPT_ENCODING = "gzip, deflate"  # what _decoded can undo
READ_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """A complete HTTP answer: status, headers and the whole (decoded) body."""

    status: int
    url: str
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)

    @property
    def text(self) -> str:
        """The body as text (the charset the answer names, else UTF-8)."""
        content_type = self.headers.get("Content-Type", "")
        charset = content_type.partition("charset=")[2].split(";")[0].strip() or "utf-8"
        try:
            return self.body.decode(charset, "replace")
        except LookupError:
            return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body decoded as JSON (raises ``ValueError`` if it is not JSON)."""
        return json.loads(self.body)


class _Watch:
    """The deadline of the attempt under way in this thread, and whether its timer fired."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline  # on time.monotonic()
        self.fired = False


_WATCH: ContextVar[_Watch | None] = ContextVar("obslib_http_watch", default=None)


class _Alarm(threading.Thread):
    """Calls ``action`` once at ``deadline`` (on ``time.monotonic``) unless cancelled first.

    It sleeps in short steps instead of waiting on a timed condition (as ``threading.Timer``
    does): a timed condition wait never wakes when the date is shifted with faketime, as the
    README's date check does, while a plain sleep does.
    """

    STEP_S = 0.05

    def __init__(self, deadline: float, action: Callable[[], None]) -> None:
        super().__init__(daemon=True, name="obslib-http-deadline")
        self.deadline, self.action, self.cancelled = deadline, action, False

    def run(self) -> None:
        """Sleep until the deadline, then act, unless cancelled meanwhile."""
        while not self.cancelled:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.action()
                return
            time.sleep(min(left, self.STEP_S))

    def cancel(self) -> None:
        """Do not act (the answer's headers arrived in time)."""
        self.cancelled = True


class _HeadersDeadline:
    """Mixed into urllib3's connections: stop waiting for the status line and headers in time.

    http.client reads them line by line, each socket read bounded only by the read timeout, so
    a server sending a byte a second would hold the call for as long as its headers last. A
    timer shuts the socket down at the deadline of the attempt (see ``_WATCH``) instead.
    """

    sock: socket.socket | None

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        watch = _WATCH.get()
        if watch is None:
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        alarm = _Alarm(watch.deadline, lambda: self._stop(watch))
        alarm.start()
        try:
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        finally:
            alarm.cancel()

    def _stop(self, watch: _Watch) -> None:
        watch.fired = True
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)


class _HTTPConnection(_HeadersDeadline, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_HeadersDeadline, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class DeadlineAdapter(requests.adapters.HTTPAdapter):
    """A requests adapter whose connections honour the headers deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Make the pool manager build pools of the deadline-aware connections."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


class OutOfTime(Exception):
    """The deadline passed while waiting for, or reading, an answer."""

    def __init__(self, received: int) -> None:
        super().__init__(received)
        self.received = received


def _decoded(body: bytes, encoding: str) -> bytes:
    """``body`` without its ``Content-Encoding`` (we only ever ask for gzip or deflate)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(body, wbits=zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:  # some servers send raw deflate without the zlib header
            return zlib.decompress(body, wbits=-zlib.MAX_WBITS)
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


class BodyEncodingError(ValueError):
    """The body does not decompress with its ``Content-Encoding``."""


def fetch(
    session: requests.Session,
    method: str,
    url: str,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    **send: Any,
) -> Answer:
    """One request, its whole answer read before ``deadline`` (on ``clock``).

    ``send`` goes to ``session.request`` (params, data, json, headers, verify).

    Raises:
        OutOfTime: the deadline passed first.
        BodyEncodingError: the body does not decompress.
        requests.ConnectionError, urllib3.exceptions.HTTPError: the transport failed.
    """
    left = deadline - clock()
    if left <= 0:
        raise OutOfTime(0)
    watch = _Watch(time.monotonic() + left)
    token = _WATCH.set(watch)
    try:
        response = session.request(method, url, **send, timeout=(left, left), stream=True)
    except requests.ReadTimeout:
        raise OutOfTime(0) from None
    except requests.ConnectionError:
        if watch.fired:  # the headers timer shut the socket down
            raise OutOfTime(0) from None
        raise
    finally:
        _WATCH.reset(token)
    try:
        raw = _read_body(response, deadline, clock)
    finally:
        response.close()
    try:
        body = _decoded(raw, response.headers.get("Content-Encoding", ""))
    except (zlib.error, ValueError) as exc:
        raise BodyEncodingError(str(exc)) from None
    return Answer(response.status_code, response.url, response.headers, body)


def _read_body(response: requests.Response, deadline: float, clock: Callable[[], float]) -> bytes:
    """The raw body, read in chunks; each socket read waits at most until ``deadline``."""
    chunks: list[bytes] = []
    received = 0
    while True:
        left = deadline - clock()
        if left <= 0:
            raise OutOfTime(received)
        # read1 returns after one socket read; the socket's timeout bounds that read.
        connection = getattr(response.raw, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            sock.settimeout(left)
        try:
            chunk = response.raw.read1(READ_CHUNK_BYTES, decode_content=False)
        except urllib3.exceptions.ReadTimeoutError:
            raise OutOfTime(received) from None
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        received += len(chunk)
