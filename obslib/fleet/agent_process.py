"""Spawn the agent CLI as a subprocess and talk ACP to it over its stdin and stdout.

The ACP side is the protocol SDK's client connection (``acp.connect_to_agent`` on the child's
pipes). The process itself is started here rather than with the SDK's ``spawn_agent_process``:
that is a context manager, while a worker's agent lives across calls, and by default it starts
from a trimmed environment, pipes stderr, and terminates a child still running two seconds
after its stdin closed without raising. The agent needs the caller's environment (less any
inherited trace context), its stderr in a file, and a clear error when it hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import acp
from acp.connection import StreamObserver
from acp.schema import ClientCapabilities, FileSystemCapabilities, InitializeResponse

from obslib.catalogue.hops import SERVICE_PROXY
from obslib.errors import StackError
from obslib.fleet.acp_extensions import (
    REPORT_EXPORTED,
    REPORT_FAILED,
    REPORT_LOST,
    REPORT_SERVICE,
    TELEMETRY_METHOD,
    implementation,
)
from obslib.fleet.telemetry import ENV_CONTEXT_KEYS

UpdateWatcher = Callable[[Any], None]


@dataclass(frozen=True)
class AgentReport:
    """What the agent process said about its telemetry when it exited."""

    service: str
    spans_exported: int
    spans_failed: int
    returncode: int | None
    spans_lost: int = 0  # ended, but dropped before export (a full batch queue)


class SessionUpdates:
    """The client side's methods (an ``acp.Client``): routes each ``session/update`` to a watcher.

    It offers no other capability, so the SDK answers an agent's permission, file or terminal
    request with "method not found".
    """

    def __init__(self) -> None:
        self._watchers: dict[str, UpdateWatcher] = {}

    def watch(self, session_id: str, watcher: UpdateWatcher) -> None:
        """Hand the updates of ``session_id`` (the SDK's update models) to ``watcher``."""
        self._watchers[session_id] = watcher

    def unwatch(self, session_id: str) -> None:
        """Stop handing on the updates of ``session_id``."""
        self._watchers.pop(session_id, None)

    async def session_update(self, session_id: str, update: Any, **meta: Any) -> None:
        """``session/update``: the SDK calls this in order of arrival, before the response."""
        watcher = self._watchers.get(session_id)
        if watcher is not None:
            watcher(update)


class AgentProcess:
    """One running agent CLI and the SDK's ACP client connection to it (:attr:`conn`).

    Build with :meth:`spawn`; always :meth:`close` it (that flushes the agent's spans).
    """

    def __init__(
        self,
        agent_type: str,
        proc: asyncio.subprocess.Process,
        spawned: float,
        observers: list[StreamObserver] | None = None,
    ) -> None:
        self.agent_type = agent_type
        self.spawned_monotonic = spawned
        self._proc = proc
        assert proc.stdout is not None and proc.stdin is not None
        self.sessions = SessionUpdates()
        self.conn = acp.connect_to_agent(
            cast(acp.Client, self.sessions), proc.stdin, proc.stdout, observers=observers
        )

    @classmethod
    async def spawn(
        cls,
        agent_type: str,
        *,
        otlp_endpoint: str,
        namespace: str,
        log_dir: Path | None = None,
        faults_file: Path | None = None,
        trace_env: Mapping[str, str] | None = None,
        stderr_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
        observers: list[StreamObserver] | None = None,
    ) -> AgentProcess:
        """Start ``python -m obslib.fleet.agent_cli`` for ``agent_type``.

        Args:
            agent_type: the agent type it serves.
            otlp_endpoint: collector base URL the agent exports to.
            namespace: ``k8s.namespace.name`` of its resource.
            log_dir: directory for its JSON log lines.
            faults_file: its span faults (JSON of :class:`~obslib.fleet.faults.SpanFaults`).
            trace_env: W3C context (``traceparent``...) to hand over in its environment, for a
                process that serves one task; None for a long-lived worker process.
            stderr_path: where its stderr goes (default: discarded).
            extra_args: more agent CLI arguments.
            observers: callbacks that see every ACP message both ways, as JSON (the SDK's
                stream observers; for recording the wire).
        """
        cmd = [sys.executable, "-m", "obslib.fleet.agent_cli", "--agent-type", agent_type]
        cmd += ["--otlp-endpoint", otlp_endpoint, "--namespace", namespace]
        if log_dir is not None:
            cmd += ["--log-dir", str(log_dir)]
        if faults_file is not None:
            cmd += ["--faults", str(faults_file)]
        cmd += list(extra_args)
        # A worker's agent must not inherit some other trace's context from this environment.
        env = {k: v for k, v in os.environ.items() if k not in ENV_CONTEXT_KEYS.values()}
        for key, value in (trace_env or {}).items():
            env[ENV_CONTEXT_KEYS[key]] = value
        stderr: Any = asyncio.subprocess.DEVNULL
        if stderr_path is not None:
            stderr_path.parent.mkdir(parents=True, exist_ok=True)
            stderr = stderr_path.open("ab")
        spawned = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env=env,
                limit=4 * 1024 * 1024,
            )
        finally:
            if stderr_path is not None:
                stderr.close()  # the child holds its own descriptor
        return cls(agent_type, proc, spawned, observers)

    async def initialize(self) -> InitializeResponse:
        """The ACP handshake; returns the agent's answer."""
        return await self.conn.initialize(
            protocol_version=acp.PROTOCOL_VERSION,
            client_capabilities=ClientCapabilities(
                fs=FileSystemCapabilities(read_text_file=False, write_text_file=False)
            ),
            client_info=implementation(SERVICE_PROXY),
        )

    @property
    def pid(self) -> int:
        """The process id."""
        return self._proc.pid

    async def close(self, timeout_s: float = 30.0) -> AgentReport:
        """Ask for the agent's telemetry report, close its stdin and wait for it to exit.

        Raises:
            StackError: the agent did not report or exit within ``timeout_s`` (it is killed).
        """
        report: dict[str, Any] = {}
        try:
            report = await asyncio.wait_for(self.conn.ext_method(TELEMETRY_METHOD, {}), timeout_s)
            await self.conn.close()
            self._close_stdin()
            await asyncio.wait_for(self._proc.wait(), timeout_s)
        except TimeoutError:
            await self.abort()
            raise StackError(
                f"agent CLI for {self.agent_type} (pid {self._proc.pid}) did not report its "
                f"telemetry and exit within {timeout_s} s; it was killed and its spans may be lost"
            ) from None
        except (acp.RequestError, ConnectionError):
            # It died or refused: no report; reap it and let the counts say nothing arrived.
            await self.abort()
        return AgentReport(
            service=str(report.get(REPORT_SERVICE, "")),
            spans_exported=int(report.get(REPORT_EXPORTED, 0)),
            spans_failed=int(report.get(REPORT_FAILED, 0)),
            returncode=self._proc.returncode,
            spans_lost=int(report.get(REPORT_LOST, 0)),
        )

    async def abort(self) -> None:
        """Kill the process at once and reap it (cleanup after a failure; spans are lost)."""
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        await self._proc.wait()
        await self.conn.close()
        self._close_stdin()

    def _close_stdin(self) -> None:
        stdin = self._proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
