"""Fixtures for the golden reports: each notebook run once on the pinned world, and the check."""

from __future__ import annotations

from pathlib import Path

import pytest

from obslib.reports import ReportRun, run_notebook
from tests.conftest import REPO
from tests.golden import golden, volatile
from tests.world import ANCHOR, iso

# Unset for the runs: other backends, another values file, and another workbench root (the
# runbook and values the reports read are this checkout's).
UNSET = (
    "OBSLIB_TEMPO_URL",
    "OBSLIB_LOKI_URL",
    "OBSLIB_GRAFANA_URL",
    "OBSLIB_VALUES",
    "OBSLIB_HOME",
)


class GoldenRuns:
    """Runs each notebook at most once per session, on the pinned world (``golden.cases``)."""

    def __init__(self, out: Path, prometheus_url: str) -> None:
        self.out = out
        self.prometheus_url = prometheus_url
        self.cases = golden.cases(out)
        self._runs: dict[str, ReportRun] = {}

    def run(self, name: str) -> ReportRun:
        """Notebook ``name``'s run (and the runs it reads first)."""
        if name not in self._runs:
            if name == "phase5_acceptance":
                self.run("fleet_overview")  # its report is AC5's artifact
            with pytest.MonkeyPatch.context() as env:
                env.setenv("OBSLIB_PROMETHEUS_URL", self.prometheus_url)
                env.setenv("OBSLIB_NOW", iso(ANCHOR))  # every clock an entry point reads
                for variable in UNSET:
                    env.delenv(variable, raising=False)
                run = run_notebook(name, self.cases[name], self.out / name, progress=False)
            assert run.error is None, run.error
            self._runs[name] = run
        return self._runs[name]


@pytest.fixture(scope="session")
def golden_runs(history_stack, tmp_path_factory) -> GoldenRuns:
    source, _ = history_stack
    return GoldenRuns(tmp_path_factory.mktemp("golden"), source.endpoint.url)


@pytest.fixture
def golden_check(nb_regression, golden_runs):
    """pytest-notebook's fixture (``--nb-force-regen`` regenerates) set to ignore the volatile."""
    nb_regression.diff_ignore = volatile.DIFF_IGNORE
    nb_regression.diff_replace = volatile.diff_replace(golden_runs.out, REPO)
    nb_regression.diff_use_color = False  # the diff is read in CI logs too
    return nb_regression
