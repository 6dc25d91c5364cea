"""The task lifecycle on the real kernel, in every cgroup mode (forced through --cgroup-mode)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from tests.conftest import Sandbox
from tests.integration.conftest import EMULATED, alive, no_process_left, slack, task_pids, wait_until

MESSAGE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d \[WARN/(\w+)\] (.+)$")


def one_warning(stderr: str, command: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    match = MESSAGE.match(lines[0])
    assert match and match.group(1) == command, stderr
    return match.group(2)


def test_quick_tour(sandbox: Sandbox, ns: str) -> None:
    sandbox.ok(ns, "run", "first-task", "openssl", "speed", "aes")
    assert sandbox.lanco(ns, "check", "first-task").returncode == 0
    tree = sandbox.ok(ns, "ls").stdout.splitlines()
    assert tree[0] == ns
    assert tree[1] == " ├ first-task"
    assert re.fullmatch(r" │  → \d+ openssl speed aes", tree[2])
    log = sandbox.log_dir(ns) / "task-first-task.log"
    assert wait_until(lambda: log.exists() and "Doing aes" in log.read_text())
    sandbox.ok(ns, "stop", "first-task")
    assert sandbox.lanco(ns, "check", "first-task").returncode == 1

    sandbox.ok(ns, "run", "second-task", "sh", "-c", "while true; do (sleep 30 &)& sleep 1; done")
    assert wait_until(lambda: len(task_pids(sandbox, ns, "second-task")) >= 4)
    pids = task_pids(sandbox, ns, "second-task")
    sandbox.ok(ns, "stop", "second-task")
    assert sandbox.lanco(ns, "check", "second-task").returncode == 1
    assert no_process_left(pids)


def test_double_fork_and_setsid_are_tracked_and_stopped(sandbox: Sandbox, ns: str) -> None:
    script = "setsid sh -c 'sleep 300 & sleep 300' & (sh -c 'sleep 300 &' &); exec sleep 300"
    sandbox.ok(ns, "run", "escaper", "sh", "-c", script)
    assert wait_until(lambda: len(task_pids(sandbox, ns, "escaper")) >= 4)
    pids = task_pids(sandbox, ns, "escaper")
    sandbox.ok(ns, "stop", "escaper")
    assert no_process_left(pids)


def test_fork_bomb_is_stopped_whole(sandbox: Sandbox, ns: str) -> None:
    # Bounded: each process forks two children until depth 9, so at most 1023 processes ever exist.
    bomb = "b() { if [ $1 -gt 0 ]; then b $(($1-1)) & b $(($1-1)) & fi; exec sleep 300; }; b 9"
    sandbox.ok(ns, "run", "bomb", "sh", "-c", bomb)
    time.sleep(0.3)  # stop it while it is still spawning
    sandbox.ok(ns, "stop", "-t", "1", "bomb")
    assert sandbox.lanco(ns, "check", "bomb").returncode == 1
    record = json.loads(sandbox.ok(ns, "status", "--json", "bomb").stdout)
    assert record["state"] == "stopped"
    assert record["processes"] == []


@pytest.mark.parametrize(("script", "state", "code", "signal"), [
    ("exit 0", "exited", 0, None),
    ("exit 3", "exited", 3, None),
    ("kill -KILL $$", "killed", 137, 9),
    ("kill -SEGV $$", "killed", 139, 11),
])
def test_results(sandbox: Sandbox, ns: str, script: str, state: str, code: int, signal: int | None) -> None:
    sandbox.ok(ns, "run", "t", "sh", "-c", script)
    assert sandbox.lanco(ns, "wait", "t").returncode == code
    record = json.loads(sandbox.ok(ns, "status", "--json", "t").stdout)
    assert (record["state"], record["exit_code"], record["signal"]) == (state, code, signal)
    assert record["ended_epoch_s"] >= record["started_epoch_s"]
    text = sandbox.ok(ns, "status", "t").stdout
    assert re.search(rf"state: {state}", text) and re.search(rf"exit code: {code}$", text, re.M)


def test_run_foreground_returns_the_task_code(sandbox: Sandbox, ns: str) -> None:
    result = sandbox.lanco(ns, "run", "-f", "fg", "sh", "-c", "echo out; echo err >&2; exit 5")
    assert result.returncode == 5
    assert result.stdout == "out\n" and result.stderr == "err\n"
    assert json.loads(sandbox.ok(ns, "status", "--json", "fg").stdout)["exit_code"] == 5


def test_stopped_result_and_wait_of_a_finished_task(sandbox: Sandbox, ns: str) -> None:
    sandbox.ok(ns, "run", "t", "sleep", "300")
    sandbox.ok(ns, "stop", "t")
    record = json.loads(sandbox.ok(ns, "status", "--json", "t").stdout)
    assert (record["state"], record["exit_code"], record["signal"]) == ("stopped", 143, 15)
    assert sandbox.lanco(ns, "wait", "t").returncode == 143


def test_stop_kills_a_task_ignoring_sigterm_after_the_timeout(sandbox: Sandbox, ns: str) -> None:
    sandbox.ok(ns, "run", "stubborn", "sh", "-c", "trap '' TERM; sleep 300 & while true; do sleep 1; done")
    assert wait_until(lambda: len(task_pids(sandbox, ns, "stubborn")) >= 2)
    started = time.monotonic()
    sandbox.ok(ns, "stop", "-t", "1", "stubborn")
    assert time.monotonic() - started < 1 + slack(4)
    assert json.loads(sandbox.ok(ns, "status", "--json", "stubborn").stdout)["state"] == "stopped"


def test_stop_of_several_tasks_waits_for_them_together(sandbox: Sandbox, ns: str) -> None:
    stubborn = "trap '' TERM; sleep 300 & while true; do sleep 1; done"
    for name in ("s1", "s2", "s3"):
        sandbox.ok(ns, "run", name, "sh", "-c", stubborn)
    sandbox.ok(ns, "run", "polite", "sleep", "300")
    sandbox.ok(ns, "run", "bystander", "sleep", "300")
    assert wait_until(lambda: all(len(task_pids(sandbox, ns, n)) >= 2 for n in ("s1", "s2", "s3")))
    pids = [p for n in ("s1", "s2", "s3", "polite") for p in task_pids(sandbox, ns, n)]
    grace = 8 if EMULATED else 2
    started = time.monotonic()
    result = sandbox.lanco(ns, "stop", "-t", str(grace), "s1", "s2", "nosuch", "s3", "polite")
    # One by one, the three tasks ignoring SIGTERM would take their grace each: three times as long.
    assert time.monotonic() - started < grace + slack(1.5)
    assert result.returncode == 1
    assert one_warning(result.stderr, "stop") == "task nosuch is not running"
    for name in ("s1", "s2", "s3", "polite"):
        assert json.loads(sandbox.ok(ns, "status", "--json", name).stdout)["state"] == "stopped", name
    assert no_process_left(pids)
    assert sandbox.lanco(ns, "check", "bystander").returncode == 0

    sandbox.ok(ns, "stop", "--all")
    assert json.loads(sandbox.ok(ns, "status", "--json", "bystander").stdout)["state"] == "stopped"
    assert sandbox.ok(ns, "stop", "--all").stderr == ""  # nothing left to stop is no failure


def test_name_is_reusable_after_the_task_ends(sandbox: Sandbox, ns: str) -> None:
    for code in (1, 2):
        sandbox.ok(ns, "run", "again", "sh", "-c", f"exit {code}")
        assert sandbox.lanco(ns, "wait", "again").returncode == code


def test_task_keeps_default_signal_dispositions(sandbox: Sandbox, ns: str) -> None:
    # Started as nohup does, ignoring SIGHUP, and as a shell's & job does, ignoring SIGINT and SIGQUIT.
    ignoring = [sys.executable, "-c", "import os, signal, sys\n"
                "for s in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT): signal.signal(s, signal.SIG_IGN)\n"
                "os.execvp(sys.argv[1], sys.argv[1:])"]
    launch = subprocess.run([*ignoring, *sandbox.command(ns, "run", "sig", "sleep", "300")], capture_output=True,
                            text=True, check=False)
    assert launch.returncode == 0, launch.stderr
    (pid,) = task_pids(sandbox, ns, "sig")
    with open(f"/proc/{pid}/status") as f:
        ignored = next(line for line in f if line.startswith("SigIgn:")).split()[1]
    assert int(ignored, 16) == 0
    os.kill(pid, 2)
    assert wait_until(lambda: not alive(pid))
    assert sandbox.lanco(ns, "wait", "sig").returncode == 130
    assert json.loads(sandbox.ok(ns, "status", "--json", "sig").stdout)["signal"] == 2


def test_children_left_behind_keep_the_task_running(sandbox: Sandbox, ns: str) -> None:
    # The child outlives a check even in the emulated guest of tests/vm, where a lanco command takes a second.
    sandbox.ok(ns, "run", "parent", "sh", "-c", "sleep 3 & exit 4")
    time.sleep(0.3)
    assert sandbox.lanco(ns, "check", "parent").returncode == 0
    assert sandbox.lanco(ns, "wait", "parent").returncode == 4
    assert sandbox.lanco(ns, "check", "parent").returncode == 1


def test_exit_hook_runs_once_with_the_result(sandbox: Sandbox, ns: str) -> None:
    out = sandbox.root / "hook.out"
    hook = f'echo "$LANCO_NAMESPACE $LANCO_TASK $LANCO_RESULT $LANCO_EXIT_CODE $LANCO_SIGNAL" >> {out}'
    sandbox.ok(ns, "run", "-c", hook, "hooked", "sh", "-c", "exit 3")
    sandbox.lanco(ns, "wait", "hooked")
    assert wait_until(lambda: out.exists())
    time.sleep(0.2)
    assert out.read_text() == f"{ns} hooked exited 3 \n"


def test_log_rotation_keeps_five(sandbox: Sandbox, ns: str) -> None:
    for i in range(7):
        sandbox.ok(ns, "run", "r", "sh", "-c", f"echo run {i}")
        sandbox.lanco(ns, "wait", "r")
    log = sandbox.log_dir(ns) / "task-r.log"
    assert log.read_text() == "run 6\n"
    assert [(sandbox.log_dir(ns) / f"task-r.log.{i}").read_text() for i in range(1, 6)] == \
        [f"run {6 - i}\n" for i in range(1, 6)]
    assert not (sandbox.log_dir(ns) / "task-r.log.6").exists()
    sandbox.ok(ns, "run", "-L", "r", "sh", "-c", "echo appended")
    sandbox.lanco(ns, "wait", "r")
    assert log.read_text() == "run 6\nappended\n"


def test_log_symlink_is_refused(sandbox: Sandbox, ns: str) -> None:
    target = sandbox.root / "victim"
    target.write_text("precious\n")
    os.symlink(target, sandbox.log_dir(ns) / "task-s.log.tmp")
    link = sandbox.log_dir(ns) / "custom.log"
    os.symlink(target, link)
    result = sandbox.lanco(ns, "run", "-L", "-l", str(link), "s", "echo", "hi")
    assert result.returncode == 1
    assert "symbolic link" in one_warning(result.stderr, "run")
    assert target.read_text() == "precious\n"
    assert sandbox.lanco(ns, "check", "s").returncode == 1


def test_concurrent_runs_of_one_name_start_one_task(sandbox: Sandbox, ns: str) -> None:
    procs = [subprocess.Popen(sandbox.command(ns, "run", "race", "sleep", "300"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(20)]
    results = [(p.wait(60), p.stderr.read() if p.stderr else "") for p in procs]
    assert sorted(code for code, _ in results) == [0] + [1] * 19
    for code, err in results:
        if code:
            assert one_warning(err, "run") == "task race is already running"
    assert len(task_pids(sandbox, ns, "race")) == 1
    sandbox.ok(ns, "stop", "race")


def test_release_forgets_a_finished_task_and_refuses_a_running_one(sandbox: Sandbox, ns: str) -> None:
    sandbox.ok(ns, "run", "done", "true")
    sandbox.lanco(ns, "wait", "done")
    sandbox.ok(ns, "run", "busy", "sleep", "300")
    result = sandbox.lanco(ns, "release", "busy")
    assert result.returncode == 1 and one_warning(result.stderr, "release") == "task busy is running"
    result = sandbox.lanco(ns, "release")
    assert result.returncode == 1 and "has running tasks: busy" in one_warning(result.stderr, "release")
    dry = sandbox.ok(ns, "release", "-n", "done").stdout
    assert "would remove" in dry and (sandbox.state_dir(ns) / "tasks" / "done").exists()
    sandbox.ok(ns, "release", "done")
    assert not (sandbox.state_dir(ns) / "tasks" / "done").exists()
    assert sandbox.lanco(ns, "status", "done").returncode == 1
    sandbox.ok(ns, "stop", "busy")
