"""ACP framing: JSON-RPC 2.0 messages, one per line, over a pair of byte streams.

The Agent Client Protocol runs JSON-RPC 2.0 over the agent CLI's stdin and stdout, each message
a single line of JSON. A client sends ``initialize``, ``session/new`` and ``session/prompt``
requests; while a prompt runs the agent streams ``session/update`` notifications and answers
the prompt last. Every params object may carry ``_meta``; its root keys ``traceparent``,
``tracestate`` and ``baggage`` are reserved for W3C trace context, which is how the proxy hands
its span to the agent process.

:class:`AcpClient` is the proxy's side over asyncio streams; the agent's side lives in
:mod:`obslib.fleet.agent_cli` and uses the same :func:`encode` and :func:`decode`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable, Mapping
from typing import Any

JSONRPC_VERSION = "2.0"
PROTOCOL_VERSION = 1

INITIALIZE = "initialize"
SESSION_NEW = "session/new"
SESSION_PROMPT = "session/prompt"
SESSION_UPDATE = "session/update"
# Methods starting with "_" are ACP's extension space: the agent reports its telemetry totals
# with this notification just before it exits.
TELEMETRY_REPORT = "_daedalus/telemetry"

META = "_meta"
TRACE_CONTEXT_KEYS = ("traceparent", "tracestate", "baggage")
# A correlation key of our own in _meta (not a trace context key, so dropping the trace context
# at the pipe leaves it in place and the agent's spans still name their task).
META_TASK_ID = "daedalus.dev/taskId"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

NotificationHandler = Callable[[str, dict[str, Any]], None]


class AcpError(Exception):
    """A JSON-RPC error: from the peer's error response, or a malformed message."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(code, message, data)

    def __str__(self) -> str:
        return f"ACP error {self.code}: {self.message}"


class AcpClosed(AcpError):
    """The agent's output ended (the process exited) before a response arrived."""

    def __init__(self, message: str = "the agent closed its stdout") -> None:
        super().__init__(INTERNAL_ERROR, message)


def encode(message: Mapping[str, Any]) -> bytes:
    """One message as a line: compact JSON (it escapes newlines inside strings) and a newline."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def decode(line: bytes | str) -> dict[str, Any]:
    """Parse one line into a JSON-RPC 2.0 message.

    Raises:
        AcpError: ``PARSE_ERROR`` when the line is not JSON, ``INVALID_REQUEST`` when it is not a
            JSON-RPC 2.0 object.
    """
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise AcpError(PARSE_ERROR, f"not JSON: {exc}") from exc
    if not isinstance(message, dict) or message.get("jsonrpc") != JSONRPC_VERSION:
        raise AcpError(INVALID_REQUEST, "not a JSON-RPC 2.0 object")
    return message


def request(request_id: int, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A request message."""
    return {"jsonrpc": JSONRPC_VERSION, "id": request_id, "method": method, "params": dict(params)}


def notification(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A notification message (no id, no response expected)."""
    return {"jsonrpc": JSONRPC_VERSION, "method": method, "params": dict(params)}


def response(request_id: Any, result: Mapping[str, Any]) -> dict[str, Any]:
    """A success response to request ``request_id``."""
    return {"jsonrpc": JSONRPC_VERSION, "id": request_id, "result": dict(result)}


def error_response(request_id: Any, code: int, message: str) -> dict[str, Any]:
    """An error response to request ``request_id``."""
    return {
        "jsonrpc": JSONRPC_VERSION,
        "id": request_id,
        "error": {"code": code, "message": message},
    }


def is_request(message: Mapping[str, Any]) -> bool:
    """Whether ``message`` is a request (has both a method and an id)."""
    return "method" in message and "id" in message


def is_notification(message: Mapping[str, Any]) -> bool:
    """Whether ``message`` is a notification (a method without an id)."""
    return "method" in message and "id" not in message


def text_of(content: Any) -> str:
    """The text of an ACP content block (``{"type": "text", "text": ...}``), "" for other kinds."""
    if isinstance(content, Mapping) and content.get("type") == "text":
        return str(content.get("text", ""))
    return ""


class AcpClient:
    """The client side of ACP over an agent's stdout (``reader``) and stdin (``writer``).

    Requests may run concurrently (several sessions share one agent process); responses are
    matched by id. Notifications go to the handler registered for their ``sessionId`` (see
    :meth:`watch_session`), extension notifications to ``on_notification``.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_notification: NotificationHandler | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_notification = on_notification
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._sessions: dict[str, NotificationHandler] = {}
        self._read_task: asyncio.Task[None] | None = None
        self._closed_reason = ""

    def start(self) -> None:
        """Start reading the agent's output (call once, from the running event loop)."""
        if self._read_task is None:
            self._read_task = asyncio.get_running_loop().create_task(self._read_loop())

    async def request(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Send a request and return its result.

        Raises:
            AcpError: the agent answered with an error.
            AcpClosed: the agent's output ended first.
        """
        if self._closed_reason:
            raise AcpClosed(self._closed_reason)
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._writer.write(encode(request(request_id, method, params)))
            await self._writer.drain()
            return await future
        finally:
            self._pending.pop(request_id, None)

    def watch_session(self, session_id: str, handler: NotificationHandler) -> None:
        """Send the notifications of ``session_id`` to ``handler(method, params)``."""
        self._sessions[session_id] = handler

    def unwatch_session(self, session_id: str) -> None:
        """Stop routing the notifications of ``session_id``."""
        self._sessions.pop(session_id, None)

    def close_input(self) -> None:
        """Close the agent's stdin, which tells it to finish and exit."""
        if not self._writer.is_closing():
            self._writer.close()

    async def wait_closed(self) -> None:
        """Wait until the agent's output has ended and every line has been handled."""
        if self._read_task is not None:
            await self._read_task

    async def _read_loop(self) -> None:
        try:
            while line := await self._reader.readline():
                if line.strip():
                    self._dispatch(line)
            self._closed_reason = "the agent closed its stdout"
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
            self._closed_reason = f"reading the agent's output failed: {exc}"
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(AcpClosed(self._closed_reason or "closed"))

    def _dispatch(self, line: bytes) -> None:
        try:
            message = decode(line)
        except AcpError:
            return  # a stray non-protocol line from the agent: nothing to route it to
        if is_request(message):
            # The agent asks the client for something (permissions, files): this client
            # offers no such capability.
            reply = error_response(
                message["id"], METHOD_NOT_FOUND, f"{message['method']} unsupported"
            )
            with contextlib.suppress(ConnectionError, RuntimeError):
                self._writer.write(encode(reply))
            return
        if is_notification(message):
            params = message.get("params") or {}
            handler = self._sessions.get(str(params.get("sessionId", "")), self._on_notification)
            if handler is not None:
                handler(message["method"], params)
            return
        future = self._pending.get(message.get("id"))  # type: ignore[arg-type]
        if future is None or future.done():
            return
        if "error" in message:
            err = message["error"] or {}
            future.set_exception(
                AcpError(int(err.get("code", INTERNAL_ERROR)), str(err.get("message", "")))
            )
        else:
            future.set_result(message.get("result") or {})
