"""A pushed-span store for the fake Tempo: search and trace by id as Tempo 3.1 answers them.

The recorded responses (``samples/tempo-3.1``, README "second set" and "third set") are the
ground truth; ``test_fake_tempo_answers_as_recorded`` replays the recorded requests against a
store holding the recorded traces and compares. What the store does, as the real server did:

- search ``end`` within ``cutoff_s`` of the store's clock moves back to now - cutoff; when that
  falls before ``start``, the search covers now - 15 min to now - cutoff instead;
- ``limit`` keeps an arbitrary subset (a fixed hash order, not the newest), newest start first,
  and says nothing about the rest;
- trace ids lose leading zeros in search; roots have parent ``0000000000000000``;
- ``select()`` fields come back unscoped (``service.name``, ``daedalus.task.id``), with
  ``kind``/``status``/``statusMessage`` renamed and lowercase values, ``span:parentID`` and
  ``instrumentation:name`` keeping their prefixes; without select a span has only its id, times
  and the filter's attribute;
- span sets list spans in push order, cut at ``spss`` with ``matched`` still counting all;
- a search whose job body would reach 16 MiB fails with 500 "response larger than the max";
- spans older than the ingestion slack (2 min) at arrival stay hidden from search for 13 min;
- a batch pushed twice is kept twice (trace by id returns both copies);
- trace by id rewrites a SERVER span that shares its CLIENT parent's id to the lowest unused id
  (``0000000000000001``), its parent the shared id; search returns it as pushed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from obslib.catalogue.hops import AGENT_TYPE, DESTINATION, ENVELOPE_TRACE_ID, TASK_ID, TASK_STATE

CUTOFF_S = 30
BACKEND_AFTER_S = 15 * 60
INGESTION_SLACK_S = 120
HIDDEN_FOR_S = 13 * 60
MAX_JOB_BYTES = 16_777_216
JOB_SHARE = 0.71  # job body bytes per byte of final JSON (19.6 KB vs 27.6 KB a trace)
_SELECT = re.compile(r"\|\s*select\((?P<fields>[^)]*)\)")
_SERVICE_FILTER = re.compile(r'resource\.service\.name\s*=~\s*"(?P<re>[^"]*)"')
_TASK_FILTER = re.compile(r'span\.daedalus\.task\.id\s*=~\s*"(?P<re>[^"]*)"')
_NAME_FILTER = re.compile(r'name\s*=\s*"(?P<name>[^"]*)"')
# How Tempo names a selected field in its answer.
_RETURNED = {
    "span:kind": "kind",
    "span:status": "status",
    "span:statusMessage": "statusMessage",
    "span:parentID": "span:parentID",
    "instrumentation:name": "instrumentation:name",
}


@dataclass
class StoredTrace:
    """Every span pushed for one trace, in push order, and when each batch arrived."""

    trace_id: str
    spans: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # one per span

    @property
    def start_ns(self) -> int:
        return min(s["start_ns"] for s in self.spans)

    @property
    def end_ns(self) -> int:
        return max(s["end_ns"] for s in self.spans)


class TempoStore:
    """Spans pushed to a fake Tempo, answered as Tempo 3.1 answers them."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.traces: dict[str, StoredTrace] = {}
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str, int], str] = {}  # (trace, select, spss) -> JSON

    # -- pushing --------------------------------------------------------------------------

    def push(self, spans: pd.DataFrame, at: float | None = None) -> None:
        """Store a batch (SPAN_COLUMNS rows) as arriving at ``at`` (default: the clock)."""
        arrived = self.clock() if at is None else at
        records = spans.to_dict("records")
        with self._lock:
            for record in records:
                stored = self.traces.setdefault(record["trace_id"], StoredTrace(record["trace_id"]))
                stored.spans.append(record)
                stored.arrivals.append(arrived)
            self._entries.clear()

    # -- search ---------------------------------------------------------------------------

    def search(self, query: str, start: int | None, end: int | None, limit: int, spss: int):
        """(status, body) of ``GET /api/search``."""
        now = self.clock()
        if start is not None and end is not None and end > now - CUTOFF_S:
            end = int(now - CUTOFF_S)
            if end < start:
                start = int(now - BACKEND_AFTER_S)
        if start is None or end is None:  # recent data only
            start, end = int(now - BACKEND_AFTER_S), int(now)
        select = _SELECT.search(query)
        fields = [f.strip() for f in select["fields"].split(",")] if select else []
        found = [
            t
            for t in self._matching(query)
            if t.start_ns < (end + 1) * 10**9
            and t.end_ns >= start * 10**9
            and self._searchable(t, now)
        ]
        found.sort(key=lambda t: hashlib.sha256(t.trace_id.encode()).digest())
        found = found[:limit]
        found.sort(key=lambda t: t.start_ns, reverse=True)
        entries = [self._entry(t, query, fields, spss) for t in found]
        job = int(sum(len(e) for e in entries) * JOB_SHARE)
        if job >= MAX_JOB_BYTES:
            return 500, f"response larger than the max ({job} vs {MAX_JOB_BYTES})"
        metrics = {"inspectedBytes": str(job), "completedJobs": 1, "totalJobs": 1}
        return 200, '{"traces":[' + ",".join(entries) + '],"metrics":' + json.dumps(metrics) + "}"

    def _matching(self, query: str) -> list[StoredTrace]:
        service = _SERVICE_FILTER.search(query)
        task = _TASK_FILTER.search(query)
        name = _NAME_FILTER.search(query.split("|")[0])
        out = []
        for trace in self.traces.values():
            spans = trace.spans
            if service:
                spans = [s for s in spans if re.fullmatch(service["re"], s["service_name"])]
            if task:
                spans = [s for s in spans if re.fullmatch(task["re"], s["task_id"] or "")]
            if name and not task and not service:
                spans = [s for s in spans if s["name"] == name["name"]]
            if spans:
                out.append(trace)
        return out

    def _searchable(self, trace: StoredTrace, now: float) -> bool:
        late = any(
            s["start_ns"] < (arrived - INGESTION_SLACK_S) * 1e9
            for s, arrived in zip(trace.spans, trace.arrivals, strict=True)
        )
        return not late or now >= max(trace.arrivals) + HIDDEN_FOR_S

    def _entry(self, trace: StoredTrace, query: str, fields: list[str], spss: int) -> str:
        key = (trace.trace_id, ",".join(fields) + "|" + query, spss)
        cached = self._entries.get(key)
        if cached is not None:
            return cached
        spans = self._unique(trace.spans)
        shown = [_search_span(s, fields, query) for s in spans[:spss]]
        root = next((s for s in spans if not s["parent_span_id"]), None)
        span_set = {"spans": shown, "matched": len(spans)}
        entry: dict[str, Any] = {"traceID": trace.trace_id.lstrip("0") or "0"}
        if root is not None:
            entry["rootServiceName"] = root["service_name"]
            entry["rootTraceName"] = root["name"]
        else:
            entry["rootServiceName"] = "<root span not yet received>"
        entry["startTimeUnixNano"] = str(trace.start_ns)
        duration_ms = (trace.end_ns - trace.start_ns) // 1_000_000
        if root is not None and duration_ms:
            entry["durationMs"] = int(duration_ms)
        entry["spanSet"] = span_set
        entry["spanSets"] = [span_set]
        stats: dict[str, dict[str, int]] = {}
        for s in spans:
            stats.setdefault(s["service_name"], {})["spanCount"] = (
                stats.get(s["service_name"], {}).get("spanCount", 0) + 1
            )
        entry["serviceStats"] = stats
        text = json.dumps(entry, separators=(",", ":"))
        self._entries[key] = text
        return text

    @staticmethod
    def _unique(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen, out = set(), []
        for s in spans:
            if s["span_id"] + s["parent_span_id"] + s["name"] in seen:
                continue
            seen.add(s["span_id"] + s["parent_span_id"] + s["name"])
            out.append(s)
        return out

    # -- trace by id ----------------------------------------------------------------------

    def trace_body(self, trace_id: str, v2: bool) -> tuple[int, str]:
        """(status, body) of trace by id: every pushed copy, the shared-id rewrite applied."""
        trace = self.traces.get(trace_id)
        if trace is None:
            return (200, '{"trace":{},"metrics":{}}') if v2 else (404, "")
        spans = _rewrite_shared_ids(trace.spans)
        batches: list[dict[str, Any]] = []
        current: tuple[float, str, str] | None = None
        for span, arrived in zip(spans, trace.arrivals, strict=True):
            where = (arrived, span["service_name"], span["scope_name"])
            if where != current:
                batches.append(
                    {
                        "resource": {"attributes": _attrs(span["resource_attributes"])},
                        "scopeSpans": [{"scope": {"name": span["scope_name"]}, "spans": []}],
                    }
                )
                current = where
            batches[-1]["scopeSpans"][0]["spans"].append(_otlp_span(span))
        if v2:
            return 200, json.dumps({"trace": {"resourceSpans": batches}, "metrics": {}})
        return 200, json.dumps({"batches": batches})


def _b64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode() if hex_id else ""


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def _attrs(mapping: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in (mapping or {}).items()]


def _otlp_span(span: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": _b64(span["trace_id"]),
        "spanId": _b64(span["span_id"]),
    }
    if span["parent_span_id"]:
        out["parentSpanId"] = _b64(span["parent_span_id"])
    out |= {
        "name": span["name"],
        "kind": f"SPAN_KIND_{span['kind']}",
        "startTimeUnixNano": str(span["start_ns"]),
        "endTimeUnixNano": str(span["end_ns"]),
        "attributes": _attrs(span["attributes"]),
        "status": {}
        if span["status_code"] == "UNSET"
        else {
            "code": f"STATUS_CODE_{span['status_code']}",
            **({"message": span["status_message"]} if span["status_message"] else {}),
        },
    }
    return out


def _rewrite_shared_ids(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tempo's span-id deduper: a SERVER span sharing a CLIENT span's id gets a fresh small id."""
    clients = {s["span_id"] for s in spans if s["kind"] == "CLIENT"}
    used = {int(s["span_id"], 16) for s in spans}
    out = []
    for span in spans:
        if span["kind"] == "SERVER" and span["span_id"] in clients:
            fresh = next(i for i in range(1, len(used) + 2) if i not in used)
            used.add(fresh)
            span = {**span, "parent_span_id": span["span_id"], "span_id": f"{fresh:016x}"}
        out.append(span)
    return out


def _search_span(span: dict[str, Any], fields: list[str], query: str) -> dict[str, Any]:
    out: dict[str, Any] = {"spanID": span["span_id"]}
    attributes: list[dict[str, Any]] = []
    if not fields:  # without select: id, times and the filter's attribute only
        if "resource.service.name" in query:
            attributes.append(
                {"key": "service.name", "value": {"stringValue": span["service_name"]}}
            )
        elif "span.daedalus.task.id" in query and span["task_id"]:
            attributes.append({"key": TASK_ID, "value": {"stringValue": span["task_id"]}})
    else:
        if "span:name" in fields:
            out["name"] = span["name"]
        values = {
            "span:kind": span["kind"].lower(),
            "span:status": span["status_code"].lower(),
            "span:statusMessage": span["status_message"],
            "span:parentID": span["parent_span_id"] or "0" * 16,
            "instrumentation:name": span["scope_name"],
            "resource.service.name": span["service_name"],
        }
        for name in fields:
            if name == "span:name":
                continue
            if name in values:
                key = _RETURNED.get(name, name.split(".", 1)[1] if "." in name else name)
                attributes.append({"key": key, "value": {"stringValue": values[name]}})
            elif name.startswith("span."):
                attr = name.removeprefix("span.")
                value = (span["attributes"] or {}).get(attr)
                if value not in (None, ""):
                    attributes.append({"key": attr, "value": _value(value)})
    out["startTimeUnixNano"] = str(span["start_ns"])
    out["durationNanos"] = str(span["end_ns"] - span["start_ns"])
    order = np.random.default_rng(int(span["span_id"][:8], 16)).permutation(len(attributes))
    out["attributes"] = [attributes[i] for i in order]  # Tempo's order differs span to span
    return out


SELECTED_ATTRIBUTES = (TASK_ID, AGENT_TYPE, DESTINATION, ENVELOPE_TRACE_ID, TASK_STATE)
