"""Phase 5 acceptance: the three observability-gated criteria, each with a verdict and its proof.

Work item 5 of the spec maps AC1, AC2 and AC5 to a panel and a query. Each ``check_ac*``
returns a :class:`CriterionResult` carrying the query or request that proves it, the value
found, a link and one line on what to do next, so a report of them is enough to validate the
criteria. Missing evidence is never a pass: it is ``INCONCLUSIVE``.

Where the spec's queries cannot be used as written, and what replaces them:

- AC1: ``histogram_quantile(0.99, daedalus_cold_start_seconds_bucket)`` reads raw cumulative
  counters, so it is a quantile of every cold start since each worker started, not of the
  post-deploy window. The check sums the buckets' *increase* over the window. 1500 s is a
  bucket bound of the contract, so the decision is exact: pass when the share of cold starts
  at or below 1500 s is at least 0.99. The interpolated ``histogram_quantile`` at the window
  end is reported as the value (an estimate between bounds, exact at one).
- AC2: ``daedalus_task_duration_seconds{task_id="<sentinel>"}`` can never return a series: the
  metric contract has no ``task_id`` label on purpose (a series per task is unbounded
  cardinality). The sentinel's duration comes from its trace instead: root span start to the
  end of the result-collection span (the root span's duration when there is none),
  cross-checked against the spans' ``daedalus.task.id``; the trace is audited against PASS1.
- AC5: the proof is a Grafana snapshot of the fleet overview over the run window with every
  Prometheus panel's data embedded; without ``OBSLIB_GRAFANA_URL`` the rendered
  fleet-overview report is the artifact, and its results JSON must show that it rendered every
  panel with data for the run window (a report that failed, or drew empty panels, is no proof).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from obslib.analysis.audit import audit_traces
from obslib.catalogue import Catalogue, build_catalogue
from obslib.catalogue.contract import AC1_COLD_START_LIMIT_S, AGENT_TYPE, COLD_START, TASK_DURATION
from obslib.catalogue.hops import PASS1, TASK_ID, TASK_STATE, HopProfile
from obslib.emit.dashboards import FLEET_UID, render_dashboard
from obslib.errors import NotFound, SourceError
from obslib.jsonable import jsonable
from obslib.paths import results_path
from obslib.sources.endpoint import endpoint_from_env, is_configured
from obslib.sources.grafana import (
    DEFAULT_EXPIRES_S,
    GrafanaSource,
    embed_panel_data,
    embedded_frames,
    iso_utc,
)
from obslib.sources.prometheus import PrometheusSource, RangeSource, TimeLike, to_seconds
from obslib.sources.trace_loaders import (
    SpansLoader,
)
from obslib.verdict import Verdict

AC1_SHARE = 0.99  # AC1 is a p99: at least 99% of cold starts at or below the limit
COMPLETED = "completed"
TITLES = {
    "AC1": "Deploy in 25 minutes: p99 cold start below 1500 s after the deploy",
    "AC2": "E2E task asserted: the sentinel task's trace is whole and its result arrived",
    "AC5": "workflow_dispatch passes: a snapshot of the fleet overview for the run window",
}
BREAKDOWN_COLUMNS = ["agent_type", "observed", "at_or_below_limit", "share", "p99_s", "verdict"]


@dataclass(frozen=True)
class Evidence:
    """One piece of proof: what was asked, what came back, and what it means."""

    query: str  # PromQL, a trace or snapshot request, or a file
    value: float | str | None
    meaning: str = ""


@dataclass(frozen=True, eq=False)
class CriterionResult:
    """The verdict on one acceptance criterion and everything needed to check it by hand."""

    criterion: str  # AC1 | AC2 | AC5
    title: str
    verdict: Verdict
    explanation: str  # one line: what was found, and on fail or inconclusive what to do
    query: str = ""  # the query or request that decides it
    value: float | str | None = None  # what it found (seconds, a snapshot URL, a file)
    unit: str = ""
    link: str = ""  # dashboard panel, Tempo trace, snapshot URL or report file
    evidence: tuple[Evidence, ...] = ()
    breakdown: pd.DataFrame = field(default_factory=pd.DataFrame)  # per agent type (AC1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for a results file (NaN and infinities become None)."""
        return {
            "criterion": self.criterion,
            "title": self.title,
            "verdict": self.verdict.value,
            "query": self.query,
            "value": jsonable(self.value),
            "unit": self.unit,
            "link": self.link,
            "explanation": self.explanation,
            "evidence": [
                {"query": e.query, "value": jsonable(e.value), "meaning": e.meaning}
                for e in self.evidence
            ],
            "breakdown": jsonable(self.breakdown),
        }


def _result(criterion: str, verdict: Verdict, why: str, **fields: Any) -> CriterionResult:
    return CriterionResult(criterion, TITLES[criterion], verdict, why, **fields)


def panel_link(
    catalogue: Catalogue,
    key: str,
    start: TimeLike,
    end: TimeLike,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Where a fleet-overview panel is: its Grafana URL over the window, else the dashboard file."""
    title = catalogue.panel(key).title
    panel_id = next(p["id"] for p in render_dashboard(catalogue)["panels"] if p["title"] == title)
    if is_configured("grafana", environ):
        base = endpoint_from_env("grafana", environ=environ).safe_url
        start_ms, end_ms = round(to_seconds(start) * 1000), round(to_seconds(end) * 1000)
        return f"{base}/d/{FLEET_UID}?viewPanel={panel_id}&from={start_ms}&to={end_ms}"
    return f"dashboards/{FLEET_UID}.json, panel {panel_id} ({title!r})"


# -- AC1 ------------------------------------------------------------------------------------


def _increase(window: str, matcher: str = "") -> str:
    selector = f"{{{matcher}}}" if matcher else ""
    return f"increase({COLD_START.name}_bucket{selector}[{window}])"


def ac1_queries(window: str, by: str = "") -> dict[str, str]:
    """AC1's PromQL over a range ``window`` such as ``3600s``, fleet-wide or ``by`` a label.

    ``buckets`` gives every bucket's increase; ``share`` the share at or below the limit
    (its ``le`` may be written ``1500`` or ``1500.0`` depending on the exporter); ``p99`` the
    interpolated quantile.
    """
    group = f"{by}, le" if by else "le"
    outer = f"sum by ({by}) " if by else "sum"
    limit = _increase(window, f'le=~"{AC1_COLD_START_LIMIT_S:g}(\\\\.0)?"')
    total = _increase(window, 'le="+Inf"')
    return {
        "buckets": f"sum by ({group}) ({_increase(window)})",
        "share": f"{outer}({limit}) / {outer}({total})",
        "p99": f"histogram_quantile({AC1_SHARE}, sum by ({group}) ({_increase(window)}))",
    }


def _shares(buckets: pd.DataFrame, by: str | None) -> pd.DataFrame:
    """Observed cold starts and those at or below the limit, per ``by`` label (or fleet-wide)."""
    if buckets.empty:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in BREAKDOWN_COLUMNS[1:4]})
    frame = buckets.assign(bound=buckets["le"].astype(float))
    frame = frame.assign(group=frame[by] if by else "fleet")
    observed = frame[np.isinf(frame["bound"])].groupby("group")["value"].sum()
    limit = frame[frame["bound"] == AC1_COLD_START_LIMIT_S].groupby("group")["value"].sum()
    out = pd.DataFrame({"observed": observed, "at_or_below_limit": limit}).fillna(0.0)
    return out.assign(share=out["at_or_below_limit"] / out["observed"].where(out["observed"] > 0))


def _ac1_verdict(share: float) -> Verdict:
    if not np.isfinite(share):
        return Verdict.INCONCLUSIVE
    return Verdict.PASS if share >= AC1_SHARE else Verdict.FAIL


def check_ac1(
    source: PrometheusSource,
    start: TimeLike,
    end: TimeLike,
    *,
    catalogue: Catalogue | None = None,
    environ: Mapping[str, str] | None = None,
) -> CriterionResult:
    """AC1 over the post-deploy window ``[start, end]``: p99 cold start below 1500 s.

    Decided by the bucket ratio at the 1500 s bound (exact); the interpolated p99 at ``end``
    is the reported value, with a breakdown per agent type. No cold start in the window, or
    no answer from Prometheus, is inconclusive.
    """
    catalogue = catalogue or build_catalogue()
    start_s, end_s = to_seconds(start), to_seconds(end)
    if end_s <= start_s:
        raise ValueError(f"AC1: the window must end after it starts, got {start!r} to {end!r}")
    window = f"{round(end_s - start_s)}s"
    fleet, per_agent = ac1_queries(window), ac1_queries(window, AGENT_TYPE)
    where = {
        "query": fleet["share"],
        "link": panel_link(catalogue, "cold-start", start_s, end_s, environ),
    }
    try:
        totals = _shares(source.query(fleet["buckets"], at=end_s), None)
        agents = _shares(source.query(per_agent["buckets"], at=end_s), AGENT_TYPE)
        p99 = source.query(fleet["p99"], at=end_s)["value"]
        agent_p99 = source.query(per_agent["p99"], at=end_s)
    except SourceError as exc:
        return _result("AC1", Verdict.INCONCLUSIVE, f"Prometheus could not answer: {exc}", **where)
    observed = float(totals["observed"].sum())
    share = float(totals["share"].iloc[0]) if observed > 0 else math.nan
    value = float(p99.iloc[0]) if len(p99) else math.nan
    verdict = _ac1_verdict(share)
    p99_of = dict(zip(agent_p99.get(AGENT_TYPE, []), agent_p99["value"], strict=True))
    breakdown = agents.rename_axis("agent_type").reset_index()
    breakdown["p99_s"] = breakdown["agent_type"].map(p99_of).astype(float)
    breakdown["verdict"] = [_ac1_verdict(s).value for s in breakdown["share"]]
    limit = f"{AC1_COLD_START_LIMIT_S:g} s"
    found = f"{share:.2%} of {observed:.0f} cold starts took at most {limit} (p99 ~ {value:.0f} s)"
    why = {
        Verdict.PASS: f"{found}: AC1 holds for this window.",
        Verdict.FAIL: f"{found}, short of the 99% AC1 needs: see which agent types breach in the "
        "breakdown and on the Cold-start latency panel, then check image pulls and node scale-up.",
        Verdict.INCONCLUSIVE: "No cold start was observed in the window: check that it covers the "
        f"deploy and that workers export {COLD_START.name}, then run again.",
    }[verdict]
    evidence = (
        Evidence(
            fleet["share"], share, f"share of cold starts at or below {limit} (pass: >= 0.99)"
        ),
        Evidence(fleet["p99"], value, "interpolated p99 of cold starts, seconds"),
        Evidence(fleet["buckets"], observed, "cold starts observed in the window (le=+Inf)"),
    )
    return _result(
        "AC1",
        verdict,
        why,
        value=value,
        unit="s",
        evidence=evidence,
        breakdown=breakdown[BREAKDOWN_COLUMNS],
        **where,
    )


# -- AC2 ------------------------------------------------------------------------------------


def trace_duration(spans: pd.DataFrame, task_id: str, result_span: str) -> tuple[float, str]:
    """Seconds from the root span's start to the end of the task's result collection.

    Returns the duration and how it was measured: the root's own duration when the trace
    holds no result-collection span of the task.
    """
    roots = spans[spans["parent_span_id"] == ""].sort_values("start_ns")
    root = (roots if len(roots) else spans.sort_values("start_ns")).iloc[0]
    results = spans[(spans["name"] == result_span) & (spans["task_id"] == task_id)]
    if len(results):
        end_ns = int(results["end_ns"].max())
        return (end_ns - int(root["start_ns"])) / 1e9, f"{root['name']} start to {result_span} end"
    return int(root["duration_ns"]) / 1e9, f"{root['name']} duration (no {result_span} span)"


def _judge_trace(
    spans: pd.DataFrame, sentinel: str, profile: HopProfile
) -> tuple[Verdict, str, float, tuple[Evidence, ...]]:
    """Verdict, explanation, duration and evidence for a trace that carries the sentinel's id."""
    hops = {h.key: h for h in profile.hops}
    result_span = hops.get("result_collect", PASS1.hop("result_collect")).span
    duration, measured = trace_duration(spans, sentinel, result_span)
    tasks = audit_traces(spans, profile).tasks
    task = tasks[tasks["task_id"] == sentinel].iloc[0]
    reasons = list(task["reasons"])
    results = spans[(spans["name"] == result_span) & (spans["task_id"] == sentinel)]
    states = sorted({str(a.get(TASK_STATE, "")) for a in results["attributes"]} - {""})
    audit = "whole" if task["ok"] else f"broken at {task['first_broken_hop']}"
    evidence = (
        Evidence(measured, duration, "the sentinel's duration, seconds"),
        Evidence(
            f"audit_traces(spans, {profile.name})",
            audit,
            "; ".join(reasons) or "every hop present and linked",
        ),
        Evidence(f"{result_span} {TASK_STATE}", ", ".join(states) or None, "the result's state"),
    )
    done = f"Sentinel {sentinel} took {duration:.2f} s ({measured})"
    if not task["ok"]:
        why = (
            f"{done}, but its trace breaks at {task['first_broken_hop']}: {reasons[0]}. Fix the "
            "propagation at that hop (see the trace audit) and rerun the e2e test."
        )
        return Verdict.FAIL, why, duration, evidence
    if states and states != [COMPLETED]:
        why = f"{done}, but its result arrived {', '.join(states)}: read its logs by trace id."
        return Verdict.FAIL, why, duration, evidence
    why = (
        f"{done}; its trace is whole under {profile.name}. The spec's task_id query cannot "
        "work (no task_id label by design), so the duration is the trace's."
    )
    return Verdict.PASS, why, duration, evidence


def check_ac2(
    sentinel_task_id: str,
    trace_id: str,
    spans_loader: SpansLoader,
    *,
    profile: HopProfile = PASS1,
) -> CriterionResult:
    """AC2: the sentinel task's trace, found by id, is the sentinel's, whole, and completed.

    ``spans_loader`` maps a trace id to its span frame (``TempoSource().trace``,
    :class:`TempoTraceLoader` or :class:`OtlpTraceLoader`); a loader with
    ``describe(trace_id) -> (request, link)`` also says where it looked. Inconclusive without
    a sentinel, a trace id or the trace; fail when the trace carries another task's id, the
    audit finds a break, or the result did not complete.
    """
    sentinel = sentinel_task_id or "<sentinel>"
    traceql = f'{{ span.{TASK_ID} = "{sentinel}" }}'
    spec = Evidence(
        f'{TASK_DURATION.name}{{task_id="{sentinel}"}}',
        None,
        "the spec's query; it cannot return data: the metric contract has no task_id label "
        "(unbounded cardinality), so the duration is taken from the trace",
    )
    where = {"query": traceql, "link": ""}
    if sentinel_task_id and trace_id:
        describe = getattr(spans_loader, "describe", None)
        request, link = describe(trace_id) if describe else (f"trace {trace_id} by id", trace_id)
        where = {"query": request, "link": link}
    if not sentinel_task_id:
        why = "No sentinel task id: give the aks-e2e-<unixnano> id the e2e test published."
    elif not trace_id:
        why = f"No trace id: take it from the e2e output, or find it with {traceql}."
    else:
        try:
            spans = spans_loader(trace_id)
            why = (
                "" if len(spans) else f"The trace has no spans; find the sentinel's with {traceql}."
            )
        except (SourceError, ValueError) as exc:
            what = "not found" if isinstance(exc, NotFound) else "unreadable"
            why = f"Trace {what} ({exc}); find the sentinel's with {traceql}."
    if why:
        return _result("AC2", Verdict.INCONCLUSIVE, why, evidence=(spec,), **where)
    tasks = sorted(set(spans["task_id"]) - {""})
    found = Evidence(
        where["query"], len(spans), f"spans of the trace; their task ids: {tasks or 'none'}"
    )
    if sentinel_task_id not in tasks:
        why = (
            f"The trace carries task ids {tasks or 'none'}, not {sentinel_task_id}: check the "
            "trace id in the e2e output; if it is right, the task id or context is lost."
        )
        return _result("AC2", Verdict.FAIL, why, evidence=(found, spec), **where)
    verdict, why, duration, evidence = _judge_trace(spans, sentinel_task_id, profile)
    return _result(
        "AC2", verdict, why, value=duration, unit="s", evidence=(found, *evidence, spec), **where
    )


# -- AC5 ------------------------------------------------------------------------------------


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
        return _result("AC5", Verdict.INCONCLUSIVE, f"No snapshot was made: {exc}", query=request)
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
    return _result(
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
        return _result("AC5", Verdict.INCONCLUSIVE, why)
    return _report_result(Path(report_path), start, end)


def _report_result(path: Path, start: TimeLike, end: TimeLike) -> CriterionResult:
    """AC5 on a rendered fleet-overview report, judged by the results JSON beside it."""
    span = f"{iso_utc(start)} to {iso_utc(end)}"
    rerun = f"then rerun the fleet_overview notebook for {span}."
    size = path.stat().st_size if path.is_file() else 0
    where = {"query": f"fleet-overview report {path}", "link": str(path)}
    evidence = [Evidence(where["query"], size, "bytes in the report file")]

    def inconclusive(why: str) -> CriterionResult:
        return _result("AC5", Verdict.INCONCLUSIVE, why, evidence=tuple(evidence), **where)

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
    return _result("AC5", Verdict.PASS, why, value=str(path), evidence=tuple(evidence), **where)


def _names(titles: Sequence[str]) -> str:
    return ", ".join(repr(t) for t in titles)


# -- coverage and summary ---------------------------------------------------------------------


def coverage_table(catalogue: Catalogue) -> pd.DataFrame:
    """The spec's "Phase 5 Acceptance Criteria Coverage" section as data, one row per AC.

    Columns: ``criterion``, ``title``, ``dashboard``, ``panel`` (a panel title of the
    catalogue), ``query`` (what proves it here), ``spec_query`` (the spec's wording) and
    ``procedure`` (what the engineer does to validate it by hand).
    """
    q = ac1_queries("<window>")
    dashboard = render_dashboard(catalogue)["title"]
    rows = [
        ("AC1", catalogue.panel("cold-start").title, f"{q['share']} (decides); {q['p99']} (value)",
         "histogram_quantile(0.99, daedalus_cold_start_seconds_bucket) below 1500 s",
         "Set the dashboard to the post-deploy window; run both queries at its end with <window> its "
         "length. Pass when the share is at least 0.99, which puts the p99 at or below 1500 s."),
        ("AC2", catalogue.panel("slowest-tasks").title,
         f'Tempo GET /api/v2/traces/<trace_id>; by task: {{ span.{TASK_ID} = "<sentinel>" }}',
         f'{TASK_DURATION.name}{{task_id="<sentinel>"}}: cannot work, no task_id label by design',
         "Open the trace by the id in the e2e output. It must carry the sentinel's daedalus.task.id, "
         "every PASS1 hop, and a completed result; its duration is root start to result collection."),
        ("AC5", "every panel", "POST /api/snapshots: the fleet overview, time range the run window, "
         "each Prometheus panel's data embedded",
         "GHA uploads a Grafana snapshot URL of the fleet overview scoped to the run window",
         "Open the snapshot URL the workflow uploaded: its time range is the run and its panels show "
         "data. Without Grafana, the rendered fleet-overview report is the artifact."),
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=["criterion", "panel", "query", "spec_query", "procedure"])
    table.insert(1, "title", table["criterion"].map(TITLES))
    table.insert(2, "dashboard", dashboard)
    return table


def acceptance_summary(results: Sequence[CriterionResult]) -> dict[str, Any]:
    """The results-JSON summary: each AC's verdict, value and evidence, and the overall verdict.

    ``failed`` lists the criteria that failed: a run with any must exit non-zero.
    """
    overall = Verdict.combine([r.verdict for r in results])
    return {
        "verdict": overall.value,
        "failed": [r.criterion for r in results if r.verdict is Verdict.FAIL],
        "inconclusive": [r.criterion for r in results if r.verdict is Verdict.INCONCLUSIVE],
        "criteria": {r.criterion: r.to_dict() for r in results},
    }
