"""The systemd path of an ordinary user: a scope per run asked for over D-Bus, a name run again at once, and a
manager that is missing, refuses, says nothing, hangs up or re-executes itself between two runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from lanco.cgroups.systemd import namespace_slice
from tests.conftest import Sandbox
from tests.guest.conftest import HERE, as_user, status, systemctl_user, uid_of, user_env, wait_until

LINE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d \[WARN/run\] "


def slice_dir(user: str, ns: str) -> Path:
    uid = uid_of(user)
    return Path(f"/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service/lanco.slice/{namespace_slice(ns)}")


def processes_with(token: str) -> list[int]:
    """The processes whose command line holds ``token`` (a word no other test's commands hold)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if token.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def assert_nothing_left(sandbox: Sandbox, ns: str, user: str, task: str, token: str) -> None:
    """No scope, no cgroup, no waiting monitor, no record of ``task``."""
    assert wait_until(lambda: not processes_with(token), timeout=30), processes_with(token)
    scopes = sorted(p.name for p in slice_dir(user, ns).glob(f"lanco-{ns}-{task}-*"))
    assert wait_until(lambda: not list(slice_dir(user, ns).glob(f"lanco-{ns}-{task}-*")), timeout=30), scopes
    units = systemctl_user(user, "list-units", "--all", "--no-legend", "--plain", f"lanco-{ns}-{task}-*",
                           check=False).stdout
    assert units.strip() == "", units
    listed = sandbox.ok(ns, "ls", "--all", "--json", user=user).stdout
    assert f'"{task}"' not in listed, listed
    record = sandbox.state_dir(ns) / "tasks" / task
    assert not (record / "spec.json").exists() and not (record / "result").exists()


@pytest.fixture
def owned_ns(sandbox: Sandbox, alice: str) -> str:
    ns = sandbox.ns_name("sd")
    sandbox.ok(ns, "init", "-u", alice)
    return ns


def test_a_name_stopped_or_ended_runs_again_at_once(sandbox: Sandbox, alice: str, owned_ns: str) -> None:
    ns = owned_ns
    runs = []
    for _ in range(3):
        sandbox.ok(ns, "run", "again", "sleep", "300", user=alice)
        runs.append(str(status(sandbox, ns, "again", alice)["run_id"]))
        sandbox.ok(ns, "stop", "again", user=alice)
    assert len(set(runs)) == 3
    # A run that ended by itself frees the name as well, its scope collected behind it.
    sandbox.ok(ns, "run", "again", "true", user=alice)
    assert sandbox.lanco(ns, "wait", "again", user=alice).returncode == 0
    sandbox.ok(ns, "run", "again", "sleep", "300", user=alice)
    assert sandbox.lanco(ns, "check", "again", user=alice).returncode == 0
    sandbox.ok(ns, "stop", "again", user=alice)
    assert wait_until(lambda: not list(slice_dir(alice, ns).glob(f"lanco-{ns}-again-*")), timeout=60)


def test_a_manager_re_executed_between_two_runs_keeps_both(sandbox: Sandbox, alice: str, owned_ns: str) -> None:
    ns = owned_ns
    sandbox.ok(ns, "run", "before", "sleep", "300", user=alice)
    systemctl_user(alice, "daemon-reexec")
    sandbox.ok(ns, "run", "after", "sleep", "300", user=alice)
    for task in ("before", "after"):
        assert sandbox.lanco(ns, "check", task, user=alice).returncode == 0
        sandbox.ok(ns, "stop", task, user=alice)
        assert sandbox.lanco(ns, "check", task, user=alice).returncode == 1


def fake_runtime_dir(sandbox: Sandbox, alice: str, mode: str | None) -> tuple[Path, subprocess.Popen[bytes] | None]:
    """A runtime directory of alice's whose manager socket is missing (``mode`` None) or served by the stand-in."""
    runtime = sandbox.root / f"runtime-{uuid.uuid4().hex[:6]}"
    (runtime / "systemd").mkdir(parents=True)
    for directory in (sandbox.root, runtime, runtime / "systemd"):
        os.chmod(directory, 0o755)
    uid = uid_of(alice)
    os.chown(runtime, uid, uid)
    os.chown(runtime / "systemd", uid, uid)
    if mode is None:
        return runtime, None
    socket_path = runtime / "systemd" / "private"
    server = subprocess.Popen(as_user(alice, [sys.executable, str(HERE / "fake_manager.py"), str(socket_path), mode],
                                      user_env(alice)))
    assert wait_until(lambda: Path(f"{socket_path}.ready").exists(), timeout=60)
    return runtime, server


@pytest.mark.parametrize("mode", [None, "refuse", "silent", "hangup"])
def test_a_manager_that_fails_gets_one_line_and_leaves_nothing(sandbox: Sandbox, alice: str, owned_ns: str,
                                                               mode: str | None) -> None:
    ns = owned_ns
    runtime, server = fake_runtime_dir(sandbox, alice, mode)
    token = f"{uuid.uuid4().int % 10**6 + 10**6}"
    try:
        result = sandbox.lanco(ns, "run", "t", "sleep", token, user=alice,
                               extra_env={"XDG_RUNTIME_DIR": str(runtime), "LANCO_SYSTEMD_TIMEOUT": "5"}, timeout=120)
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.match(LINE, lines[0]), lines[0]
    expected = {None: "no systemd user manager answers", "refuse": "refused by the test's stand-in manager",
                "silent": "no answer in time", "hangup": "closed the connection"}[mode]
    assert expected in lines[0] or (mode == "hangup" and "connection broke" in lines[0]), lines[0]
    assert_nothing_left(sandbox, ns, alice, "t", token)
    # The real manager is there all along: the name is free for it.
    sandbox.ok(ns, "run", "t", "sleep", "300", user=alice)
    sandbox.ok(ns, "stop", "t", user=alice)


def test_a_launcher_killed_while_the_manager_makes_its_scope_leaves_nothing(sandbox: Sandbox, alice: str,
                                                                          owned_ns: str) -> None:
    ns = owned_ns
    runtime, server = fake_runtime_dir(sandbox, alice, "silent")
    token = f"{uuid.uuid4().int % 10**6 + 10**6}"
    try:
        launcher = subprocess.Popen(sandbox.command(ns, "run", "t", "sleep", token, user=alice,
                                                    extra_env={"XDG_RUNTIME_DIR": str(runtime)}),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The monitor waits (its argv holds the token) while the manager says nothing: kill the launcher then.
        assert wait_until(lambda: any(b"monitor.sh" in cmdline(p) for p in processes_with(token)), timeout=60)
        (lanco,) = [p for p in processes_with(token) if b"lanco" in cmdline(p) and b"monitor.sh" not in cmdline(p)
                    and b"runuser" not in cmdline(p) and p != launcher.pid]
        os.kill(lanco, 9)
        launcher.wait(30)
    finally:
        assert server is not None
        server.terminate()
        server.wait(30)
    assert_nothing_left(sandbox, ns, alice, "t", token)
    assert "t" not in sandbox.ok(ns, "ls", "--all", user=alice).stdout


def scope_description(user: str, ns: str, task: str) -> str:
    """The Description= of the one scope of ``task``'s run, as the user's manager tells it."""
    (scope,) = slice_dir(user, ns).glob(f"lanco-{ns}-{task}-*.scope")
    return systemctl_user(user, "show", "-p", "Description", "--value", scope.name).stdout.strip()


def test_the_description_of_a_run_is_its_scopes(sandbox: Sandbox, alice: str, owned_ns: str) -> None:
    """run --description reaches the scope unit's Description=; without one, the scope keeps lanco's own."""
    ns = owned_ns
    text = "the shop's web server, with spaces"
    sandbox.ok(ns, "run", "--description", text, "--label", "app=shop", "described", "sleep", "300", user=alice)
    sandbox.ok(ns, "run", "plain", "sleep", "300", user=alice)
    try:
        assert scope_description(alice, ns, "described") == text
        assert scope_description(alice, ns, "plain") == f"lanco {ns} plain"
        record = status(sandbox, ns, "described", alice)
        assert record["description"] == text and record["labels"] == {"app": "shop"}
    finally:
        sandbox.ok(ns, "stop", "--label", "app=shop", user=alice)
        sandbox.ok(ns, "stop", "plain", user=alice)
    assert sandbox.lanco(ns, "check", "described", user=alice).returncode == 1
