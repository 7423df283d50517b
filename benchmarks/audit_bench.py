"""Benchmark of the trace-propagation audit on about 1,000,000 spans over 100,000 traces.

Run from the repository root:

    .venv/bin/python benchmarks/audit_bench.py            # full size, results as JSON on stdout
    .venv/bin/python benchmarks/audit_bench.py --tasks 8000 --background 2000   # a quick run

The parent builds the spans with the test helpers (vectorised over tasks: 80,000 whole Pass-1
task traces of 12 spans plus 20,000 two-span background traces), applies six faults to a few
percent of the tasks, pickles the frame and starts a fresh child process. The child measures,
for ``audit_traces``, the wall and CPU time of each of ``--repeat`` runs and the peak resident
set size above the loaded input (Linux: ``VmHWM`` after resetting it through
``/proc/self/clear_refs``); then it times a straightforward per-span Python loop that does the
core checks (below, for comparison only) on the same data, or on a ``--loop-sample`` share of
the tasks, and reports the ratio. Both must find exactly the faulted tasks.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FAULTS = ("stdio", "nats", "envelope", "unexported", "collision", "skew")


def build(n_tasks: int, n_background: int, share: float, seed: int) -> tuple[pd.DataFrame, dict]:
    """The span frame and the task ids each fault was applied to."""
    sys.path.insert(0, str(ROOT))
    from obslib.catalogue.hops import PASS1, SERVICE_PROXY
    from tests import analysis as synth

    spans = synth.make_spans(PASS1, n_tasks, seed=seed, spacing_ns=45_000_000)
    tasks = spans["true_task"].drop_duplicates().to_numpy()
    rng = np.random.default_rng(seed)
    hit = rng.choice(tasks, size=int(share * n_tasks) // len(FAULTS) * len(FAULTS), replace=False)
    victims = dict(zip(FAULTS, (list(v) for v in np.array_split(hit, len(FAULTS))), strict=True))
    spans = synth.drop_stdio_context(spans, victims["stdio"])
    spans = synth.drop_nats_headers(spans, victims["nats"], PASS1)
    spans = synth.regenerate_envelope(spans, victims["envelope"])
    spans = synth.drop_hop_span(spans, victims["unexported"], "proxy")
    spans = synth.collide_span_id(spans, victims["collision"], "acp_prompt", like="acp_new")
    spans = synth.skew_service(spans, victims["skew"], SERVICE_PROXY, -50_000_000)
    spans = pd.concat(
        [spans, synth.background_traces(n_background, seed=seed + 1)], ignore_index=True
    )
    return spans, victims


def loop_audit(spans: pd.DataFrame, tolerance_ns: int = 1_000_000) -> set[str]:
    """Task ids with a broken chain, by a plain loop over spans (the comparison baseline).

    Checks: hop by name/kind/subject prefix, task by attribute or by trace, one root trace,
    expected counts, parent of the parent hop, orphans, detached spans, duplicate span ids,
    clock skew and the envelope trace id. No adoption of task-less traces.
    """
    from obslib.catalogue.hops import ENVELOPE_TRACE_ID, PASS1

    hops = PASS1.hops
    keys = [h.key for h in hops]
    order = sorted(range(len(hops)), key=lambda i: not hops[i].match_prefix)
    cols = ["trace_id", "span_id", "parent_span_id", "name", "kind", "destination", "task_id",
            "start_ns", "attributes"]  # fmt: skip
    rows = list(spans[cols].itertuples(index=False, name=None))
    where: dict[tuple[str, str], list[int]] = defaultdict(list)
    trace_tasks: dict[str, set[str]] = defaultdict(set)
    hop_of: list[tuple[int, bool]] = []
    for i, (trace, span, _, name, kind, dest, task, _, _) in enumerate(rows):
        where[trace, span].append(i)
        if task:
            trace_tasks[trace].add(task)
        found = (-1, False)
        for strict in (True, False):
            for h in order:
                hop = hops[h]
                if (
                    name == hop.span
                    and (not strict or kind == hop.kind)
                    and (not hop.match_prefix or dest.startswith(hop.match_prefix))
                ):
                    found = (h, not strict)
                    break
            if found[0] >= 0:
                break
        hop_of.append(found)
    members: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        trace, task = row[0], row[6]
        for t in [task] if task else trace_tasks.get(trace, ()):
            members[t].append(i)
    broken = set()
    for task, idxs in members.items():
        counts = [0] * len(hops)
        traces, roots, bad = set(), [], False
        for i in idxs:
            trace, span, parent, _, _, _, _, start, _ = rows[i]
            h, wrong_kind = hop_of[i]
            traces.add(trace)
            bad |= wrong_kind or len(where[trace, span]) > 1
            if h >= 0:
                counts[h] += 1
            if not parent:
                if h == 0:
                    roots.append((start, trace))
                elif h > 0:
                    bad = True
                continue
            parents = where.get((trace, parent))
            if not parents:
                bad = True
                continue
            if h >= 0:
                want = keys.index(hops[h].parent) if hops[h].parent else -2
                bad |= all(hop_of[p][0] != want for p in parents)
            bad |= start < rows[parents[0]][7] - tolerance_ns
        own = min(roots)[1] if roots else min((rows[i][7], rows[i][0]) for i in idxs)[1]
        for i in idxs:
            if hop_of[i][0] == keys.index("result_collect"):
                bad |= str(rows[i][8].get(ENVELOPE_TRACE_ID, "")) != own
        bad |= len({t for _, t in roots}) != 1 or len(traces) > 1
        bad |= any(c != h.count for c, h in zip(counts, hops, strict=True))
        if bad:
            broken.add(task)
    return broken


def _memory(field: str) -> int:
    """A ``/proc/self/status`` memory figure in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def child(workdir: Path, repeat: int, loop_sample: float) -> dict[str, Any]:
    """Measure in this (fresh) process; the frame comes from ``workdir``."""
    from obslib.analysis import audit_traces
    from obslib.catalogue.hops import PASS1

    spans = pd.read_pickle(workdir / "spans.pkl")
    truth = json.loads((workdir / "victims.json").read_text())
    faulted = {t for ts in truth.values() for t in ts}
    gc.collect()
    runs, base = [], _memory("VmRSS")
    for _ in range(repeat):
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        wall, cpu = time.perf_counter(), time.process_time()
        result = audit_traces(spans, PASS1)
        runs.append({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                     "peak_rss": _memory("VmHWM")})  # fmt: skip
        found = set(result.tasks.loc[~result.tasks["ok"], "task_id"])
        del result
        gc.collect()
    firsts = audit_traces(spans, PASS1).summary()["first_broken_hops"]

    sample = spans
    if loop_sample < 1.0:  # whole tasks (every trace of a sampled task) and whole other traces
        tasks = spans.loc[spans["task_id"] != "", "task_id"].unique()
        keep = set(
            np.random.default_rng(0).choice(tasks, int(loop_sample * len(tasks)), replace=False)
        )
        traces = set(spans.loc[spans["task_id"].isin(keep), "trace_id"])
        sample = spans[spans["trace_id"].isin(traces)].reset_index(drop=True)
    wall, cpu = time.perf_counter(), time.process_time()
    loop_broken = loop_audit(sample)
    loop = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
    wall, cpu = time.perf_counter(), time.process_time()
    vec = audit_traces(sample, PASS1, adopt_by_time=False)
    vec_time = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
    vec_broken = set(vec.tasks.loc[~vec.tasks["ok"], "task_id"])
    return {
        "spans": len(spans), "traces": int(spans["trace_id"].nunique()),
        "tasks": int(spans.loc[spans["task_id"] != "", "task_id"].nunique()),
        "faulted_tasks": len(faulted), "input_rss": base, "runs": runs,
        "audit_found_exactly_the_faulted_tasks": found == faulted, "first_broken_hops": firsts,
        "loop": {"sample_share": loop_sample, "spans": len(sample), **loop},
        "audit_on_loop_sample": vec_time,
        "loop_agrees_with_audit": loop_broken == vec_broken,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=80_000)
    parser.add_argument("--background", type=int, default=20_000)
    parser.add_argument("--fault-share", type=float, default=0.03)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loop-sample", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.repeat, args.loop_sample)))
        return

    started = time.perf_counter()
    spans, victims = build(args.tasks, args.background, args.fault_share, args.seed)
    built = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        spans.drop(columns=["true_task", "true_hop"]).to_pickle(Path(tmp) / "spans.pkl")
        (Path(tmp) / "victims.json").write_text(json.dumps(victims))
        del spans
        cmd = [sys.executable, __file__, "--child", tmp, "--repeat", str(args.repeat),
               "--loop-sample", str(args.loop_sample)]  # fmt: skip
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    res = json.loads(out)
    best = min(res["runs"], key=lambda r: r["wall_s"])
    loop_full = res["loop"]["wall_s"] / res["loop"]["sample_share"]
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"pandas {pd.__version__}, numpy {np.__version__}",
        "load_average_1m_at_end": os.getloadavg()[0],
        "build_s": round(built, 1),
        **{k: res[k] for k in ("spans", "traces", "tasks", "faulted_tasks")},
        "audit_wall_s": [round(r["wall_s"], 2) for r in res["runs"]],
        "audit_cpu_s": [round(r["cpu_s"], 2) for r in res["runs"]],
        "input_rss_mb": round(res["input_rss"] / 2**20),
        "peak_rss_mb": round(max(r["peak_rss"] for r in res["runs"]) / 2**20),
        "audit_extra_rss_mb": round((max(r["peak_rss"] for r in res["runs"]) - res["input_rss"]) / 2**20),
        "audit_found_exactly_the_faulted_tasks": res["audit_found_exactly_the_faulted_tasks"],
        "first_broken_hops": res["first_broken_hops"],
        "loop_sample_share": res["loop"]["sample_share"],
        "loop_wall_s": round(res["loop"]["wall_s"], 2),
        "loop_cpu_s": round(res["loop"]["cpu_s"], 2),
        "audit_on_loop_sample_wall_s": round(res["audit_on_loop_sample"]["wall_s"], 2),
        "audit_on_loop_sample_cpu_s": round(res["audit_on_loop_sample"]["cpu_s"], 2),
        "loop_agrees_with_audit": res["loop_agrees_with_audit"],
        "loop_over_audit_wall_ratio": round(
            res["loop"]["wall_s"] / res["audit_on_loop_sample"]["wall_s"], 1
        ),
        "loop_over_audit_cpu_ratio": round(
            res["loop"]["cpu_s"] / res["audit_on_loop_sample"]["cpu_s"], 1
        ),
        "loop_full_size_estimate_s": round(loop_full, 1),
        "best_audit_wall_s": round(best["wall_s"], 2),
    }  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
