"""The quick tour of the README on a pure cgroup v2 host with systemd, as root and as a lingering user, with the
memory limit really enforced through the v2 memory controller."""

from __future__ import annotations

import os
import re
import shlex

import pytest

from lanco.cgroups.systemd import task_scope
from tests.conftest import Sandbox
from tests.guest.conftest import (
    as_user,
    cgroup_of,
    run,
    run_api,
    shared_dir,
    status,
    systemctl_user,
    uid_of,
    user_env,
    wait_until,
)

MIB = 1 << 20


def quick_tour(sandbox: Sandbox, ns: str, user: str | None) -> list[int]:
    """The README's tour; returns the pids of first-task, for the caller's checks of where it ran."""
    sandbox.ok(ns, "run", "-m", "32M", "first-task", "openssl", "speed", "aes", user=user)
    assert sandbox.lanco(ns, "check", "first-task", user=user).returncode == 0
    tree = sandbox.ok(ns, "ls", user=user).stdout.splitlines()
    assert tree[:2] == [ns, " ├ first-task"] and re.fullmatch(r" │  → \d+ openssl speed aes", tree[2]), tree
    record = status(sandbox, ns, "first-task", user)
    pids = [int(p["pid"]) for p in record["processes"]]  # type: ignore[attr-defined]
    # -m is the task cgroup's memory.max, read back from the kernel.
    with open(f"/sys/fs/cgroup{cgroup_of(pids[0])}/memory.max", encoding="ascii") as f:
        assert int(f.read()) == 32 * MIB
    log = sandbox.log_dir(ns) / "task-first-task.log"
    assert wait_until(lambda: log.exists() and "Doing aes" in log.read_text(), timeout=60)
    sandbox.ok(ns, "stop", "first-task", user=user)
    sandbox.ok(ns, "run", "second-task", "sh", "-c", "while true; do (sleep 30 &)& sleep 1; done", user=user)
    assert wait_until(lambda: len(status(sandbox, ns, "second-task", user)["processes"]) >= 4)  # type: ignore[arg-type]
    sandbox.ok(ns, "stop", "second-task", user=user)
    assert sandbox.lanco(ns, "check", "second-task", user=user).returncode == 1
    return pids


def memory_limit_is_enforced(sandbox: Sandbox, ns: str, user: str | None) -> None:
    """A task that allocates more than its -m ends, whole, with the result oom."""
    hog = "x = b'a' * (256 << 20); import time; time.sleep(60)"
    sandbox.ok(ns, "run", "-m", "32M", "hog", "sh", "-c", f"sleep 60 & python3 -c \"{hog}\"", user=user)
    result = sandbox.lanco(ns, "wait", "hog", user=user, timeout=120)
    record = status(sandbox, ns, "hog", user)
    assert record["state"] == "oom", record
    assert result.returncode == 137, result.stderr
    assert int(record["oom_kills"] or 0) >= 1  # type: ignore[call-overload]
    assert int(record["memory_peak_bytes"] or 0) <= 32 * MIB  # type: ignore[call-overload]


def test_quick_tour_as_root(sandbox: Sandbox) -> None:
    ns = sandbox.ns_name()
    sandbox.ok(ns, "init")
    pids = quick_tour(sandbox, ns, None)
    # Outside every unit: below the namespace's base at the root of the tree.
    assert cgroup_of_dead_or(pids) in ("", f"{sandbox.base}/{ns}/first-task")
    memory_limit_is_enforced(sandbox, ns, None)


def cgroup_of_dead_or(pids: list[int]) -> str:
    try:
        return cgroup_of(pids[0])
    except (OSError, StopIteration):
        return ""


def test_quick_tour_as_a_lingering_user(sandbox: Sandbox, alice: str) -> None:
    ns = sandbox.ns_name("tour")
    sandbox.ok(ns, "init", "-u", alice, "-g", alice)
    sandbox.ok(ns, "run", "probe", "sleep", "300", user=alice)
    probe = status(sandbox, ns, "probe", alice)
    (pid,) = [int(p["pid"]) for p in probe["processes"]]  # type: ignore[attr-defined]
    uid = uid_of(alice)
    scope = task_scope(ns, "probe", str(probe["run_id"]))
    manager = f"/user.slice/user-{uid}.slice/user@{uid}.service"
    assert cgroup_of(pid) == f"{manager}/lanco.slice/lanco-{ns}.slice/{scope}/task"
    assert os.stat(f"/proc/{pid}").st_uid == uid
    # The scope is a unit of the user's manager, delegated, that systemd's own tools show with its task.
    assert systemctl_user(alice, "is-active", scope).stdout.strip() == "active"
    assert systemctl_user(alice, "show", "-p", "Delegate", "--value", scope).stdout.strip() == "yes"
    assert systemctl_user(alice, "show", "-p", "Description", "--value", scope).stdout.strip() == f"lanco {ns} probe"
    shown = systemctl_user(alice, "status", "--no-pager", f"lanco-{ns}-probe-*", check=False).stdout
    assert scope in shown and f"lanco {ns} probe" in shown and "sleep 300" in shown, shown
    tree = run(as_user(alice, ["systemd-cgls", "--user", "--no-pager"], user_env(alice))).stdout
    assert scope in tree and "task" in tree and "sleep 300" in tree, tree
    sandbox.ok(ns, "stop", "probe", user=alice)
    assert wait_until(lambda: systemctl_user(alice, "is-active", scope, check=False).returncode != 0)
    quick_tour(sandbox, ns, alice)
    memory_limit_is_enforced(sandbox, ns, alice)


def test_a_limit_systemd_does_not_delegate_is_refused_by_name(sandbox: Sandbox, alice: str) -> None:
    ns = sandbox.ns_name()
    sandbox.ok(ns, "init", "-u", alice)
    program = ("import lanco, sys\n"
               f"ns = lanco.Namespace({ns!r})\n"
               "try:\n"
               "    ns.run('pinned', ['sleep', '30'], cpuset='0')\n"
               "except lanco.LimitUnavailable as exc:\n"
               "    print(exc.message); sys.exit(3)\n")
    result = run_api(sandbox, program, user=alice)
    assert result.returncode == 3, result.stderr
    assert "cpuset controller" in result.stdout and "does not delegate" in result.stdout, result.stdout
    assert sandbox.lanco(ns, "check", "pinned", user=alice).returncode == 1


@pytest.mark.parametrize("who", ["root", "owner"])
def test_name_is_reused_at_once_and_from_an_exit_hook(sandbox: Sandbox, alice: str, who: str) -> None:
    user = None if who == "root" else alice
    ns = sandbox.ns_name()
    sandbox.ok(ns, "init", "-u", alice)
    for _ in range(3):
        sandbox.ok(ns, "run", "again", "true", user=user)
        assert sandbox.lanco(ns, "wait", "again", user=user).returncode == 0
    # The hook starts the same name again: the previous run's scope must not stand in the way.
    marker = shared_dir(sandbox) / f"hook-restarted-{who}"
    again = shlex.join(sandbox.command(ns, "run", "chain", "touch", str(marker)))
    sandbox.ok(ns, "run", "-c", again, "chain", "true", user=user)
    assert wait_until(lambda: marker.exists(), timeout=60)


@pytest.mark.parametrize("who", ["root", "owner"])
def test_memory_low_is_written_read_back_and_changed(sandbox: Sandbox, alice: str, who: str) -> None:
    """The limit added through the limits table alone (issue 14's proof): --memory-low lands in the task's
    memory.low on both routes (root's cgroups, the owner's systemd scope), status reads it back, set changes it."""
    user = None if who == "root" else alice
    ns = sandbox.ns_name("low")
    sandbox.ok(ns, *(["init"] if user is None else ["init", "-u", alice]))
    sandbox.ok(ns, "run", "--memory-low", "16M", "kept", "sleep", "300", user=user)
    record = status(sandbox, ns, "kept", user)
    (pid,) = [int(p["pid"]) for p in record["processes"]]  # type: ignore[attr-defined]

    def memory_low() -> int:
        with open(f"/sys/fs/cgroup{cgroup_of(pid)}/memory.low", encoding="ascii") as f:
            return int(f.read())

    assert memory_low() == 16 * MIB
    assert record["limits"] == {"memory_low_bytes": 16 * MIB}, record
    assert record["limits_in_force"] == {"memory_low_bytes": 16 * MIB}, record
    sandbox.ok(ns, "set", "--memory-low", "8M", "kept", user=user)
    assert memory_low() == 8 * MIB
    assert status(sandbox, ns, "kept", user)["limits_in_force"] == {"memory_low_bytes": 8 * MIB}
    sandbox.ok(ns, "stop", "kept", user=user)
