"""A task that moves itself out of its cgroup (``echo $$ >`` another cgroup.procs its owner may write): every command
gives one answer, the one the kernel's cgroup tree and the monitor's own child give, and stop ends it
(docs/security.md, "A task leaving its cgroup")."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.conftest import Sandbox
from tests.integration.conftest import alive, make_namespace, no_process_left, task_pids, wait_until

ESCAPE = r"""
for f in {files}; do
    [ -w "$f" ] && echo $$ > "$f" 2>/dev/null && echo "moved to $f" >&2
done
exec sleep 300
"""


def _procs_files(sandbox: Sandbox, ns: str, target: str) -> list[str]:
    """cgroup.procs of ``target`` (a path under the namespace's cgroup; "" for the namespace itself) in every
    hierarchy where the namespace has a cgroup."""
    return [os.path.join(top, ns, target, "cgroup.procs") for top in sandbox.cgroup_dirs()
            if os.path.isdir(os.path.join(top, ns))]


def _argv(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode().split("\0")[:-1]
    except OSError:
        return []


def _cgroups_of(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cgroup") as f:
        return [line.strip().split(":", 2)[2] for line in f]


def _hands_controllers_down(sandbox: Sandbox, ns: str, monkeypatch: pytest.MonkeyPatch) -> bool:
    from lanco.namespace import Namespace

    for key, value in sandbox.env.items():  # where the sandbox's namespaces are, for this process's lanco
        monkeypatch.setenv(key, value)
    control = os.path.join(Namespace(ns).backend.ns_dir(ns), "cgroup.subtree_control")
    with open(control, encoding="ascii") as f:
        return bool(f.read().split())


def _agree_running(sandbox: Sandbox, ns: str, pid: int, owner: str | None) -> None:
    assert sandbox.lanco(ns, "check", "e", user=owner).returncode == 0
    assert pid in task_pids(sandbox, ns, "e", user=owner)
    assert json.loads(sandbox.ok(ns, "status", "--json", "e", user=owner).stdout)["state"] == "running"
    assert "e" in sandbox.ok(ns, "ls", "-q", user=owner).stdout.split()
    run = sandbox.lanco(ns, "run", "e", "true", user=owner)
    assert run.returncode == 1 and "task e is already running" in run.stderr


@pytest.mark.parametrize("target", [".monitors", "", "sibling"])
def test_a_task_moving_itself_out_gets_one_answer_and_is_stopped(sandbox: Sandbox, mode: str, owner: str | None,
                                                                 target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = make_namespace(sandbox, mode, user=owner)
    if target == "" and mode == "v2" and _hands_controllers_down(sandbox, ns, monkeypatch):
        pytest.skip("cgroup v2 keeps every process out of a cgroup that hands controllers down (no internal "
                    "processes): no task can move into its namespace's cgroup here")
    if target == "sibling":
        sandbox.ok(ns, "run", "sibling", "sleep", "300", user=owner)
    files = _procs_files(sandbox, ns, target)
    if owner is not None and target == "":
        # The namespace cgroup's own cgroup.procs (and tasks) are root's in v1 hierarchies: no task can go there.
        for path in files:
            if "unified" not in path:
                info = os.stat(path)
                assert info.st_uid == 0 and not info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_IWGRP
    sandbox.ok(ns, "run", "e", "sh", "-c", ESCAPE.format(files=" ".join(files)), user=owner)
    assert wait_until(lambda: [_argv(p) for p in task_pids(sandbox, ns, "e", user=owner)] == [["sleep", "300"]])
    (pid,) = task_pids(sandbox, ns, "e", user=owner)
    task_cgroup = f"{sandbox.base}/{ns}/e"
    moved = [c for c in _cgroups_of(pid) if c not in (task_cgroup, "/") and c.startswith(f"{sandbox.base}/{ns}")]
    if owner is None or target != "":
        assert moved, "the task could not move itself anywhere: this test tests nothing"
    _agree_running(sandbox, ns, pid, owner)
    stop = sandbox.lanco(ns, "stop", "-t", "2", "e", user=owner)
    assert stop.returncode == 0, stop.stderr
    assert no_process_left([pid])
    assert json.loads(sandbox.ok(ns, "status", "--json", "e", user=owner).stdout)["state"] == "stopped"
    assert sandbox.lanco(ns, "check", "e", user=owner).returncode == 1
    sandbox.ok(ns, "run", "e", "true", user=owner)
    assert sandbox.lanco(ns, "wait", "e", user=owner).returncode == 0
    if target == "sibling":
        assert sandbox.lanco(ns, "check", "sibling", user=owner).returncode == 0
        sandbox.ok(ns, "stop", "sibling", user=owner)


def test_a_child_moving_itself_out_of_one_hierarchy_stays_the_tasks(sandbox: Sandbox, mode: str,
                                                                    owner: str | None) -> None:
    """A process that left the tracker's cgroup but stays in the task's cgroups of the other hierarchies (hybrid,
    v1) is still the task's: the monitor waits for it, and stop kills it."""
    if mode == "v2":
        pytest.skip("v2 mode has one hierarchy")
    ns = make_namespace(sandbox, mode, user=owner)
    config = json.loads((sandbox.state_dir(ns) / "config.json").read_text())
    from lanco.cgroups.detect import named_mount, read_mounts, unified_mount

    mount = (unified_mount if config["tracker"] == "unified" else named_mount)(read_mounts())
    assert mount is not None
    tracker = [f for f in _procs_files(sandbox, ns, ".monitors") if f.startswith(mount.path + "/")]
    child = f"sh -c 'trap \"\" TERM; echo $$ > {tracker[0]}; exec sleep 300' &"
    sandbox.ok(ns, "run", "e", "sh", "-c", f"{child} exec sleep 1", user=owner)
    assert wait_until(lambda: any(c.endswith("/.monitors") for p in task_pids(sandbox, ns, "e", user=owner)
                                  for c in _cgroups_of(p)), 5)
    pids = task_pids(sandbox, ns, "e", user=owner)
    # The first process ended; the child, outside the tracker's cgroup, keeps the task running.
    assert wait_until(lambda: len(task_pids(sandbox, ns, "e", user=owner)) == 1, 5)
    (stray,) = task_pids(sandbox, ns, "e", user=owner)
    assert alive(stray)
    _agree_running(sandbox, ns, stray, owner)
    stop = sandbox.lanco(ns, "stop", "-t", "1", "e", user=owner)
    assert stop.returncode == 0, stop.stderr
    assert no_process_left(pids)
    assert json.loads(sandbox.ok(ns, "status", "--json", "e", user=owner).stdout)["state"] == "stopped"
