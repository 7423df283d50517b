"""Peak memory of the embedded Prometheus during `make reports` and repeated 14-day reports.

Run from the repository root:

    .venv/bin/python benchmarks/reports_memory_bench.py --json /tmp/reports-memory.json

What it does, on a fresh stack directory (``$OBSLIB_STACK_DIR``, else a temporary one; the
ports come from ``$OBSLIB_STACK_PORT`` and ``$OBSLIB_FLEET_METRICS_PORT``, else free ones):

1. ``obslib reports`` (what ``make reports`` runs once the virtualenv exists): the history is
   written and backfilled, Prometheus starts, the reference pipeline runs, five reports.
2. ``obslib report slo_baseline`` twice more (14 days each), then ``obslib report
   fleet_overview`` over the history's whole 14 days.
3. ``obslib report observability_crosscheck`` twice over the whole 14 days: its alert-noise
   check replays every alert at a 60 s step, the heaviest queries a newcomer can ask for (the
   worker alerts read every worker pod's series), and what made Prometheus grow.

After each step it reads the server's peak resident set size (``VmHWM`` in
``/proc/<pid>/status``; the stack keeps running between steps, so the peak is the whole run's so
far), its current RSS and the Go heap from its own ``/metrics``. At the end: the series the TSDB
holds (all of them, and the worker pods' kube-state-metrics series), the blocks and their size on
disk. The stack is stopped, and its directory removed unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from bench_common import load_average, machine

ROOT = Path(__file__).resolve().parents[1]
OBSLIB = ROOT / ".venv" / "bin" / "obslib"
POD_METRICS = (
    "kube_pod_container_status_restarts_total",
    "kube_pod_container_status_waiting_reason",
)
WORKERS = "daedalus-worker-.*"  # the default release's worker pods and Jobs (workers.podPrefix)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_status(pid: int) -> dict[str, int]:
    """``VmHWM`` and ``VmRSS`` of ``pid`` in bytes (empty if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(line.split()[1]) * 1024
    return out


def go_metrics(url: str) -> dict[str, float]:
    """A few of Prometheus's own gauges about its memory and TSDB."""
    wanted = ("go_memstats_heap_inuse_bytes", "go_memstats_next_gc_bytes",
              "prometheus_tsdb_blocks_loaded", "prometheus_tsdb_head_series")  # fmt: skip
    out = {}
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            out[name] = float(value)
    return out


def series(url: str, match: str, start: int, end: int) -> list[dict[str, str]]:
    """Label sets of the series matching ``match`` anywhere in [start, end]."""
    params = {"match[]": match, "start": start, "end": end}
    return list(requests.post(f"{url}/api/v1/series", data=params, timeout=120).json()["data"])


def tree_bytes(path: Path) -> int:
    """Apparent size of every file under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_step(name: str, cmd: list[str], env: dict[str, str], stack_dir: Path) -> dict[str, Any]:
    """Run one obslib command; returns its wall time and Prometheus's memory after it."""
    load = load_average()
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1, 3):  # a fail or inconclusive verdict is still a full run
        raise RuntimeError(f"{name}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    pid = int((stack_dir / "prometheus.pid").read_text())
    url = f"http://127.0.0.1:{env['OBSLIB_STACK_PORT']}"
    step = {"step": name, "wall_s": wall, "exit": proc.returncode, "load": load,
            **proc_status(pid), **go_metrics(url)}  # fmt: skip
    print(
        f"{name}: {wall:.1f} s (exit {proc.returncode}, load {load}); Prometheus peak "
        f"{step['VmHWM'] / 2**20:.0f} MiB, now {step['VmRSS'] / 2**20:.0f} MiB, Go heap in use "
        f"{step['go_memstats_heap_inuse_bytes'] / 2**20:.0f} MiB, "
        f"{step['prometheus_tsdb_blocks_loaded']:.0f} blocks"
    )
    return step


def run(
    args: argparse.Namespace, env: dict[str, str], stack_dir: Path, out_dir: Path
) -> dict[str, Any]:
    """Every step; prints as it goes and returns every figure."""
    url = f"http://127.0.0.1:{env['OBSLIB_STACK_PORT']}"
    results: dict[str, Any] = {"machine": machine(), "steps": []}
    print(f"machine: {results['machine']}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; stack {stack_dir} on {url}")
    obslib = [str(OBSLIB)]
    steps = [("obslib reports", [*obslib, "reports", "--out", str(out_dir), "--quiet"])]
    for i in range(args.baselines):
        steps.append((f"slo_baseline #{i + 1}", [*obslib, "report", "slo_baseline",
                                                 "--out", str(out_dir), "--quiet"]))  # fmt: skip
    for name, cmd in steps:
        results["steps"].append(run_step(name, cmd, env, stack_dir))
    truth = json.loads((stack_dir / "history" / "ground-truth.json").read_text())
    start, end = truth["start"], truth["end"]
    fleet = [*obslib, "report", "fleet_overview", "--out", str(out_dir), "--quiet",
             "-p", "start", str(start), "-p", "end", str(end)]  # fmt: skip
    results["steps"].append(run_step("fleet_overview, 14 days", fleet, env, stack_dir))
    for i in range(args.crosschecks):
        cross = [*obslib, "report", "observability_crosscheck", "--out", str(out_dir), "--quiet",
                 "-p", "start", str(start), "-p", "end", str(end)]  # fmt: skip
        step = run_step(f"observability_crosscheck, 14 days, #{i + 1}", cross, env, stack_dir)
        results["steps"].append(step)
    tsdb = stack_dir / "tsdb"
    results["series"] = len(series(url, '{__name__=~".+"}', start, end))
    pods = {name: series(url, f'{name}{{pod=~"{WORKERS}"}}', start, end) for name in POD_METRICS}
    results["worker_pod_series"] = {name: len(found) for name, found in pods.items()}
    results["worker_pods"] = len({s["pod"] for found in pods.values() for s in found})
    results["jobs"] = len(
        series(url, f'kube_job_status_active{{job_name=~"{WORKERS}"}}', start, end)
    )
    results["tsdb_bytes"] = tree_bytes(tsdb)
    results["blocks"] = len(list(tsdb.glob("*/meta.json")))
    results["peak_rss"] = max(s["VmHWM"] for s in results["steps"])
    print(
        f"TSDB: {results['series']:,} series over the window ({results['worker_pods']:,} worker "
        f"pods; {', '.join(f'{k} {v:,}' for k, v in results['worker_pod_series'].items())}; "
        f"{results['jobs']:,} Jobs), {results['blocks']} blocks, "
        f"{results['tsdb_bytes'] / 1e6:.1f} MB"
    )
    print(f"Prometheus peak RSS over the whole run: {results['peak_rss'] / 2**20:.0f} MiB")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baselines", type=int, default=2, help="extra slo_baseline runs (2)")
    parser.add_argument(
        "--crosschecks",
        type=int,
        default=2,
        help="cross-check runs over the whole 14 days, every alert replayed at 60 s (2)",
    )
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--keep", action="store_true", help="keep the stack directory")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="reports-memory-"))
    given = os.environ.get("OBSLIB_STACK_DIR")
    stack_dir = Path(given).absolute() if given else work / "stack"
    env = {**os.environ, "OBSLIB_STACK_DIR": str(stack_dir)}
    env.setdefault("OBSLIB_STACK_PORT", str(free_port()))
    env.setdefault("OBSLIB_FLEET_METRICS_PORT", str(free_port()))
    if stack_dir.exists():  # a fresh stack each run: stop what may run there, then start over
        subprocess.run([str(OBSLIB), "stack", "down"], env=env, cwd=ROOT, check=True)
        shutil.rmtree(stack_dir)
    try:
        results = run(args, env, stack_dir, work / "rendered")
    finally:
        subprocess.run([str(OBSLIB), "stack", "down"], env=env, cwd=ROOT, check=False)
        if not args.keep:
            shutil.rmtree(stack_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
