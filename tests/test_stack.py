"""The embedded local stack: a real Prometheus started, reused, stopped and refused.

Every stack a test creates is registered with the ``stacks`` fixture, which stops it when the
test ends, whether it passed or not.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from obslib.cli import main
from obslib.emit import RULE_FILE
from obslib.errors import StackError
from obslib.stack import FLEET_JOB, LocalStack, StackStatus, default_rule_files
from tests.world import ANCHOR

REPO = Path(__file__).resolve().parents[1]
INTERVAL = 300
END = ANCHOR
DAY_ONE = END - 2 * 86400  # the history is two files: day one and day two


def value_at(t: int) -> float:
    return (t - DAY_ONE) / INTERVAL


def write_day(path: Path, first: int) -> Path:
    lines = ["# TYPE stack_test_value gauge"]
    lines += [
        f'stack_test_value{{source="test"}} {value_at(t)} {t}'
        for t in range(first, first + 86400, INTERVAL)
    ]
    path.write_text("\n".join([*lines, "# EOF"]) + "\n")
    return path


def two_day_history(calls: list[Path]):
    def history(work_dir: Path) -> Path:
        calls.append(work_dir)
        om_dir = work_dir / "openmetrics"
        om_dir.mkdir()
        write_day(om_dir / "day-1.om", DAY_ONE)
        write_day(om_dir / "day-2.om", DAY_ONE + 86400)
        (work_dir / "ground-truth.json").write_text("{}")
        return om_dir

    return history


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def stacks():
    created: list[LocalStack] = []

    def make(data_dir: Path, port: int, **kwargs) -> LocalStack:
        kwargs.setdefault("rule_files", [REPO / RULE_FILE])
        stack = LocalStack(data_dir=data_dir, port=port, **kwargs)
        created.append(stack)
        return stack

    yield make
    for stack in created:
        stack.down()


def instant(url: str, query: str, at: int) -> list[dict]:
    body = requests.get(f"{url}/api/v1/query", params={"query": query, "time": at}, timeout=5)
    return body.json()["data"]["result"]


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"


def test_up_backfills_loads_rules_reuses_and_stops(tmp_path, stacks, capsys, monkeypatch):
    port = free_port()
    stack = stacks(tmp_path / "stack", port, scrape_targets=[f"127.0.0.1:{port}"])
    calls: list[Path] = []
    status = stack.up(history=two_day_history(calls))

    assert isinstance(status, StackStatus)
    assert (status.running, status.ready, status.url) == (True, True, f"http://127.0.0.1:{port}")
    assert status.rule_files == ((REPO / RULE_FILE).absolute(),)
    assert status.blocks > 0
    assert calls == [stack.history_dir]
    assert not (stack.history_dir / "openmetrics").exists()  # backfilled, then removed
    assert (stack.history_dir / "ground-truth.json").exists()  # the rest stays
    assert process_exists(status.pid)

    for t in (DAY_ONE + 3600, DAY_ONE + 86400 + 7200):  # one sample from each file
        [sample] = instant(status.url, "stack_test_value", t)
        assert float(sample["value"][1]) == value_at(t)

    emitted = yaml.safe_load((REPO / RULE_FILE).read_text())["groups"]
    loaded = requests.get(f"{status.url}/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert sorted(g["name"] for g in loaded) == sorted(g["name"] for g in emitted)
    for group in emitted:
        [match] = [g for g in loaded if g["name"] == group["name"]]
        assert [r["name"] for r in match["rules"]] == [r["alert"] for r in group["rules"]]

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        targets = requests.get(f"{status.url}/api/v1/targets", timeout=5).json()["data"]
        jobs = {t["labels"]["job"]: t["scrapeUrl"] for t in targets["activeTargets"]}
        if jobs:
            break
        time.sleep(0.5)
    assert jobs == {FLEET_JOB: f"http://127.0.0.1:{port}/metrics"}

    again = stack.up(history=two_day_history(calls))
    assert again.pid == status.pid
    assert len(calls) == 1
    elsewhere = LocalStack(data_dir=stack.data_dir, port=free_port()).status()
    assert (elsewhere.pid, elsewhere.url) == (status.pid, status.url)
    assert stack.endpoint().url == status.url

    assert main(["stack", "status", "--dir", str(stack.data_dir), "--port", str(port)]) == 0
    assert status.url in capsys.readouterr().out

    assert stack.down() is True
    assert not process_exists(status.pid)
    assert not stack.pid_path.exists()
    stopped = stack.status()
    assert (stopped.running, stopped.ready, stopped.pid) == (False, False, None)
    assert stack.down() is False
    with pytest.raises(StackError, match="obslib stack up"):
        stack.endpoint()
    assert main(["stack", "status", "--dir", str(stack.data_dir), "--port", str(port)]) == 1

    # Up from the command line over the existing TSDB: no history is needed, the data remains.
    monkeypatch.chdir(REPO)
    assert main(["stack", "up", "--dir", str(stack.data_dir), "--port", str(port)]) == 0
    [sample] = instant(status.url, "stack_test_value", DAY_ONE + 3600)
    assert float(sample["value"][1]) == value_at(DAY_ONE + 3600)
    assert main(["stack", "down", "--dir", str(stack.data_dir)]) == 0
    assert "stopped" in capsys.readouterr().out
    assert not stack.status().running


def test_stale_pid_file_is_removed_with_a_message(tmp_path, stacks, caplog):
    stack = stacks(tmp_path / "stack", free_port())
    gone = subprocess.Popen(["true"])
    gone.wait()
    stack.data_dir.mkdir(parents=True)
    stack.pid_path.write_text(f"{gone.pid}\n")
    assert stack.status().running is False

    with caplog.at_level(logging.WARNING, logger="obslib.stack"):
        status = stack.up(history=lambda work: write_day(work / "h.om", DAY_ONE))
    assert "stale pid file" in caplog.text
    assert status.ready and status.pid != gone.pid


def test_a_pid_file_naming_another_process_is_never_signalled(tmp_path):
    stack = LocalStack(data_dir=tmp_path, port=free_port(), rule_files=[REPO / RULE_FILE])
    stack.pid_path.write_text(f"{os.getpid()}\n")  # this very test process
    assert stack.status().running is False
    assert stack.down() is False
    assert not stack.pid_path.exists()


def test_port_in_use_names_the_port_and_how_to_choose_another(tmp_path, stacks):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        stack = stacks(tmp_path / "stack", port)
        calls: list[Path] = []
        with pytest.raises(StackError) as caught:
            stack.up(history=two_day_history(calls))
    message = str(caught.value)
    assert str(port) in message
    assert "--port" in message and "OBSLIB_STACK_PORT" in message
    assert calls == []
    assert not stack.pid_path.exists()


@pytest.mark.parametrize("layout", ["file", "directory"])
def test_promtool_failure_leaves_no_tsdb_behind(tmp_path, stacks, layout):
    stack = stacks(tmp_path / "stack", free_port())
    bad = tmp_path / "bad.om"
    bad.write_text('stack_test_value{source="test" 1 2\n# EOF\n')

    def history(work_dir: Path) -> Path:
        if layout == "file":
            return bad
        om_dir = work_dir / "openmetrics"
        om_dir.mkdir()
        write_day(om_dir / "a-good.om", DAY_ONE)  # backfills fine, but must not land alone
        (om_dir / "b-bad.om").write_text(bad.read_text())
        return om_dir

    with pytest.raises(StackError, match="promtool could not backfill") as caught:
        stack.up(history=history)
    own = subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(bad), str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert own.returncode != 0
    assert own.stderr.strip().splitlines()[-1] in str(caught.value)
    assert not stack.tsdb_dir.exists()
    assert list(stack.data_dir.glob("tsdb-backfill-*")) == []
    assert not stack.pid_path.exists()
    assert stack.status().blocks == 0


def test_prometheus_that_cannot_start_reports_its_log(tmp_path, stacks):
    rules = tmp_path / "broken-rules.yaml"
    rules.write_text(
        yaml.safe_dump({"groups": [{"name": "x", "rules": [{"alert": "A", "expr": "sum("}]}]})
    )
    stack = stacks(tmp_path / "stack", free_port(), rule_files=[rules])
    with pytest.raises(StackError, match="exited while starting") as caught:
        stack.up()
    assert str(rules) in str(caught.value)
    assert not stack.pid_path.exists()


def test_missing_rule_file_is_refused_before_starting(tmp_path, stacks):
    stack = stacks(tmp_path / "stack", free_port(), rule_files=[tmp_path / "absent.yaml"])
    with pytest.raises(StackError, match=r"absent\.yaml"):
        stack.up()
    assert not stack.pid_path.exists()


def test_defaults_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OBSLIB_STACK_DIR", str(tmp_path / "here"))
    monkeypatch.setenv("OBSLIB_STACK_PORT", "19191")
    stack = LocalStack()
    assert (stack.data_dir, stack.port) == (tmp_path / "here", 19191)
    monkeypatch.delenv("OBSLIB_STACK_DIR")
    monkeypatch.delenv("OBSLIB_STACK_PORT")
    monkeypatch.chdir(tmp_path)
    stack = LocalStack()
    assert (stack.data_dir, stack.port) == (tmp_path / ".obslib" / "stack", 19090)
    monkeypatch.chdir(REPO)
    assert default_rule_files() == [(REPO / RULE_FILE).absolute()]
