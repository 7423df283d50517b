"""`obslib emit` and `obslib emit --check`: drift detection and atomic writes."""

import os
import shutil
import subprocess
import sys

import pytest

from obslib.catalogue import build_catalogue
from obslib.cli import main
from obslib.emit import check, emit, render_artifacts
from obslib.errors import EmitError
from obslib.settings import load_settings


def run_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "obslib", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_committed_artifacts_are_in_step_with_the_catalogue(repo):
    result = run_cli("emit", "--check", cwd=repo)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def tree(tmp_path, catalogue):
    emit(catalogue, tmp_path)
    return tmp_path


def test_check_names_changed_missing_and_stale_files(tree):
    (tree / "rules/daedalus-alerts.yaml").write_text("groups: []\n")
    (tree / "runbooks/runbook.md").unlink()
    (tree / "dashboards/daedalus-agent-gemini.json").write_text("{}")
    result = run_cli("emit", "--check", "--root", str(tree), cwd=tree)
    assert result.returncode == 1
    assert "differs from the catalogue: rules/daedalus-alerts.yaml" in result.stderr
    assert "missing (not committed): runbooks/runbook.md" in result.stderr
    assert (
        "stale (the catalogue no longer emits it): dashboards/daedalus-agent-gemini.json"
        in result.stderr
    )
    assert "make generate" in result.stderr


def test_emit_repairs_drift_and_removes_stale_files(tree, catalogue):
    (tree / "dashboards/daedalus-agent-gemini.json").write_text("{}")
    (tree / "rules/prometheusrule.yaml").write_text("changed")
    changed = emit(catalogue, tree)
    assert set(changed) == {"dashboards/daedalus-agent-gemini.json", "rules/prometheusrule.yaml"}
    assert not check(catalogue, tree)
    assert emit(catalogue, tree) == []


def test_values_change_drives_the_artifacts(tmp_path, tree):
    values = tmp_path / "v.yaml"
    values.write_text("agentTypes: [copilot, gemini]\nnamespace: agents\n")
    result = run_cli("--values", str(values), "emit", "--root", str(tree), cwd=tree)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tree / "dashboards").glob("*.json"))
    assert names == [
        "daedalus-agent-copilot.json",
        "daedalus-agent-gemini.json",
        "daedalus-fleet-overview.json",
    ]
    assert 'namespace="agents"' in (tree / "rules/daedalus-alerts.yaml").read_text()


def test_failed_write_leaves_old_files_intact(tree, catalogue, monkeypatch):
    before = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    other = build_catalogue(load_settings(None))
    object.__setattr__(other.settings, "namespace", "elsewhere")  # force every file to change
    calls = {"n": 0}
    real_replace = os.replace

    def flaky_replace(src, dst):
        calls["n"] += 1
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(EmitError, match="disk full; nothing was changed"):
        emit(build_catalogue(other.settings), tree)
    monkeypatch.setattr(os, "replace", real_replace)
    after = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    assert after == before  # no half-written file, no leftover temporary
    assert calls["n"] == 1


def test_lint_failure_writes_nothing(tree, catalogue, monkeypatch):
    import obslib.emit as emit_module

    before = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    monkeypatch.setattr(
        emit_module, "lint_artifacts", lambda c: ["alert X: metric y does not exist"]
    )
    (tree / "rules/daedalus-alerts.yaml").unlink()
    del before[tree / "rules/daedalus-alerts.yaml"]
    with pytest.raises(EmitError, match="lint failed, nothing written"):
        emit(catalogue, tree)
    assert {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()} == before


def test_rendering_is_deterministic(catalogue):
    assert render_artifacts(catalogue) == render_artifacts(build_catalogue(load_settings(None)))


def test_cli_reports_config_errors_without_traceback(tmp_path, repo):
    values = tmp_path / "v.yaml"
    values.write_text("alerting:\n  receiver:\n    type: slack\n")
    result = run_cli("--values", str(values), "emit", "--check", cwd=repo)
    assert result.returncode == 2
    assert "'slack' is not one of null, mattermost, github, pagerduty" in result.stderr
    assert "Traceback" not in result.stderr
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_rename_failing_midway_rolls_back_the_earlier_ones(tree, catalogue, monkeypatch):
    before = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    other = build_catalogue(load_settings(None))
    object.__setattr__(other.settings, "namespace", "elsewhere")
    real_replace = os.replace
    calls = {"n": 0}

    def fail_third(src, dst):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_third)
    with pytest.raises(EmitError, match="nothing was changed"):
        emit(build_catalogue(other.settings), tree)
    assert {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()} == before


def snapshot(tree):
    return {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}


def aliases(levels: int) -> str:
    parts = ["&a0 [x, x, x, x, x, x, x, x, x]"]
    parts += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


PAGERDUTY = "alerting:\n  receiver:\n    type: pagerduty\n    config: "
# Values files that must be refused with a ConfigError, leaving the committed tree as it was.
BAD_VALUES = {
    "not-utf8": b"namespace: caf\xe9\n",
    "utf-16": "namespace: agents\n".encode("utf-16"),
    "binary": bytes(range(256)),
    "receiver-type-list": b"alerting:\n  receiver:\n    type: [pagerduty]\n",
    "non-string-key": f"{PAGERDUTY}{{1: x}}\n".encode(),
    "long-agent-type": f"agentTypes: [copilot, {'a' * 5000}]\n".encode(),
    "alias-bomb": f"{PAGERDUTY}{{secretName: {aliases(6)}}}\n".encode(),
    "secret-name-mapping": f"{PAGERDUTY}{{secretName: {{a: 1}}}}\n".encode(),
    "1000-agent-types": f"agentTypes: [{', '.join(f't{i}' for i in range(1000))}]\n".encode(),
}


@pytest.mark.parametrize("name", BAD_VALUES)
def test_a_refused_values_file_leaves_the_committed_files_intact(
    tree, tmp_path_factory, name, capsys
):
    before = snapshot(tree)
    values = tmp_path_factory.mktemp("values") / f"{name}.yaml"
    values.write_bytes(BAD_VALUES[name])
    assert main(["--values", str(values), "emit", "--root", str(tree)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"obslib emit: {values}: ")
    assert len(err) < 600
    assert snapshot(tree) == before


def test_an_unwritable_root_is_an_emit_error_naming_it(tmp_path, capsys):
    root = tmp_path / "not-a-directory"
    root.write_text("a file where the repository should be\n")
    assert main(["emit", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert f"cannot write the artifacts under {root}" in err and "nothing was changed" in err
    assert root.read_text() == "a file where the repository should be\n"


def test_a_committed_file_that_is_not_utf8_is_drift_not_a_crash(tree, catalogue):
    (tree / "runbooks/runbook.md").write_bytes(b"\xff\xfe broken\n")
    assert check(catalogue, tree).changed == ("runbooks/runbook.md",)
    assert emit(catalogue, tree) == ["runbooks/runbook.md"]
    assert not check(catalogue, tree)
