"""Emit the committed artifacts from the catalogue, and check them for drift.

``render_artifacts`` is pure (catalogue in, file texts out). ``emit`` lints what it rendered,
then writes every file or none; ``check`` compares the committed tree with a fresh render.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from obslib.catalogue import Catalogue
from obslib.emit.alertmanager import render_alertmanager_config
from obslib.emit.dashboards import dashboard_models, render_configmaps
from obslib.emit.rules import render_prometheus_rule, render_rule_file
from obslib.emit.runbook import render_runbook
from obslib.errors import EmitError
from obslib.files import to_json, to_yaml, to_yaml_documents, write_all_atomic
from obslib.lint import format_problems, lint_dashboard, lint_rules

RULE_FILE = "rules/daedalus-alerts.yaml"
PROMETHEUS_RULE_FILE = "rules/prometheusrule.yaml"
ALERTMANAGER_CONFIG_FILE = "rules/alertmanagerconfig.yaml"
CONFIGMAPS_FILE = "dashboards/configmaps.yaml"
RUNBOOK_FILE = "runbooks/runbook.md"
# Directories emit owns: a file here that the catalogue no longer renders is stale.
OWNED = {"dashboards": ("*.json", "*.yaml"), "rules": ("*.yaml",), "runbooks": ("*.md",)}


def render_artifacts(c: Catalogue) -> dict[str, str]:
    """Every committed artifact, by path relative to the repository root."""
    models = dashboard_models(c)
    files = {f"dashboards/{name}": to_json(model) for name, model in models.items()}
    files[CONFIGMAPS_FILE] = to_yaml_documents(render_configmaps(c, models))
    files[RULE_FILE] = to_yaml(render_rule_file(c))
    files[PROMETHEUS_RULE_FILE] = to_yaml(render_prometheus_rule(c))
    files[ALERTMANAGER_CONFIG_FILE] = to_yaml(render_alertmanager_config(c))
    files[RUNBOOK_FILE] = render_runbook(c)
    return files


def lint_artifacts(c: Catalogue) -> list[str]:
    """Lint findings on what the catalogue renders (empty when clean)."""
    problems = lint_rules(render_rule_file(c)["groups"], c.metrics)
    for model in dashboard_models(c).values():
        problems += lint_dashboard(model, c.metrics)
    return [str(p) for p in problems]


def _owned_files(root: Path) -> set[str]:
    found: set[str] = set()
    for folder, patterns in OWNED.items():
        for pattern in patterns:
            found |= {str(p.relative_to(root)) for p in (root / folder).glob(pattern)}
    return found


@dataclass(frozen=True)
class Drift:
    """How the committed tree differs from a fresh render."""

    changed: tuple[str, ...]
    missing: tuple[str, ...]
    stale: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.changed or self.missing or self.stale)

    def report(self) -> str:
        """Human-readable lines naming every differing file."""
        lines = [f"differs from the catalogue: {p}" for p in self.changed]
        lines += [f"missing (not committed): {p}" for p in self.missing]
        lines += [f"stale (the catalogue no longer emits it): {p}" for p in self.stale]
        return "\n".join(lines)


def _read_or_none(path: Path) -> str | None:
    """The text of ``path``, or None when it is not UTF-8 (so it differs from any render)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def check(c: Catalogue, root: Path) -> Drift:
    """Compare the artifacts under ``root`` with what ``c`` renders."""
    files = render_artifacts(c)
    changed, missing = [], []
    for rel, text in sorted(files.items()):
        path = root / rel
        if not path.exists():
            missing.append(rel)
        elif _read_or_none(path) != text:
            changed.append(rel)
    stale = sorted(_owned_files(root) - set(files))
    return Drift(tuple(changed), tuple(missing), tuple(stale))


def emit(c: Catalogue, root: Path) -> list[str]:
    """Lint, then write every artifact atomically and remove stale ones; returns changed paths."""
    problems = lint_artifacts(c)
    if problems:
        raise EmitError("lint failed, nothing written:\n" + "\n".join(problems))
    drift = check(c, root)
    files = render_artifacts(c)
    try:
        write_all_atomic(root, files)
    except OSError as exc:  # write_all_atomic has put every earlier file back
        where = f" ({exc.filename})" if exc.filename else ""
        raise EmitError(
            f"cannot write the artifacts under {root}{where}: {exc.strerror or exc}; nothing "
            "was changed. Check that the directory is writable and has space, then run again."
        ) from exc
    for rel in drift.stale:
        (root / rel).unlink()
    return [*drift.changed, *drift.missing, *drift.stale]


__all__ = ["Drift", "check", "emit", "format_problems", "lint_artifacts", "render_artifacts"]
