"""Benchmark of the reference pipeline: many concurrent tasks exporting to the test collector.

Run from the repository root:

    .venv/bin/python benchmarks/fleet_bench.py                      # 1,000 tasks, all at once, x3
    .venv/bin/python benchmarks/fleet_bench.py --concurrency 250,500,1000 --repeat 2

Each run happens in a fresh child process (its own process group, killed whole if it hangs):
it starts a nats-server with JetStream on 127.0.0.1 (timed on its own), the test OTLP collector
in-process on a free port, and calls ``run_fleet`` with no faults. Phases come from the spans
themselves: start-up is from the call to the first span's start (NATS connection, streams,
three agent CLI processes and their ACP handshake, consumers), the task phase runs to the last
span's end, and shut-down is the rest (agents close and flush, providers flush).

The checks, per run: every task got its result; the spans the collector accepted equal the
spans the SDK exporters say they delivered; and both equal the spans the tasks must make (the
Pass-1 profile: 12 per task). The last check matters: a span the SDK's batch processor drops
because its queue is full is never handed to the exporter, so the first comparison alone cannot
see it. The child turns on the SDK's own processor metrics to count such drops exactly for the
in-process services; for the agent CLIs it counts the SDK's warnings on their stderr. Log
records are checked against the lines of the services' JSON logs (each line is also sent over
OTLP). The script exits 1 when any run lost a task, a span or a log record.

The pipeline sizes its SDK batch queues from the concurrency (``obslib.fleet.pipeline.queue_size``);
the SDK's queue-size variables are cleared for the child so they cannot change a run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench_common import load_average, machine

ROOT = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 900.0
SAMPLE_EVERY_S = 0.1
# Environment variables the OpenTelemetry SDK reads for its batch processors' queue size.
QUEUE_ENV = ("OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BLRP_MAX_QUEUE_SIZE")


# --- machine -----------------------------------------------------------------------------------


def proc_status(pid: int | str, field: str) -> int:
    """A memory figure (``VmHWM``, ``VmRSS``) of ``/proc/<pid>/status`` in bytes; 0 if gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def proc_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a running process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_children() -> list[int]:
    """Pids of this process's children (started from any thread)."""
    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return pids


# --- one run, in a child process ---------------------------------------------------------------


class _Sampler(threading.Thread):
    """Samples the collector's counters every ``SAMPLE_EVERY_S`` while the run goes on."""

    def __init__(self, collector: Any) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        self._collector = collector
        self._done = threading.Event()
        self.samples: list[tuple[float, int, int]] = []

    def run(self) -> None:
        while not self._done.wait(SAMPLE_EVERY_S):
            stats = self._collector.stats
            self.samples.append(
                (time.monotonic(), stats.spans_accepted, stats.accepted.get("traces/protobuf", 0))
            )

    def stop(self) -> None:
        self._done.set()
        self.join()

    def peak_rates(self, window_s: float = 1.0) -> tuple[float, float]:
        """Highest spans/s and trace requests/s over any ``window_s`` of the run."""
        best_spans = best_requests = 0.0
        first = 0
        for t, spans, requests in self.samples:
            while first < len(self.samples) and t - self.samples[first][0] > window_s:
                first += 1
            t0, spans0, requests0 = self.samples[max(first - 1, 0)]
            if t - t0 >= window_s * 0.5:
                best_spans = max(best_spans, (spans - spans0) / (t - t0))
                best_requests = max(best_requests, (requests - requests0) / (t - t0))
        return best_spans, best_requests


def _json_log_lines(log_dir: Path) -> int:
    """Log records the services wrote to their JSON log files (each also goes over OTLP)."""
    return sum(sum(1 for _ in p.open()) for p in log_dir.glob("*.jsonl"))


def _agent_queue_warnings(stderr_dir: Path) -> int:
    """How many queue-full warnings the agent CLI processes printed on stderr."""
    return sum(p.read_text(errors="replace").count("Queue full") for p in stderr_dir.glob("*.log"))


def _sdk_self_metrics() -> Any:
    """Turn on the SDK's own processor metrics in this process; returns their reader.

    With ``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED`` each batch processor counts the items it
    dropped (``error.type=queue_full``) on the global meter provider, set here to an in-memory
    one. Only this process's services (orchestrator, proxy) are covered, not the agent CLIs.
    """
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    os.environ["OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"] = "true"
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return reader


def _dropped(reader: Any) -> dict[str, int]:
    """Items each batch processor dropped, by component name.

    ``run_fleet`` builds the orchestrator's telemetry before the proxy's, so component ``/0`` of
    each kind is the orchestrator's and ``/1`` the proxy's.
    """
    services = {"0": "orchestrator", "1": "proxy"}
    dropped: dict[str, int] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                if not metric.name.endswith(".processed"):
                    continue
                for point in metric.data.data_points:
                    attributes = dict(point.attributes or {})
                    if attributes.get("error.type") != "queue_full":
                        continue
                    name = str(attributes.get("otel.component.name", "?"))
                    index = name.rpartition("/")[2]
                    dropped[f"{name} ({services.get(index, '?')})"] = int(point.value)
    return dropped


def child_run(tasks: int, concurrency: int, seed: int, work_dir: Path) -> dict[str, Any]:
    """One measured run of ``run_fleet``, in this (fresh) process; returns JSON-ready figures."""
    from obslib.analysis import audit_traces
    from obslib.catalogue.hops import PASS1, SERVICE_ORCHESTRATOR
    from obslib.collector import OtlpCollector
    from obslib.fleet import FaultPlan, NatsServer, run_fleet
    from obslib.settings import load_settings

    sdk_metrics = _sdk_self_metrics()
    settings = load_settings(None)
    started = time.perf_counter()
    with NatsServer() as nats_server:
        nats_start_s = time.perf_counter() - started
        nats_pid = next(iter(own_children()), 0)
        with OtlpCollector(work_dir / "collector") as collector:
            sampler = _Sampler(collector)
            sampler.start()
            cpu_before = time.process_time()
            call_ns = time.time_ns()
            run_started = time.monotonic()
            try:
                run = run_fleet(
                    settings,
                    tasks=tasks,
                    collector_endpoint=collector.endpoint,
                    out_dir=work_dir / "fleet",
                    concurrency=concurrency,
                    faults=FaultPlan(),
                    seed=seed,
                    nats_url=nats_server.url,
                )
                return_ns = time.time_ns()
                run_s = time.monotonic() - run_started
                exported = sum(run.spans_exported.values())
                settled = collector.wait_for_spans(exported, timeout_s=30)
            finally:
                sampler.stop()
            pipeline_cpu_s = time.process_time() - cpu_before
            agents = resource.getrusage(resource.RUSAGE_CHILDREN)  # the agents, reaped by now
            nats_cpu_s = proc_cpu_s(nats_pid)
            nats_peak = proc_status(nats_pid, "VmHWM")
            stats = collector.stats
            spans = collector.spans_frame()
    audit = audit_traces(spans, PASS1)
    missing = audit.problems[audit.problems["check"] == "missing"]
    expected: Counter[str] = Counter()
    for task_id in run.task_ids:
        for hop in PASS1.hops:
            expected[hop.service_for(run.agent_types[task_id])] += hop.count
    received = spans.groupby("service_name").size().to_dict()
    first_ns, last_ns = int(spans["start_ns"].min()), int(spans["end_ns"].max())
    # The first wave: every task in flight publishes at once; the orchestrator ends three spans
    # (ingress, dispatch, nats.publish) per task as the publish acks come back.
    publish_ends = spans.loc[
        (spans["service_name"] == SERVICE_ORCHESTRATOR) & (spans["name"] == "nats.publish"),
        "end_ns",
    ].sort_values()
    wave = min(concurrency, tasks, len(publish_ends))
    peak_spans, peak_requests = sampler.peak_rates()
    return {
        "tasks": tasks,
        "concurrency": concurrency,
        "queue_env": {k: os.environ[k] for k in QUEUE_ENV if k in os.environ},
        "tasks_lost": len(run.lost),
        "spans_expected": sum(expected.values()),
        "spans_exported": exported,
        "spans_received": stats.spans_accepted,
        "collector_settled": settled,
        "by_service": {
            service: {
                "expected": n,
                "exported": run.spans_exported.get(service, 0),
                "received": int(received.get(service, 0)),
            }
            for service, n in sorted(expected.items())
        },
        "missing_by_hop": {str(k): int(v) for k, v in missing["hop"].value_counts().items()},
        "incomplete_tasks": int((~audit.tasks["ok"]).sum()),
        "log_records_written": _json_log_lines(work_dir / "fleet" / "logs"),
        "log_records_received": stats.log_records_accepted,
        "sdk_dropped": _dropped(sdk_metrics),
        "agent_queue_full_warnings": _agent_queue_warnings(work_dir / "fleet" / "stderr"),
        "requests": dict(stats.accepted),
        "requests_rejected": stats.requests_rejected,
        "first_wave_tasks": wave,
        "first_wave_s": (int(publish_ends.iloc[wave - 1]) - first_ns) / 1e9 if wave else 0.0,
        "nats_start_s": nats_start_s,
        "run_s": run_s,
        "startup_s": (first_ns - call_ns) / 1e9,
        "task_phase_s": (last_ns - first_ns) / 1e9,
        "shutdown_s": (return_ns - last_ns) / 1e9,
        "peak_spans_per_s": peak_spans,
        "peak_trace_requests_per_s": peak_requests,
        "cpu_s": {
            "pipeline_and_collector": pipeline_cpu_s,
            "agents": agents.ru_utime + agents.ru_stime,
            "nats_server": nats_cpu_s,
        },
        "peak_rss": {
            "pipeline_and_collector": proc_status("self", "VmHWM"),
            "largest_agent": agents.ru_maxrss * 1024,
            "nats_server": nats_peak,
        },
    }


# --- the parent: runs, checks, summary ---------------------------------------------------------


def spawn_run(tasks: int, concurrency: int, seed: int, work_dir: Path) -> dict[str, Any]:
    """Run :func:`child_run` in a fresh process group; kill the whole group if it hangs."""
    env = {k: v for k, v in os.environ.items() if k not in QUEUE_ENV}
    cmd = [sys.executable, __file__, "--child", str(work_dir), "--tasks", str(tasks),
           "--concurrency", str(concurrency), "--seed", str(seed)]  # fmt: skip
    load_before = load_average()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=CHILD_TIMEOUT_S)
    finally:
        if proc.poll() is None or proc.returncode != 0:
            # The child's nats-server and agent CLIs share its process group.
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                time.sleep(1.0)
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(
            f"the run with concurrency {concurrency} failed (exit {proc.returncode})"
        )
    result = json.loads(out.strip().splitlines()[-1])
    result["load_before"], result["load_after"] = load_before, load_average()
    return result


def problems(r: dict[str, Any]) -> list[str]:
    """What a run lost; empty when every task, span and log record arrived."""
    found = []
    if r["tasks_lost"]:
        found.append(f"{r['tasks_lost']} task(s) without a result")
    if r["spans_received"] != r["spans_exported"]:
        found.append(
            f"collector received {r['spans_received']} spans, SDKs exported {r['spans_exported']}"
        )
    if r["spans_exported"] != r["spans_expected"]:
        short = {
            s: v["expected"] - v["exported"]
            for s, v in r["by_service"].items()
            if v["exported"] != v["expected"]
        }
        found.append(
            f"SDKs exported {r['spans_exported']} of {r['spans_expected']} spans; short by "
            f"service {short}; missing by hop {r['missing_by_hop']}; "
            f"{r['incomplete_tasks']} task trace(s) incomplete; "
            f"dropped by SDK batch queues {r['sdk_dropped']}; "
            f"agent CLIs' queue-full warnings {r['agent_queue_full_warnings']}"
        )
    if r["log_records_received"] != r["log_records_written"]:
        found.append(
            f"collector received {r['log_records_received']} of {r['log_records_written']} "
            f"log records; dropped by SDK batch queues {r['sdk_dropped']}"
        )
    return found


def _best_median(values: list[float], fmt: str, low_is_best: bool = True) -> str:
    best = min(values) if low_is_best else max(values)
    return f"best {best:{fmt}}, median {statistics.median(values):{fmt}}"


def describe(group: list[dict[str, Any]]) -> str:
    """Summary lines for the runs of one (tasks, concurrency) setting."""
    first = group[0]
    tasks = first["tasks"]
    runs = [r["run_s"] for r in group]
    phase = [r["task_phase_s"] for r in group]
    mib = 2**20
    lines = [
        f"--- {tasks} tasks, concurrency {first['concurrency']}"
        + (f", SDK queues {first['queue_env']}" if first["queue_env"] else "")
        + f": {len(group)} run(s)",
        "load average before/after: "
        + "; ".join(f"{r['load_before']} / {r['load_after']}" for r in group),
        "run_fleet wall s:          " + ", ".join(f"{x:.2f}" for x in runs),
        "  start-up / tasks / shut-down s: "
        + "; ".join(
            f"{r['startup_s']:.2f} / {r['task_phase_s']:.2f} / {r['shutdown_s']:.2f}" for r in group
        ),
        "  nats-server start s:     " + ", ".join(f"{r['nats_start_s']:.2f}" for r in group),
        "  first wave (first span to the last of the first tasks in flight published) s: "
        + ", ".join(f"{r['first_wave_s']:.2f}" for r in group),
        "tasks/s over the task phase: "
        + _best_median([tasks / x for x in phase], ".0f", low_is_best=False)
        + "; over the whole run: "
        + _best_median([tasks / x for x in runs], ".0f", low_is_best=False),
        "spans expected / SDK-exported / collector-received: "
        + "; ".join(
            f"{r['spans_expected']} / {r['spans_exported']} / {r['spans_received']}" for r in group
        ),
        "log records written / received: "
        + "; ".join(f"{r['log_records_written']} / {r['log_records_received']}" for r in group),
        "collector ingest, spans/s over the run: "
        + _best_median([r["spans_received"] / r["run_s"] for r in group], ".0f", False)
        + "; peak 1 s: "
        + _best_median([r["peak_spans_per_s"] for r in group], ".0f", False),
        "collector ingest, requests/s over the run (traces+logs): "
        + _best_median([sum(r["requests"].values()) / r["run_s"] for r in group], ".1f", False)
        + "; trace requests "
        + ", ".join(str(r["requests"].get("traces/protobuf", 0)) for r in group),
        "CPU s pipeline+collector / agents / nats-server: "
        + "; ".join(
            f"{r['cpu_s']['pipeline_and_collector']:.1f} / {r['cpu_s']['agents']:.1f} / "
            f"{r['cpu_s']['nats_server']:.1f}"
            for r in group
        ),
        "peak RSS MiB pipeline+collector / largest agent / nats-server: "
        + "; ".join(
            f"{r['peak_rss']['pipeline_and_collector'] / mib:.0f} / "
            f"{r['peak_rss']['largest_agent'] / mib:.0f} / {r['peak_rss']['nats_server'] / mib:.0f}"
            for r in group
        ),
    ]
    for i, r in enumerate(group, 1):
        for problem in problems(r):
            lines.append(f"LOST (run {i}): {problem}")
    return "\n".join(lines)


def parse_concurrency(text: str) -> list[int]:
    """``"250,500,1000"`` -> ``[250, 500, 1000]``."""
    values = [int(x) for x in text.split(",") if x.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"concurrency must be positive integers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tasks", type=int, help="tasks per run (default: as many as the concurrency)"
    )
    parser.add_argument(
        "--concurrency",
        type=parse_concurrency,
        default=[1000],
        help="tasks in flight at once; a comma list runs each in turn (default 1000)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting (3)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the prompts (1)")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument("--keep", action="store_true", help="keep logs, spans and run files")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        concurrency = args.concurrency[0]
        print(json.dumps(child_run(args.tasks, concurrency, args.seed, args.child)))
        return 0
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    work = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    results: list[dict[str, Any]] = []
    try:
        for concurrency in args.concurrency:
            tasks = args.tasks or concurrency
            group = []
            for i in range(args.repeat):
                run_dir = work / f"c{concurrency}-run{i + 1}"
                group.append(spawn_run(tasks, concurrency, args.seed, run_dir))
            print(describe(group), flush=True)
            results += group
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    failed = [r for r in results if problems(r)]
    if failed:
        print(f"FAILED: {len(failed)} of {len(results)} run(s) lost tasks, spans or log records")
        return 1
    print(f"OK: every task, span and log record of {len(results)} run(s) arrived")
    return 0


if __name__ == "__main__":
    sys.exit(main())
