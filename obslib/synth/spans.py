"""Synthetic task traces for a hop profile, and the propagation faults that break them.

Used by the tests, the audit benchmark and the fake Tempo, next to the synthetic metric history.

:func:`make_spans` builds, vectorised over tasks, the spans a hop profile expects for N tasks,
with random hex ids, realistic attributes and the services, scopes and subjects of
``reference/daedalus-platform.md``. Each fault function takes such a frame and some task ids
and returns a new frame with one propagation fault applied to those tasks. Two extra columns
keep the ground truth: ``true_task`` (the task a span was made for) and ``true_hop`` (its hop);
the audit never reads them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from obslib.catalogue.hops import (
    AGENT_TYPE,
    DESTINATION,
    ENVELOPE_TRACE_ID,
    SCOPE_ORCHESTRATOR,
    SCOPE_PROXY,
    SCOPE_QUEUE,
    SERVICE_AGENT_PREFIX,
    SERVICE_ORCHESTRATOR,
    TASK_ID,
    TASK_SUBJECT_PREFIX,
    HopProfile,
)
from obslib.sources.frames import SPAN_COLUMNS, conform

AGENT_TYPES = ("copilot", "claude", "codex")
T0 = 1_795_824_539_000_000_000  # the recorded samples' epoch (late 2026)
_LUT = np.frombuffer(b"0123456789abcdef", dtype="S1")


def hex_ids(rng: np.random.Generator, n: int, nbytes: int) -> np.ndarray:
    """``n`` random lowercase hex ids of ``nbytes`` bytes, as an object array of str."""
    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    chars = np.empty((n, 2 * nbytes), dtype="S1")
    chars[:, 0::2], chars[:, 1::2] = _LUT[raw >> 4], _LUT[raw & 15]
    return chars.view(f"S{2 * nbytes}").ravel().astype(str).astype(object)


def task_uuids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Version-4-looking UUIDs, as A2A task ids are."""
    h = hex_ids(rng, n, 16).astype(str)
    parts = [np.strings.slice(h, a, b) for a, b in ((0, 8), (8, 12), (13, 16), (17, 20), (20, 32))]
    return np.strings.add(
        np.strings.add(np.strings.add(parts[0], "-"), np.strings.add(parts[1], "-4")),
        np.strings.add(np.strings.add(np.strings.add(parts[2], "-a"), parts[3]), "-" + parts[4]),
    ).astype(object)


def _scope(service: str, name: str) -> str:
    if name.startswith("nats."):
        return SCOPE_QUEUE
    if service == SERVICE_ORCHESTRATOR or name.startswith("collector."):
        return SCOPE_ORCHESTRATOR
    return SCOPE_PROXY if not service.startswith(SERVICE_AGENT_PREFIX) else "daedalus-agent"


def _attributes(name: str, task: str, dest: str, trace: str, root: bool) -> dict:
    attrs: dict = {}
    if root or name in ("orchestrator.dispatch", "proxy.handle") or name.startswith("collector."):
        attrs[TASK_ID] = task
    if name.startswith("nats."):
        publish = name == "nats.publish"
        attrs.update({"messaging.system": "nats", DESTINATION: dest,
                      "messaging.operation": "publish" if publish else "receive"})  # fmt: skip
        if not publish:
            attrs["messaging.nats.stream"] = "AGENT_TASKS"
    if name.startswith(("acp.", "agent.")):
        attrs.update(
            {"rpc.system": "jsonrpc", "rpc.method": name.split(".", 1)[1].replace(".", "/")}
        )
    if name.startswith("collector.receive"):
        attrs["daedalus.task.state"] = "completed"
        attrs[ENVELOPE_TRACE_ID] = trace
    return attrs


def make_spans(
    profile: HopProfile,
    n_tasks: int,
    *,
    seed: int = 0,
    spacing_ns: int = 250_000_000,
    agent_attribute: bool = True,
) -> pd.DataFrame:
    """Whole traces of ``profile`` for ``n_tasks`` tasks, one trace each, tasks ``spacing_ns`` apart.

    ``agent_attribute`` puts ``agent_type`` on the root and dispatch spans (the Pass-1 tree);
    today's platform puts it nowhere.
    """
    rng = np.random.default_rng(seed)
    tasks, traces = task_uuids(rng, n_tasks), hex_ids(rng, n_tasks, 16)
    agent_ix = rng.integers(0, len(AGENT_TYPES), n_tasks)
    agents = np.array(AGENT_TYPES, dtype=object)[agent_ix]
    t0 = T0 + np.arange(n_tasks, dtype=np.int64) * spacing_ns + rng.integers(0, 1000, n_tasks)
    keys = [h.key for h in profile.hops]
    made: dict[str, dict[str, np.ndarray]] = {}  # hop key -> arrays of shape (n_tasks, count)
    columns: dict[str, list[np.ndarray]] = {
        c: [] for c in ("task", "hop", "span_id", "parent", "start", "end", "dest")
    }
    for h in profile.hops:
        c = h.count
        ids = hex_ids(rng, n_tasks * c, 8).reshape(n_tasks, c)
        depth = len(profile.path_to(h.key)) - 1
        if h.parent is None:
            parent_ids = np.full((n_tasks, c), "", dtype=object)
            start = np.repeat(t0[:, None], c, axis=1)
        else:
            up = made[h.parent]
            pick = np.arange(c) if up["ids"].shape[1] == c else np.zeros(c, dtype=np.int64)
            parent_ids, parent_start = up["ids"][:, pick], up["start"][:, pick]
            start = (
                parent_start
                + 20_000
                + 15_000 * keys.index(h.key)
                + rng.integers(0, 5_000, (n_tasks, c))
            )
        end = start + (40_000_000 >> depth) + rng.integers(0, 1_000_000, (n_tasks, c))
        if h.match_prefix == TASK_SUBJECT_PREFIX or h.span == "nats.consume":
            dest = np.repeat((TASK_SUBJECT_PREFIX + agents)[:, None], c, axis=1)
        elif h.match_prefix:
            dest = np.repeat((h.match_prefix + tasks)[:, None], c, axis=1)
        else:
            dest = np.full((n_tasks, c), "", dtype=object)
        made[h.key] = {"ids": ids, "start": start}
        for col, val in (("task", np.repeat(np.arange(n_tasks)[:, None], c, axis=1)),
                         ("hop", np.full((n_tasks, c), keys.index(h.key))), ("span_id", ids),
                         ("parent", parent_ids), ("start", start), ("end", end), ("dest", dest)):  # fmt: skip
            columns[col].append(val.ravel())
    cols = {k: np.concatenate(v) for k, v in columns.items()}
    task_ix, hop_ix = cols["task"], cols["hop"]
    hops = profile.hops
    names = np.array([h.span for h in hops], dtype=object)[hop_ix]
    by_agent = [[h.service_for(a) for a in AGENT_TYPES] for h in hops]
    services = np.array(by_agent, dtype=object)[hop_ix, agent_ix[task_ix]]
    scope_of = [[_scope(s, h.span) for s in row] for h, row in zip(hops, by_agent, strict=True)]
    scopes = np.array(scope_of, dtype=object)[hop_ix, agent_ix[task_ix]]
    is_root = hop_ix == 0
    carries_agent = agent_attribute & (is_root | (names == "orchestrator.dispatch"))
    attrs = [
        _attributes(n, t, d, tr, r) | ({AGENT_TYPE: a} if ca else {})
        for n, t, a, d, tr, r, ca in zip(names, tasks[task_ix], agents[task_ix], cols["dest"],
                                         traces[task_ix], is_root, carries_agent, strict=True)
    ]  # fmt: skip
    frame = pd.DataFrame({
        "trace_id": traces[task_ix], "span_id": cols["span_id"], "parent_span_id": cols["parent"],
        "name": names, "kind": np.array([h.kind for h in hops], dtype=object)[hop_ix],
        "service_name": services, "scope_name": scopes, "start_ns": cols["start"],
        "end_ns": cols["end"], "duration_ns": cols["end"] - cols["start"], "status_code": "UNSET",
        "status_message": "",
        "task_id": np.array([a.get(TASK_ID, "") for a in attrs], dtype=object),
        "agent_type": np.where(carries_agent, agents[task_ix], ""), "destination": cols["dest"],
        "attributes": attrs, "resource_attributes": [{"service.name": s} for s in services],
        "partial": False, "true_task": tasks[task_ix], "true_hop": np.array(keys, dtype=object)[hop_ix],
    })  # fmt: skip
    return conform(
        frame.sort_values("start_ns", kind="stable").reset_index(drop=True), SPAN_COLUMNS
    )


def _in(spans: pd.DataFrame, tasks: Iterable[str], hops: Iterable[str] | None = None) -> np.ndarray:
    mask = spans["true_task"].isin(list(tasks)).to_numpy()
    if hops is not None:
        mask = mask & spans["true_hop"].isin(list(hops)).to_numpy()
    return mask


def _new_traces(spans: pd.DataFrame, mask: np.ndarray, seed: int, per: str) -> pd.Series:
    """A fresh trace id per value of column ``per`` among the masked rows."""
    keys = spans.loc[mask, per]
    uniq = keys.unique()
    fresh = dict(zip(uniq, hex_ids(np.random.default_rng(seed), len(uniq), 16), strict=True))
    return keys.map(fresh)


def descendants(profile: HopProfile, key: str) -> list[str]:
    """``key`` and every hop below it."""
    return [h.key for h in profile.hops if key in profile.path_to(h.key)]


def _stamp_envelopes(spans: pd.DataFrame, mask: np.ndarray, trace_ids: pd.Series) -> None:
    """Collector spans among ``mask`` get ``trace_ids`` (aligned on the rows) as envelope trace id."""
    rows = np.flatnonzero(mask & spans["name"].str.startswith("collector.receive").to_numpy())
    stamped = [
        a | {ENVELOPE_TRACE_ID: t}
        for a, t in zip(spans["attributes"].iloc[rows], trace_ids.iloc[rows], strict=True)
    ]
    spans.iloc[rows, spans.columns.get_loc("attributes")] = np.fromiter(
        stamped, dtype=object, count=len(stamped)
    )


def drop_stdio_context(spans: pd.DataFrame, tasks: Iterable[str], seed: int = 1) -> pd.DataFrame:
    """The proxy passes no context over the agent pipe: each agent-side span starts a new trace."""
    out = spans.copy()
    mask = _in(out, tasks) & out["service_name"].str.startswith(SERVICE_AGENT_PREFIX).to_numpy()
    out.loc[mask, "trace_id"] = _new_traces(out, mask, seed, "span_id")
    out.loc[mask, "parent_span_id"] = ""
    return out


def drop_nats_headers(
    spans: pd.DataFrame,
    tasks: Iterable[str],
    profile: HopProfile,
    hop: str = "task_consume",
    seed: int = 2,
) -> pd.DataFrame:
    """The message arrives without trace headers: ``hop`` and all below it start a new trace."""
    out = spans.copy()
    mask = _in(out, tasks, descendants(profile, hop))
    out.loc[mask, "trace_id"] = _new_traces(out, mask, seed, "true_task")
    out.loc[_in(out, tasks, [hop]), "parent_span_id"] = ""
    _stamp_envelopes(out, mask, out["trace_id"])
    return out


def regenerate_envelope(spans: pd.DataFrame, tasks: Iterable[str], seed: int = 3) -> pd.DataFrame:
    """Downstream code mints a new trace id for the result envelope."""
    out = spans.copy()
    mask = _in(out, tasks)
    fresh = pd.Series("", index=out.index, dtype=object)
    fresh[mask] = _new_traces(out, mask, seed, "true_task")
    _stamp_envelopes(out, mask, fresh)
    return out


def drop_hop_span(spans: pd.DataFrame, tasks: Iterable[str], hop: str) -> pd.DataFrame:
    """The span of ``hop`` is never exported; its children become orphans."""
    return spans[~_in(spans, tasks, [hop])].reset_index(drop=True)


def collide_span_id(spans: pd.DataFrame, tasks: Iterable[str], hop: str, like: str) -> pd.DataFrame:
    """The span of ``hop`` is created with the id of the span of ``like`` (children follow it)."""
    out = spans.copy()
    mine, theirs = _in(out, tasks, [hop]), _in(out, tasks, [like])
    old = out.loc[mine].set_index("true_task")["span_id"]
    new = out.loc[theirs].set_index("true_task")["span_id"]
    remap = dict(zip(old.to_numpy(), new.reindex(old.index).to_numpy(), strict=True))
    out.loc[mine, "span_id"] = out.loc[mine, "span_id"].map(remap)
    children = out["parent_span_id"].isin(list(remap)).to_numpy() & _in(out, tasks)
    out.loc[children, "parent_span_id"] = out.loc[children, "parent_span_id"].map(remap)
    return out


def reexport_span(spans: pd.DataFrame, tasks: Iterable[str], hop: str) -> pd.DataFrame:
    """The exporter sends the span of ``hop`` twice."""
    return pd.concat([spans, spans[_in(spans, tasks, [hop])]], ignore_index=True)


def skew_service(
    spans: pd.DataFrame, tasks: Iterable[str], service: str, offset_ns: int
) -> pd.DataFrame:
    """The clock of ``service`` is off by ``offset_ns`` for the spans of ``tasks``."""
    out = spans.copy()
    mask = _in(out, tasks) & (out["service_name"] == service).to_numpy()
    out.loc[mask, "start_ns"] += offset_ns
    out.loc[mask, "end_ns"] += offset_ns
    return out


def background_traces(n_traces: int, seed: int = 9) -> pd.DataFrame:
    """Task-less two-span traces from other traffic (health checks), as a shared Tempo holds."""
    rng = np.random.default_rng(seed)
    traces, ids = hex_ids(rng, n_traces, 16), hex_ids(rng, 2 * n_traces, 8)
    start = T0 + rng.integers(0, 3_600_000_000_000, n_traces)
    frame = pd.DataFrame({
        "trace_id": np.repeat(traces, 2), "span_id": ids,
        "parent_span_id": np.where(np.arange(2 * n_traces) % 2 == 1, np.roll(ids, 1), ""),
        "name": np.tile(np.array(["GET /healthz", "db.ping"], dtype=object), n_traces),
        "kind": np.tile(np.array(["SERVER", "CLIENT"], dtype=object), n_traces),
        "service_name": "daedalus-proxy", "scope_name": "net/http", "start_ns": np.repeat(start, 2),
        "end_ns": np.repeat(start, 2) + 1_000_000, "duration_ns": 1_000_000, "status_code": "UNSET",
        "status_message": "", "task_id": "", "agent_type": "", "destination": "",
        "attributes": [{} for _ in range(2 * n_traces)], "resource_attributes": [{} for _ in range(2 * n_traces)],
        "partial": False, "true_task": "", "true_hop": "",
    })  # fmt: skip
    return conform(frame, SPAN_COLUMNS)
