"""A launcher killed at every moment of its launch: the task ends up running and fully tracked, or as nothing at
all (no record, no hook, the name free), for the command line and the API, with and without an exit hook."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Sandbox
from tests.integration.conftest import EMULATED, alive, wait_until

STEP_S = 0.04 if EMULATED else 0.001
"""Kill moments 1 ms apart natively, over the first 60 ms; in the emulated guest, where a launch takes 20 to 40
times as long and each trial's commands seconds, 40 ms apart over 400 ms."""
SPAN_S = 0.4 if EMULATED else 0.06

API_LAUNCHER = """
import os, sys
import lanco
ns = lanco.Namespace(sys.argv[1])
hook = sys.argv[3] or None
sys.stdout.write("ready\\n"); sys.stdout.flush()
ns.run(sys.argv[2], ["sleep", "300"], exit_command=hook)
"""


def settled(sandbox: Sandbox, ns: str, task: str) -> str:
    """``running`` (tracked: its record says so, its monitor lives) or ``nothing`` (no record at all), once the
    launch's leftovers (an abandoned monitor cleaning up) are done."""
    state = {"value": ""}

    def look() -> bool:
        running = sandbox.lanco(ns, "check", task).returncode == 0
        status = sandbox.lanco(ns, "status", "--json", task)
        if running and status.returncode != 0:
            return False  # an abandoned launch's monitor between its task's exit and the removal of its cgroup
        if running:
            record = json.loads(status.stdout)
            monitor = (sandbox.state_dir(ns) / "tasks" / task / "monitor").read_text().split()
            if record["state"] == "running" and record["processes"] and alive(int(monitor[0])):
                state["value"] = "running"
                return True
            return False
        if status.returncode != 0 and "not known" in status.stderr:
            state["value"] = "nothing"
            return True
        return False

    assert wait_until(look, timeout=20, interval=0.02), sandbox.lanco(ns, "status", task).stderr
    return state["value"]


@pytest.mark.parametrize("via", ["cli", "api"])
def test_a_launcher_killed_in_every_millisecond_of_its_launch(sandbox: Sandbox, ns: str, via: str,
                                                             tmp_path: Path) -> None:
    outcomes = {"running": 0, "nothing": 0}
    hooks: list[tuple[Path, str]] = []
    steps = int(SPAN_S / STEP_S) + 1
    for step in range(steps):
        delay = step * STEP_S
        with_hook = step % 2 == 0
        hook_file = tmp_path / f"hook-{step}"
        hook = f"echo $LANCO_RESULT >> {hook_file}" if with_hook else ""
        if via == "cli":
            argv = sandbox.command(ns, "run", *(["-c", hook] if hook else []), "victim", "sleep", "300")
            launcher = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            argv = ["env", *(f"{k}={v}" for k, v in sandbox.env.items()), sys.executable, "-c", API_LAUNCHER, ns,
                    "victim", hook]
            launcher = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert launcher.stdout is not None and launcher.stdout.readline() == b"ready\n"
        time.sleep(delay)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        outcome = settled(sandbox, ns, "victim")
        outcomes[outcome] += 1
        if outcome == "running":
            sandbox.ok(ns, "stop", "victim")
            if with_hook:
                hooks.append((hook_file, "stopped\n"))
        elif with_hook:
            hooks.append((hook_file, ""))
        # The name works again at once, whatever happened.
        sandbox.ok(ns, "run", "victim", "true")
        assert sandbox.lanco(ns, "wait", "victim").returncode == 0
        sandbox.ok(ns, "release", "victim")  # so that the next trial's "nothing" is no record at all
    for hook_file, expected in hooks:
        if expected:
            assert wait_until(hook_file.exists, timeout=10), hook_file
    time.sleep(0.5)
    for hook_file, expected in hooks:
        # A run that never happened fires no hook; one that did, exactly once, with its true result.
        assert (hook_file.read_text() if hook_file.exists() else "") == expected, hook_file
    assert outcomes["running"] and outcomes["nothing"], outcomes
