"""Shared fixtures: the repository root, the default catalogue, real tool paths."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from obslib.catalogue import Catalogue, build_catalogue
from obslib.settings import load_settings
from tests.world import ANCHOR, HISTORY_DAYS, HISTORY_SEED

REPO = Path(__file__).resolve().parent.parent


def tool(name: str) -> str:
    """Path of a Debian-installed tool; `make test` installs it, so its absence is an error."""
    path = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if path is None:
        pytest.fail(f"{name} is not installed: run `make test` (scripts/setup.sh installs it)")
    return path


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return build_catalogue(load_settings(None))


@pytest.fixture(scope="session")
def promtool() -> str:
    return tool("promtool")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def history_stack(tmp_path_factory):
    """A real Prometheus over the pinned world's history (``tests/world.py``), and its truth.

    Shared by every test that needs live data; stopped at the end of the session.
    """
    from obslib.emit import RULE_FILE
    from obslib.sources.prometheus import PrometheusSource
    from obslib.stack import LocalStack
    from obslib.synth import load_ground_truth, write_history

    settings = load_settings(None)
    stack = LocalStack(
        data_dir=tmp_path_factory.mktemp("stack"), port=free_port(), rule_files=[REPO / RULE_FILE]
    )
    try:
        stack.up(
            history=lambda work_dir: write_history(
                settings, work_dir, end=ANCHOR, days=HISTORY_DAYS, seed=HISTORY_SEED
            )
        )
        truth = load_ground_truth(stack.history_dir)
        yield PrometheusSource(stack.endpoint(), retries=1), truth
    finally:
        stack.down()
