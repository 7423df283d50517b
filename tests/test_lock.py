"""Reproducible installs: the locks, pyproject.toml's ranges, and the environment they made.

``scripts/setup.sh`` installs ``requirements.lock`` (or ``LOCK=requirements-lab.lock``) and
nothing else, so in a fresh clone (CI's, the release's) the environment these tests run in is
the one the lock makes: the first test holds it to exactly the locked versions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from importlib import metadata

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.lockfile import LAB_LOCK, LOCK, PROJECT, REPO, lock_python, read_lock

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def installed() -> dict[str, str]:
    """Every distribution of this environment but the project itself: name -> version."""
    found: dict[str, set[str]] = {}
    for dist in metadata.distributions():
        found.setdefault(canonicalize_name(dist.metadata["Name"]), set()).add(dist.version)
    found.pop("obslib", None)
    assert all(len(v) == 1 for v in found.values()), {k: v for k, v in found.items() if len(v) > 1}
    return {name: versions.pop() for name, versions in found.items()}


def requirements(*extras: str) -> dict[str, Requirement]:
    """pyproject.toml's runtime requirements plus those of ``extras``, by canonical name."""
    lines = list(PYPROJECT["dependencies"])
    for extra in extras:
        lines += PYPROJECT["optional-dependencies"][extra]
    return {canonicalize_name(r.name): r for r in map(Requirement, lines)}


def test_the_environment_holds_exactly_the_locked_versions() -> None:
    have = installed()
    lock = LAB_LOCK if "jupyterlab" in have else LOCK
    pins = {name: entry.version for name, entry in read_lock(lock).items()}
    assert {n: v for n, v in have.items() if pins.get(n) != v} == {}, f"not as in {lock.name}"
    assert set(pins) - set(have) == set(), f"in {lock.name} but not installed"


@pytest.mark.parametrize(
    ("lock", "extras"), [(LOCK, ("dev",)), (LAB_LOCK, ("dev", "lab"))], ids=["base", "lab"]
)
def test_each_lock_pins_exactly_pyproject_s_requirements_within_their_ranges(lock, extras) -> None:
    wanted = requirements(*extras)
    entries = read_lock(lock)
    direct = {name for name, entry in entries.items() if PROJECT in entry.via}
    # Both ways: a requirement added to or dropped from pyproject.toml needs `make lock`.
    assert direct == set(wanted), "pyproject.toml changed since the lock: run `make lock`"
    outside = {
        name: (entries[name].version, str(req.specifier))
        for name, req in wanted.items()
        if not req.specifier.contains(entries[name].version, prereleases=True)
    }
    assert outside == {}, "pinned outside pyproject.toml's range: run `make lock`"
    assert all(entry.hashes for entry in entries.values())  # pip --require-hashes needs them


def test_the_lab_lock_keeps_the_base_lock_s_versions() -> None:
    base, lab = read_lock(LOCK), read_lock(LAB_LOCK)
    assert {n: (e.version, lab[n].version) for n, e in base.items() if n not in lab} == {}
    assert {
        n: (e.version, lab[n].version) for n, e in base.items() if lab[n].version != e.version
    } == {}
    assert lock_python(LOCK) == lock_python(LAB_LOCK)


def test_environment_yml_installs_the_lab_lock_on_the_lock_s_python() -> None:
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    dependencies = environment["dependencies"]
    pip = next(d["pip"] for d in dependencies if isinstance(d, dict))
    assert pip == [f"-r {LAB_LOCK.name}"]
    assert f"python={lock_python(LAB_LOCK)}" in dependencies


FAKE_TOOL = """#!/bin/sh
echo "$(basename "$0") $*" >> "$(dirname "$0")/../calls.log"
"""


def test_setup_installs_from_the_lock_and_reinstalls_when_the_lock_changes(tmp_path) -> None:
    # setup.sh in a copy of the repository's install inputs, with a virtualenv whose python and
    # pip-sync only record how they were called.
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    for name in ("pyproject.toml", LOCK.name, LAB_LOCK.name):
        shutil.copy(REPO / name, tmp_path / name)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for tool in ("python", "pip-sync"):
        (venv / "bin" / tool).write_text(FAKE_TOOL)
        (venv / "bin" / tool).chmod(0o755)
    log = venv / "calls.log"

    def setup(lock: str | None = None) -> list[str]:
        log.unlink(missing_ok=True)
        env = {**os.environ, "VENV": str(venv), **({"LOCK": lock} if lock else {})}
        env.pop("PYTHON", None)
        done = subprocess.run(
            ["bash", str(tmp_path / "scripts" / "setup.sh")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return log.read_text().splitlines() if log.exists() else []

    # A virtualenv set up before the locks: its stamp was pyproject.toml's hash alone.
    (venv / ".obslib-installed").write_text("0" * 64 + "\n")
    first = setup()
    assert first == [
        f"python -m pip install --quiet --require-hashes -r {LOCK.name}",
        f"pip-sync --quiet {LOCK.name}",
        "python -m pip install --quiet --no-deps -e .",
        "python -m ipykernel install --sys-prefix --name python3",
    ]
    assert setup() == []  # nothing changed: nothing installed
    with (tmp_path / LOCK.name).open("a") as lock:
        lock.write("# refreshed\n")
    assert setup() == first  # a refreshed lock re-installs, pyproject.toml unchanged
    assert setup() == []
    lab = setup(LAB_LOCK.name)
    assert lab[0] == f"python -m pip install --quiet --require-hashes -r {LAB_LOCK.name}"
    assert setup() == []  # the lab lock stays the virtualenv's lock (JupyterLab is kept)
    assert setup(LOCK.name) == first
    (tmp_path / LOCK.name).unlink()
    with pytest.raises(AssertionError, match="make lock"):
        setup()
