"""Turn cross-check findings into the platform naming mismatches they reveal, with the fix.

``reference/daedalus-platform.md`` lists how the platform today differs from what the spec's
rules and dashboards assume: workers named ``daedalus-<worker>``, no orchestrator Deployment,
no Daedalus metrics (so no ``agent_type``), surveyor's jsz metrics off by default, the NATS
chart's exporter sidecar using the same names with other labels, a KEDA other than the values
say. Each detector below recognises one of them in a selector report (and, when given, the
exporter and cardinality frames) and says what to change: a values-file key, or the platform.
Selectors that match nothing for no recognised reason are listed as ``selector-unmatched``.
"""

from __future__ import annotations

import re
from collections import Counter

import pandas as pd

from obslib.analysis.crosscheck.exporters import KEDA, NATS_EXPORTER, SURVEYOR, version_in_range
from obslib.analysis.crosscheck.selectors import unmatched
from obslib.catalogue import Catalogue
from obslib.catalogue.alerts import keda_scaler_errors_metric
from obslib.catalogue.contract import AGENT_TYPE
from obslib.catalogue.exporters import DAEDALUS, parse_version
from obslib.sources.frames import conform

MISMATCH_COLUMNS: dict[str, str] = {
    "mismatch": "str",  # worker-prefix | orchestrator-deployment | daedalus-metrics-missing | ...
    "alerts": "object",  # list: alerts whose selectors it breaks
    "panels": "object",  # list: "dashboard / panel" whose selectors it breaks
    "selectors": "object",  # list: the selectors that match nothing because of it
    "evidence": "str",  # what the data shows
    "fix": "str",  # values | platform | values or platform | check
    "values_key": "str",  # the values-file key to change, when a values change fixes it
    "suggested": "str",  # the value to set it to
    "change": "str",  # what to do, in one or two sentences
}
_WORKER_LABELS = frozenset({"pod", "job_name"})
_MAX_NOTES = 5  # agent_type values quoted in the evidence (a leaking id makes thousands)

Found = tuple[dict[str, object], pd.Index]


def _row(
    mismatch: str, rows: pd.DataFrame, evidence: str, fix: str, change: str, **extra: str
) -> Found:
    row: dict[str, object] = {
        "mismatch": mismatch,
        "alerts": sorted(set(rows.loc[rows["kind"] == "rule", "name"])),
        "panels": sorted(
            {f"{r.name} / {r.panel}" for r in rows[rows["kind"] == "dashboard"].itertuples()}
        ),
        "selectors": list(dict.fromkeys(rows["selector"])),
        "evidence": evidence,
        "fix": fix,
        "values_key": extra.get("values_key", ""),
        "suggested": extra.get("suggested", ""),
        "change": change,
    }
    return row, rows.index


def _worker_prefix(bad: pd.DataFrame, c: Catalogue) -> list[Found]:
    s = c.settings

    def reads_workers(matchers: tuple[tuple[str, str, str], ...]) -> bool:
        return any(
            label in _WORKER_LABELS and op == "=~" and value.startswith(s.worker_prefix)
            for label, op, value in matchers
        )

    rows = bad[
        bad["matchers"].map(reads_workers)
        & bad["label"].isin(_WORKER_LABELS)
        & bad["diagnosis"].isin(["value_missing", "conflict"])
    ]
    agents = "|".join(re.escape(a) for a in s.agent_types)
    pattern = re.compile(rf"^(?P<prefix>[a-z0-9-]*?)(?:{agents})(?:-|$)")
    prefixes: Counter[str] = Counter()
    examples: list[str] = []
    for values in rows["values"]:
        for value in values:
            match = pattern.match(value)
            if match and match["prefix"] != s.worker_prefix:
                prefixes[match["prefix"]] += 1
                examples.append(value)
    if not prefixes:
        return []
    prefix = prefixes.most_common(1)[0][0]
    evidence = (
        f'selectors on pod/job_name=~"{s.worker_prefix}..." match nothing; the worker pods and '
        f"Jobs in the data are named {', '.join(dict.fromkeys(examples[:4]))}"
    )
    change = (
        f'set workers.podPrefix: "{prefix}" in the values file (the chart names workers '
        f"<fullname>-<worker>), or have the chart name the worker ScaledJobs "
        f"{s.worker_prefix}<agent_type>"
    )
    return [
        _row(
            "worker-prefix",
            rows,
            evidence,
            "values or platform",
            change,
            values_key="workers.podPrefix",
            suggested=prefix,
        )
    ]


def _orchestrator(bad: pd.DataFrame, c: Catalogue) -> list[Found]:
    s = c.settings
    wanted = ("deployment", "=", s.orchestrator_deployment)
    rows = bad[bad["matchers"].map(lambda m: wanted in m)]
    if rows.empty:
        return []
    deployments = sorted(
        {v for r in rows.itertuples() if r.label == "deployment" for v in r.values}
    )
    firing = sorted(
        set(
            rows.loc[
                (rows["kind"] == "rule") & rows["functions"].map(lambda f: "absent" in f), "name"
            ]
        )
    )
    evidence = f"no series for deployment {s.orchestrator_deployment} in namespace {s.namespace}"
    if deployments:
        evidence += f"; deployments there: {', '.join(deployments)}"
    if firing:
        evidence += (
            f"; {', '.join(firing)} fires through its absent() leg for as long as it is missing"
        )
    renamed = [d for d in deployments if "orchestrator" in d]
    if renamed:
        change = f'set orchestrator.deployment: "{renamed[0]}" in the values file'
        return [
            _row(
                "orchestrator-deployment",
                rows,
                evidence,
                "values",
                change,
                values_key="orchestrator.deployment",
                suggested=renamed[0],
            )
        ]
    change = (
        f"deploy the orchestrator as Deployment {s.orchestrator_deployment} in namespace "
        f"{s.namespace} (the chart has none today); until then silence "
        f"{', '.join(firing) or 'its alert'} with an expiry rather than deleting the rule"
    )
    return [_row("orchestrator-deployment", rows, evidence, "platform", change)]


def _daedalus(bad: pd.DataFrame, c: Catalogue, cardinality: pd.DataFrame | None) -> list[Found]:
    rows = bad[bad["expected_exporter"] == DAEDALUS]
    found: list[Found] = []
    missing = rows[rows["diagnosis"] == "no_series"]
    if not missing.empty:
        names = ", ".join(sorted(set(missing["metric"])))
        found.append(
            _row(
                "daedalus-metrics-missing",
                missing,
                f"no series of {names} in the window: the platform does not emit them",
                "platform",
                "emit the Daedalus metric contract (obslib.catalogue.contract: names, labels, "
                "buckets) from internal/telemetry and scrape it with a PodMonitor",
            )
        )
    unlabelled = rows[(rows["diagnosis"] == "label_missing") & (rows["label"] == AGENT_TYPE)]
    if not unlabelled.empty:
        names = ", ".join(sorted(set(unlabelled["metric"])))
        found.append(
            _row(
                "agent-type-label-missing",
                unlabelled,
                f"series of {names} exist, none with an agent_type label",
                "platform",
                "add agent_type to these metrics in internal/telemetry (the spec: a code-side "
                "fix, not a dashboard hack)",
            )
        )
    valued = rows[(rows["diagnosis"] == "value_missing") & (rows["label"] == AGENT_TYPE)]
    if cardinality is not None:
        seen = cardinality[cardinality["seen"] & (cardinality["agent_type"] != "")]
        outside = seen[~seen["in_set"]]
        notes = [f"{r.agent_type!r} ({r.note})" for r in outside.itertuples()]
    else:
        values = {v for vs in valued["values"] for v in vs} - set(c.settings.agent_types)
        notes = [repr(v) for v in sorted(values)]
    if notes:
        more = len(notes) - _MAX_NOTES
        notes = notes[:_MAX_NOTES] + ([f"and {more} more"] if more > 0 else [])
        found.append(
            _row(
                "agent-type-unbounded",
                valued,
                f"agent_type values outside agentTypes: {'; '.join(notes)}",
                "platform",
                "normalise agent_type to the registry's names before it becomes a label "
                "(lowercase, never a task or trace id: ids belong in span attributes); if a "
                "value is a real new agent type, add it to agentTypes in the values file",
                values_key="agentTypes",
            )
        )
    return found


def _nats(bad: pd.DataFrame, report: pd.DataFrame, exporters: pd.DataFrame | None) -> list[Found]:
    rows = bad[bad["expected_exporter"] == SURVEYOR]
    if rows.empty:
        return []
    if exporters is not None:
        surveyor = exporters[exporters["exporter"] == SURVEYOR]
        present = bool(surveyor["present"].any())
        jsz = bool((surveyor["identified_series"] > 0).any())
    else:
        present = jsz = bool(report.loc[report["matched"], "exporter"].str.contains(SURVEYOR).any())
    found: list[Found] = []
    if not jsz:
        evidence = (
            "nats-surveyor is scraped, but no nats_stream_*/nats_consumer_* series carries its "
            "labels: it runs without --jsz"
            if present
            else "no nats-surveyor metrics at all: it is not deployed or not scraped"
        )
        found.append(
            _row(
                "nats-surveyor-jsz-off",
                rows,
                evidence,
                "platform",
                "run nats-surveyor with --jsz=all (its Helm chart's config.jsz is empty by "
                "default) and enable its ServiceMonitor",
            )
        )
    sidecar = rows[rows["exporter"].str.contains(NATS_EXPORTER)]
    if not sidecar.empty:
        similar = sorted({s for values in sidecar["similar"] for s in values})
        found.append(
            _row(
                "nats-exporter-naming",
                sidecar,
                f"{', '.join(sorted(set(sidecar['metric'])))} have series in "
                f"prometheus-nats-exporter's naming (no {', '.join(sorted(set(sidecar['label'])))}"
                f" label; it has {', '.join(similar) or 'other labels'}): the NATS chart's "
                "exporter sidecar (-prefix=nats) emits surveyor's names with its own labels",
                "platform",
                "scrape nats-surveyor's jsz metrics, which the rules and dashboards are written "
                "for; do not rewrite the selectors to the sidecar's labels (with both scraped, "
                "the same name would then mean two things)",
            )
        )
    return found


def _keda(
    bad: pd.DataFrame, report: pd.DataFrame, c: Catalogue, exporters: pd.DataFrame | None
) -> list[Found]:
    values = c.settings.keda_version
    build = ""
    if exporters is not None:
        keda = exporters[exporters["exporter"] == KEDA]
        found_range = str(keda["version"].iloc[0]) if not keda.empty else ""
        build = str(keda["build_version"].iloc[0]) if not keda.empty else ""
    else:
        ranges = report.loc[report["exporter_version"] != "", "exporter_version"]
        found_range = str(ranges.iloc[0]) if not ranges.empty else ""
    if not found_range:
        return []
    exact = parse_version(build.lstrip("v")) if re.match(r"v?\d+\.\d+", build) else None
    if (exact == values) if exact else version_in_range(values, found_range):
        return []
    suggested_version = exact or parse_version(re.findall(r"\d+\.\d+", found_range)[-1])
    suggested = f"{suggested_version[0]}.{suggested_version[1]}"
    rows = bad[bad["expected_exporter"] == KEDA]
    evidence = (
        f"values say keda.version {c.settings.keda_version_text}; the data fits KEDA {found_range}"
    )
    if build:
        evidence += f" (keda_build_info: {build})"
    change = (
        f'set keda.version: "{suggested}" in the values file (KEDAScalerError then reads '
        f"{keda_scaler_errors_metric(suggested_version)}), or run KEDA "
        f"{c.settings.keda_version_text} as the values say"
    )
    return [
        _row(
            "keda-version",
            rows,
            evidence,
            "values or platform",
            change,
            values_key="keda.version",
            suggested=suggested,
        )
    ]


def _unexplained(rest: pd.DataFrame) -> list[Found]:
    found = []
    for (_metric, _diagnosis, _label), rows in rest.groupby(
        ["metric", "diagnosis", "label"], sort=False
    ):
        found.append(
            _row(
                "selector-unmatched",
                rows,
                str(rows["detail"].iloc[0]),
                "check",
                "no known platform mismatch explains it: compare the selector with the data",
            )
        )
    return found


def platform_mismatches(
    selector_report: pd.DataFrame,
    catalogue: Catalogue,
    exporters: pd.DataFrame | None = None,
    cardinality: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The platform naming mismatches the data shows, each with what to change (``MISMATCH_COLUMNS``).

    Args:
        selector_report: from :func:`~obslib.analysis.crosscheck.selectors.selector_report`.
        catalogue: the release (its values name the keys to change).
        exporters: from :func:`~obslib.analysis.crosscheck.exporters.exporter_report` (better
            NATS and KEDA evidence when given).
        cardinality: from :func:`~obslib.analysis.crosscheck.cardinality.agent_type_cardinality`.

    Returns:
        One row per mismatch; empty when the data has none, or when no selector's metric has
        any series (no data is no evidence).
    """
    if not (selector_report["diagnosis"] != "no_series").any():
        return conform(pd.DataFrame(columns=list(MISMATCH_COLUMNS)), MISMATCH_COLUMNS)
    bad = unmatched(selector_report)
    found: list[Found] = [
        *_worker_prefix(bad, catalogue),
        *_orchestrator(bad, catalogue),
        *_daedalus(bad, catalogue, cardinality),
        *_nats(bad, selector_report, exporters),
        *_keda(bad, selector_report, catalogue, exporters),
    ]
    covered = set().union(*(set(index) for _, index in found)) if found else set()
    found += _unexplained(bad.drop(index=list(covered)))
    frame = pd.DataFrame([row for row, _ in found], columns=list(MISMATCH_COLUMNS))
    return conform(frame, MISMATCH_COLUMNS)
