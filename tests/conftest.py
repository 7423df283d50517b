"""Shared fixtures: the repository root, the default catalogue, real tool paths."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from obslib.catalogue import Catalogue, build_catalogue
from obslib.settings import load_settings

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
