"""A tiny threaded HTTP server on 127.0.0.1 for faking backends in tests.

A handler function maps each request to a reply; every request is recorded so tests can assert
what the client sent (paths, parameters, headers). A reply can trickle its body (and, with
``trickle_headers``, its status line and headers) a byte at a time, ``trickle_s`` apart, as a
slow backend or link would. Use it as a context
manager: the server is stopped on exit even when the test fails, trickles included.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def param(self, name: str, default: str | None = None) -> str | None:
        """First value of query parameter ``name``."""
        values = self.params.get(name)
        return values[0] if values else default


@dataclass
class Reply:
    """What the fake answers."""

    status: int = 200
    body: bytes | str = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    trickle_s: float = 0.0  # > 0: send the body one byte at a time, this far apart
    trickle_headers: bool = False  # trickle the status line and headers too


Handler = Callable[[Request], Reply]


class FakeServer:
    """Serve ``handler`` on 127.0.0.1 at a free port until closed."""

    def __init__(self, handler: Handler, clock: Callable[[], float] | None = None) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self._stopping = threading.Event()
        fake = self

        class _RequestHandler(BaseHTTPRequestHandler):
            def date_time_string(self, timestamp: float | None = None) -> str:
                # The Date header tells clients the server's time: a fake keeps its own clock.
                return super().date_time_string(
                    clock() if clock and timestamp is None else timestamp
                )

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    method=self.command,
                    path=parts.path,
                    params=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                if request.method == "POST" and "form-urlencoded" in request.headers.get(
                    "content-type", ""
                ):
                    request.params.update(parse_qs(body.decode(), keep_blank_values=True))
                fake.requests.append(request)
                reply = fake.handler(request)
                payload = reply.body.encode() if isinstance(reply.body, str) else reply.body
                head = [
                    ("Content-Type", reply.content_type),
                    ("Content-Length", str(len(payload))),
                    *reply.headers.items(),
                ]
                if reply.trickle_s > 0 and reply.trickle_headers:
                    reason = self.responses.get(reply.status, ("",))[0]
                    lines = [f"HTTP/1.0 {reply.status} {reason}", *(f"{k}: {v}" for k, v in head)]
                    self._trickle(("\r\n".join(lines) + "\r\n\r\n").encode() + payload, reply)
                    return
                self.send_response(reply.status)
                for key, value in head:
                    self.send_header(key, value)
                self.end_headers()
                if reply.trickle_s > 0:
                    self._trickle(payload, reply)
                else:
                    self.wfile.write(payload)

            def _trickle(self, data: bytes, reply: Reply) -> None:
                try:
                    for i in range(len(data)):
                        # time.sleep, not Event.wait(timeout): under faketime (the date check
                        # of the README) a timed condition wait never wakes up.
                        if i:
                            time.sleep(reply.trickle_s)
                        if fake._stopping.is_set():
                            return
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

            do_GET = _serve
            do_POST = _serve

            def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _RequestHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class FakeBackend:
    """Base of the fake backends: serves :meth:`handle` on a :class:`FakeServer`.

    Subclasses set their state, call ``super().__init__()`` and implement ``handle``; a fake is
    a context manager that starts and stops its server.
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.server = FakeServer(self.handle, clock)

    def handle(self, request: Request) -> Reply:
        """Answer one request (subclasses answer as their backend does)."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        """Base URL of the fake."""
        return self.server.url

    @property
    def requests(self) -> list[Request]:
        """Every request received, in order."""
        return self.server.requests

    def __enter__(self) -> Self:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)
