"""The one catalogue: metrics, alerts, panels and runbook entries for one release.

Everything emitted (dashboards, rules, runbook) and everything checked (lint, cross-checks,
synthetic history, notebooks) reads names from here. Build it with :func:`build_catalogue`.
"""

from __future__ import annotations

from dataclasses import dataclass

from obslib.catalogue.alerts import AlertSpec, alert_specs
from obslib.catalogue.exporters import MetricCatalogue
from obslib.catalogue.panels import PanelSpec, panel_specs
from obslib.catalogue.runbook import RunbookEntry, runbook_entries
from obslib.errors import CatalogueError
from obslib.settings import Settings, load_settings


@dataclass(frozen=True)
class Catalogue:
    """Everything one release's artifacts are built from."""

    settings: Settings
    metrics: MetricCatalogue
    alerts: tuple[AlertSpec, ...]
    panels: tuple[PanelSpec, ...]
    runbook: tuple[RunbookEntry, ...]

    def alert(self, name: str) -> AlertSpec:
        """The alert called ``name``."""
        for alert in self.alerts:
            if alert.name == name:
                return alert
        raise CatalogueError(f"no alert named {name!r}")

    def panel(self, key: str) -> PanelSpec:
        """The panel with key ``key``."""
        for panel in self.panels:
            if panel.key == key:
                return panel
        raise CatalogueError(f"no panel with key {key!r}")

    def runbook_url(self, alert: AlertSpec) -> str:
        """Where the runbook section of ``alert`` is published."""
        return f"{self.settings.runbook_base_url}#{alert.anchor}"


def build_catalogue(settings: Settings | None = None) -> Catalogue:
    """Build the catalogue for ``settings`` (the values-file defaults when omitted)."""
    s = settings or load_settings()
    catalogue = Catalogue(
        settings=s,
        metrics=MetricCatalogue.for_keda(s.keda_version, s.keda_honor_labels),
        alerts=alert_specs(s),
        panels=panel_specs(s),
        runbook=runbook_entries(s),
    )
    _check(catalogue)
    return catalogue


def _check(c: Catalogue) -> None:
    """Fail early on a catalogue whose parts do not reference each other correctly."""
    alerts = {a.name for a in c.alerts}
    entries = {e.alert for e in c.runbook}
    if alerts != entries:
        raise CatalogueError(
            f"alerts without runbook entry: {sorted(alerts - entries)}; "
            f"runbook entries without alert: {sorted(entries - alerts)}"
        )
    panels = {p.key for p in c.panels}
    for entry in c.runbook:
        if entry.panel not in panels:
            raise CatalogueError(f"runbook entry {entry.alert} names unknown panel {entry.panel!r}")
    anchors = [a.anchor for a in c.alerts]
    if len(set(anchors)) != len(anchors):
        raise CatalogueError(f"duplicate runbook anchors: {anchors}")


__all__ = ["AlertSpec", "Catalogue", "PanelSpec", "RunbookEntry", "build_catalogue"]
