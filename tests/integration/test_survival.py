"""Tasks outlive whoever started them; a dead monitor loses no task; shells other than dash work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import Sandbox
from tests.integration.conftest import (
    alive,
    make_namespace,
    no_process_left,
    task_pids,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]


def kill_session(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def read_monitor_pid(sandbox: Sandbox, ns: str, task: str) -> int:
    text = (sandbox.state_dir(ns) / "tasks" / task / "monitor").read_text().split()
    return int(text[0])


def test_cli_submitter_killed_with_its_session(sandbox: Sandbox) -> None:
    ns = make_namespace(sandbox)
    script = " ".join(sandbox.command(ns, "run", "orphan", "sleep", "300")) + " && echo started && sleep 300"
    proc = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None and proc.stdout.readline() == "started\n"
    kill_session(proc)
    assert sandbox.lanco(ns, "check", "orphan").returncode == 0
    (pid,) = task_pids(sandbox, ns, "orphan")
    assert os.getsid(pid) != proc.pid
    sandbox.ok(ns, "stop", "orphan")
    assert json.loads(sandbox.ok(ns, "status", "--json", "orphan").stdout)["state"] == "stopped"


def test_api_submitter_killed_with_its_session(sandbox: Sandbox) -> None:
    ns = make_namespace(sandbox)
    program = textwrap.dedent(f"""
        import sys, time, lanco
        ns = lanco.Namespace({ns!r})
        task = ns.run("daemon-task", ["sh", "-c", "sleep 300 & sleep 300"])
        assert task.is_running()
        print("started", flush=True)
        time.sleep(300)
    """)
    env = {**os.environ, **sandbox.env}
    proc = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True,
                            start_new_session=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline() == "started\n"
    kill_session(proc)
    assert wait_until(lambda: len(task_pids(sandbox, ns, "daemon-task")) >= 2)
    sandbox.ok(ns, "stop", "daemon-task")
    assert sandbox.lanco(ns, "check", "daemon-task").returncode == 1


def test_killed_monitor_loses_no_task_and_hooks_once(sandbox: Sandbox) -> None:
    ns = make_namespace(sandbox)
    hook_out = sandbox.root / "hook.out"
    sandbox.ok(ns, "run", "-c", f"echo $LANCO_RESULT >> {hook_out}", "lonely", "sleep", "300")
    monitor = read_monitor_pid(sandbox, ns, "lonely")
    os.kill(monitor, signal.SIGKILL)
    assert wait_until(lambda: not alive(monitor))
    assert sandbox.lanco(ns, "check", "lonely").returncode == 0
    assert json.loads(sandbox.ok(ns, "status", "--json", "lonely").stdout)["state"] == "running"
    pids = task_pids(sandbox, ns, "lonely")
    sandbox.ok(ns, "stop", "lonely")
    assert no_process_left(pids)
    for _ in range(3):
        assert json.loads(sandbox.ok(ns, "status", "--json", "lonely").stdout)["state"] == "lost"
    assert sandbox.lanco(ns, "wait", "lonely").returncode == 255
    assert wait_until(lambda: hook_out.exists())
    sandbox.ok(ns, "ls", "--all")
    assert hook_out.read_text() == "lost\n"
    # The name is free again.
    sandbox.ok(ns, "run", "lonely", "true")
    assert sandbox.lanco(ns, "wait", "lonely").returncode == 0


def test_monitor_killed_after_the_task_ended(sandbox: Sandbox) -> None:
    ns = make_namespace(sandbox)
    sandbox.ok(ns, "run", "short", "sleep", "1")
    os.kill(read_monitor_pid(sandbox, ns, "short"), signal.SIGKILL)
    assert sandbox.lanco(ns, "wait", "short").returncode == 255
    assert sandbox.lanco(ns, "check", "short").returncode == 1
    sandbox.ok(ns, "run", "short", "true")


@pytest.mark.slow
def test_reinstalling_lanco_leaves_tasks_and_monitors_alone(sandbox: Sandbox) -> None:
    venv = sandbox.root / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps"]
    subprocess.run([*pip, str(REPO)], check=True, capture_output=True)
    lanco = str(venv / "bin" / "lanco")
    env = {**os.environ, **sandbox.env}
    ns = sandbox.ns_name()
    subprocess.run([lanco, ns, "init"], check=True, env=env)
    subprocess.run([lanco, ns, "run", "survivor", "sh", "-c", "sleep 300 & wait"], check=True, env=env)
    monitor = read_monitor_pid(sandbox, ns, "survivor")
    pids = task_pids(sandbox, ns, "survivor")
    subprocess.run([*pip, "--force-reinstall", str(REPO)], check=True, capture_output=True)
    assert alive(monitor) and all(alive(p) for p in pids)
    assert subprocess.run([lanco, ns, "check", "survivor"], env=env).returncode == 0
    subprocess.run([lanco, ns, "stop", "survivor"], check=True, env=env)
    status = subprocess.run([lanco, ns, "status", "--json", "survivor"], env=env, capture_output=True, text=True)
    assert json.loads(status.stdout)["state"] == "stopped"
    assert wait_until(lambda: not alive(monitor))


SHELLS = {"dash": ["/bin/dash"], "bash": ["/bin/bash"], "busybox-ash": ["/bin/busybox", "ash"]}


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_monitor_runs_under_each_shell(sandbox: Sandbox, shell: str, mode: str) -> None:
    argv = SHELLS[shell]
    if not os.path.exists(argv[0]):
        pytest.fail(f"{argv[0]} is missing: the test set-up installs it")
    if len(argv) > 1:
        # busybox picks the applet from argv[0]: give it a link named after the applet.
        link = sandbox.root / argv[1]
        os.symlink(argv[0], link)
        path = str(link)
    else:
        path = argv[0]
    extra = {"LANCO_SHELL": path}
    ns = make_namespace(sandbox, mode)
    hook_out = sandbox.root / "hook.out"
    sandbox.ok(ns, "run", "-c", f"echo $LANCO_RESULT $LANCO_EXIT_CODE >> {hook_out}", "code", "sh", "-c",
               "exit 3", extra_env=extra)
    assert sandbox.lanco(ns, "wait", "code").returncode == 3
    sandbox.ok(ns, "run", "forks", "sh", "-c", "while true; do (sleep 30 &)& sleep 1; done", extra_env=extra)
    monitor = read_monitor_pid(sandbox, ns, "forks")
    with open(f"/proc/{monitor}/cmdline", "rb") as f:
        assert os.path.basename(f.read().split(b"\0")[0].decode()) == os.path.basename(path)
    assert wait_until(lambda: len(task_pids(sandbox, ns, "forks")) >= 3)
    pids = task_pids(sandbox, ns, "forks")
    sandbox.ok(ns, "stop", "forks")
    assert no_process_left(pids)
    assert json.loads(sandbox.ok(ns, "status", "--json", "forks").stdout)["state"] == "stopped"
    sandbox.ok(ns, "run", "leftover", "sh", "-c", "sleep 1 & exit 0", extra_env=extra)
    assert sandbox.lanco(ns, "wait", "leftover").returncode == 0
    assert wait_until(lambda: hook_out.exists())
    assert hook_out.read_text() == "exited 3\n"
