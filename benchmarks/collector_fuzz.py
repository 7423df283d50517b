"""Long fuzz run of the test collector, and what the costliest bodies cost it.

Run from the repository root:

    .venv/bin/python benchmarks/collector_fuzz.py --duration 300          # bombs, then 5 min fuzz
    .venv/bin/python benchmarks/collector_fuzz.py --bodies 2000 --seed 7 --skip-bombs

The collector runs as ``obslib collector`` in a child process with its defaults (20 MiB cap),
so its memory is its own: peak RSS is the child's ``VmHWM`` and CPU its utime + stime, both from
``/proc``. ``--collector-src DIR`` runs the child from another source tree (e.g. an export of an
older commit) for a before/after comparison.

Phase 1 (skipped with ``--skip-bombs``): the costliest single bodies, each in a fresh child: a
16 KiB gzip body that inflates to 16 MiB of empty ResourceSpans (issue 10, item 4), the same
8 M empty messages as JSON objects, the largest bombs that fit the item budget, and for scale a
real 19 MiB batch of 60,000 spans with 8 attributes each. The peak is reset before each body
(``/proc/PID/clear_refs``), so each figure is that one request's.

Phase 2: bodies from ``tests/collector/fuzz.py`` (seeded: random, truncated and mutated OTLP in
protobuf and JSON, gzip tricks) with valid traces and logs batches in between, over one
keep-alive connection, until ``--duration`` seconds or ``--bodies`` bodies. A crash is a 5xx, a
reply that is not a ``google.rpc.Status``, no reply at all, or the child gone. Afterwards the
files are read back with ``read_spans_with_skips``: every valid span must be there and nothing
may be skipped. Exits 1 on any crash, lost span or record, or skipped line.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_common import load_average, machine  # noqa: E402

from tests.collector import Reply, proto_request  # noqa: E402
from tests.collector.fuzz import JSON, PROTOBUF, BodyFuzzer  # noqa: E402

_TICKS = os.sysconf("SC_CLK_TCK")


class Child:
    """``obslib collector`` in a child process, with its memory and CPU from /proc."""

    def __init__(self, out_dir: Path, src: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(src)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "obslib", "collector", "--port", "0", "--out", str(out_dir)],
            cwd=src,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # the collector logs every rejection there
            text=True,
        )
        assert self.proc.stdout is not None
        banner = self.proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", banner)
        if not match:
            self.proc.kill()
            raise SystemExit(f"the collector did not start: {banner!r}")
        self.endpoint = match.group(0)

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(key)

    def peak_rss(self) -> int:
        """The child's peak resident memory (bytes) since start or the last reset."""
        return self._status("VmHWM")

    def rss(self) -> int:
        """The child's resident memory now (bytes)."""
        return self._status("VmRSS")

    def reset_peak(self) -> None:
        """Start the peak over from the current RSS."""
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the child has used."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def alive(self) -> bool:
        """Whether the child still runs."""
        return self.proc.poll() is None

    def stop(self) -> str:
        """SIGINT, wait, and return what it printed (its stats line)."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out.strip()


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def _legit_batch() -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    spans = [
        Span(
            trace_id=os.urandom(16),
            span_id=os.urandom(8),
            parent_span_id=os.urandom(8),
            name="agent.session.prompt",
            kind=3,
            start_time_unix_nano=1_700_000_000_000_000_000 + i,
            end_time_unix_nano=1_700_000_000_100_000_000 + i,
            attributes=[
                KeyValue(key=f"attr.key.{j}", value=AnyValue(string_value=f"value-{i}-{j}"))
                for j in range(8)
            ],
        )
        for i in range(60_000)
    ]
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
    )
    return request.SerializeToString()


def _json_objects(n: int) -> bytes:
    return b'{"resourceSpans":[' + b"{}," * (n - 1) + b"{}]}"


def bombs(src: Path, work: Path) -> list[dict[str, Any]]:
    """Phase 1: each costly body in a fresh child, with its peak memory and CPU."""
    budget = 20 * 2**20 // 16  # the default item budget
    one_span = proto_request(random.Random(1), 1).SerializeToString()  # 5 items
    cases = [
        ("16 MiB of empty ResourceSpans (item 4)", PROTOBUF, b"\x0a\x00" * (8 * 2**20)),
        ("16 MiB of empty JSON objects", JSON, _json_objects(16 * 2**20 // 3)),
        ("empty ResourceSpans, as many as the budget", PROTOBUF, b"\x0a\x00" * budget),
        (
            "one span and empty ResourceSpans up to the budget",
            PROTOBUF,
            one_span + b"\x0a\x00" * (budget - 5),
        ),
        ("empty JSON objects, as many as the budget", JSON, _json_objects(budget - 2)),
        ("a real batch: 60,000 spans of 8 attributes", PROTOBUF, _legit_batch()),
    ]
    results = []
    for n, (name, content_type, raw) in enumerate(cases):
        body = gzip.compress(raw, compresslevel=9)
        child = Child(work / f"bomb-{n}", src)
        try:
            time.sleep(0.5)
            base_rss, base_cpu = child.rss(), child.cpu_s()
            child.reset_peak()
            started = time.monotonic()
            response = requests.post(
                f"{child.endpoint}/v1/traces",
                data=body,
                headers={"Content-Type": content_type, "Content-Encoding": "gzip"},
                timeout=600,
            )
            wall = time.monotonic() - started
            message = "" if response.ok else _status_message(response)
            results.append(
                {
                    "body": name,
                    "sent_bytes": len(body),
                    "decoded_bytes": len(raw),
                    "status": response.status_code,
                    "message": message[:90],
                    "wall_s": round(wall, 2),
                    "cpu_s": round(child.cpu_s() - base_cpu, 2),
                    "rss_before": base_rss,
                    "peak_rss": child.peak_rss(),
                }
            )
        finally:
            child.stop()
        r = results[-1]
        print(
            f"{name}: {r['sent_bytes']:,} B sent, {_mib(r['decoded_bytes'])} decoded -> "
            f"{r['status']} in {r['wall_s']} s, CPU {r['cpu_s']} s, peak {_mib(r['peak_rss'])} "
            f"(idle {_mib(r['rss_before'])}) {r['message']}",
            flush=True,
        )
    return results


def _status_message(response: requests.Response) -> str:
    return Reply(response.status_code, dict(response.headers), response.content).status_message()


def fuzz(src: Path, work: Path, seed: int, duration_s: float, max_bodies: int) -> dict[str, Any]:
    """Phase 2: fuzzed bodies against one child; what happened, and what reads back."""
    from obslib.sources.otlp_files import read_logs_with_skips, read_spans_with_skips

    fuzzer = BodyFuzzer(seed)
    out_dir = work / "fuzz"
    child = Child(out_dir, src)
    kinds: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    crashes: list[str] = []
    valid_spans: set[str] = set()
    valid_logs: list[str] = []
    refused_valid = 0
    started = time.monotonic()
    cpu_start = child.cpu_s()
    peak = 0
    bodies = 0
    with requests.Session() as session:
        while bodies < max_bodies and time.monotonic() - started < duration_s:
            case = fuzzer.next()
            bodies += 1
            kinds[case.kind] += 1
            try:
                response = session.post(
                    child.endpoint + case.path, data=case.body, headers=case.headers, timeout=120
                )
            except requests.RequestException as exc:
                crashes.append(f"{case.kind}: no reply ({type(exc).__name__})")
                if not child.alive():
                    crashes.append(f"collector exited with {child.proc.returncode}")
                    break
                continue
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                crashes.append(f"{case.kind}: {response.status_code} {response.content[:120]!r}")
            elif response.status_code != 200:
                try:
                    _status_message(response)
                except (AssertionError, ValueError) as exc:
                    crashes.append(f"{case.kind}: {response.status_code} not a Status ({exc})")
            if case.valid:
                if response.status_code == 200:
                    valid_spans |= case.span_ids
                    valid_logs += case.log_bodies
                else:
                    refused_valid += 1
            if bodies % 200 == 0:
                peak = max(peak, child.peak_rss())
    elapsed = time.monotonic() - started
    peak = max(peak, child.peak_rss()) if child.alive() else peak
    cpu = child.cpu_s() - cpu_start if child.alive() else float("nan")
    stats_line = child.stop()
    spans = read_spans_with_skips(out_dir / "traces.jsonl")
    logs = read_logs_with_skips(out_dir / "logs.jsonl")
    return {
        "seed": seed,
        "bodies": bodies,
        "seconds": round(elapsed, 1),
        "collector_cpu_s": round(cpu, 1),
        "kinds": dict(kinds),
        "statuses": dict(statuses),
        "crashes": crashes,
        "valid_refused": refused_valid,
        "valid_spans_sent": len(valid_spans),
        "spans_lost": len(valid_spans - set(spans.frame["span_id"])),
        "spans_in_file": len(spans.frame),
        "valid_log_records_sent": len(valid_logs),
        "log_records_lost": len(set(valid_logs) - set(logs.frame["msg"])),
        "skipped_on_read": [
            spans.items_skipped,
            spans.lines_skipped,
            logs.items_skipped,
            logs.lines_skipped,
        ],
        "peak_rss": peak,
        "collector_said": stats_line.splitlines()[-1] if stats_line else "",
    }


def main() -> int:
    """Run the phases and print the figures (JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0, help="fuzz seconds (300)")
    parser.add_argument("--bodies", type=int, default=10**9, help="most fuzz bodies to send")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-bombs", action="store_true", help="only the fuzz phase")
    parser.add_argument("--skip-fuzz", action="store_true", help="only the bombs phase")
    parser.add_argument("--collector-src", type=Path, default=ROOT, help="tree to run it from")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    print(f"{machine()}; load average {load_average()}", flush=True)
    figures: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="collector-fuzz-") as tmp:
        work = Path(tmp)
        if not args.skip_bombs:
            figures["bombs"] = bombs(args.collector_src.resolve(), work)
        if not args.skip_fuzz:
            result = fuzz(args.collector_src.resolve(), work, args.seed, args.duration, args.bodies)
            figures["fuzz"] = result
            print(json.dumps({**result, "peak_rss": _mib(result["peak_rss"])}, indent=1))
    figures["load_average_after"] = load_average()
    print(f"load average {load_average()}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    fuzzed = figures.get("fuzz")
    bad = fuzzed and (
        fuzzed["crashes"]
        or fuzzed["spans_lost"]
        or fuzzed["log_records_lost"]
        or fuzzed["valid_refused"]
        or any(fuzzed["skipped_on_read"])
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
