"""The embedded local stack: a real Prometheus started, reused, stopped and refused.

Every stack a test creates is registered with the ``stacks`` fixture, which stops it when the
test ends, whether it passed or not.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from obslib.cli import main
from obslib.emit import RULE_FILE
from obslib.errors import StackError
from obslib.stack import (
    FLEET_JOB,
    GO_MEMORY_LIMIT,
    LocalStack,
    StackStatus,
    default_rule_files,
)
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


def prometheus_environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_prometheus_runs_under_a_go_memory_limit_unless_the_environment_sets_one(
    tmp_path, stacks, monkeypatch
):
    # Without one, repeated 14-day queries kept adding to the server's RSS (benchmarks/README.md).
    monkeypatch.delenv("GOMEMLIMIT", raising=False)
    stack = stacks(tmp_path / "stack", free_port())
    status = stack.up()
    assert prometheus_environment(status.pid)["GOMEMLIMIT"] == GO_MEMORY_LIMIT
    stack.down()
    monkeypatch.setenv("GOMEMLIMIT", "2GiB")
    status = stack.up()
    assert prometheus_environment(status.pid)["GOMEMLIMIT"] == "2GiB"


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
    monkeypatch.delenv("OBSLIB_HOME", raising=False)
    monkeypatch.chdir(tmp_path)  # JupyterLab's kernels run in notebooks/: the stack is the same
    stack = LocalStack()
    assert (stack.data_dir, stack.port) == (REPO / ".obslib" / "stack", 19090)
    monkeypatch.setenv("OBSLIB_HOME", str(tmp_path / "home"))
    assert LocalStack().data_dir == tmp_path / "home" / ".obslib" / "stack"
    monkeypatch.setenv("OBSLIB_STACK_DIR", "relative/stack")  # taken from the root, not cwd
    assert LocalStack().data_dir == tmp_path / "home" / "relative" / "stack"
    monkeypatch.chdir(REPO)
    assert default_rule_files() == [(REPO / RULE_FILE).absolute()]
    monkeypatch.chdir(tmp_path)  # elsewhere, the checkout holding the package is asked
    assert default_rule_files() == [(REPO / RULE_FILE).absolute()]


# --- concurrency, pid ownership, unusable data dirs ------------------------------------------

# One `up` in its own process: waits for the start signal, counts its backfills in a shared file.
RACER = """
import json, os, shutil, sys, time
from pathlib import Path
from obslib.stack import LocalStack

data_dir, port, rules, source, calls, go, hold = sys.argv[1:]

def history(work_dir):
    with open(calls, "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(float(hold))  # a longer history, so another process comes while this one runs
    return Path(shutil.copytree(source, work_dir / "openmetrics"))

while not os.path.exists(go):
    time.sleep(0.005)
status = LocalStack(Path(data_dir), int(port), rule_files=[Path(rules)]).up(history=history)
print(json.dumps({"pid": status.pid, "ready": status.ready, "url": status.url}))
"""


def prometheus_pids(stack: LocalStack) -> list[int]:
    """Every live Prometheus process serving ``stack``'s TSDB, found by command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"--storage.tsdb.path={stack.tsdb_dir}".encode() in args and process_exists(
            int(entry.name)
        ):
            found.append(int(entry.name))
    return found


def test_two_concurrent_ups_on_a_fresh_dir_start_one_server_and_backfill_once(tmp_path, stacks):
    port = free_port()
    stack = stacks(tmp_path / "stack", port)  # stopped by the fixture whatever happens
    source = tmp_path / "om"
    source.mkdir()
    write_day(source / "day-1.om", DAY_ONE)
    write_day(source / "day-2.om", DAY_ONE + 86400)
    calls, go = tmp_path / "calls", tmp_path / "go"
    argv = [stack.data_dir, port, REPO / RULE_FILE, source, calls, go, 0]
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, *map(str, argv)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        time.sleep(1.5)  # both have imported obslib and wait for the signal
        go.touch()
        outputs = [racer.communicate(timeout=120) for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()
    for racer, (_, err) in zip(racers, outputs, strict=True):
        assert racer.returncode == 0, err[-3000:]
        assert "Traceback" not in err
    reports = [json.loads(out) for out, _ in outputs]
    assert all(r["ready"] and r["url"] == f"http://127.0.0.1:{port}" for r in reports)
    [server] = {r["pid"] for r in reports}  # both report the same server...
    assert prometheus_pids(stack) == [server]  # ...which is the only one
    assert stack.pid_path.read_text() == f"{server}\n"
    assert len(calls.read_text().splitlines()) == 1  # one backfill
    assert list(stack.data_dir.glob("tsdb-backfill-*")) == []
    status = stack.status()
    assert (status.running, status.ready, status.pid) == (True, True, server)
    [sample] = instant(status.url, "stack_test_value", DAY_ONE + 86400 + 7200)
    assert float(sample["value"][1]) == value_at(DAY_ONE + 86400 + 7200)
    assert stack.down() is True
    assert prometheus_pids(stack) == [] and not stack.pid_path.exists()


def test_down_during_an_up_waits_for_it_and_then_stops_the_server(tmp_path, stacks):
    port = free_port()
    stack = stacks(tmp_path / "stack", port)
    source = tmp_path / "om"
    source.mkdir()
    write_day(source / "day-1.om", DAY_ONE)
    calls, go = tmp_path / "calls", tmp_path / "go"
    go.touch()
    racer = subprocess.Popen(
        [sys.executable, "-c", RACER, *map(str, [stack.data_dir, port, REPO / RULE_FILE, source,
                                                 calls, go, 1.0])],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not calls.exists() and time.monotonic() < deadline:  # the up is backfilling
            time.sleep(0.01)
        assert calls.exists()
        assert stack.down() is True  # waited for the up, then stopped what it started
        _, err = racer.communicate(timeout=60)
    finally:
        if racer.poll() is None:
            racer.kill()
            racer.wait()
    assert racer.returncode == 0, err[-3000:]
    assert prometheus_pids(stack) == []
    assert not stack.pid_path.exists()
    assert stack.status().running is False


EMPTY_ARGV = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
argv = (ctypes.c_char_p * 1)(None)
libc.execve(b"/bin/cat", argv, argv)  # cat reading its stdin, with no command line at all
raise SystemExit(f"execve failed: errno {ctypes.get_errno()}")
"""


@pytest.fixture(params=["kernel-thread", "empty-argv"])
def nameless_pid(request):
    """A live process whose /proc/<pid>/cmdline is empty."""
    if request.param == "kernel-thread":
        kthreadd = Path("/proc/2")
        if not (kthreadd / "comm").exists() or (kthreadd / "comm").read_text() != "kthreadd\n":
            pytest.skip("no kernel thread visible in this pid namespace")
        yield 2
        return
    # stdout to /dev/null: cat copies its stdin, which stays an empty pipe until we close it
    proc = subprocess.Popen(
        [sys.executable, "-c", EMPTY_ARGV],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        comm = Path(f"/proc/{proc.pid}/comm")
        while comm.read_text() != "cat\n" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert comm.read_text() == "cat\n"
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def test_a_pid_file_naming_a_process_without_command_line_is_not_the_stack(
    tmp_path, stacks, nameless_pid
):
    assert Path(f"/proc/{nameless_pid}/cmdline").read_bytes().strip(b"\0") == b""
    stack = stacks(tmp_path / "stack", free_port())
    stack.data_dir.mkdir(parents=True)
    stack.pid_path.write_text(f"{nameless_pid}\n")
    status = stack.status()
    assert (status.running, status.pid) == (False, None)
    assert stack.down() is False
    assert process_exists(nameless_pid)  # never signalled
    assert not stack.pid_path.exists()
    stack.pid_path.write_text(f"{nameless_pid}\n")
    started = stack.up(history=lambda work: write_day(work / "h.om", DAY_ONE))
    assert started.ready and started.pid != nameless_pid
    assert stack.pid_path.read_text() == f"{started.pid}\n"


def test_a_running_server_that_lost_its_pid_file_is_found_and_stopped(tmp_path, stacks):
    port = free_port()
    stack = stacks(tmp_path / "stack", port)
    first = stack.up(history=lambda work: write_day(work / "h.om", DAY_ONE))
    stack.pid_path.unlink()  # what the old race left behind: a server nobody knew about
    status = stack.status()
    assert (status.running, status.ready, status.pid) == (True, True, first.pid)
    assert stack.up().pid == first.pid  # reused, not "port in use"
    assert stack.pid_path.read_text() == f"{first.pid}\n"
    stack.pid_path.unlink()
    assert stack.down() is True
    assert not process_exists(first.pid)


def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a directory\n")
    return path


UNUSABLE_DIRS = {
    "is-a-file": a_file,
    "under-a-file": lambda tmp_path: a_file(tmp_path) / "stack",
    "read-only": lambda tmp_path: Path("/sys/kernel/obslib-test-stack"),  # even root cannot
    "name-too-long": lambda tmp_path: tmp_path / ("x" * 300),
}


@pytest.mark.parametrize("how", ["--dir", "OBSLIB_STACK_DIR"])
@pytest.mark.parametrize("action", ["up", "down", "status"])
@pytest.mark.parametrize("case", UNUSABLE_DIRS)
def test_an_unusable_data_dir_is_a_stack_error_naming_it(
    tmp_path, monkeypatch, capsys, case, action, how
):
    data_dir = UNUSABLE_DIRS[case](tmp_path)
    expected = 2
    if case == "read-only" and action != "up":  # nothing is there, so nothing runs
        expected = {"down": 0, "status": 1}[action]
    monkeypatch.chdir(REPO)
    argv = ["stack", action, "--port", str(free_port())]
    if how == "--dir":
        argv += ["--dir", str(data_dir)]
    else:
        monkeypatch.setenv("OBSLIB_STACK_DIR", str(data_dir))
    assert main(argv) == expected
    err = capsys.readouterr().err
    if expected == 2:
        assert err.startswith(f"obslib stack: cannot use the stack data directory {data_dir}")
        assert "OBSLIB_STACK_DIR" in err and "--dir" in err
    else:
        assert err == ""


def test_a_pid_path_that_is_a_directory_is_a_stack_error(tmp_path, capsys):
    (tmp_path / "prometheus.pid").mkdir()
    assert main(["stack", "status", "--dir", str(tmp_path)]) == 2
    assert "cannot use the stack data directory" in capsys.readouterr().err
