"""The observability cross-check: the emitted artifacts against a live Prometheus over a window.

Frames in, frames out, for the cross-check notebook:

- :func:`~obslib.analysis.selector_check.selector_report`: does every selector of the rules and
  dashboards match series, and if not, why (pint-style);
- :func:`~obslib.analysis.exporter_check.exporter_report`: which exporters (and KEDA version)
  the data comes from;
- :func:`agent_type_cardinality`: the spec's open question, answered from data;
- :func:`alert_noise`: how often each alert would have fired over the window;
- :func:`~obslib.analysis.runbook_check.check_runbook`: runbook completeness;
- :func:`platform_mismatches`: the findings as the platform naming mismatches they reveal,
  each with what to change;
- :func:`crosscheck_summary`: the results-JSON summary with a verdict.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from obslib.analysis.alert_replay import replay_alerts
from obslib.analysis.exporter_check import exporter_report
from obslib.analysis.platform_mismatch import MISMATCH_COLUMNS, platform_mismatches
from obslib.analysis.runbook_check import check_runbook
from obslib.analysis.selector_check import selector_report, unmatched
from obslib.catalogue import Catalogue
from obslib.catalogue.contract import AGENT_TYPE, CONTRACT
from obslib.jsonable import jsonable
from obslib.settings import TASK_SUBJECT_PREFIX, TASK_SUBJECT_RE, Settings
from obslib.sources.frames import conform
from obslib.sources.prometheus import PrometheusSource, TimeLike
from obslib.verdict import Verdict

# A value with a long digit run, a long hex run or a UUID is an id, not an agent type.
_ID_RE = re.compile(r"\d{6,}|[0-9a-f]{16,}|[0-9a-f]{8}-[0-9a-f]{4}-", re.IGNORECASE)

CARDINALITY_COLUMNS: dict[str, str] = {
    "agent_type": "str",  # "" stands for series without the label
    "in_set": "bool",  # one of the values file's agentTypes
    "seen": "bool",  # has series in the window
    "series": "int64",  # Daedalus series carrying this value
    "metrics": "object",  # list of contract metrics carrying it
    "valid_subject": "bool",  # agent.tasks.<value> is a valid task subject
    "note": "str",
}
MAX_LISTED = 20  # values listed in the summary; a leaking id can make thousands
NOISE_COLUMNS: dict[str, str] = {
    "alert": "str",
    "severity": "str",
    "for_s": "int64",
    "episodes": "int64",  # label sets matching on consecutive evaluations (pending or firing)
    "fired": "int64",  # episodes that outlasted `for`: notifications on-call would have had
    "label_sets": "int64",  # distinct label sets among the fired episodes
    "firing_s": "float64",  # total time firing
    "longest_s": "float64",  # the longest firing episode
    "first_fired": "datetime64[ns, UTC]",
    "last_fired": "datetime64[ns, UTC]",
}


def _note(value: str, settings: Settings) -> str:
    if value == "":
        return "series without an agent_type label"
    if value in settings.agent_types:
        return "a configured agent type"
    notes = []
    twins = [a for a in settings.agent_types if a.lower() == value.lower()]
    if twins:
        notes.append(f"differs from {twins[0]!r} only in case")
    if _ID_RE.search(value):
        notes.append("looks like an id (a task or trace id leaking into the label)")
    if TASK_SUBJECT_RE.match(TASK_SUBJECT_PREFIX + value):
        notes.append("a valid task subject name, but not in agentTypes")
    else:
        notes.append(f"not a valid task subject name ({TASK_SUBJECT_PREFIX}{value})")
    return "; ".join(notes)


def agent_type_cardinality(
    source: PrometheusSource, settings: Settings, start: TimeLike, end: TimeLike
) -> pd.DataFrame:
    """``agent_type`` values on the Daedalus metrics against the values file's bounded set.

    One row per value seen and per configured value never seen (``CARDINALITY_COLUMNS``), plus
    a row with ``agent_type == ""`` when some series lack the label. The verdict (see
    :func:`cardinality_verdict`) is also stored in ``frame.attrs["verdict"]``.
    """
    base = {name: m.name for m in CONTRACT for name in m.series_names}
    regex = "|".join(re.escape(n) for n in sorted(base))
    frame = source.series([f'{{__name__=~"{regex}"}}'], start, end)
    if frame.empty:
        frame = pd.DataFrame({"__name__": pd.Series(dtype=str), AGENT_TYPE: pd.Series(dtype=str)})
    if AGENT_TYPE not in frame.columns:
        frame[AGENT_TYPE] = ""
    frame = frame.assign(metric=frame["__name__"].map(base))
    grouped = frame.groupby(AGENT_TYPE)
    counts = grouped.size()
    metrics = grouped["metric"].agg(lambda m: sorted(set(m)))
    values = list(settings.agent_types) + sorted(set(counts.index) - set(settings.agent_types))
    rows = [
        {
            "agent_type": value,
            "in_set": value in settings.agent_types,
            "seen": value in counts.index,
            "series": int(counts.get(value, 0)),
            "metrics": list(metrics.get(value, [])),
            "valid_subject": bool(TASK_SUBJECT_RE.match(TASK_SUBJECT_PREFIX + value)),
            "note": _note(value, settings)
            + ("" if value in counts.index or value == "" else "; no series in the window"),
        }
        for value in values
    ]
    out = conform(pd.DataFrame(rows, columns=list(CARDINALITY_COLUMNS)), CARDINALITY_COLUMNS)
    out.attrs["verdict"] = cardinality_verdict(out)
    return out


def cardinality_verdict(cardinality: pd.DataFrame) -> Verdict:
    """Fail when any value outside the set is seen; inconclusive when no value is seen at all."""
    labelled = cardinality[cardinality["seen"] & (cardinality["agent_type"] != "")]
    if labelled.empty:
        return Verdict.INCONCLUSIVE
    return Verdict.PASS if labelled["in_set"].all() else Verdict.FAIL


def alert_noise(
    source: PrometheusSource,
    catalogue: Catalogue,
    start: TimeLike,
    end: TimeLike,
    step_s: int = 60,
) -> pd.DataFrame:
    """How often each alert would have fired over the window, honouring ``for`` (``NOISE_COLUMNS``).

    The replay evaluates every alert's expression at ``step_s`` intervals (pint's
    ``alerts/count``); one row per alert of the catalogue, silent ones included.
    """
    episodes = replay_alerts(source, catalogue.alerts, start, end, step_s)
    fired = episodes[episodes["fired"]]
    firing = (fired["resolved_at"] - fired["firing_at"]).dt.total_seconds()
    rows = []
    for alert in catalogue.alerts:
        mine = fired["alert"] == alert.name
        rows.append(
            {
                "alert": alert.name,
                "severity": alert.severity,
                "for_s": alert.for_s,
                "episodes": int((episodes["alert"] == alert.name).sum()),
                "fired": int(mine.sum()),
                "label_sets": int(fired.loc[mine, "series"].nunique()),
                "firing_s": float(firing[mine].sum()),
                "longest_s": float(firing[mine].max()) if mine.any() else 0.0,
                "first_fired": fired.loc[mine, "firing_at"].min(),
                "last_fired": fired.loc[mine, "firing_at"].max(),
            }
        )
    return conform(pd.DataFrame(rows, columns=list(NOISE_COLUMNS)), NOISE_COLUMNS)


def _texts(frame: pd.DataFrame, columns: Iterable[str]) -> list[dict[str, object]]:
    return [
        {c: jsonable(v) for c, v in zip(columns, row, strict=True)}
        for row in frame[list(columns)].itertuples(index=False)
    ]


def crosscheck_summary(
    selectors: pd.DataFrame,
    cardinality: pd.DataFrame | None = None,
    noise: pd.DataFrame | None = None,
    runbook: pd.DataFrame | None = None,
    mismatches: pd.DataFrame | None = None,
    exporters: pd.DataFrame | None = None,
    *,
    has_data: bool | None = None,
) -> dict[str, object]:
    """The results-JSON summary of a cross-check, with its verdict.

    Fail when a rule's selector matches nothing (an absent state, e.g. no ImagePullBackOff
    in the window, is not a failure) or a value outside the agent-type set is seen.
    Inconclusive, when nothing fails, if Prometheus has no data in the window (``has_data``;
    by default: no selector's metric has any series) or no agent_type value is seen. Dashboard
    selectors that match nothing, runbook gaps and platform mismatches are reported, and do
    not decide the verdict on their own.
    """
    if has_data is None:
        has_data = bool((selectors["diagnosis"] != "no_series").any())
    rules, dashboards = unmatched(selectors, "rule"), unmatched(selectors, "dashboard")
    reasons: list[str] = []
    verdicts = []
    if not has_data:
        reasons.append("Prometheus has no data in the window")
        verdicts.append(Verdict.INCONCLUSIVE)
    if has_data and not rules.empty:
        reasons.append(f"{len(rules)} rule selector(s) match nothing")
        verdicts.append(Verdict.FAIL)
    summary: dict[str, object] = {
        "has_data": has_data,
        "selectors": {
            "checked": len(selectors),
            "matched": int(selectors["matched"].sum()),
            "state_absent": int((selectors["diagnosis"] == "state_absent").sum()),
            "rules_unmatched": _texts(rules, ("name", "selector", "diagnosis", "detail")),
            "dashboards_unmatched": _texts(
                dashboards, ("name", "panel", "selector", "diagnosis", "detail")
            ),
        },
    }
    if cardinality is not None:
        verdict = cardinality_verdict(cardinality) if has_data else Verdict.INCONCLUSIVE
        outside = cardinality[cardinality["seen"] & ~cardinality["in_set"]]
        outside = outside[outside["agent_type"] != ""]
        if verdict is Verdict.FAIL:
            reasons.append(f"agent_type is unbounded: {len(outside)} value(s) outside agentTypes")
        elif verdict is Verdict.INCONCLUSIVE and has_data:
            reasons.append("no agent_type value on any Daedalus metric")
        verdicts.append(verdict)
        summary["agent_type"] = {
            "verdict": verdict.value,
            "outside_set_count": len(outside),
            "outside_set": sorted(outside["agent_type"])[:MAX_LISTED],
            "never_seen": sorted(
                cardinality.loc[cardinality["in_set"] & ~cardinality["seen"], "agent_type"]
            ),
        }
    if exporters is not None:
        summary["exporters"] = _texts(
            exporters[exporters["present"]], ("exporter", "version", "build_version", "agrees")
        )
    if noise is not None:
        summary["alerts"] = {
            r.alert: {"fired": int(r.fired), "firing_s": float(r.firing_s)}
            for r in noise.itertuples()
        }
    if runbook is not None:
        summary["runbook"] = {
            "complete": bool(runbook["complete"].all()),
            "incomplete": {
                (r.alert or r.anchor): list(r.missing)
                for r in runbook.itertuples()
                if not r.complete
            },
        }
    if mismatches is not None:
        summary["mismatches"] = _texts(mismatches, ("mismatch", "change"))
    verdict = Verdict.combine(verdicts) if verdicts else Verdict.PASS
    summary = {"verdict": verdict.value, "reasons": reasons, **summary}
    return summary


@dataclass(frozen=True)
class CrossCheck:
    """Every frame of one cross-check run, and its summary."""

    selectors: pd.DataFrame
    exporters: pd.DataFrame
    cardinality: pd.DataFrame
    noise: pd.DataFrame
    mismatches: pd.DataFrame
    runbook: pd.DataFrame | None
    summary: dict[str, object]


def run_crosscheck(
    source: PrometheusSource,
    catalogue: Catalogue,
    start: TimeLike,
    end: TimeLike,
    runbook_text: str | None = None,
) -> CrossCheck:
    """Run every part of the cross-check over one window (the runbook only when given)."""
    selectors = selector_report(source, catalogue, start, end)
    exporters = exporter_report(source, catalogue, start, end)
    cardinality = agent_type_cardinality(source, catalogue.settings, start, end)
    noise = alert_noise(source, catalogue, start, end)
    mismatches = platform_mismatches(selectors, catalogue, exporters, cardinality)
    runbook = None if runbook_text is None else check_runbook(runbook_text, catalogue)
    summary = crosscheck_summary(selectors, cardinality, noise, runbook, mismatches, exporters)
    return CrossCheck(selectors, exporters, cardinality, noise, mismatches, runbook, summary)


__all__ = [
    "CARDINALITY_COLUMNS",
    "MISMATCH_COLUMNS",
    "NOISE_COLUMNS",
    "CrossCheck",
    "agent_type_cardinality",
    "alert_noise",
    "cardinality_verdict",
    "check_runbook",
    "crosscheck_summary",
    "exporter_report",
    "platform_mismatches",
    "run_crosscheck",
    "selector_report",
]
