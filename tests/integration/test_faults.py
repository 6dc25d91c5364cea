"""A launcher killed at every moment of its launch: the task ends up running and fully tracked, or as nothing at
all (no record, no hook, the name free), for the command line and the API, with and without an exit hook."""

from __future__ import annotations

import json
import os
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


def assert_hooks(expected: list[tuple[Path, str]]) -> None:
    """Each trial's hook file holds what is expected of it: a run that never happened fired no hook (""); one that
    did, exactly once, with its true result."""
    for hook_file, text in expected:
        if text:
            assert wait_until(hook_file.exists, timeout=10), hook_file
    time.sleep(0.5)  # a stray hook of a run that never happened would have fired by now
    for hook_file, text in expected:
        assert (hook_file.read_text() if hook_file.exists() else "") == text, hook_file


@pytest.mark.parametrize("via", ["cli", "api"])
def test_a_launcher_killed_in_every_millisecond_of_its_launch(sandbox: Sandbox, ns: str, via: str,
                                                             tmp_path: Path) -> None:
    outcomes = {"running": 0, "nothing": 0}
    hooks: list[tuple[Path, str]] = []
    steps = int(SPAN_S / STEP_S) + 1
    # Past the sweep, on a machine so busy that no launch finished within it, the moments go on, each 40 %
    # longer than the last, until one does: both outcomes must be seen (at most 12 more, up to some 50 times SPAN).
    delays = [step * STEP_S for step in range(steps)] + [SPAN_S * 1.4 ** extra for extra in range(1, 13)]
    for step, delay in enumerate(delays):
        if step >= steps and outcomes["running"]:
            break
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
    assert_hooks(hooks)
    assert outcomes["running"] and outcomes["nothing"], outcomes


FAULT_TRIALS = 170
"""Trials per cgroup mode of the random fault injection: over 500 in the three modes."""


def launched(sandbox: Sandbox, ns: str, hook_file: Path) -> subprocess.Popen[bytes]:
    hook = f"echo $LANCO_RESULT >> {hook_file}"
    return subprocess.Popen(sandbox.command(ns, "run", "-c", hook, "t", "sleep", "300"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_random_kills_of_launcher_monitor_and_stop(sandbox: Sandbox, ns: str, tmp_path: Path) -> None:
    """SIGKILL of the launcher, the monitor or ``stop`` at a random moment. Afterwards the task is running and
    tracked or nothing, it can be stopped by name, its hook has run once with the truth (``stopped``, or ``lost``
    where its monitor died), or not at all for a run that never started, and the name is usable again."""
    import random

    rng = random.Random(f"{ns}-faults")
    expected: list[tuple[Path, str]] = []
    seen = {"launcher": 0, "monitor": 0, "stop": 0}
    for trial in range(FAULT_TRIALS):
        victim = rng.choice(["launcher", "monitor", "stop"])
        seen[victim] += 1
        hook_file = tmp_path / f"hook-{trial}"
        record_dir = sandbox.state_dir(ns) / "tasks" / "t"
        launcher = launched(sandbox, ns, hook_file)
        if victim == "launcher":
            time.sleep(rng.uniform(0.0, 0.08))
            launcher.send_signal(signal.SIGKILL)
            launcher.wait()
            if settled(sandbox, ns, "t") == "running":
                sandbox.ok(ns, "stop", "t")
                expected.append((hook_file, "stopped\n"))
            else:
                expected.append((hook_file, ""))
        else:
            assert launcher.wait() == 0
            if victim == "monitor":
                monitor = int((record_dir / "monitor").read_text().split()[0])
                time.sleep(rng.uniform(0.0, 0.05))
                os.kill(monitor, signal.SIGKILL)
                # The task runs on, tracked by its cgroup: checked and stopped by name; its end is lost.
                assert sandbox.lanco(ns, "check", "t").returncode == 0
                sandbox.ok(ns, "stop", "t")
                expected.append((hook_file, "lost\n"))
            else:
                stopper = subprocess.Popen(sandbox.command(ns, "stop", "t"), stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
                time.sleep(rng.uniform(0.0, 0.08))
                stopper.send_signal(signal.SIGKILL)
                stopper.wait()
                # Whatever the killed stop had done, a second one (or none, if the first got that far) ends it.
                if sandbox.lanco(ns, "check", "t").returncode == 0:
                    again = sandbox.lanco(ns, "stop", "t")
                    assert again.returncode in (0, 1), again.stderr  # 1: the task ended meanwhile
                expected.append((hook_file, "stopped\n"))
        # The name is usable again, and the run's record settles to what was expected of it.
        assert wait_until(lambda: sandbox.lanco(ns, "check", "t").returncode == 1, timeout=20)
        status = sandbox.lanco(ns, "status", "--json", "t")
        if expected[-1][1]:
            assert status.returncode == 0 and json.loads(status.stdout)["state"] == expected[-1][1].strip(), \
                (victim, status.stdout, status.stderr)
        sandbox.ok(ns, "run", "t", "true")
        assert sandbox.lanco(ns, "wait", "t").returncode == 0
        sandbox.ok(ns, "release", "t")
    assert_hooks(expected)
    assert all(seen.values()), seen
