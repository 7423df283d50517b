"""Processes the stack runs: where its tools are, whether a pid lives and what it runs, ports.

Read from ``/proc``: a zombie has exited, a process still being exec'd has no command line yet.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from pathlib import Path

from obslib.errors import StackError


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
