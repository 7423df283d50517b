"""Which exporters, at which versions, the live data looks like.

Two exporters can emit the same metric name: the NATS Helm chart's prometheus-nats-exporter
sidecar (``-prefix=nats``) collides with nats-surveyor's jsz metrics. The catalogue's
``identify_by`` labels tell each series apart (surveyor: ``stream``, ``cluster_name``...;
the sidecar: ``stream_name``, ``cluster``...). KEDA renamed and then removed metrics across
minor versions; the names (and version-specific labels) present in the window give the range
of versions the data can come from, and ``keda_build_info`` its exact version when scraped.
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np
import pandas as pd

from obslib.catalogue import Catalogue
from obslib.catalogue.exporters import Exporter, MetricCatalogue, load_exporter
from obslib.errors import MalformedResponse
from obslib.settings import MIN_KEDA_VERSION
from obslib.sources.frames import conform
from obslib.sources.prometheus import PrometheusSource, TimeLike, to_seconds

KEDA = "keda-operator"
SURVEYOR = "nats-surveyor"
NATS_EXPORTER = "prometheus-nats-exporter"
BUILD_INFO = "keda_build_info"
# KEDA 2.14 added these names and kept the old ones (recorded by the same calls) until 2.17
# (reference/exporters.md section 3). Old without new means KEDA is older than 2.14. The other
# direction proves nothing: deprecated series are often dropped by metric relabelling.
KEDA_RENAMES: tuple[tuple[str, str], ...] = (
    ("keda_scaler_metrics_latency", "keda_scaler_metrics_latency_seconds"),
    ("keda_scaler_errors", "keda_scaler_detail_errors_total"),
    ("keda_scaled_object_errors", "keda_scaled_object_errors_total"),
    ("keda_scaled_job_errors", "keda_scaled_job_errors_total"),
    ("keda_trigger_totals", "keda_trigger_registered_total"),
    ("keda_resource_totals", "keda_resource_registered_total"),
    ("keda_internal_scale_loop_latency", "keda_internal_scale_loop_latency_seconds"),
)
KEDA_RENAMED_IN = (2, 14)
_LAST_MINOR_PROBED = 40
_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)")

EXPORTER_COLUMNS: dict[str, str] = {
    "component": "str",  # nats | keda | the exporter's own name
    "exporter": "str",
    "present": "bool",  # any of its metric names has series in the window
    "names": "int64",  # how many of its metric names have series
    "identified_series": "int64",  # series of names two exporters share that carry its labels
    "version": "str",  # KEDA: version range the names and labels allow, e.g. 2.14-2.16
    "build_version": "str",  # KEDA: keda_build_info's version label
    "values_version": "str",  # KEDA: keda.version of the values file
    "agrees": "object",  # KEDA: values version within the data's range (None: no data)
    "evidence": "str",
}


def names_in_window(source: PrometheusSource, start: TimeLike, end: TimeLike) -> frozenset[str]:
    """Metric names with series in the window (block granularity: Prometheus's index answers)."""
    path = "/api/v1/label/__name__/values"
    params = {"start": f"{to_seconds(start):.3f}", "end": f"{to_seconds(end):.3f}"}
    body = source.client.get_json(path, params=params, query="__name__ values")
    if not isinstance(body, dict) or body.get("status") != "success":
        raise MalformedResponse("prometheus", source.client.url(path), "", "no success status")
    return frozenset(str(n) for n in body.get("data") or [])


def _names(exporter: Exporter) -> frozenset[str]:
    return frozenset(s.name for s in exporter.series())


@cache
def _keda_versions_table(honor_labels: bool) -> tuple[tuple[tuple[int, int], dict], ...]:
    """Each KEDA minor from the oldest supported to the last that changed anything, with its series."""
    table: list[tuple[tuple[int, int], dict]] = []
    for minor in range(MIN_KEDA_VERSION[1], _LAST_MINOR_PROBED):
        exporter = load_exporter(KEDA, (MIN_KEDA_VERSION[0], minor))
        if honor_labels:
            exporter = Exporter(**{**exporter.__dict__, "honor_labels": True})
        series = {s.name: s.labels for s in exporter.series()}
        if table and series == table[-1][1]:
            continue
        table.append(((MIN_KEDA_VERSION[0], minor), series))
    return tuple(table)


def keda_candidates(honor_labels: bool = False) -> list[tuple[int, int]]:
    """Minor versions where KEDA's metrics changed; the last stands for itself and later ones."""
    return [v for v, _ in _keda_versions_table(honor_labels)]


def keda_versions(
    observed: dict[str, frozenset[str]], honor_labels: bool = False
) -> list[tuple[int, int]]:
    """KEDA versions (see :func:`keda_candidates`) consistent with ``observed`` series names and labels.

    A version fits when it emits every observed name, with every label of that name that
    differs between versions (``scalerIndex`` before 2.13, ``triggerIndex``/``type`` after);
    and, when an old name of the 2.14 renames is seen without its new name, it is before 2.14.
    """
    table = _keda_versions_table(honor_labels)
    known = {n for _, series in table for n in series}
    varying: dict[str, frozenset[str]] = {}
    for name in known:
        sets = [series[name] for _, series in table if name in series]
        varying[name] = frozenset.union(*sets) - frozenset.intersection(*sets)
    fits = []
    for version, series in table:
        ok = all(
            name in series and (labels & varying[name]) <= series[name]
            for name, labels in observed.items()
            if name in known
        )
        if any(old in observed and new not in observed for old, new in KEDA_RENAMES):
            ok = ok and version < KEDA_RENAMED_IN
        if ok:
            fits.append(version)
    return fits


def version_range_text(versions: list[tuple[int, int]], honor_labels: bool = False) -> str:
    """``[(2, 14)]`` -> ``2.14-2.16`` (up to the next candidate), ``2.17+`` for the last one."""
    if not versions:
        return ""
    candidates = keda_candidates(honor_labels)
    lo, hi = versions[0], versions[-1]
    if hi == candidates[-1]:
        return f"{lo[0]}.{lo[1]}+"
    upper = candidates[candidates.index(hi) + 1]
    last = (upper[0], upper[1] - 1)
    return f"{lo[0]}.{lo[1]}" if lo == last else f"{lo[0]}.{lo[1]}-{last[0]}.{last[1]}"


def version_in_range(version: tuple[int, int], text: str) -> bool:
    """Whether ``version`` lies in a range written by :func:`version_range_text`."""
    bounds = [tuple(int(x) for x in m.groups()) for m in _VERSION_RE.finditer(text)]
    if not bounds:
        return False
    if text.endswith("+"):
        return version >= bounds[0]
    return bounds[0] <= version <= bounds[-1]


def _name_regex(names: frozenset[str] | set[str]) -> str:
    return "|".join(re.escape(n) for n in sorted(names))


def keda_identity(
    source: PrometheusSource, catalogue: Catalogue, start: TimeLike, end: TimeLike
) -> tuple[str, str]:
    """KEDA's version range from the window's names and labels, and keda_build_info's version."""
    honor = catalogue.settings.keda_honor_labels
    known = {n for _, series in _keda_versions_table(honor) for n in series}
    seen = known & names_in_window(source, start, end)
    if not seen:
        return "", ""
    frame = source.series([f'{{__name__=~"{_name_regex(seen)}"}}'], start, end)
    observed: dict[str, frozenset[str]] = {}
    for name, rows in frame.groupby("__name__"):
        labels = [c for c in rows.columns if c not in ("series", "__name__")]
        observed[str(name)] = frozenset(c for c in labels if (rows[c] != "").any())
    build = ""
    if BUILD_INFO in observed and "version" in frame.columns:
        versions = frame.loc[frame["__name__"] == BUILD_INFO, "version"]
        build = ", ".join(sorted(set(versions) - {""}))
    return version_range_text(keda_versions(observed, honor), honor), build


def exporter_of_series(frame: pd.DataFrame, metric: str, metrics: MetricCatalogue) -> str:
    """Which exporter(s) the series in ``frame`` (all of ``metric``) look like; "" without series."""
    if frame.empty or not metric:
        return ""
    candidates = list(dict.fromkeys(d.exporter for d in metrics.lookup(metric, lint_only=False)))
    if len(candidates) <= 1:
        return candidates[0] if candidates else ""
    scores = []
    for name in candidates:
        labels = [lb for lb in metrics.exporter(name).identify_by if lb in frame.columns]
        scores.append(
            (frame[labels] != "").sum(axis=1).to_numpy() if labels else np.zeros(len(frame))
        )
    table = np.vstack(scores)
    best = table.argmax(axis=0)[table.max(axis=0) > 0]
    return "+".join(candidates[i] for i in sorted(set(best.tolist())))


def _keda_row(
    source: PrometheusSource, catalogue: Catalogue, start: TimeLike, end: TimeLike
) -> dict[str, object]:
    found, build = keda_identity(source, catalogue, start, end)
    values = catalogue.settings.keda_version
    row: dict[str, object] = {
        "component": "keda",
        "version": found,
        "build_version": build,
        "values_version": catalogue.settings.keda_version_text,
    }
    if found:
        exact = _VERSION_RE.match(build)
        row["agrees"] = (
            (int(exact.group(1)), int(exact.group(2))) == values
            if exact
            else version_in_range(values, found)
        )
        row["evidence"] = f"names and labels fit KEDA {found}" + (
            f"; keda_build_info says {build}" if build else ""
        )
    return row


def exporter_report(
    source: PrometheusSource, catalogue: Catalogue, start: TimeLike, end: TimeLike
) -> pd.DataFrame:
    """One row per exporter of the catalogue: scraped or not, and for NATS and KEDA which one/version.

    Args:
        source: the Prometheus to ask.
        catalogue: the release (its exporters and its values' KEDA version).
        start: window start.
        end: window end.

    Returns:
        ``EXPORTER_COLUMNS`` rows.
    """
    metrics = catalogue.metrics
    seen = names_in_window(source, start, end)
    colliding = [e for e in metrics.exporters if e.identify_by]
    shared = (
        frozenset.intersection(*(_names(e) for e in colliding))
        if len(colliding) > 1
        else frozenset()
    )
    found = shared & seen
    identified: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    if found:
        frame = source.series([f'{{__name__=~"{_name_regex(found)}"}}'], start, end)
        for name, rows in frame.groupby("__name__"):
            for owner in filter(None, exporter_of_series(rows, str(name), metrics).split("+")):
                labels = [c for c in metrics.exporter(owner).identify_by if c in rows.columns]
                hits = int(rows[labels].ne("").any(axis=1).sum())
                identified.setdefault(owner, set()).add(str(name))
                counts[owner] = counts.get(owner, 0) + hits
    rows_out = []
    for exporter in metrics.exporters:
        names = (_names(exporter) & seen) - shared | identified.get(exporter.name, set())
        row: dict[str, object] = {
            "component": exporter.name,
            "exporter": exporter.name,
            "present": bool(names),
            "names": len(names),
            "identified_series": counts.get(exporter.name, 0),
            "version": "",
            "build_version": "",
            "values_version": "",
            "agrees": None,
            "evidence": f"{len(names)} of its metric names have series",
        }
        if exporter.identify_by:
            row["component"] = "nats"
            row["evidence"] = (
                f"{counts.get(exporter.name, 0)} series of the {len(shared)} names another "
                f"exporter also emits carry its labels ({', '.join(exporter.identify_by)}); "
                f"{len(names - shared)} names only it emits have series"
            )
        if exporter.name == KEDA:
            row.update(_keda_row(source, catalogue, start, end))
        rows_out.append(row)
    return conform(pd.DataFrame(rows_out, columns=list(EXPORTER_COLUMNS)), EXPORTER_COLUMNS)
