"""AC5, workflow_dispatch passes: a snapshot of the fleet overview for the run window.

The proof is a Grafana snapshot of the fleet overview over the run window with every Prometheus
panel's data embedded. Without ``OBSLIB_GRAFANA_URL`` the rendered fleet-overview report is the
artifact, and its results JSON must show that it rendered every panel with data for the run
window: a report that failed, or drew empty panels, is no proof.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from obslib.analysis.acceptance.criteria import CriterionResult, Evidence, criterion
from obslib.catalogue import Catalogue
from obslib.emit.dashboards import render_dashboard
from obslib.errors import SourceError
from obslib.paths import results_path
from obslib.sources.endpoint import endpoint_from_env, is_configured
from obslib.sources.grafana import (
    DEFAULT_EXPIRES_S,
    GrafanaSource,
    embed_panel_data,
    embedded_frames,
    iso_utc,
)
from obslib.sources.prometheus import RangeSource, TimeLike, to_seconds
from obslib.verdict import Verdict


def _snapshot_result(
    catalogue: Catalogue,
    window: tuple[TimeLike, TimeLike],
    grafana: GrafanaSource,
    prometheus: RangeSource,
    expires_s: int,
) -> CriterionResult:
    (start, end), span = window, f"{iso_utc(window[0])} to {iso_utc(window[1])}"
    request = f"POST {grafana.endpoint.safe_url}/api/snapshots (fleet overview, {span})"
    try:
        model = embed_panel_data(render_dashboard(catalogue), prometheus, start, end)
        snapshot = grafana.create_snapshot(
            model, start, end, expires_s, f"Daedalus fleet overview, {span}"
        )
    except SourceError as exc:
        return criterion("AC5", Verdict.INCONCLUSIVE, f"No snapshot was made: {exc}", query=request)
    frames = embedded_frames(model)
    evidence = tuple(
        Evidence(request, n, f"series with data embedded for panel {t!r}")
        for t, n in frames.items()
    )
    prometheus_panels = [
        p.get("title", "")
        for p in model.get("panels", [])
        if (p.get("datasource") or {}).get("type") == "prometheus"
    ]
    empty = [t for t in prometheus_panels if not frames.get(t)]
    if prometheus_panels and not empty:
        verdict = Verdict.PASS
        why = (
            f"Snapshot of the fleet overview for {span}: upload this URL as the workflow artifact."
        )
    else:
        verdict = Verdict.INCONCLUSIVE
        why = (
            f"The snapshot holds no data for {_names(empty) or 'any panel'}: check the window "
            "and that Prometheus scraped the run."
        )
    return criterion(
        "AC5", verdict, why, query=request, value=snapshot.url, link=snapshot.url, evidence=evidence
    )


def check_ac5(
    catalogue: Catalogue,
    start: TimeLike,
    end: TimeLike,
    *,
    prometheus: RangeSource,
    report_path: str | Path | None = None,
    grafana: GrafanaSource | None = None,
    expires_s: int = DEFAULT_EXPIRES_S,
    environ: Mapping[str, str] | None = None,
) -> CriterionResult:
    """AC5: a snapshot of the fleet overview over the run window is the proof.

    With a Grafana (``grafana``, else ``OBSLIB_GRAFANA_URL``) the fleet overview's panels are
    queried on ``prometheus`` over the window and posted as a snapshot: pass when it was made
    and every Prometheus panel holds data. Without one the rendered fleet-overview report
    ``report_path`` is the artifact: pass when its results JSON (beside it) says it rendered
    every panel with data, over a window that overlaps the run's. Inconclusive otherwise: a
    report that failed (its backend did not answer) or drew empty panels proves nothing.
    """
    if grafana is None and is_configured("grafana", environ):
        grafana = GrafanaSource(endpoint_from_env("grafana", environ=environ))
    if grafana is not None:
        return _snapshot_result(catalogue, (start, end), grafana, prometheus, expires_s)
    if report_path is None:
        why = "No Grafana (OBSLIB_GRAFANA_URL) and no fleet-overview report: give one and rerun."
        return criterion("AC5", Verdict.INCONCLUSIVE, why)
    return _report_result(Path(report_path), start, end)


def _report_result(path: Path, start: TimeLike, end: TimeLike) -> CriterionResult:
    """AC5 on a rendered fleet-overview report, judged by the results JSON beside it."""
    span = f"{iso_utc(start)} to {iso_utc(end)}"
    rerun = f"then rerun the fleet_overview notebook for {span}."
    size = path.stat().st_size if path.is_file() else 0
    where = {"query": f"fleet-overview report {path}", "link": str(path)}
    evidence = [Evidence(where["query"], size, "bytes in the report file")]

    def inconclusive(why: str) -> CriterionResult:
        return criterion("AC5", Verdict.INCONCLUSIVE, why, evidence=tuple(evidence), **where)

    if not size:
        return inconclusive(
            f"The report {path} is missing or empty: run fleet_overview for {span}."
        )
    results_file = results_path(path.parent, path.stem)
    try:
        results = json.loads(results_file.read_text())
        verdict, summary = str(results["verdict"]), results.get("summary") or {}
        panels, empty = dict(summary.get("panels") or {}), list(summary.get("empty_panels") or [])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return inconclusive(f"No readable results file {results_file} beside the report: {rerun}")
    with_data = [t for t in panels if t not in empty]
    evidence += [
        Evidence(str(results_file), verdict, "its verdict (pass: every panel has data)"),
        Evidence(str(results_file), len(with_data), f"panels drawn with data, of {len(panels)}"),
    ]
    if verdict == "error":
        error = results.get("error") or {}
        cause = (str(error.get("evalue") or "").strip().splitlines() or [""])[0][:600]
        return inconclusive(
            f"The fleet-overview report failed, so it proves nothing: {error.get('ename')}: "
            f"{cause} Fix that, {rerun}"
        )
    if verdict != Verdict.PASS.value or empty or not panels:
        return inconclusive(
            f"The fleet-overview report is {verdict}, with no data for "
            f"{_names(empty) or 'any panel'}: check the window and that Prometheus scraped "
            f"the run, {rerun}"
        )
    window = results.get("window") or {}
    try:
        covered = (pd.Timestamp(window["start"]), pd.Timestamp(window["end"]))
    except (KeyError, TypeError, ValueError):
        return inconclusive(f"The results file {results_file} names no window: {rerun}")
    evidence.append(Evidence(str(results_file), f"{covered[0]} to {covered[1]}", "its window"))
    if covered[0].timestamp() >= to_seconds(end) or covered[1].timestamp() <= to_seconds(start):
        return inconclusive(
            f"The fleet-overview report covers {covered[0]} to {covered[1]}, not the run "
            f"window {span}: {rerun}"
        )
    why = (
        f"No Grafana is configured: the fleet-overview report for {span}, every panel drawn "
        "with data, is the artifact."
    )
    return criterion("AC5", Verdict.PASS, why, value=str(path), evidence=tuple(evidence), **where)


def _names(titles: Sequence[str]) -> str:
    return ", ".join(repr(t) for t in titles)
