"""A running task whose record, or whole state directory, is damaged or gone: the cgroup tree is the truth, and
every command still checks, shows, signals, stops and waits for the task from it, saying in one line what was
lost."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

from tests.conftest import Sandbox
from tests.integration.conftest import make_namespace, no_process_left, slack, task_pids, wait_until
from tests.integration.test_lifecycle import one_warning

GONE = "task x: its record is gone; known from its cgroup only"


def test_a_task_whose_record_is_gone_is_served_from_its_cgroup(sandbox: Sandbox, mode: str,
                                                               owner: str | None) -> None:
    ns = make_namespace(sandbox, mode, user=owner)
    sandbox.ok(ns, "run", "x", "sleep", "300", user=owner)
    (pid,) = task_pids(sandbox, ns, "x", user=owner)
    record_dir = sandbox.state_dir(ns) / "tasks" / "x"
    shutil.rmtree(record_dir)
    check = sandbox.lanco(ns, "check", "x", user=owner)
    assert check.returncode == 0
    assert one_warning(check.stderr, "check") == GONE
    status = sandbox.lanco(ns, "status", "--json", "x", user=owner)
    assert status.returncode == 0, status.stderr
    assert one_warning(status.stderr, "status") == GONE
    record = json.loads(status.stdout)
    assert record["state"] == "running" and [p["pid"] for p in record["processes"]] == [pid]
    # status made the record directory again (as the owner), so that the monitor's result has a place.
    assert record_dir.is_dir() and record_dir.stat().st_uid == sandbox.state_dir(ns).joinpath("tasks").stat().st_uid
    listing = sandbox.lanco(ns, "ls", user=owner)
    assert f" │  → {pid} sleep 300" in listing.stdout.splitlines() and one_warning(listing.stderr, "ls") == GONE
    kill = sandbox.lanco(ns, "kill", "-s", "CONT", "x", user=owner)
    assert kill.returncode == 0 and one_warning(kill.stderr, "kill") == GONE
    shutil.rmtree(record_dir)
    stop = sandbox.lanco(ns, "stop", "-t", "5", "x", user=owner)
    assert stop.returncode == 0, stop.stderr
    assert one_warning(stop.stderr, "stop") == GONE
    assert no_process_left([pid])
    # The monitor, still alive, wrote its result into the directory stop made again: the stop is known as such.
    ended = json.loads(sandbox.ok(ns, "status", "--json", "x", user=owner).stdout)
    assert ended["state"] == "stopped" and ended["exit_code"] == 143
    assert sandbox.lanco(ns, "check", "x", user=owner).returncode == 1
    sandbox.ok(ns, "run", "x", "true", user=owner)
    assert sandbox.lanco(ns, "wait", "x", user=owner).returncode == 0


def test_wait_for_a_task_whose_record_is_gone_returns_its_end(sandbox: Sandbox, mode: str) -> None:
    ns = make_namespace(sandbox, mode)
    # Long enough for the record to go while it runs, and for the waiter below to come: emulation slows both.
    sandbox.ok(ns, "run", "x", "sh", "-c", f"sleep {slack(1):g}; exit 7")
    shutil.rmtree(sandbox.state_dir(ns) / "tasks" / "x")
    waited = sandbox.lanco(ns, "wait", "-t", "30", "x")
    assert waited.returncode == 7, waited.stderr
    assert one_warning(waited.stderr, "wait") == GONE
    # Removed again while waited for, and nobody left to record the end: wait says so instead of blocking.
    sandbox.ok(ns, "run", "y", "sleep", f"{slack(2):g}")
    record_dir = sandbox.state_dir(ns) / "tasks" / "y"
    shutil.rmtree(record_dir)
    waiter = subprocess.Popen(sandbox.command(ns, "wait", "y"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    assert wait_until(record_dir.is_dir, 10)
    shutil.rmtree(record_dir)
    _, err = waiter.communicate(timeout=30)
    # Two truthful ends: the record's place is gone when the run ends (255, said so), or the waiter made it again
    # after the second removal (it does at each look that finds it gone) and the monitor recorded the real end in
    # it (sleep's 0). Which one comes depends on when the removal falls between the waiter's looks; never another.
    warnings = [line.partition(" ")[2] for line in err.splitlines()]
    assert warnings[0] == "[WARN/wait] task y: its record is gone; known from its cgroup only", err
    if waiter.returncode == 255:
        assert warnings[1:] == ["[WARN/wait] task y: ended with no record of its result"], err
    else:
        assert (waiter.returncode, warnings[1:]) == (0, []), err


def test_a_running_task_whose_record_is_damaged_is_still_stopped(sandbox: Sandbox, mode: str) -> None:
    ns = make_namespace(sandbox, mode)
    sandbox.ok(ns, "run", "x", "sleep", "300")
    (pid,) = task_pids(sandbox, ns, "x")
    spec = sandbox.state_dir(ns) / "tasks" / "x" / "spec.json"
    spec.write_bytes(b"\xff\xfe")
    status = sandbox.lanco(ns, "status", "--json", "x")
    assert status.returncode == 0 and json.loads(status.stdout)["state"] == "running"
    assert one_warning(status.stderr, "status").startswith(f"the record of task x is damaged: {spec}: ")
    assert one_warning(status.stderr, "status").endswith("; the task is known from its cgroup only")
    stop = sandbox.lanco(ns, "stop", "-t", "5", "x")
    assert stop.returncode == 0, stop.stderr
    assert no_process_left([pid])
    # Once it ended, a damaged record is an error again (it is all that is left of the run), and blocks no run.
    assert sandbox.lanco(ns, "status", "x").returncode == 1
    sandbox.ok(ns, "run", "x", "true")
    assert sandbox.lanco(ns, "wait", "x").returncode == 0


def test_init_again_after_the_state_directory_is_gone_recovers_every_task(sandbox: Sandbox, mode: str,
                                                                          owner: str | None) -> None:
    ns = make_namespace(sandbox, mode, user=owner)
    sandbox.ok(ns, "run", "x", "sleep", "300", user=owner)
    (pid,) = task_pids(sandbox, ns, "x", user=owner)
    config = json.loads((sandbox.state_dir(ns) / "config.json").read_text())
    shutil.rmtree(sandbox.state_dir(ns))
    for command in (["check", "x"], ["stop", "x"], ["ls"]):
        refused = sandbox.lanco(ns, *command, user=owner)
        assert refused.returncode == 1
        text = one_warning(refused.stderr, command[0])
        assert text.startswith(f"namespace {ns} has lost its configuration, but its cgroups remain (")
        assert text.endswith("): run init again, as root, for its owner, to recover its tasks")
    # Forced into another mode, init would not find the task: refused, and nothing is made.
    # (hybrid with lanco's named hierarchy as tracker, an unprivileged owner's, and v1 leave the same cgroups.)
    named = config["tracker"] == "named"
    other = "v2" if named else "v1"
    wrong = sandbox.lanco("--cgroup-mode", other, ns, "init", *(["-u", owner] if owner else []))
    assert wrong.returncode == 1
    refusal = re.search(r"are those of cgroup mode (\w+), not (\w+): run init in that mode to recover its tasks$",
                        one_warning(wrong.stderr, "init"))
    assert refusal is not None and refusal[2] == other
    assert refusal[1] in ({"hybrid", "v1"} if named else {mode})
    assert not sandbox.state_dir(ns).exists()
    # init again without a mode takes the one the namespace's cgroups were made in, and every command works.
    sandbox.ok(ns, "init", *(["-u", owner] if owner else []))
    again = json.loads((sandbox.state_dir(ns) / "config.json").read_text())
    # hybrid with lanco's named hierarchy as tracker and v1 leave the same cgroups, and work alike.
    assert again["tracker"] == config["tracker"]
    if again["tracker"] != "named":
        assert again["mode"] == mode
    check = sandbox.lanco(ns, "check", "x", user=owner)
    assert check.returncode == 0 and one_warning(check.stderr, "check") == GONE
    assert task_pids(sandbox, ns, "x", user=owner) == [pid]
    stop = sandbox.lanco(ns, "stop", "x", user=owner)
    assert stop.returncode == 0, stop.stderr
    assert no_process_left([pid])
    assert json.loads(sandbox.ok(ns, "status", "--json", "x", user=owner).stdout)["state"] == "stopped"
