"""Processes the stack runs: its tools, whether a pid lives and what it runs, ports, one lock.

Read from ``/proc``: a zombie has exited, a process still being exec'd has no command line yet.
The lock (:func:`exclusive`) lets one ``up`` or ``down`` run at a time per data directory,
across processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from obslib.errors import StackError

log = logging.getLogger("obslib.stack")


def find_tool(name: str) -> str:
    """The path of a Prometheus tool (``prometheus``, ``promtool``) Debian installs.

    Raises:
        StackError: it is not installed.
    """
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/bin") / name, Path("/usr/sbin") / name) if p.exists()), None
    )
    if found is None:
        raise StackError(f"{name} is not installed; install Debian's `prometheus` package")
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie has exited)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    """The command line of ``pid``; empty while it is still being exec'd, or once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def port_taken(port: int) -> bool:
    """Whether something on 127.0.0.1 holds ``port`` (binding it fails)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Prometheus binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@contextlib.contextmanager
def exclusive(
    path: Path, timeout_s: float, unusable: Callable[[OSError], Exception]
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if need be) while the block runs.

    The holder writes its pid into the file, so a waiter can say whom it waits for; the lock
    goes with the file descriptor, also when the holder dies.

    Raises:
        StackError: another process held the lock for over ``timeout_s``.
        Exception: ``unusable(error)`` for an ``OSError`` of the lock itself (a directory that
            cannot be written, a filesystem without flock).
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise unusable(exc) from exc
    try:
        _acquire(fd, path, timeout_s, unusable)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # who holds it, for a waiter's message
        yield
    finally:
        os.close(fd)  # releases the lock


def _acquire(
    fd: int, path: Path, timeout_s: float, unusable: Callable[[OSError], Exception]
) -> None:
    deadline = time.monotonic() + timeout_s
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        except OSError as exc:  # e.g. a filesystem without flock
            raise unusable(exc) from exc
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        if time.monotonic() > deadline:
            raise StackError(
                f"another obslib process (pid {holder}) has held {path} for over "
                f"{timeout_s:g} s while starting or stopping the stack; wait for it to "
                "finish, or stop it, then run again"
            )
        if not told:
            log.warning("waiting for pid %s, which is starting or stopping this stack", holder)
            told = True
        time.sleep(0.2)
