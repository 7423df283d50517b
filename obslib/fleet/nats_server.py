"""A real nats-server with JetStream on 127.0.0.1, and the streams the platform declares.

The server picks free client and monitoring ports itself (``-p -1 -m -1``) and writes them to
a ports file, so there is no race between choosing a port and binding it. The store lives in a
temporary directory removed on stop. Use :class:`NatsServer` as a context manager: the process
is stopped even when the body fails.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from obslib.catalogue.hops import RESULT_SUBJECT_PREFIX, TASK_SUBJECT_PREFIX
from obslib.errors import StackError

# Stream names the platform declares (reference/daedalus-platform.md); the task stream's name
# is a release setting (settings.nats_stream), the result stream's is fixed.
RESULTS_STREAM = "AGENT_RESULTS"


def nats_server_binary() -> str:
    """Path of the ``nats-server`` executable (Debian installs it under /usr/sbin)."""
    found = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/usr/bin")
    if found is None:
        raise StackError(
            "nats-server is not installed: `apt-get install nats-server` (Debian ships 2.9, "
            "which supports JetStream)."
        )
    return found


class NatsServer:
    """A nats-server process with JetStream, bound to 127.0.0.1 on free ports.

    Attributes:
        url: client URL, e.g. ``nats://127.0.0.1:41234`` (after start).
        monitor_url: HTTP monitoring base URL (``/healthz``, ``/jsz``, ``/varz``).
    """

    def __init__(self, start_timeout_s: float = 10.0) -> None:
        self.url = ""
        self.monitor_url = ""
        self._timeout = start_timeout_s
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NatsServer:
        """Start the server and wait until JetStream answers its health check."""
        binary = nats_server_binary()
        self._dir = Path(tempfile.mkdtemp(prefix="obslib-nats-"))
        log_path = self._dir / "nats-server.log"
        cmd = [
            binary, "-js", "-a", "127.0.0.1", "-p", "-1", "-m", "-1",
            "-sd", str(self._dir / "store"), "--ports_file_dir", str(self._dir),
            "-l", str(log_path),
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            ports = self._wait_for_ports()
            self.url = ports["nats"][0]
            self.monitor_url = ports["monitoring"][0]
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_ports(self) -> dict[str, Any]:
        assert self._proc is not None and self._dir is not None
        ports_file = self._dir / f"{Path(nats_server_binary()).name}_{self._proc.pid}.ports"
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = (self._proc.stderr.read() if self._proc.stderr else b"").decode(
                    errors="replace"
                )
                raise StackError(f"nats-server exited with {self._proc.returncode}: {err.strip()}")
            if ports_file.exists():
                try:
                    return json.loads(ports_file.read_text())
                except ValueError:
                    pass  # written but not complete yet
            time.sleep(0.02)
        raise StackError(f"nats-server wrote no ports file within {self._timeout} s")

    def _wait_healthy(self) -> None:
        url = f"{self.monitor_url}/healthz?js-enabled-only=true"
        deadline = time.monotonic() + self._timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=1) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.05)
        raise StackError(f"nats-server at {url} was not healthy within {self._timeout} s ({last})")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its store."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=5)
            if self._proc.stderr is not None:
                self._proc.stderr.close()
            self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @property
    def work_dir(self) -> Path | None:
        """The temporary directory holding the store, ports file and log (None when stopped)."""
        return self._dir

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def ensure_streams(js: Any, task_stream: str) -> None:
    """Declare the task stream (``agent.tasks.>``) and ``AGENT_RESULTS`` (``agent.results.>``).

    Args:
        js: a ``nats.js.JetStreamContext``.
        task_stream: the task stream's name, ``settings.nats_stream``.
    """
    from nats.js.errors import BadRequestError

    for name, prefix in (
        (task_stream, TASK_SUBJECT_PREFIX),
        (RESULTS_STREAM, RESULT_SUBJECT_PREFIX),
    ):
        try:
            await js.add_stream(name=name, subjects=[f"{prefix}>"])
        except BadRequestError:
            # Already declared (a long-lived server): it must hold the same subjects.
            info = await js.stream_info(name)
            if f"{prefix}>" not in (info.config.subjects or []):
                raise StackError(
                    f"NATS stream {name} exists with subjects {info.config.subjects}, "
                    f"expected {prefix}>"
                ) from None
