"""One end-to-end run of the reference pipeline over every agent type, exporting over OTLP."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

from obslib.catalogue.contract import COLD_START, STATUS_SUCCESS, STATUSES, TASK_DURATION, TASKS
from obslib.catalogue.hops import ENVELOPE_TRACE_ID, SERVICE_ORCHESTRATOR, SERVICE_PROXY
from obslib.cli import main
from obslib.collector import OtlpCollector
from obslib.fleet import FaultPlan, FleetMetrics, run_fleet
from obslib.fleet.pipeline import RUN_FILE
from obslib.settings import Settings

from .spantree import pass1_problems, spans_by_hop, task_spans


def _sample(exposition: str, name: str, **labels: str) -> float:
    """Value of one series in a text exposition (labels must all match)."""
    for line in exposition.splitlines():
        match = re.match(r"^(\w+)\{(.*)\} (\S+)$", line)
        if match and match.group(1) == name:
            have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
            if all(have.get(k) == v for k, v in labels.items()):
                return float(match.group(3))
    raise AssertionError(f"no sample {name}{labels}")


def test_every_task_forms_the_pass1_tree(
    settings: Settings, collector: OtlpCollector, tmp_path: Path
) -> None:
    with FleetMetrics(settings.agent_types) as metrics:
        url = metrics.serve()
        run = run_fleet(
            settings,
            tasks=21,
            collector_endpoint=collector.endpoint,
            out_dir=tmp_path / "run",
            concurrency=6,
            faults=FaultPlan(),
            seed=3,
            metrics=metrics,
        )
        assert run.metrics_url == url
        with urllib.request.urlopen(url, timeout=5) as reply:
            exposition = reply.read().decode()

    assert run.lost == () and set(run.states.values()) == {"completed"}
    assert set(run.agent_types.values()) == set(settings.agent_types)
    assert all(names == () for names in run.faults.values())
    total = sum(run.spans_exported.values())
    assert collector.wait_for_spans(total, timeout_s=15)
    frame = collector.spans_frame()
    assert len(frame) == total == 21 * 12
    assert frame.groupby("service_name").size().to_dict() == dict(run.spans_exported)

    for task_id in run.task_ids:
        trace_id = run.expected_trace_ids[task_id]
        assert pass1_problems(frame, task_id, run.agent_types[task_id], trace_id) == [], task_id
        assert run.envelope_trace_ids[task_id] == trace_id
        hops = spans_by_hop(task_spans(frame, task_id))
        assert hops["result_collect"][0]["attributes"][ENVELOPE_TRACE_ID] == trace_id
        assert hops["task_publish"][0]["destination"] == settings.task_subject(
            run.agent_types[task_id]
        )
    assert len(set(run.expected_trace_ids.values())) == 21  # one trace per task

    # The metric contract, per agent type, with every status child present from the start.
    per_type = {a: sum(v == a for v in run.agent_types.values()) for a in settings.agent_types}
    for agent_type, count in per_type.items():
        for status in STATUSES:
            expected = count if status == STATUS_SUCCESS else 0
            assert _sample(exposition, TASKS.name, agent_type=agent_type, status=status) == expected
        assert _sample(exposition, f"{TASK_DURATION.name}_count", agent_type=agent_type) == count
        assert _sample(exposition, f"{COLD_START.name}_count", agent_type=agent_type) == 1
        top = str(TASK_DURATION.buckets[-1])
        assert (
            _sample(exposition, f"{TASK_DURATION.name}_bucket", agent_type=agent_type, le=top)
            == count
        )
    assert (run.out_dir / "metrics.prom").read_text().count(TASKS.name) >= len(STATUSES)

    # Logs: one slog-shaped file per service, the same records also sent over OTLP.
    services = {
        SERVICE_ORCHESTRATOR,
        SERVICE_PROXY,
        *(f"daedalus-agent-{a}" for a in settings.agent_types),
    }
    log_files = {p.stem: p for p in (run.out_dir / "logs").glob("*.jsonl")}
    assert set(log_files) == services
    records = [json.loads(line) for p in log_files.values() for line in p.read_text().splitlines()]
    assert all({"time", "level", "msg", "taskId", "agent_type"} <= r.keys() for r in records)
    for record in records:
        assert record["trace_id"] == run.expected_trace_ids[record["taskId"]], record
    assert collector.wait_for_log_records(len(records), timeout_s=10)
    assert collector.stats.log_records_accepted == len(records)

    truth = json.loads((run.out_dir / RUN_FILE).read_text())
    assert truth["expected_trace_ids"] == dict(run.expected_trace_ids)


def test_cli_runs_the_fleet(collector: OtlpCollector, tmp_path: Path, capsys) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("agentTypes: [codex]\n")  # one agent process keeps the run short
    out = tmp_path / "cli-run"
    status = main(
        ["--values", str(values), "fleet", "--tasks", "3", "--concurrency", "3",
         "--fault", "envelope-trace-id=0.34", "--collector", collector.endpoint,
         "--out", str(out), "--seed", "5"]
    )  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out
    assert "3 task(s)" in printed and "fault envelope_trace_id: 1 task(s)" in printed
    truth = json.loads((out / RUN_FILE).read_text())
    assert set(truth["agent_types"].values()) == {"codex"}
    assert sum("envelope_trace_id" in names for names in truth["faults"].values()) == 1
    assert truth["fault_plan"]["envelope_trace_id"] == 0.34


def test_cli_rejects_an_unknown_fault(tmp_path: Path, capsys) -> None:
    status = main(
        [
            "fleet",
            "--fault",
            "gremlins=0.5",
            "--collector",
            "http://127.0.0.1:9",
            "--out",
            str(tmp_path),
        ]
    )
    assert status == 2
    assert "gremlins" in capsys.readouterr().err
