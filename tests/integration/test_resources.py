"""Resource control on the real kernel: limits, freeze and thaw, signals, timeouts, restarts, the environment.

Every spawn is bounded (a loop count, pids.max or a timeout). Limits whose controller this machine lacks in a mode
(every one in forced v2 on a hybrid host) are checked for their refusal instead.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanco.namespace import Namespace
from lanco.task import Task
from tests.conftest import Sandbox, systemd_delegates
from tests.integration.conftest import (
    EMULATED,
    make_namespace,
    no_process_left,
    slack,
    task_pids,
    unified_controllers,
    wait_until,
)
from tests.integration.test_input import snapshot
from tests.integration.test_lifecycle import one_warning

LIMITED_MODES = ["hybrid", "v1"]
"""The modes where this machine has the memory, cpu, pids and blkio controllers (v1 ones)."""
BUSY_LOOP = ["sh", "-c", "while :; do :; done"]


@pytest.fixture
def api(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The Python API in this process, pointed at the sandbox like the CLI it runs."""
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    yield


def handle(ns: str, name: str) -> Task:
    return Namespace(ns).task(name)


def status(sandbox: Sandbox, ns: str, task: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(sandbox.ok(ns, "status", "--json", task).stdout)
    return data


def cpu_seconds_over(task: Task, seconds: float) -> float:
    """CPU time the task's cgroup used over ``seconds`` of wall time, per second."""
    before = task.record().cpu_usec
    started = time.monotonic()
    time.sleep(seconds)
    after = task.record().cpu_usec
    assert before is not None and after is not None
    return (after - before) / 1e6 / (time.monotonic() - started)


# -- memory ------------------------------------------------------------------------------------------------------

ALLOCATE = ("import time\nchunks = []\nfor _ in range(64):\n    chunks.append(bytearray(16 << 20))\n"
            "    time.sleep(0.01)\nprint('survived', flush=True)\n")


@pytest.mark.parametrize("mode", LIMITED_MODES)
def test_memory_max_kills_the_task_whole_with_result_oom(sandbox: Sandbox, mode: str, api: None) -> None:
    ns = make_namespace(sandbox, mode)
    sandbox.ok(ns, "run", "bystander", "sleep", "300")
    # The allocating process has a sibling that allocates nothing: the OOM kill must take it too.
    sandbox.ok(ns, "run", "-m", "64M", "hog", "sh", "-c", f"sleep 300 & exec python3 -c \"{ALLOCATE}\"")
    assert wait_until(lambda: sandbox.lanco(ns, "check", "hog").returncode == 1, timeout=30)
    record = handle(ns, "hog").wait(10)
    assert record.state == "oom" and record.oom_kills is not None and record.oom_kills >= 1
    assert record.signal == 9 and record.exit_code == 137
    assert record.memory_peak_bytes is not None and record.memory_peak_bytes <= 64 << 20
    assert "survived" not in (sandbox.log_dir(ns) / "task-hog.log").read_text()
    assert status(sandbox, ns, "hog")["processes"] == []
    assert sandbox.lanco(ns, "check", "bystander").returncode == 0
    assert handle(ns, "bystander").record().oom_kills == 0
    sandbox.ok(ns, "stop", "bystander")


def memory_limited(mode: str) -> bool:
    """Whether -m works in ``mode`` here: v1 memory in hybrid and v1, the unified tree's own only on a v2 host."""
    return mode != "v2" or "memory" in unified_controllers()


def oom_takes_the_whole_task(mode: str) -> bool:
    """Where memory.oom.group exists (v2 memory): the kernel kills every process of the task at the first OOM."""
    return mode == "v2" and "memory" in unified_controllers()


STRESS_VM = ["stress-ng", "--vm", "1", "--vm-bytes", "300M"]
"""One worker touching 300 MB: past a 128 MB limit the kernel OOM-kills the worker and stress-ng starts another,
while its first process lives on (the issue's report: 223 OOM kills, and a stop labelled the run stopped)."""


@pytest.mark.parametrize("ending", ["stop", "timeout", "exit"])
def test_oom_kills_show_live_and_the_run_ends_oom_whatever_ends_it(sandbox: Sandbox, mode: str, ending: str,
                                                                   api: None) -> None:
    ns = make_namespace(sandbox, mode)
    hook_out = sandbox.root / "hook.out"
    argv = [ns, "run", "-m", "128M", "--timeout", "4s" if ending == "timeout" else "20s",
            "-c", f"echo $LANCO_RESULT $LANCO_OOM_KILLS > {hook_out}",
            "hog", *STRESS_VM, "--timeout", "4s" if ending == "exit" else "10s"]
    if not memory_limited(mode):
        before = snapshot(sandbox)
        result = sandbox.lanco(*argv)
        assert result.returncode == 1
        assert one_warning(result.stderr, "run").startswith(
            "-m/--memory-max needs the memory controller, which cgroup mode v2 does not provide")
        assert snapshot(sandbox) == before
        return
    sandbox.ok(*argv)
    if oom_takes_the_whole_task(mode):
        record = handle(ns, "hog").wait(30)
        assert record.state == "oom" and record.oom_kills is not None and record.oom_kills >= 1
        assert status(sandbox, ns, "hog")["processes"] == []
        return
    # v1 memory: one process per OOM kill, and the task runs on; status says how many so far.
    live: list[dict[str, object]] = []

    def running_after_oom_kills() -> bool:
        data = status(sandbox, ns, "hog")
        kills = data["oom_kills"]
        live.append(data)
        return data["state"] == "running" and isinstance(kills, int) and kills >= 2

    assert wait_until(running_after_oom_kills, timeout=slack(10)), live[-1]
    seen = live[-1]["oom_kills"]
    assert isinstance(seen, int) and live[-1]["processes"]
    if ending == "stop":
        # The task runs until stopped: every other view, while it runs.
        text = sandbox.ok(ns, "status", "hog").stdout
        assert "   state: running\n" in text and re.search(r"^   oom kills: [1-9]\d*$", text, re.M), text
        assert re.search(r"^ ├ hog \([1-9]\d* OOM kills\)$", sandbox.ok(ns, "ls", "-l").stdout, re.M)
        ls_task = json.loads(sandbox.ok(ns, "ls", "--json").stdout)["tasks"][0]
        dump_task = json.loads(sandbox.ok(ns, "dump").stdout)["tasks"]["hog"]
        top_task = json.loads(sandbox.ok(ns, "top", "--json", "-n", "1").stdout)["tasks"][0]
        for document in (ls_task, dump_task, top_task):
            assert document["oom_kills"] >= seen, document
        sandbox.ok(ns, "stop", "hog")
    record = handle(ns, "hog").wait(30)
    # Not stopped, timeout or exited: the run saw OOM kills, and its result says so, with their count.
    assert record.state == "oom", record
    if ending != "exit":  # ended by lanco, not by stress-ng's own 10 s
        assert record.started is not None and record.ended is not None and record.ended - record.started < 9
    assert record.oom_kills is not None and record.oom_kills >= seen
    assert record.exit_code is not None and status(sandbox, ns, "hog")["processes"] == []
    assert "   state: oom" in sandbox.ok(ns, "status", "hog").stdout
    assert wait_until(hook_out.exists)
    assert wait_until(lambda: hook_out.read_text() == f"oom {record.oom_kills}\n")


def test_a_restarted_run_counts_only_its_own_oom_kills(sandbox: Sandbox, mode: str, api: None) -> None:
    if not memory_limited(mode):
        pytest.skip(f"-m is refused in cgroup mode {mode} here (test_oom_kills_show_live_... checks the refusal)")
    ns = make_namespace(sandbox, mode)
    once = sandbox.root / "oom-killed-once"
    hook_out = sandbox.root / "hook.out"
    # The first run is OOM-killed (its first process itself); the second one allocates nothing and exits 3.
    # The second run lives long enough for the checks below, which take seconds in the emulated guest.
    second = 20 if EMULATED else 2
    script = f"if [ -e {once} ]; then sleep {second}; exit 3; fi; touch {once}; exec python3 -c \"{ALLOCATE}\""
    sandbox.ok(ns, "run", "-m", "64M", "--timeout", "60s", "--restart", "on-failure", "--restart-max", "1",
               "--restart-delay", "0", "-c", f"echo $LANCO_RESULT $LANCO_OOM_KILLS > {hook_out}", "twice",
               "sh", "-c", script)
    task = handle(ns, "twice")
    assert wait_until(lambda: task.record().restarts == 1 and task.record().state == "running", timeout=slack(10))
    # The cgroup, and the kernel's counter in it, is the first run's: the views count the second run's alone.
    memory = Namespace(ns).backend.controller_dir("memory", ns, "twice")
    counter = Path(memory or Namespace(ns).backend.task_dir(ns, "twice"),
                   "memory.events" if mode == "v2" else "memory.oom_control")
    assert int(re.findall(r"^oom_kill (\d+)$", counter.read_text(), re.M)[0]) >= 1
    assert status(sandbox, ns, "twice")["oom_kills"] == 0
    assert json.loads(sandbox.ok(ns, "top", "--json", "-n", "1").stdout)["tasks"][0]["oom_kills"] == 0
    record = task.wait(60)
    assert (record.state, record.exit_code, record.restarts, record.oom_kills) == ("exited", 3, 1, 0)
    runs = [json.loads(line) for line in (sandbox.state_dir(ns) / "tasks" / "twice" / "runs.jsonl").read_text()
            .splitlines()]
    assert [(r["run"], r["result"]) for r in runs] == [(1, "oom"), (2, "exited")]
    assert runs[0]["oom_kills"] >= 1 and runs[1]["oom_kills"] == 0
    assert wait_until(lambda: hook_out.exists() and hook_out.read_text() == "exited 0\n")


@pytest.mark.parametrize("mode", LIMITED_MODES)
def test_set_changes_the_limits_of_a_running_task(sandbox: Sandbox, mode: str, api: None) -> None:
    ns = make_namespace(sandbox, mode)
    sandbox.ok(ns, "run", "-m", "256M", "--memory-swap-max", "16M", "--pids-max", "50", "t", "sleep", "300")
    backend = Namespace(ns).backend
    memory = backend.controller_dir("memory", ns, "t")
    pids = backend.controller_dir("pids", ns, "t")
    assert memory is not None and pids is not None

    def value(directory: str, name: str) -> str:
        return Path(directory, name).read_text().strip()

    assert value(memory, "memory.limit_in_bytes") == str(256 << 20)
    assert value(memory, "memory.memsw.limit_in_bytes") == str(272 << 20)  # v1 counts memory plus swap
    sandbox.ok(ns, "set", "--memory-max", "128M", "--pids-max", "max", "--cpu-quota", "50", "--cpu-weight", "200",
               "t")
    assert value(memory, "memory.limit_in_bytes") == str(128 << 20)
    assert value(memory, "memory.memsw.limit_in_bytes") == str(144 << 20)  # the swap allowance is kept
    assert value(pids, "pids.max") == "max"
    cpu = backend.controller_dir("cpu", ns, "t")
    assert cpu is not None and value(cpu, "cpu.cfs_quota_us") == "50000" and value(cpu, "cpu.shares") == "2048"
    assert handle(ns, "t").record().limits == {"memory_max_bytes": 128 << 20, "memory_swap_max_bytes": 16 << 20,
                                               "pids_max": "max", "cpu_quota_percent": 50.0, "cpu_weight": 200}
    result = sandbox.lanco(ns, "set", "--memory-high", "64M", "t")
    assert result.returncode == 1
    assert "--memory-high needs memory.high, which the v1 memory controller does not have" in \
        one_warning(result.stderr, "set")
    result = sandbox.lanco(ns, "set", "--memory-low", "64M", "t")
    assert result.returncode == 1
    assert "--memory-low needs memory.low, which the v1 memory controller does not have" in \
        one_warning(result.stderr, "set")
    result = sandbox.lanco(ns, "set", "--cpuset", "0", "t")
    assert result.returncode == 1 and "started without --cpuset" in one_warning(result.stderr, "set")
    sandbox.ok(ns, "stop", "t")
    result = sandbox.lanco(ns, "set", "--pids-max", "5", "t")
    assert result.returncode == 1 and one_warning(result.stderr, "set") == "task t is not running"


# -- processes, CPU, IO ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", LIMITED_MODES)
def test_pids_max_bounds_the_processes(sandbox: Sandbox, mode: str) -> None:
    ns = make_namespace(sandbox, mode)
    # Tries for 20 processes, one at a time; forks past the limit fail (and sh says so in the log).
    script = "i=0; while [ $i -lt 20 ]; do sleep 300 & i=$((i + 1)); done; sleep 300"
    sandbox.ok(ns, "run", "--pids-max", "10", "forker", "sh", "-c", script)
    log = sandbox.log_dir(ns) / "task-forker.log"
    assert wait_until(lambda: "fork" in log.read_text().lower(), timeout=10)
    pids = task_pids(sandbox, ns, "forker")
    assert 1 <= len(pids) <= 10
    sandbox.ok(ns, "stop", "forker")
    assert no_process_left(pids)


@pytest.mark.parametrize("mode", LIMITED_MODES)
def test_cpu_quota_caps_a_busy_loop(sandbox: Sandbox, mode: str, api: None) -> None:
    ns = make_namespace(sandbox, mode)
    sandbox.ok(ns, "run", "--cpu-quota", "20", "--timeout", "30s", "spin", *BUSY_LOOP)
    time.sleep(0.5)
    used = cpu_seconds_over(handle(ns, "spin"), 3.0)
    print(f"cpu-quota 20 in {mode}: {used:.3f} of a CPU over 3 s")
    assert 0.10 <= used <= 0.25
    sandbox.ok(ns, "stop", "spin")


@pytest.mark.parametrize("mode", LIMITED_MODES)
def test_cpuset_pins_the_task(sandbox: Sandbox, mode: str) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    cpu = max(os.sched_getaffinity(0))
    ns = make_namespace(sandbox, mode)
    sandbox.ok(ns, "run", "--cpuset", str(cpu), "pinned", "sh", "-c", "sleep 300 & exec sleep 300")
    assert wait_until(lambda: len(task_pids(sandbox, ns, "pinned")) == 2)
    for pid in task_pids(sandbox, ns, "pinned"):
        assert os.sched_getaffinity(pid) == {cpu}
    sandbox.ok(ns, "stop", "pinned")
    # The next run without --cpuset is not pinned: it does not join the cpuset hierarchy at all.
    sandbox.ok(ns, "run", "free", "sleep", "300")
    (pid,) = task_pids(sandbox, ns, "free")
    assert os.sched_getaffinity(pid) == os.sched_getaffinity(0)
    sandbox.ok(ns, "stop", "free")


def first_disk() -> str:
    """MAJ:MIN of a whole disk of this machine."""
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram", "zram")):
            return Path(f"/sys/block/{name}/dev").read_text().strip()
    pytest.skip("no disk")


@pytest.mark.parametrize("mode", LIMITED_MODES)
def test_io_limits_land_in_blkio(sandbox: Sandbox, mode: str, api: None) -> None:
    disk = first_disk()
    ns = make_namespace(sandbox, mode)
    sandbox.ok(ns, "run", "--io-read-bps", f"{disk}=10M", "--io-write-bps", f"{disk}=1M", "--io-weight", "200",
               "io", "sleep", "300")
    blkio = Namespace(ns).backend.controller_dir("blkio", ns, "io")
    assert blkio is not None
    assert Path(blkio, "blkio.throttle.read_bps_device").read_text().split() == [disk, str(10 << 20)]
    assert Path(blkio, "blkio.throttle.write_bps_device").read_text().split() == [disk, str(1 << 20)]
    sandbox.ok(ns, "stop", "io")


# -- freeze, thaw, kill ------------------------------------------------------------------------------------------

def test_frozen_task_uses_no_cpu_resumes_and_stops(sandbox: Sandbox, mode: str, api: None) -> None:
    ns = make_namespace(sandbox, mode)
    sandbox.ok(ns, "run", "--timeout", "60s", "spin", *BUSY_LOOP)
    task = handle(ns, "spin")
    sandbox.ok(ns, "freeze", "spin")
    assert status(sandbox, ns, "spin")["state"] == "frozen"
    assert task.record().state == "frozen"
    assert sandbox.lanco(ns, "check", "spin").returncode == 0
    assert cpu_seconds_over(task, 1.0) < 0.005
    sandbox.ok(ns, "thaw", "spin")
    assert status(sandbox, ns, "spin")["state"] == "running"
    assert cpu_seconds_over(task, 1.0) > 0.05  # resumed (how fast depends on what else this machine runs)
    sandbox.ok(ns, "freeze", "spin")
    started = time.monotonic()
    sandbox.ok(ns, "stop", "spin")
    # Well within the 10 s grace: the thaw's cgroup.events change right before the exit's must not hide it.
    assert time.monotonic() - started < (8 if EMULATED else 2)
    assert status(sandbox, ns, "spin")["state"] == "stopped"
    for command in ("freeze", "thaw"):
        result = sandbox.lanco(ns, command, "spin")
        assert result.returncode == 1 and one_warning(result.stderr, command) == "task spin is not running"


def test_kill_signals_every_process(sandbox: Sandbox, mode: str) -> None:
    ns = make_namespace(sandbox, mode)
    sandbox.ok(ns, "run", "tree", "sh", "-c", "sleep 300 & sleep 300 & exec sleep 300")
    assert wait_until(lambda: len(task_pids(sandbox, ns, "tree")) == 3)
    pids = task_pids(sandbox, ns, "tree")

    def states() -> set[str]:
        found = set()
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                found.add(f.read().rpartition(")")[2].split()[0])
        return found

    sandbox.ok(ns, "kill", "-s", "STOP", "tree")
    assert wait_until(lambda: states() == {"T"})
    sandbox.ok(ns, "kill", "-s", "SIGCONT", "tree")
    assert wait_until(lambda: "T" not in states())
    sandbox.ok(ns, "kill", "-s", "9", "tree")
    assert no_process_left(pids)
    assert sandbox.lanco(ns, "wait", "tree").returncode == 137
    result = sandbox.lanco(ns, "kill", "tree")
    assert result.returncode == 1 and one_warning(result.stderr, "kill") == "task tree is not running"


# -- lifetime ----------------------------------------------------------------------------------------------------

def test_timeout_ends_the_task_at_its_deadline(sandbox: Sandbox, mode: str, api: None) -> None:
    ns = make_namespace(sandbox, mode)
    sandbox.ok(ns, "run", "--timeout", "2s", "slow", "sleep", "300")
    assert sandbox.lanco(ns, "wait", "slow").returncode == 143
    record = handle(ns, "slow").record()
    assert record.state == "timeout" and record.signal == 15
    assert record.started is not None and record.ended is not None
    late = record.ended - record.started - 2.0
    print(f"timeout 2s in {mode}: ended {late * 1000:.0f} ms after the deadline")
    assert -0.05 <= late <= slack(0.5)


def test_timeout_kills_a_task_ignoring_the_stop_signal(sandbox: Sandbox, mode: str, api: None) -> None:
    ns = make_namespace(sandbox, mode)
    script = "trap '' TERM; sleep 300 & while :; do sleep 1; done"
    sandbox.ok(ns, "run", "--timeout", "1s", "--stop-timeout", "1s", "stubborn", "sh", "-c", script)
    assert wait_until(lambda: len(task_pids(sandbox, ns, "stubborn")) >= 2)
    pids = task_pids(sandbox, ns, "stubborn")
    assert sandbox.lanco(ns, "wait", "stubborn").returncode == 137
    record = handle(ns, "stubborn").record()
    assert record.state == "timeout"
    assert record.started is not None and record.ended is not None
    # The monitor counts its grace period in 50 ms naps; under emulation (tests/vm) each nap costs more.
    assert 2.0 <= record.ended - record.started <= 2.0 + slack(0.8)
    assert no_process_left(pids)


def test_stop_uses_the_tasks_stop_signal_and_timeout(sandbox: Sandbox, mode: str) -> None:
    ns = make_namespace(sandbox, mode)
    sandbox.ok(ns, "run", "--stop-timeout", "1s", "stubborn", "sh", "-c", "trap '' TERM; while :; do sleep 1; done")
    time.sleep(0.2)
    started = time.monotonic()
    sandbox.ok(ns, "stop", "stubborn")
    took = time.monotonic() - started
    assert 0.9 <= took <= 1 + slack(2), took
    assert status(sandbox, ns, "stubborn")["state"] == "stopped"
    # -t wins over --stop-timeout.
    sandbox.ok(ns, "run", "--stop-timeout", "30s", "stubborn", "sh", "-c", "trap '' TERM; while :; do sleep 1; done")
    time.sleep(0.2)
    started = time.monotonic()
    sandbox.ok(ns, "stop", "-t", "500ms", "stubborn")
    assert time.monotonic() - started <= 0.5 + slack(2.5)
    sandbox.ok(ns, "run", "--stop-signal", "INT", "polite", "sleep", "300")
    sandbox.ok(ns, "stop", "polite")
    assert status(sandbox, ns, "polite")["signal"] == 2
    assert sandbox.lanco(ns, "wait", "polite").returncode == 130


def test_restart_on_failure_restarts_exactly_the_maximum(sandbox: Sandbox, mode: str, api: None) -> None:
    ns = make_namespace(sandbox, mode)
    counter = sandbox.root / "runs"
    sandbox.ok(ns, "run", "--restart", "on-failure", "--restart-max", "3", "--restart-delay", "50ms", "flaky",
               "sh", "-c", f"echo run >> {counter}; exit 3")
    assert sandbox.lanco(ns, "wait", "flaky").returncode == 3
    assert counter.read_text() == "run\n" * 4
    record = handle(ns, "flaky").record()
    assert (record.state, record.exit_code, record.restarts) == ("exited", 3, 3)
    runs = [json.loads(line) for line in
            (sandbox.state_dir(ns) / "tasks" / "flaky" / "runs.jsonl").read_text().splitlines()]
    assert [(r["run"], r["result"], r["exit_code"]) for r in runs] == [(n, "exited", 3) for n in range(1, 5)]
    # Success ends an on-failure task at once.
    sandbox.ok(ns, "run", "--restart", "on-failure", "fine", "true")
    assert sandbox.lanco(ns, "wait", "fine").returncode == 0
    assert handle(ns, "fine").record().restarts == 0


def test_a_running_record_counts_the_runs_before_it(sandbox: Sandbox, mode: str, api: None) -> None:
    """runs.jsonl is read for tasks run with --restart; a task without one is counted 0 without reading it."""
    ns = make_namespace(sandbox, mode)
    marker = sandbox.root / "failed-once"
    sandbox.ok(ns, "run", "--restart", "always", "--restart-delay", "10ms", "second-wind",
               "sh", "-c", f"[ -e {marker} ] || {{ touch {marker}; exit 1; }}; exec sleep 300")
    sandbox.ok(ns, "run", "plain", "sleep", "300")
    assert wait_until(lambda: handle(ns, "second-wind").record().restarts == 1)
    assert handle(ns, "second-wind").record().state == "running"
    assert (handle(ns, "plain").record().state, handle(ns, "plain").record().restarts) == ("running", 0)
    sandbox.ok(ns, "stop", "second-wind")
    sandbox.ok(ns, "stop", "plain")


def test_stop_is_not_undone_by_a_restart(sandbox: Sandbox, mode: str, api: None) -> None:
    ns = make_namespace(sandbox, mode)
    sandbox.ok(ns, "run", "--restart", "always", "--restart-delay", "0", "forever", "sleep", "300")
    sandbox.ok(ns, "stop", "forever")
    time.sleep(0.3)
    assert sandbox.lanco(ns, "check", "forever").returncode == 1
    record = handle(ns, "forever").record()
    assert (record.state, record.restarts) == ("stopped", 0)
    # Stopped while it pauses before a restart: woken at once, and not started again.
    sandbox.ok(ns, "run", "--restart", "always", "--restart-delay", "1h", "pausing", "sh", "-c", "exit 1")
    assert wait_until(lambda: handle(ns, "pausing").record().state == "restarting")
    assert sandbox.lanco(ns, "check", "pausing").returncode == 1
    result = sandbox.lanco(ns, "run", "pausing", "true")
    assert result.returncode == 1 and "already running" in one_warning(result.stderr, "run")
    started = time.monotonic()
    sandbox.ok(ns, "stop", "pausing")
    assert time.monotonic() - started < slack(3)
    record = handle(ns, "pausing").record()
    assert (record.state, record.exit_code) == ("stopped", 1)


# -- refusals ------------------------------------------------------------------------------------------------------

LIMIT_OPTIONS = [
    (["-m", "64M"], "memory"), (["--memory-high", "64M"], "memory"), (["--memory-low", "64M"], "memory"),
    (["--memory-swap-max", "0"], "memory"),
    (["--cpu-quota", "20"], "cpu"), (["--cpu-weight", "50"], "cpu"), (["--cpuset", "0"], "cpuset"),
    (["--pids-max", "10"], "pids"), (["--io-weight", "50"], "io"), (["--io-read-bps", "MAJ:MIN=1M"], "io"),
    (["--io-write-bps", "MAJ:MIN=1M"], "io"),
]


@pytest.mark.parametrize(("option", "controller"), LIMIT_OPTIONS)
def test_every_limit_is_refused_where_its_controller_is_missing(sandbox: Sandbox, option: list[str],
                                                               controller: str) -> None:
    if controller in unified_controllers():
        pytest.skip(f"the unified tree has the {controller} controller here (a pure v2 host)")
    ns = make_namespace(sandbox, "v2")  # the unified tree of this hybrid host has no controllers
    option = [o.replace("MAJ:MIN", first_disk()) for o in option]
    before = snapshot(sandbox)
    for command in (["run", *option, "t", "true"], ["set", *option, "t"]):
        result = sandbox.lanco(ns, *command)
        assert result.returncode == 1, result.stderr
        text = one_warning(result.stderr, command[0])
        label = "-m/--memory-max" if option[0] == "-m" else option[0]
        assert text.startswith(f"{label} needs the {controller} controller, which cgroup mode v2 does not "
                               "provide"), text
    assert snapshot(sandbox) == before


@pytest.mark.parametrize("args", [
    ["-m", "-1"], ["--memory-high", "0"], ["--memory-swap-max", "5X"], ["--cpu-quota", "0"], ["--cpu-quota", "-20"],
    ["--cpu-weight", "0"], ["--cpuset", "999"], ["--pids-max", "0"], ["--pids-max", "-3"], ["--io-weight", "20000"],
    ["--io-read-bps", "/etc/passwd=1M"], ["--io-write-bps", "sda"], ["--timeout", "0"], ["--timeout", "2 weeks"],
    ["--timeout=-2s"], ["--stop-signal", "SIGWHAT"], ["--stop-signal", "0"], ["--stop-timeout", "soon"],
    ["--restart", "maybe"], ["--restart-max", "2"], ["--restart", "always", "--restart-max", "0"],
    ["--restart", "always", "--restart-delay", "-1"], ["-e", "JUSTAKEY"], ["-e", "=value"],
    ["--env-file", "/no/such/env"], ["--cwd", "/no/such/dir"], ["--umask", "888"], ["--nice", "42"],
    ["--user", "no-such-user-here"], ["--group", "no-such-group-here"],
])
def test_malformed_values_are_refused_and_nothing_is_created(sandbox: Sandbox, args: list[str]) -> None:
    ns = make_namespace(sandbox)
    before = snapshot(sandbox)
    result = sandbox.lanco(ns, "run", *args, "t", "true")
    assert result.returncode == 2, result.stderr
    one_warning(result.stderr, "run")
    assert snapshot(sandbox) == before


# -- the process ---------------------------------------------------------------------------------------------------

def test_environment_cwd_umask_nice_and_account(sandbox: Sandbox, test_user: str) -> None:
    import pwd

    ns = make_namespace(sandbox)
    env_file = sandbox.root / "task.env"
    env_file.write_text("# settings\nFROM_FILE=file value\nBOTH=file\n\nQUOTED='kept as is'\n")
    workdir = sandbox.root / "work"
    workdir.mkdir()
    os.chmod(workdir, 0o777)
    script = ('echo "file=$FROM_FILE both=$BOTH quoted=$QUOTED odd=$ODD"; echo "cwd=$(pwd) umask=$(umask) '
              'nice=$(nice) ids=$(id -u):$(id -g) user=$USER home=$HOME"; touch made; '
              'env | grep -c "^LANCO_MON_" || true')
    hook_out = sandbox.root / "hook.out"
    sandbox.ok(ns, "run", "--env-file", str(env_file), "-e", "BOTH=flag", "-e", "ODD=$HOME `x` \"q\"",
               "--cwd", str(workdir), "--umask", "027", "--nice", "7", "--user", test_user,
               "-c", f"id -u > {hook_out}", "who", "sh", "-c", script)
    assert sandbox.lanco(ns, "wait", "who").returncode == 0
    account = pwd.getpwnam(test_user)
    lines = (sandbox.log_dir(ns) / "task-who.log").read_text().splitlines()
    assert lines == ["file=file value both=flag quoted='kept as is' odd=$HOME `x` \"q\"",
                     f"cwd={workdir} umask=0027 nice=7 ids={account.pw_uid}:{account.pw_gid} user={test_user} "
                     f"home={account.pw_dir}",
                     "0"]
    made = (workdir / "made").stat()
    assert (made.st_uid, made.st_mode & 0o777) == (account.pw_uid, 0o640)
    # The exit hook still runs as the namespace's owner (root here), not as the task's account.
    assert wait_until(hook_out.exists)
    assert wait_until(lambda: hook_out.read_text() == "0\n")


def test_user_needs_root(sandbox: Sandbox, test_user: str, other_user: str) -> None:
    ns = make_namespace(sandbox, user=test_user)
    before = snapshot(sandbox)
    result = sandbox.lanco(ns, "run", "--user", other_user, "t", "true", user=test_user)
    assert result.returncode == 1
    assert one_warning(result.stderr, "run") == "--user and --group need root"
    assert snapshot(sandbox) == before


def test_an_unprivileged_owner_uses_limits_freeze_and_timeouts(sandbox: Sandbox, test_user: str,
                                                               api: None) -> None:
    ns = make_namespace(sandbox, user=test_user)
    # Where systemd delegates to users it gives no cpuset by default (tests/guest check its refusal by name).
    cpuset = [] if systemd_delegates() else ["--cpuset", "0"]
    sandbox.ok(ns, "run", "--pids-max", "20", "--cpu-quota", "50", *cpuset, "--timeout", f"{slack(20):.0f}s", "spin",
               *BUSY_LOOP, user=test_user)
    sandbox.ok(ns, "freeze", "spin", user=test_user)
    assert status(sandbox, ns, "spin")["state"] == "frozen"
    sandbox.ok(ns, "thaw", "spin", user=test_user)
    sandbox.ok(ns, "set", "--pids-max", "30", "spin", user=test_user)
    sandbox.ok(ns, "kill", "-s", "KILL", "spin", user=test_user)
    assert sandbox.lanco(ns, "wait", "spin", user=test_user).returncode == 137


SHELLS = {"dash": ["/bin/dash"], "bash": ["/bin/bash"], "busybox-ash": ["/bin/busybox", "ash"]}


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_timeout_and_restart_under_each_shell(sandbox: Sandbox, shell: str, api: None) -> None:
    argv = SHELLS[shell]
    path = argv[0]
    if len(argv) > 1:
        link = sandbox.root / argv[1]
        os.symlink(argv[0], link)
        path = str(link)
    extra = {"LANCO_SHELL": path}
    ns = make_namespace(sandbox)
    sandbox.ok(ns, "run", "--timeout", "500ms", "slow", "sleep", "300", extra_env=extra)
    assert sandbox.lanco(ns, "wait", "slow").returncode == 143
    assert handle(ns, "slow").record().state == "timeout"
    sandbox.ok(ns, "run", "--restart", "always", "--restart-max", "2", "--restart-delay", "10ms", "again",
               "sh", "-c", "exit 0", extra_env=extra)
    assert sandbox.lanco(ns, "wait", "again").returncode == 0
    assert handle(ns, "again").record().restarts == 2
    sandbox.ok(ns, "run", "--restart", "always", "--restart-delay", "1h", "pausing", "false", extra_env=extra)
    assert wait_until(lambda: handle(ns, "pausing").record().state == "restarting")
    sandbox.ok(ns, "stop", "pausing")
    assert handle(ns, "pausing").record().state == "stopped"

