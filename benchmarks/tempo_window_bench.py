"""Benchmark: every span of a busy hour from Tempo, through sliced select() searches.

Run from the repository root:

    .venv/bin/python benchmarks/tempo_window_bench.py                 # 10,000 tasks in an hour
    .venv/bin/python benchmarks/tempo_window_bench.py --tasks 2000    # a quick run

A child process serves the fake Tempo (``tests/fakes/tempo_store.py``, which answers as Tempo
3.1 does: silent ``limit``, unscoped select keys, trimmed ids, the 16 MiB job-size error) over
``--tasks`` whole Pass-1 task traces (12 spans each) spread over one hour, pushed as they end.
It answers at latencies taken from the real server on this 2-core machine (see
``benchmarks/README.md``): a search costs ``--search-base`` plus ``--search-per-trace`` per trace
it returns, and trace-by-id lookups queue behind one another at ``--by-id`` each (Tempo's CPU
per lookup, about 40 a second). The parent reads the window with
``obslib.sources.tempo_window.window_spans`` and reports wall time, CPU time, peak resident
memory, the number of requests by route, and whether every task arrived whole (its spans equal
to the pushed ones, and the audit of the read spans equal to the audit of the pushed spans).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOUR = 3600
END = 1_795_920_000  # a pinned instant: the window is the hour before it


def tasks_of_the_hour(n_tasks: int, seed: int):
    """``n_tasks`` whole Pass-1 traces whose roots start evenly over the hour before END."""
    from obslib.catalogue.hops import PASS1
    from obslib.synth.spans import make_spans

    spacing = int((HOUR - 10) * 10**9 / n_tasks)  # the last root starts 5 s before END
    spans = make_spans(PASS1, n_tasks, seed=seed, spacing_ns=spacing)
    offset = (END - HOUR) * 10**9 + 5 * 10**9 - int(spans["start_ns"].min())
    spans = spans.assign(start_ns=spans.start_ns + offset, end_ns=spans.end_ns + offset)
    return spans.drop(columns=["true_task", "true_hop"])


def serve(n_tasks: int, seed: int, args: dict, ready, stop, stats) -> None:
    """The fake Tempo, in its own process, until ``stop`` is set."""
    from tests.fakes.tempo import FakeTempo
    from tests.fakes.tempo_store import TempoStore

    spans = tasks_of_the_hour(n_tasks, seed)
    store = TempoStore(clock=lambda: END + 120.0)
    for _, trace in spans.groupby("trace_id", sort=False):
        store.push(trace, at=trace["end_ns"].max() / 1e9 + 1)

    def latency(route: str, traces: int) -> float:
        if route == "search":
            return args["search_base"] + args["search_per_trace"] * traces
        return args["by_id"]

    with FakeTempo(store=store, latency=latency) as fake:
        ready.put(fake.url)
        stop.wait()
        routes: dict[str, int] = {}
        for request in fake.requests:
            key = "search" if request.path == "/api/search" else request.path.split("/")[2]
            routes[key] = routes.get(key, 0) + 1
        stats.put(routes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--search-base", type=float, default=0.15)
    parser.add_argument("--search-per-trace", type=float, default=0.0055)
    parser.add_argument("--by-id", type=float, default=0.025)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--slice-s", type=int, default=120)
    args = parser.parse_args()

    from bench_common import load_average, machine

    from obslib.analysis import audit_traces
    from obslib.sources.endpoint import Endpoint
    from obslib.sources.tempo import TempoSource
    from obslib.sources.tempo_window import window_spans

    ctx = mp.get_context("spawn")
    ready, stats, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    latencies = {"search_base": args.search_base, "search_per_trace": args.search_per_trace,
                 "by_id": args.by_id}  # fmt: skip
    child = ctx.Process(target=serve, args=(args.tasks, args.seed, latencies, ready, stop, stats))
    child.start()
    url = ready.get(timeout=600)
    source = TempoSource(Endpoint("tempo", url, timeout=60))
    cpu0, wall0 = time.process_time(), time.monotonic()
    fetched = window_spans(
        source,
        END - HOUR,
        END,
        parallel=args.parallel,
        slice_s=args.slice_s,
        progress=lambda _m: None,
    )
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stop.set()
    routes = stats.get(timeout=60)
    child.join(timeout=60)

    pushed = tasks_of_the_hour(args.tasks, args.seed)
    read = fetched.frame
    key = ["trace_id", "span_id", "parent_span_id", "name", "kind", "start_ns", "end_ns"]
    same_spans = (
        read[key].sort_values(key).reset_index(drop=True)
        .equals(pushed[key].sort_values(key).reset_index(drop=True))
    )  # fmt: skip
    theirs, ours = audit_traces(pushed), audit_traces(read)
    result = {
        "machine": machine(),
        "load_average": load_average(),
        "tasks": args.tasks,
        "spans_pushed": len(pushed),
        "spans_read": len(read),
        "tasks_read": int(read["task_id"].replace("", None).dropna().nunique()),
        "same_spans": bool(same_spans),
        "same_audit": ours.summary() == theirs.summary(),
        "wall_s": round(wall, 1),
        "client_cpu_s": round(cpu, 1),
        "client_peak_rss_mib": round(peak_mib),
        "requests": routes,
        "coverage": fetched.coverage.headline(),
        "notes": list(fetched.coverage.notes[:1]),
        "latency_model": latencies,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
