"""The embedded stack's Prometheus server: start it, find it, say how it is, stop it.

See :mod:`obslib.stack` for the data directory; history reaches the TSDB through
:mod:`obslib.stack.backfill`, and a pid counts as the server's only as :mod:`obslib.stack.processes`
reads it.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from obslib.errors import ConfigError, StackError
from obslib.paths import STACK_DIR_ENV, committed, stack_dir
from obslib.sources.endpoint import Endpoint
from obslib.stack.backfill import backfill
from obslib.stack.processes import alive, cmdline, exclusive, find_tool, port_taken

log = logging.getLogger("obslib.stack")  # one logger for the stack, whichever module speaks

DIR_ENV = STACK_DIR_ENV
PORT_ENV = "OBSLIB_STACK_PORT"
DEFAULT_PORT = 19090
FLEET_JOB = "daedalus-fleet"  # the job the reference pipeline's /metrics is scraped as
SCRAPE_INTERVAL = "15s"
RETENTION = "3650d"  # backfilled history is old; a short retention would delete it at once
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
LOCK_TIMEOUT_S = 300.0  # longer than any up (backfill, then READY_TIMEOUT_S) takes
LOG_TAIL_LINES = 15
# A soft memory limit for Prometheus's Go runtime: near it the collector runs sooner and hands
# freed memory back, so repeated 14-day queries stop adding to the server's RSS (measured in
# benchmarks/README.md). Above what the heaviest query of the history holds at once; a
# GOMEMLIMIT in the environment wins.
GO_MEMORY_LIMIT = "768MiB"

_TARGET_RE = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_LISTEN_RE = re.compile(r"^--web\.listen-address=.*:(\d+)$")


@dataclass(frozen=True)
class StackStatus:
    """What the local stack is doing, as ``LocalStack.status()`` found it."""

    running: bool
    ready: bool
    pid: int | None
    url: str
    data_dir: Path
    blocks: int
    rule_files: tuple[Path, ...]

    def describe(self) -> str:
        """Human-readable lines for the command line."""
        state = "ready" if self.ready else "running, not ready" if self.running else "stopped"
        lines = [f"local stack: {state}" + (f" (pid {self.pid})" if self.pid else "")]
        lines += [f"  url:        {self.url}", f"  data dir:   {self.data_dir}"]
        lines.append(f"  tsdb:       {self.blocks} block(s)")
        lines += [f"  rule file:  {p}" for p in self.rule_files] or ["  rule file:  (none)"]
        return "\n".join(lines)


def _port_from_env() -> int:
    text = os.environ.get(PORT_ENV, "").strip()
    if not text:
        return DEFAULT_PORT
    if not text.isdigit():
        raise ConfigError(f"{PORT_ENV} must be a port number, got {text!r}")
    return int(text)


def default_rule_files() -> list[Path]:
    """The emitted plain rule file of the checkout (never looked up from the working directory)."""
    from obslib.emit import RULE_FILE  # the one name of the emitted rule file

    path = committed(RULE_FILE)
    return [path.absolute()] if path.is_file() else []


class LocalStack:
    """A Prometheus over backfilled history, started and stopped on demand.

    Args:
        data_dir: where config, TSDB, pid file and log live (default ``$OBSLIB_STACK_DIR``
            or ``.obslib/stack`` under the workbench root, see :mod:`obslib.paths`).
        port: the port on 127.0.0.1 (default ``$OBSLIB_STACK_PORT`` or 19090).
        rule_files: rule files to load (default: the emitted ``rules/daedalus-alerts.yaml``).
        scrape_targets: ``host:port`` endpoints scraped every 15 s as job ``daedalus-fleet``.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        rule_files: list[Path] | None = None,
        scrape_targets: list[str] | None = None,
    ) -> None:
        chosen = data_dir or stack_dir()  # the workbench's own, whatever the working directory
        self.data_dir = Path(chosen).expanduser().absolute()
        self.port = _port_from_env() if port is None else port
        if not 0 < self.port < 65536:
            raise ConfigError(f"stack port must be between 1 and 65535, got {self.port}")
        self._rule_files = None if rule_files is None else [Path(p).absolute() for p in rule_files]
        self.scrape_targets = list(scrape_targets or [])
        bad = [t for t in self.scrape_targets if not _TARGET_RE.match(t)]
        if bad:
            raise ConfigError(f"scrape targets must be host:port, got {bad}")
        self.config_path = self.data_dir / "prometheus.yml"
        self.tsdb_dir = self.data_dir / "tsdb"
        self.pid_path = self.data_dir / "prometheus.pid"
        self.log_path = self.data_dir / "prometheus.log"
        self.lock_path = self.data_dir / "stack.lock"

    @property
    def history_dir(self) -> Path:
        """Where the history function writes (its ground truth, if any, stays there)."""
        return self.data_dir / "history"

    @property
    def url(self) -> str:
        """Base URL the stack serves on when started by this object."""
        return f"http://127.0.0.1:{self.port}"

    # --- state -------------------------------------------------------------------------------

    def _dir_error(self, exc: OSError) -> StackError:
        """A StackError for an OSError: naming the data dir, or the file outside it that failed."""
        name = str(exc.filename) if exc.filename else ""
        reason = exc.strerror or str(exc)
        if name and not Path(name).absolute().is_relative_to(self.data_dir):
            return StackError(
                f"the local stack in {self.data_dir} could not start: {name}: {reason}"
            )
        where = f" ({name})" if name and name != str(self.data_dir) else ""
        return StackError(
            f"cannot use the stack data directory {self.data_dir}{where}: {reason}. Point "
            f"{DIR_ENV} (or `obslib stack --dir`) at a directory you can write, or fix this one."
        )

    def _is_ours(self, pid: int) -> bool:
        """Whether ``pid`` is this data dir's Prometheus (a live one, judged by its command line).

        A reused pid, a kernel thread or a process still being exec'd (empty command line) is
        not: counting it would report a stack that is not there and signal a stranger on down.
        """
        if not alive(pid):
            return False
        args = cmdline(pid)
        return (
            bool(args)
            and Path(args[0]).name == "prometheus"
            and f"--config.file={self.config_path}" in args
            and f"--storage.tsdb.path={self.tsdb_dir}" in args
        )

    def _find_ours(self) -> int | None:
        """This data dir's Prometheus found among all processes (one whose pid file was lost)."""
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and self._is_ours(int(entry.name)):
                return int(entry.name)
        return None

    def _live_pid(self, clean_stale: bool) -> int | None:
        """The pid of this data dir's running Prometheus.

        With ``clean_stale`` (only under the lock) a pid file naming anything else is removed,
        and a server of ours running without a pid file is adopted into a new one.
        """
        try:
            text = self.pid_path.read_text().strip()
        except FileNotFoundError:
            text = None
        except OSError as exc:
            raise self._dir_error(exc) from exc
        if text is not None and text.isdigit() and self._is_ours(int(text)):
            return int(text)
        found = self._find_ours()
        if clean_stale and text is not None and found is None:
            self.pid_path.unlink(missing_ok=True)
            log.warning(
                "removed stale pid file %s (process %s does not run this stack)",
                self.pid_path,
                text or "?",
            )
        if clean_stale and found is not None:
            self.pid_path.write_text(f"{found}\n")
            log.warning(
                "found this stack's prometheus (pid %d) without a pid file; adopted it", found
            )
        return found

    def _locked(self) -> AbstractContextManager[None]:
        """The data dir's lock, so one ``up`` or ``down`` runs at a time, across processes.

        Raises:
            StackError: the directory is unusable, or another process held the lock too long.
        """
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._dir_error(exc) from exc
        return exclusive(self.lock_path, LOCK_TIMEOUT_S, self._dir_error)

    def _port_of(self, pid: int) -> int:
        for arg in cmdline(pid):
            if match := _LISTEN_RE.match(arg):
                return int(match.group(1))
        return self.port

    def _is_ready(self, port: int) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def _blocks(self) -> int:
        if not self.tsdb_dir.is_dir():
            return 0
        return sum(1 for d in self.tsdb_dir.iterdir() if (d / "meta.json").is_file())

    def _configured_rule_files(self) -> tuple[Path, ...]:
        try:
            config = yaml.safe_load(self.config_path.read_text()) or {}
            return tuple(Path(p) for p in config.get("rule_files") or [])
        except (OSError, yaml.YAMLError, AttributeError):
            return tuple(self._rule_files or [])

    def status(self) -> StackStatus:
        """Whether the stack runs and answers, where, and over how many TSDB blocks."""
        pid = self._live_pid(clean_stale=False)
        port = self._port_of(pid) if pid else self.port
        return StackStatus(
            running=pid is not None,
            ready=pid is not None and self._is_ready(port),
            pid=pid,
            url=f"http://127.0.0.1:{port}",
            data_dir=self.data_dir,
            blocks=self._blocks(),
            rule_files=self._configured_rule_files(),
        )

    def endpoint(self) -> Endpoint:
        """The Prometheus endpoint of the running stack.

        Raises:
            StackError: the stack is not running and ready.
        """
        status = self.status()
        if not status.ready:
            raise StackError(
                f"the local stack in {self.data_dir} is not running; run `obslib stack up`"
            )
        return Endpoint(backend="prometheus", url=status.url)

    # --- lifecycle ---------------------------------------------------------------------------

    def up(
        self,
        history: Callable[[Path], Path] | None = None,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> StackStatus:
        """Start the stack (or reuse it when already running) and wait until it is ready.

        Args:
            history: called as ``history(work_dir)`` when the TSDB has no blocks; returns an
                OpenMetrics file (or a directory of them), which is backfilled with promtool
                and then deleted.
            ready_timeout_s: how long to wait for ``/-/ready``.

        Raises:
            StackError: the port is taken, the data dir is unusable, backfilling failed, or
                Prometheus did not start.
        """
        with self._locked():
            try:
                self._up(history, ready_timeout_s)
            except OSError as exc:
                raise self._dir_error(exc) from exc
        return self.status()

    def _up(self, history: Callable[[Path], Path] | None, ready_timeout_s: float) -> None:
        pid = self._live_pid(clean_stale=True)
        if pid is not None:
            port = self._port_of(pid)
            if port != self.port:
                log.warning(
                    "the stack in %s already runs on port %d (not %d); reusing it. "
                    "Run `obslib stack down` first to move it.",
                    self.data_dir,
                    port,
                    self.port,
                )
            self._wait_ready(pid, port, ready_timeout_s, started_here=False, log_from=0)
            return
        if port_taken(self.port):
            raise StackError(
                f"port {self.port} on 127.0.0.1 is already in use by another program; "
                f"choose another with `obslib stack up --port N` or {PORT_ENV}=N"
            )
        rule_files = self._rule_files if self._rule_files is not None else default_rule_files()
        if not rule_files:
            raise StackError("no rule file to load: run `obslib emit`, or pass rule_files")
        missing = [str(p) for p in rule_files if not p.is_file()]
        if missing:
            raise StackError(f"rule file(s) not found: {', '.join(missing)}")
        if history is not None and self._blocks() == 0:
            backfill(history, self.data_dir, self.history_dir, self.tsdb_dir)
        self._write_config(rule_files)
        log_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        pid = self._spawn()
        self._wait_ready(pid, self.port, ready_timeout_s, started_here=True, log_from=log_from)

    def _write_config(self, rule_files: list[Path]) -> None:
        config: dict[str, object] = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": "15s"},
            "rule_files": [str(p) for p in rule_files],
        }
        if self.scrape_targets:
            config["scrape_configs"] = [
                {
                    "job_name": FLEET_JOB,
                    "scrape_interval": SCRAPE_INTERVAL,
                    "static_configs": [{"targets": self.scrape_targets}],
                }
            ]
        partial = self.config_path.with_suffix(".yml.tmp")
        partial.write_text(yaml.safe_dump(config, sort_keys=False))
        partial.replace(self.config_path)

    def _spawn(self) -> int:
        """Start Prometheus detached: own session and process group, output to the log file."""
        argv = [
            find_tool("prometheus"),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.tsdb_dir}",
            f"--storage.tsdb.retention.time={RETENTION}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        with self.log_path.open("a") as out:
            out.write(f"--- obslib stack up {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
        # posix_spawn rather than Popen: the server outlives this process, and a Popen object
        # left running would warn when collected.
        pid = os.posix_spawn(
            argv[0],
            argv,
            {"GOMEMLIMIT": GO_MEMORY_LIMIT, **os.environ},
            setsid=True,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(self.log_path), os.O_WRONLY | os.O_APPEND, 0),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
        )
        self.pid_path.write_text(f"{pid}\n")
        return pid

    def _log_tail(self, start: int) -> str:
        """The log since ``start``: its error lines if it has any, else its last lines."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(start)
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        errors = [line for line in lines if "level=error" in line]
        return "\n".join((errors or lines)[-LOG_TAIL_LINES:]) or "(empty log)"

    def _wait_ready(
        self, pid: int, port: int, timeout_s: float, *, started_here: bool, log_from: int
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not alive(pid):
                self.pid_path.unlink(missing_ok=True)
                raise StackError(
                    f"prometheus exited while starting; the end of {self.log_path}:\n"
                    f"{self._log_tail(log_from)}"
                )
            if self._is_ready(port):
                return
            time.sleep(0.2)
        if started_here:
            self._stop(STOP_TIMEOUT_S)
        raise StackError(
            f"prometheus at http://127.0.0.1:{port} was not ready after {timeout_s:g} s; "
            f"the end of {self.log_path}:\n{self._log_tail(log_from)}"
        )

    def down(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Stop the stack: SIGTERM, then SIGKILL after ``timeout_s``. Safe to repeat.

        Returns:
            Whether a running Prometheus was stopped.

        Raises:
            StackError: the data dir is unusable, or the server survived SIGKILL.
        """
        try:
            os.stat(self.data_dir)
        except FileNotFoundError:
            return False  # never started here; do not create the directory just to say so
        except OSError as exc:
            raise self._dir_error(exc) from exc
        with self._locked():
            return self._stop(timeout_s)

    def _stop(self, timeout_s: float) -> bool:
        pid = self._live_pid(clean_stale=True)
        if pid is None:
            return False
        for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)  # its own group: started with setsid
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait_s
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not alive(pid):
                break
            if sig == signal.SIGTERM:
                log.warning("prometheus (pid %d) ignored SIGTERM for %g s; killing it", pid, wait_s)
        if alive(pid):
            raise StackError(f"prometheus (pid {pid}) survived SIGKILL; stop it by hand")
        self.pid_path.unlink(missing_ok=True)
        return True
