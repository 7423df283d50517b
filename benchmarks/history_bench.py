"""Benchmark of the synthetic fleet history: generate, backfill, serve and query it.

Run from the repository root:

    .venv/bin/python benchmarks/history_bench.py               # 14 days, seed 1, 3 repeats
    .venv/bin/python benchmarks/history_bench.py --days 3 --repeat 1    # a quick run

Steps, each repeated ``--repeat`` times where it is cheap enough to matter:

1. ``write_history`` (the values-file defaults: three agent types) in a fresh child process,
   for its wall time and peak RSS (``VmHWM``); the child then calls ``generate`` once more to
   count series and samples and to split simulation from writing the OpenMetrics text.
2. The backfill with ``promtool tsdb create-blocks-from openmetrics``: one run per file in
   turn, as ``obslib/stack/backfill.py`` does, and the same runs on a pool of ``--workers`` parallel
   promtool processes. Both must give the same blocks, holding every generated sample.
3. ``LocalStack.up(history=...)`` end to end on a free port (its own sequential backfill, then
   Prometheus until ready), then stops and starts of Prometheus over the same TSDB for the
   start-to-ready time: the stack's wall time, and Prometheus's own from its log.
4. Queries over the whole window through ``PrometheusSource``: two fleet-dashboard panels and
   the whole fleet dashboard at a 5-minute step, and alert replays at 60 s (the heaviest alert
   and all seven), each also timed inside Prometheus (``stats=all``). The first call is
   reported apart (cold caches).
5. Prometheus compacts the 2-hour blocks about a minute after it starts: the script waits for
   that, then gives the TSDB size and the query times again (skip with ``--no-compaction``).

Everything runs on 127.0.0.1 and is stopped at the end, even on failure; the data goes to a
temporary directory removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from bench_common import load_average, machine

ROOT = Path(__file__).resolve().parents[1]

MAX_POINTS = 11_000  # Prometheus refuses range queries with more points per series
COMPACTION_TIMEOUT_S = 300.0
COMPACTION_QUIET_S = 15.0
DASHBOARD_PANELS = ("task-latency", "active-workers")  # a histogram panel, the slowest panel
HEAVY_ALERT = "WorkerCrashLoopBackOff"  # the slowest of the seven to replay
_TS_RE = re.compile(r"ts=(\S+)")


# --- machine and measurement helpers -----------------------------------------------------------


def vm_hwm(pid: int | str = "self") -> int:
    """Peak resident set size (``VmHWM``) of a process in bytes; 0 if it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def run_measured(cmd: list[str]) -> tuple[float, int, int, str]:
    """Run ``cmd``; returns wall seconds, exit status, peak RSS in bytes and its stderr."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    proc.stderr.close()
    return time.perf_counter() - started, proc.returncode, usage.ru_maxrss * 1024, err


def tree_bytes(path: Path) -> int:
    """Apparent size of every file under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def block_stats(tsdb: Path) -> dict[str, int]:
    """Blocks under ``tsdb`` and the samples, series and chunks their ``meta.json`` count."""
    out = {"blocks": 0, "samples": 0, "series": 0, "chunks": 0}
    for meta in tsdb.glob("*/meta.json"):
        stats = json.loads(meta.read_text()).get("stats", {})
        out["blocks"] += 1
        out["samples"] += stats.get("numSamples", 0)
        out["series"] += stats.get("numSeries", 0)  # a series in n blocks counts n times
        out["chunks"] += stats.get("numChunks", 0)
    return out


def best_median(values: list[float]) -> dict[str, float]:
    """Best (lowest), median and every value."""
    return {"best": min(values), "median": statistics.median(values), "all": values}


def fmt(d: dict[str, Any], unit: str = "s", digits: int = 2) -> str:
    """``best x, median y (a, b, c)`` for a :func:`best_median` dict."""
    each = ", ".join(f"{v:.{digits}f}" for v in d["all"])
    return f"best {d['best']:.{digits}f} {unit}, median {d['median']:.{digits}f} {unit} ({each})"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- 1. generation, in a child process ---------------------------------------------------------


def child_generate(out_dir: Path, days: float, seed: int, end: int) -> dict[str, Any]:
    """Time ``write_history`` in this fresh process, then count what it wrote."""
    from obslib.settings import load_settings
    from obslib.synth import generate, write_history

    settings = load_settings(None)
    started, cpu = time.perf_counter(), time.process_time()
    om_dir = write_history(settings, out_dir, days=days, seed=seed, end=end)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = vm_hwm()
    started = time.perf_counter()
    series, _ = generate(settings, days, seed, end, 60)
    generate_s = time.perf_counter() - started
    files = sorted(om_dir.iterdir())
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss": peak,
        "generate_s": generate_s,
        "series": len({s.head() for s in series}),
        "samples": sum(len(s.t) for s in series),
        "files": len(files),
        "openmetrics_bytes": sum(p.stat().st_size for p in files),
        "agent_types": list(settings.agent_types),
    }


def generate_history(out_dir: Path, days: float, seed: int, end: int) -> dict[str, Any]:
    """Run :func:`child_generate` in a fresh interpreter; returns its figures."""
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [sys.executable, __file__, "--child-generate", str(out_dir), "--days", str(days),
           "--seed", str(seed), "--end", str(end)]  # fmt: skip
    load = load_average()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return {**json.loads(out.strip().splitlines()[-1]), "load": load}


# --- 2. backfill -------------------------------------------------------------------------------


def backfill(files: list[Path], tsdb: Path, workers: int) -> dict[str, Any]:
    """One promtool run per file into ``tsdb``, ``workers`` at a time; timed."""
    shutil.rmtree(tsdb, ignore_errors=True)
    tsdb.mkdir(parents=True)
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    # The command stack/backfill.py runs.
    command = [promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet"]

    def one(path: Path) -> tuple[float, int, int, str]:
        return run_measured([*command, str(path), str(tsdb)])

    load = load_average()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        runs = list(pool.map(one, files))
    wall = time.perf_counter() - started
    failed = [(f, r) for f, r in zip(files, runs, strict=True) if r[1] != 0]
    if failed:
        path, (_, code, _, err) = failed[0]
        raise RuntimeError(f"promtool failed on {path} (exit {code}): {err.strip()}")
    per_file = [r[0] for r in runs]
    return {
        "workers": workers,
        "wall_s": wall,
        "per_file_mean_s": statistics.mean(per_file),
        "per_file_max_s": max(per_file),
        "promtool_peak_rss": max(r[2] for r in runs),
        "load": load,
        **block_stats(tsdb),
        "tsdb_bytes": tree_bytes(tsdb),
    }


# --- 3. Prometheus -----------------------------------------------------------------------------


def ready_from_log(log_path: Path) -> float | None:
    """Seconds from "Starting Prometheus Server" to "ready" in the log's last start."""
    text = log_path.read_text(errors="replace")
    last = text.rfind("--- obslib stack up")
    started = ready = None
    for line in text[last:].splitlines():
        match = _TS_RE.search(line)
        if not match:
            continue
        if "Starting Prometheus" in line:
            started = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
        elif "Server is ready to receive web requests" in line:
            ready = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
    if started is None or ready is None:
        return None
    return (ready - started).total_seconds()


def restart_times(stack: Any, repeat: int) -> dict[str, Any]:
    """Stop and start Prometheus ``repeat`` times over the same TSDB; timed."""
    walls, logged, loads = [], [], []
    for _ in range(repeat):
        stack.down()
        loads.append(load_average())
        started = time.perf_counter()
        stack.up()
        walls.append(time.perf_counter() - started)
        logged.append(ready_from_log(stack.log_path) or float("nan"))
    return {"up_s": best_median(walls), "log_ready_s": best_median(logged), "load": loads}


def prom_metric(url: str, name: str) -> float:
    """One unlabelled sample of Prometheus's own ``/metrics``."""
    import requests

    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


def wait_for_compaction(stack: Any) -> dict[str, Any]:
    """Wait until Prometheus has merged blocks and its block count has been quiet for a while.

    A first compaction can finish before any block is merged (the head's), so the wait ends
    only once fewer blocks are loaded than at the start.
    """
    started = time.monotonic()
    initial = prom_metric(stack.url, "prometheus_tsdb_blocks_loaded")
    last_blocks, quiet_since = initial, time.monotonic()
    while time.monotonic() - started < COMPACTION_TIMEOUT_S:
        blocks = prom_metric(stack.url, "prometheus_tsdb_blocks_loaded")
        if blocks != last_blocks:
            last_blocks, quiet_since = blocks, time.monotonic()
        elif blocks < initial and time.monotonic() - quiet_since >= COMPACTION_QUIET_S:
            break
        time.sleep(1.0)
    return {
        "waited_s": time.monotonic() - started,
        "compactions": prom_metric(stack.url, "prometheus_tsdb_compactions_total"),
        "compaction_s": prom_metric(stack.url, "prometheus_tsdb_compaction_duration_seconds_sum"),
        "blocks": int(last_blocks),
        "tsdb_bytes": tree_bytes(stack.tsdb_dir),
    }


# --- 4. queries --------------------------------------------------------------------------------


def server_seconds(url: str, promql: str, start: int, end: int, step: int) -> float:
    """Prometheus's own execution time for a range query, over as many requests as it needs."""
    import requests

    total, chunk = 0.0, step * (MAX_POINTS - 1)
    t = start
    while t <= end:
        stop = min(end, t + chunk)
        params = {"query": promql, "start": t, "end": stop, "step": step, "stats": "all"}
        reply = requests.get(f"{url}/api/v1/query_range", params=params, timeout=120).json()
        total += reply["data"]["stats"]["timings"]["execTotalTime"]
        t = stop + step
    return total


def timed(call: Callable[[], Any], repeat: int) -> dict[str, Any]:
    """The first (cold) call apart, then best and median of ``repeat`` more."""
    started = time.perf_counter()
    call()
    cold = time.perf_counter() - started
    warm = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        warm.append(time.perf_counter() - started)
    return {"cold_s": cold, "warm_s": best_median(warm)}


def query_suite(
    stack: Any, truth: Any, repeat: int, before_each: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Dashboard panels and alert replays over the whole history, timed.

    ``before_each`` runs before each query's timings (the uncompacted run restarts Prometheus
    there, so that its compaction, a minute after start, does not fall inside them); the block
    count Prometheus had loaded when the timings ended is recorded with them.
    """
    from obslib.analysis.slo.alert_replay import replay_alert, replay_alerts
    from obslib.catalogue import build_catalogue
    from obslib.catalogue.panels import panel_by_key
    from obslib.promql import interpolate
    from obslib.settings import load_settings
    from obslib.sources.prometheus import PrometheusSource

    catalogue = build_catalogue(load_settings(None))
    start, end = truth.start, truth.end
    every_agent = {"agent_type": list(catalogue.settings.agent_types)}
    # name -> (step, the obslib call, the PromQL queries it sends, what to say about its result)
    items: dict[str, tuple[int, Callable[[Any], Any], list[str], Callable[[Any], dict]]] = {}

    def frame_facts(frame: Any) -> dict[str, int]:
        return {"rows": len(frame), "series": int(frame["series"].nunique()) if len(frame) else 0}

    def episode_facts(episodes: Any) -> dict[str, int]:
        return {"episodes": len(episodes), "fired": int(episodes["fired"].sum())}

    for key in DASHBOARD_PANELS:
        target = panel_by_key(catalogue.panels, key).fleet[-1]  # p99 for the histogram panel
        query = interpolate(target.expr, every_agent)
        items[f"panel {key} {target.legend}".strip()] = (
            300,
            lambda source, q=query: source.query_range(q, start, end, 300),
            [query],
            frame_facts,
        )
    dashboard = [
        interpolate(t.expr, every_agent)
        for p in catalogue.panels
        if p.kind == "timeseries"
        for t in p.fleet
    ]
    items[f"whole fleet dashboard ({len(dashboard)} queries)"] = (
        300,
        lambda source: [source.query_range(q, start, end, 300) for q in dashboard],
        dashboard,
        lambda frames: {"rows": sum(len(f) for f in frames)},
    )
    heavy = catalogue.alert(HEAVY_ALERT)
    items[f"alert replay {HEAVY_ALERT}"] = (
        60,
        lambda source: replay_alert(source, heavy, start, end),
        [heavy.expr],
        episode_facts,
    )
    items[f"alert replay, all {len(catalogue.alerts)} alerts"] = (
        60,
        lambda source: replay_alerts(source, catalogue.alerts, start, end),
        [a.expr for a in catalogue.alerts],
        episode_facts,
    )

    out: dict[str, Any] = {"load_before": load_average()}
    for name, (step, call, queries, facts) in items.items():
        if before_each is not None:
            before_each()
        source = PrometheusSource(stack.endpoint())
        measured = timed(lambda c=call, s=source: c(s), repeat)
        out[name] = {
            **measured,
            "server_s": sum(server_seconds(stack.url, q, start, end, step) for q in queries),
            "step_s": step,
            "blocks_loaded": int(prom_metric(stack.url, "prometheus_tsdb_blocks_loaded")),
            "prometheus_peak_rss": vm_hwm(stack.status().pid or 0),
            **facts(call(source)),
        }
    out["load_after"] = load_average()
    return out


# --- the whole benchmark -----------------------------------------------------------------------


def print_queries(title: str, queries: dict[str, Any]) -> None:
    """One line per query of :func:`query_suite`'s figures."""
    print(f"{title} (load {queries['load_before']} -> {queries['load_after']}):")
    for name, q in queries.items():
        if not isinstance(q, dict):
            continue
        extra = ", ".join(
            f"{k} {q[k]}"
            for k in ("rows", "series", "episodes", "fired", "blocks_loaded")
            if k in q
        )
        print(
            f"  {name}, step {q['step_s']} s: cold {q['cold_s']:.2f} s; warm {fmt(q['warm_s'])}; "
            f"inside Prometheus {q['server_s']:.2f} s" + (f"; {extra}" if extra else "")
        )


def measure_generation(args: argparse.Namespace, history: Path, end: int) -> dict[str, Any]:
    """Step 1: ``write_history`` ``--repeat`` times, each in a fresh child process."""
    runs = [generate_history(history, args.days, args.seed, end) for _ in range(args.repeat)]
    gen = {
        **runs[-1],
        "wall": best_median([r["wall_s"] for r in runs]),
        "peak": max(r["peak_rss"] for r in runs),
        "loads": [r["load"] for r in runs],
    }
    print(
        f"generation ({', '.join(gen['agent_types'])}; load {'; '.join(gen['loads'])}): "
        f"{fmt(gen['wall'])}; of which generate() {gen['generate_s']:.2f} s; "
        f"peak RSS {gen['peak'] / 2**20:.0f} MiB"
    )
    print(
        f"  {gen['series']:,} series, {gen['samples']:,} samples, {gen['files']} files, "
        f"{gen['openmetrics_bytes'] / 1e6:,.0f} MB of OpenMetrics"
    )
    return gen


def measure_backfills(
    args: argparse.Namespace, files: list[Path], work: Path, samples: int
) -> dict[str, Any]:
    """Step 2: the backfill one promtool at a time, then on ``--workers`` in parallel."""
    backfills: dict[str, Any] = {}
    for workers in (1, args.workers):
        label = "sequential" if workers == 1 else f"{workers} workers"
        done = [backfill(files, work / f"tsdb-{workers}", workers) for _ in range(args.repeat)]
        last = done[-1]
        if last["samples"] != samples:
            raise RuntimeError(f"{label}: blocks hold {last['samples']} of {samples} samples")
        loads = [d["load"] for d in done]
        backfills[label] = {
            **last,
            "wall": best_median([d["wall_s"] for d in done]),
            "loads": loads,
        }
        print(
            f"backfill, {label} (load {'; '.join(loads)}): {fmt(backfills[label]['wall'])}; "
            f"promtool {last['per_file_mean_s']:.3f} s per file (max {last['per_file_max_s']:.2f}), "
            f"peak RSS {last['promtool_peak_rss'] / 2**20:.0f} MiB; {last['blocks']} blocks, "
            f"{last['samples']:,} samples, TSDB {last['tsdb_bytes'] / 1e6:.1f} MB"
        )
    return backfills


def print_restarts(title: str, restarts: dict[str, Any]) -> None:
    """One line for :func:`restart_times`'s figures."""
    print(
        f"{title} (load {'; '.join(restarts['load'])}): stack.up() {fmt(restarts['up_s'])}; "
        f"by its log {fmt(restarts['log_ready_s'], digits=3)}"
    )


def measure_stack(
    args: argparse.Namespace, work: Path, history: Path, files: list[Path]
) -> dict[str, Any]:
    """Steps 3 to 5: a LocalStack on a free port over the same files; always stopped."""
    from obslib.emit import RULE_FILE
    from obslib.stack import LocalStack
    from obslib.synth import load_ground_truth

    truth = load_ground_truth(history)
    stack = LocalStack(data_dir=work / "stack", port=free_port(), rule_files=[ROOT / RULE_FILE])
    results: dict[str, Any] = {}

    def linked_history(work_dir: Path) -> Path:
        """The stack's history function: hard links to the files already written."""
        target = work_dir / "openmetrics"
        target.mkdir(parents=True, exist_ok=True)
        for path in files:
            os.link(path, target / path.name)
        return target

    def restart() -> None:
        stack.down()
        stack.up()

    try:
        load = load_average()
        started = time.perf_counter()
        status = stack.up(history=linked_history)  # its own sequential backfill, then start
        up_s = time.perf_counter() - started
        results["stack_up"] = {"wall_s": up_s, "blocks": status.blocks, "load": load,
                               "log_ready_s": ready_from_log(stack.log_path)}  # fmt: skip
        print(
            f"LocalStack.up(history=...) on 127.0.0.1:{stack.port} (load {load}): {up_s:.1f} s "
            f"for the backfill and start over {status.blocks} blocks"
        )
        results["restart"] = restart_times(stack, args.repeat)
        print_restarts("Prometheus start to ready", results["restart"])
        results["queries"] = query_suite(stack, truth, args.repeat, before_each=restart)
        print_queries(f"queries over {status.blocks} blocks", results["queries"])
        if not args.no_compaction:
            compaction = wait_for_compaction(stack)
            results["compaction"] = compaction
            print(
                f"compaction: {compaction['compactions']:.0f} compactions in "
                f"{compaction['compaction_s']:.1f} s (after waiting {compaction['waited_s']:.0f} s): "
                f"{compaction['blocks']} blocks, TSDB {compaction['tsdb_bytes'] / 1e6:.1f} MB"
            )
            results["queries_compacted"] = query_suite(stack, truth, args.repeat)
            print_queries(
                f"queries over {compaction['blocks']} compacted blocks",
                results["queries_compacted"],
            )
            results["restart_compacted"] = restart_times(stack, args.repeat)
            print_restarts(
                "Prometheus start to ready over compacted blocks", results["restart_compacted"]
            )
    finally:
        stack.down()
    peaks = [
        q["prometheus_peak_rss"]
        for suite in ("queries", "queries_compacted")
        for q in results.get(suite, {}).values()
        if isinstance(q, dict)
    ]
    results["prometheus_peak_rss"] = max(peaks)
    print(f"Prometheus peak RSS while querying: {max(peaks) / 2**20:.0f} MiB")
    return results


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Every step; prints as it goes and returns every figure."""
    from obslib.clock import now_seconds
    from obslib.synth.scenario import default_end

    results: dict[str, Any] = {"machine": machine(), "days": args.days, "seed": args.seed}
    print(f"machine: {results['machine']}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"history: {args.days:g} days, seed {args.seed}, data in {work}")
    history = work / "history"
    results["generation"] = measure_generation(args, history, end=default_end(now_seconds()))
    files = sorted((history / "openmetrics").iterdir())
    results["backfill"] = measure_backfills(args, files, work, results["generation"]["samples"])
    results.update(measure_stack(args, work, history, files))
    return results


def build_parser() -> argparse.ArgumentParser:
    """The command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=14, help="days of history (14)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the history (1)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats of each timing (3)")
    parser.add_argument("--workers", type=int, default=2, help="parallel promtool runs (2)")
    parser.add_argument(
        "--no-compaction", action="store_true", help="do not wait for Prometheus to compact"
    )
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--keep", action="store_true", help="keep the history, TSDBs and stack")
    parser.add_argument("--child-generate", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--end", type=int, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child_generate:
        print(json.dumps(child_generate(args.child_generate, args.days, args.seed, args.end)))
        return 0
    work = Path(tempfile.mkdtemp(prefix="history-bench-"))
    try:
        results = run(args, work)
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
