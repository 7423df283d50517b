"""The metrics real exporters emit, as Prometheus stores them after the scrape.

Data files in ``exporters/`` hold the facts of ``reference/exporters.md`` (names, types, label
sets, versions). This module turns them into series definitions: the label names a selector
may use on each series name, including the labels the scrape adds and renames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import yaml

from obslib.catalogue.contract import CONTRACT
from obslib.errors import CatalogueError

EXPORTERS_DIR = Path(__file__).with_name("exporters")
DAEDALUS = "daedalus"
# A PodMonitor/ServiceMonitor on the Daedalus workers adds these target labels.
_DAEDALUS_TARGET_LABELS = (
    "namespace",
    "service",
    "pod",
    "container",
    "endpoint",
    "instance",
    "job",
)


def parse_version(text: str) -> tuple[int, int]:
    """``"2.14"`` -> ``(2, 14)``."""
    major, minor = str(text).split(".")[:2]
    return int(major), int(minor)


@dataclass(frozen=True)
class SeriesDef:
    """A series name as Prometheus stores it, with the label names it carries."""

    name: str
    metric: str  # the metric family (histogram base name for _bucket/_sum/_count)
    type: str  # counter | gauge | histogram | summary
    exporter: str
    labels: frozenset[str]  # all label names after the scrape, without __name__


@dataclass(frozen=True)
class Exporter:
    """One exporter's metrics for one version, as scraped."""

    name: str
    lint: bool  # rules and dashboards may read it (False: used only to identify data)
    honor_labels: bool
    target_labels: frozenset[str]
    identify_by: tuple[str, ...]
    metrics: dict[str, tuple[str, frozenset[str]]]  # name -> (type, emitted labels)
    absent_names: tuple[str, ...] = ()
    optional_labels: frozenset[str] = field(default_factory=frozenset)
    object_namespace_label: str = ""  # the exporter's own label for an object's namespace

    def scraped_labels(self, emitted: frozenset[str]) -> frozenset[str]:
        """Labels a series has in Prometheus: emitted ones (renamed on conflict) plus target ones."""
        if self.honor_labels:
            return emitted | self.target_labels | self.optional_labels
        renamed = {f"exported_{name}" if name in self.target_labels else name for name in emitted}
        return frozenset(renamed) | self.target_labels | self.optional_labels

    def series(self) -> list[SeriesDef]:
        """Every series name this exporter produces, with its labels."""
        out: list[SeriesDef] = []
        for metric, (mtype, emitted) in self.metrics.items():
            labels = self.scraped_labels(emitted)
            if mtype == "histogram":
                out.append(SeriesDef(f"{metric}_bucket", metric, mtype, self.name, labels | {"le"}))
                out.append(SeriesDef(f"{metric}_sum", metric, mtype, self.name, labels))
                out.append(SeriesDef(f"{metric}_count", metric, mtype, self.name, labels))
            elif mtype == "summary":
                out.append(SeriesDef(metric, metric, mtype, self.name, labels | {"quantile"}))
                out.append(SeriesDef(f"{metric}_sum", metric, mtype, self.name, labels))
                out.append(SeriesDef(f"{metric}_count", metric, mtype, self.name, labels))
            else:
                out.append(SeriesDef(metric, metric, mtype, self.name, labels))
        return out


def _metrics_for_version(
    raw: dict[str, Any], version: tuple[int, int] | None
) -> dict[str, tuple[str, frozenset[str]]]:
    metrics: dict[str, tuple[str, frozenset[str]]] = {}
    for name, spec in raw.items():
        if "versions" not in spec:
            metrics[name] = (spec["type"], frozenset(spec["labels"]))
            continue
        if version is None:
            raise CatalogueError(f"metric {name} is versioned: pass the exporter version")
        for entry in spec["versions"]:
            since = parse_version(entry["since"])
            until = parse_version(entry["until"]) if "until" in entry else None
            if since <= version and (until is None or version < until):
                metrics[name] = (spec["type"], frozenset(entry["labels"]))
    return metrics


@cache
def _read(name: str) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: 10x faster
    return yaml.load((EXPORTERS_DIR / f"{name}.yaml").read_text(), Loader=loader)


def load_exporter(name: str, version: tuple[int, int] | None = None) -> Exporter:
    """Load one exporter's data file, resolving versioned metrics for ``version``."""
    data = _read(name)
    scrape = data["scrape"]
    return Exporter(
        name=data["exporter"],
        lint=data.get("lint", True),
        honor_labels=scrape["honor_labels"],
        target_labels=frozenset(scrape["target_labels"]),
        identify_by=tuple(data.get("identify_by", ())),
        metrics=_metrics_for_version(data["metrics"], version),
        absent_names=tuple(data.get("absent_names", ())),
        optional_labels=frozenset(data.get("optional_labels", ())),
        object_namespace_label=data.get("object_namespace_label", ""),
    )


def daedalus_exporter() -> Exporter:
    """The Daedalus contract as an exporter (scraped by a PodMonitor on the workers)."""
    return Exporter(
        name=DAEDALUS,
        lint=True,
        honor_labels=False,
        target_labels=frozenset(_DAEDALUS_TARGET_LABELS),
        identify_by=(),
        metrics={m.name: (m.type, frozenset(m.labels)) for m in CONTRACT},
    )


@dataclass(frozen=True)
class MetricCatalogue:
    """Series definitions of every exporter a release reads, for linting and cross-checks."""

    exporters: tuple[Exporter, ...]

    @classmethod
    def for_keda(
        cls, keda_version: tuple[int, int], keda_honor_labels: bool = False
    ) -> MetricCatalogue:
        """Catalogue for a release whose KEDA operator runs ``keda_version``."""
        keda = load_exporter("keda-operator", keda_version)
        if keda_honor_labels:
            keda = Exporter(**{**keda.__dict__, "honor_labels": True})
        return cls(
            exporters=(
                daedalus_exporter(),
                load_exporter("nats-surveyor"),
                load_exporter("kube-state-metrics"),
                keda,
                load_exporter("otel-collector"),
                load_exporter("prometheus"),
                load_exporter("prometheus-nats-exporter"),
            )
        )

    @cached_property
    def _index(self) -> dict[str, list[SeriesDef]]:
        index: dict[str, list[SeriesDef]] = {}
        for exporter in self.exporters:
            for series in exporter.series():
                index.setdefault(series.name, []).append(series)
        return index

    def lookup(self, series_name: str, lint_only: bool = True) -> list[SeriesDef]:
        """Definitions of ``series_name`` (several when exporters collide on a name)."""
        found = self._index.get(series_name, [])
        return [s for s in found if self.exporter(s.exporter).lint or not lint_only]

    def labels_of(self, series_name: str) -> frozenset[str] | None:
        """Label names of ``series_name`` as rules and dashboards see it; ``None`` if unknown."""
        found = self.lookup(series_name)
        return frozenset.union(*(s.labels for s in found)) if found else None

    def absent_names(self) -> frozenset[str]:
        """Names checked in the exporters' sources and known never to exist."""
        return frozenset(n for e in self.exporters for n in e.absent_names)

    def exporter(self, name: str) -> Exporter:
        """The exporter called ``name``."""
        for exporter in self.exporters:
            if exporter.name == name:
                return exporter
        raise CatalogueError(f"no exporter named {name!r} in the catalogue")
