"""Record the golden trace audit's input once: ``python -m tests.golden.record``.

A reference-pipeline run has random trace ids and wall-clock timestamps, so the golden reports
cannot use a live one: this runs the pipeline once (real nats-server, OpenTelemetry SDK,
collector) with faults of every class the audit names and keeps what the collector wrote in
``tests/golden/data/``, committed. Re-record only when the pipeline's telemetry itself changes
(new spans or attributes), then regenerate the golden reports (``make golden``) and read the
diff.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from obslib.fleet import FaultPlan
from tests.helpers import collected_run

DATA = Path(__file__).resolve().parent / "data"
TASKS = 30
SEED = 7
FAULTS = FaultPlan(
    stdio_context=0.1,
    nats_headers=0.1,
    envelope_trace_id=0.05,
    duplicate_span_ids=0.05,
    span_dropped=0.05,
    clock_skew=0.05,
)


def record(out: Path = DATA) -> dict[str, tuple[str, ...]]:
    """Run the pipeline and copy its spans, logs and ground truth to ``out``; the faults."""
    with tempfile.TemporaryDirectory(prefix="obslib-golden-") as tmp:
        run = collected_run(Path(tmp), TASKS, FAULTS, seed=SEED, concurrency=10)
        out.mkdir(parents=True, exist_ok=True)
        for path in (run.traces_path, run.logs_path, run.fleet_run_path):
            shutil.copyfile(path, out / path.name)
    return {task: faults for task, faults in run.fleet.faults.items() if faults}


if __name__ == "__main__":
    faulted = record()
    print(f"recorded {TASKS} tasks into {DATA}; faults injected into {len(faulted)}:")
    for task, faults in sorted(faulted.items()):
        print(f"  {task}: {', '.join(faults)}")
    sys.exit(0)
