from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

from tests.conftest import Sandbox
from tests.sshd import ssh_test_user, sshd, sshd2

MODES = ["hybrid", "v1", "v2"]


def available_modes() -> list[str]:
    """The cgroup modes this host can give: hybrid and v1 need v1 controller hierarchies (a pure v2 host has none)."""
    from lanco.cgroups.detect import controller_mounts, read_mounts, unified_mount

    mounts = read_mounts()
    v1 = bool(controller_mounts(mounts))
    return [m for m in MODES if (m == "v2" and unified_mount(mounts) is not None) or (m != "v2" and v1)]


def unified_controllers() -> set[str]:
    """Controllers the unified tree's root offers: none but hugetlb on this project's hybrid machines, every one on
    a pure v2 host such as the qemu guest of tests/vm."""
    from lanco.cgroups.detect import read_mounts, unified_mount

    unified = unified_mount(read_mounts())
    if unified is None:
        return set()
    with open(os.path.join(unified.path, "cgroup.controllers"), encoding="ascii") as f:
        return set(f.read().split())


def make_namespace(sandbox: Sandbox, mode: str | None = None, user: str | None = None,
                   group: str | None = None) -> str:
    if mode is not None and mode not in available_modes():
        pytest.skip(f"this host has no cgroup mode {mode}")
    ns = sandbox.ns_name()
    args = [*(["--cgroup-mode", mode] if mode else []), ns, "init"]
    if user:
        args += ["-u", user]
    if group:
        args += ["-g", group]
    sandbox.ok(*args)
    return ns


def group_with_member(member: str, group: str = "lancotestg") -> str:
    """A group for init -g, made where missing, with ``member`` in it."""
    import grp
    import subprocess

    try:
        grp.getgrnam(group)
    except KeyError:
        subprocess.run(["groupadd", group], check=True)
    subprocess.run(["usermod", "-a", "-G", group, member], check=True)
    return group


def record_dirs(tasks_dir: str | os.PathLike[str]) -> list[str]:
    """The record directories of a namespace's tasks directory, sorted: its dot files are the namespace's event
    journal and its lock (docs/events.md), not tasks."""
    return sorted(name for name in os.listdir(tasks_dir) if not name.startswith("."))


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def alive(pid: int) -> bool:
    """True for a live process; a zombie counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    if request.param not in available_modes():
        pytest.skip(f"this host has no cgroup mode {request.param}")
    return str(request.param)


@pytest.fixture(params=["root", "user"])
def owner(request: pytest.FixtureRequest, mode: str) -> str | None:
    """The namespace's owner: root, or the test user (in v2 on a host without systemd only root may place tasks:
    no delegation)."""
    if request.param == "root":
        return None
    if mode == "v2":
        pytest.skip("an unprivileged owner needs a delegated v2 cgroup, which this host's tests do not make")
    request.getfixturevalue("test_user")
    from tests.conftest import TEST_USER

    return TEST_USER


@pytest.fixture
def ns(sandbox: Sandbox, mode: str) -> str:
    return make_namespace(sandbox, mode)


EMULATED = bool(os.environ.get("LANCO_VM"))
"""True in the qemu guest of tests/vm, where emulation makes every lanco command take 0.5 to 2 s (more while the
host is busy): the upper bounds of timed checks need room for that there."""


def slack(seconds: float) -> float:
    """Room in an upper time bound for lanco's own work: as given on the host, eight times that in the guest."""
    return seconds * 8 if EMULATED else seconds


def task_pids(sandbox: Sandbox, ns: str, task: str, user: str | None = None) -> list[int]:
    import json

    result = sandbox.ok(ns, "status", "--json", task, user=user)
    return [p["pid"] for p in json.loads(result.stdout)["processes"]]


def no_process_left(pids: list[int], timeout: float = 5.0) -> bool:
    return wait_until(lambda: not any(alive(p) for p in pids), timeout)


__all__ = ["EMULATED", "MODES", "alive", "make_namespace", "no_process_left", "os", "slack", "ssh_test_user", "sshd",
           "sshd2", "task_pids", "unified_controllers", "wait_until"]
