"""Spawn the agent CLI as a subprocess and talk ACP to it over its stdin and stdout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obslib.errors import StackError
from obslib.fleet import acp
from obslib.fleet.telemetry import ENV_CONTEXT_KEYS


@dataclass(frozen=True)
class AgentReport:
    """What the agent process said about its telemetry when it exited."""

    service: str
    spans_exported: int
    spans_failed: int
    returncode: int | None
    spans_lost: int = 0  # ended, but dropped before export (a full batch queue)


class AgentProcess:
    """One running agent CLI and the ACP client connected to it.

    Build with :meth:`spawn`; always :meth:`close` it (that flushes the agent's spans).
    """

    def __init__(self, agent_type: str, proc: asyncio.subprocess.Process, spawned: float) -> None:
        self.agent_type = agent_type
        self.spawned_monotonic = spawned
        self._proc = proc
        self._report: dict[str, Any] = {}
        assert proc.stdout is not None and proc.stdin is not None
        self.client = acp.AcpClient(proc.stdout, proc.stdin, on_notification=self._on_notification)
        self.client.start()

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
        return cls(agent_type, proc, spawned)

    def _on_notification(self, method: str, params: dict[str, Any]) -> None:
        if method == acp.TELEMETRY_REPORT:
            self._report = dict(params)

    async def initialize(self) -> dict[str, Any]:
        """The ACP handshake; returns the agent's answer."""
        return await self.client.request(
            acp.INITIALIZE,
            {
                "protocolVersion": acp.PROTOCOL_VERSION,
                "clientCapabilities": {"fs": {"readTextFile": False, "writeTextFile": False}},
            },
        )

    @property
    def pid(self) -> int:
        """The process id."""
        return self._proc.pid

    async def close(self, timeout_s: float = 30.0) -> AgentReport:
        """Close its stdin, wait for it to flush and exit (kill it past ``timeout_s``)."""
        self.client.close_input()
        try:
            await asyncio.wait_for(self.client.wait_closed(), timeout_s)
            await asyncio.wait_for(self._proc.wait(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._proc.wait()
            raise StackError(
                f"agent CLI for {self.agent_type} (pid {self._proc.pid}) did not exit within "
                f"{timeout_s} s after its stdin closed; it was killed and its spans may be lost"
            ) from None
        return AgentReport(
            service=str(self._report.get("service", "")),
            spans_exported=int(self._report.get("spansExported", 0)),
            spans_failed=int(self._report.get("spansFailed", 0)),
            returncode=self._proc.returncode,
            spans_lost=int(self._report.get("spansLost", 0)),
        )

    async def abort(self) -> None:
        """Kill the process at once and reap it (cleanup after a failure; spans are lost)."""
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        await self._proc.wait()
        self.client.close_input()
