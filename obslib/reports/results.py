"""The results JSON each notebook writes beside its HTML report.

One small schema for every notebook, so the index page and the tests read them the same way:
``notebook``, ``title``, ``verdict`` (pass | fail | inconclusive | error), ``window``,
``generated_at``, ``versions`` (Python and the key packages that made the report, see
:func:`package_versions`), ``summary`` (the notebook's own figures) and, for a failed run,
``error``.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from obslib import clock, paths
from obslib.files import write_atomic
from obslib.jsonable import jsonable
from obslib.paths import results_path
from obslib.reports.secrets import scrub
from obslib.verdict import Verdict

ERROR = "error"
# The distributions whose versions decide what a report shows: its frames, figures, execution
# and rendering, how the pipeline's telemetry is decoded and spoken. Those not installed are left
# out (a dependency dropped from pyproject.toml simply stops being recorded).
KEY_PACKAGES = (
    "pandas",
    "plotly",
    "papermill",
    "nbconvert",
    "opentelemetry-proto",
    "agent-client-protocol",
)


def package_versions(packages: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str]:
    """``{"python": ..., package: version}`` of this interpreter, for the installed ``packages``."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def save_results(
    name: str,
    results_dir: str | Path,
    *,
    title: str,
    verdict: Verdict | str,
    window: tuple[Any, Any] | None = None,
    summary: Mapping[str, Any] | None = None,
    error: Mapping[str, Any] | None = None,
    headline: str = "",
    verdict_note: str = "",
) -> Path:
    """Write ``<results_dir>/<name>.results.json`` atomically, scrubbed of credentials.

    ``headline`` is the one line the index shows for the report ("52 of 60 tasks whole; ...");
    ``verdict_note`` says what the verdict means here when it needs saying ("faults injected on
    purpose: 5 of 5 found"). A relative ``results_dir`` is taken from the workbench root.
    """
    payload = {
        "notebook": name,
        "title": title,
        "verdict": verdict.value if isinstance(verdict, Verdict) else str(verdict),
        "headline": headline,
        "verdict_note": verdict_note,
        "window": None
        if window is None
        else {"start": jsonable(window[0]), "end": jsonable(window[1])},
        "generated_at": clock.now().isoformat(),
        "versions": package_versions(),
        "summary": jsonable(dict(summary or {})),
    }
    if error:
        payload["error"] = jsonable(dict(error))
    path = results_path(paths.owned(results_dir), name)
    write_atomic(path, scrub(json.dumps(payload, indent=2, allow_nan=False)) + "\n")
    return path


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a results file."""
    return json.loads(Path(path).read_text())
