"""Every committed notebook runs as opened: from notebooks/, no parameters, nothing configured.

That is JupyterLab's "Run All" on a fresh checkout: the kernel's working directory is
``notebooks/`` and no backend variable is set. Each notebook must start (or reuse) the embedded
stack and the reference pipeline's latest run, and write its results where a headless run would
(the workbench root's ``rendered/``), never relative to the working directory. The workbench
root is a temporary ``OBSLIB_HOME``, and the clock is pinned, so the run is the same on any date.
"""

from __future__ import annotations

import json

import pytest
from papermill import execute_notebook

from obslib.reports.notebooks import NOTEBOOKS
from obslib.reports.run import KERNEL
from obslib.stack import LocalStack
from tests.conftest import REPO, free_port
from tests.world import ANCHOR, iso

pytestmark = pytest.mark.slow
BACKENDS = ("PROMETHEUS", "TEMPO", "LOKI", "GRAFANA")


@pytest.fixture(scope="module")
def fresh_checkout(tmp_path_factory):
    """A workbench root with nothing in it yet; the stack the notebooks start is stopped after."""
    home = tmp_path_factory.mktemp("home")
    env = pytest.MonkeyPatch()
    for backend in BACKENDS:
        env.delenv(f"OBSLIB_{backend}_URL", raising=False)
    for name in ("OBSLIB_VALUES", "OBSLIB_STACK_DIR"):
        env.delenv(name, raising=False)
    port = free_port()
    env.setenv("OBSLIB_HOME", str(home))
    env.setenv("OBSLIB_STACK_PORT", str(port))
    env.setenv("OBSLIB_FLEET_METRICS_PORT", str(free_port()))
    env.setenv("OBSLIB_NOW", iso(ANCHOR + 4 * 3600))  # the history ends 3 h before it, at ANCHOR
    try:
        yield home
    finally:
        LocalStack(data_dir=home / ".obslib" / "stack", port=port).down()
        env.undo()


@pytest.mark.parametrize("spec", NOTEBOOKS, ids=lambda s: s.name)
def test_the_notebook_runs_as_opened(fresh_checkout, spec, tmp_path):
    executed = tmp_path / f"{spec.name}.ipynb"
    execute_notebook(
        str(spec.path),
        str(executed),
        parameters={},
        kernel_name=KERNEL,
        progress_bar=False,
        cwd=str(REPO / "notebooks"),
    )
    results = json.loads((fresh_checkout / "rendered" / f"{spec.name}.results.json").read_text())
    assert results["verdict"] in ("pass", "fail", "inconclusive")
    assert results["headline"]
    assert not (REPO / "notebooks" / "rendered").exists()  # nothing relative to the cwd
    assert (fresh_checkout / ".obslib" / "stack" / "prometheus.yml").exists()
    if spec.name == "trace_audit":
        assert (fresh_checkout / ".obslib" / "reference-run" / "fleet").is_dir()
        assert results["summary"]["ground_truth"]["verdict"] == "pass"
    if spec.name == "slo_baseline":  # synthetic drafts stay out of the committed rules/proposed
        assert (
            str(fresh_checkout / ".obslib" / "proposed-rules")
            in results["summary"]["proposed_rules"]
        )
