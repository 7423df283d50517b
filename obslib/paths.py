"""Where the workbench keeps what it owns, independent of the working directory.

A notebook opened in JupyterLab runs with ``notebooks/`` as its working directory, a headless
run with the checkout's root: both must find the same stack and the same reference run. So
every path the workbench owns is resolved against one root: ``$OBSLIB_HOME`` when set, else the
checkout that holds this package (the directory with its ``pyproject.toml``), else the current
directory (an installed package outside a checkout).
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "OBSLIB_HOME"
STACK_DIR_ENV = "OBSLIB_STACK_DIR"
HISTORY_DAYS = 14  # the embedded stack's synthetic history
RESULTS_SUFFIX = ".results.json"
_CHECKOUT = Path(__file__).resolve().parent.parent


def root() -> Path:
    """The workbench root every owned path is relative to."""
    home = os.environ.get(HOME_ENV, "").strip()
    if home:
        return Path(home).expanduser().resolve()
    if (_CHECKOUT / "pyproject.toml").is_file():
        return _CHECKOUT
    return Path.cwd().resolve()


def committed(relative: str | Path) -> Path:
    """A file the repository commits (runbook, rules): in the checkout holding this package.

    An installed package outside a checkout has none; it is looked for under the root.
    """
    if (_CHECKOUT / "pyproject.toml").is_file():
        return _CHECKOUT / relative
    return root() / relative


def owned(path: str | Path) -> Path:
    """``path`` as the workbench sees it: absolute as given, relative from the root."""
    given = Path(path).expanduser()
    return given if given.is_absolute() else root() / given


def state_dir() -> Path:
    """``<root>/.obslib``: the stack and the reference run live here."""
    return root() / ".obslib"


def stack_dir() -> Path:
    """The embedded Prometheus's directory.

    ``$OBSLIB_STACK_DIR`` (a relative path is taken from the root), else ``<root>/.obslib/stack``.
    """
    chosen = os.environ.get(STACK_DIR_ENV, "").strip()
    if not chosen:
        return state_dir() / "stack"
    path = Path(chosen).expanduser()
    return path if path.is_absolute() else root() / path


def reference_run_dir() -> Path:
    """Where the latest reference-pipeline run (spans, logs, ground truth) is kept."""
    return state_dir() / "reference-run"


def rendered_dir() -> Path:
    """The default output directory of reports."""
    return root() / "rendered"


def results_path(results_dir: str | Path, name: str) -> Path:
    """Where notebook ``name`` writes its results JSON: beside its report in ``results_dir``."""
    return Path(results_dir) / f"{name}{RESULTS_SUFFIX}"
