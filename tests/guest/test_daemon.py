"""The seed's motivating case: a daemon run as a systemd service starts tasks through the Python API; restarting
and then stopping the service leaves every task running, still checked, stopped and reported by name. As root
(a system service; the namespace lives at the root of the tree, outside every unit) and as a lingering user (a
``systemctl --user`` service; each task in a scope of the user's manager)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.conftest import Sandbox
from tests.guest.conftest import (
    HERE,
    cgroup_of,
    run,
    shared_dir,
    status,
    systemctl_user,
    uid_of,
    wait_until,
)


def unit_text(sandbox: Sandbox, ns: str, ready: Path) -> str:
    environment = " ".join(f"{k}={v}" for k, v in sandbox.env.items())
    return ("[Unit]\nDescription=lanco test daemon\n\n[Service]\n"
            f"Environment={environment}\n"
            f"ExecStart={sys.executable} {HERE / 'daemon.py'} {ns} {ready}\n")


def task_pids(sandbox: Sandbox, ns: str, task: str, user: str | None) -> list[int]:
    return [int(p["pid"]) for p in status(sandbox, ns, task, user)["processes"]]  # type: ignore[attr-defined]


def written(path: Path) -> bool:
    """The daemon's ready file exists with its pid in it (write_text creates it empty first)."""
    try:
        return path.read_text().strip().isdigit()
    except OSError:
        return False


@pytest.mark.parametrize("who", ["root", "user"])
def test_tasks_outlive_restart_and_stop_of_the_service_that_started_them(
        sandbox: Sandbox, alice: str, user_units: list[tuple[str | None, Path]], who: str) -> None:
    user = None if who == "root" else alice
    ns = sandbox.ns_name("daemon")
    sandbox.ok(ns, "init", *(["-u", alice] if user else []))
    ready = shared_dir(sandbox) / f"ready-{ns}"
    ready.mkdir()
    ready.chmod(0o777)
    unit = f"lanco-daemon-{ns}.service"
    path = Path("/etc/systemd/system" if user is None else "/etc/systemd/user") / unit
    path.write_text(unit_text(sandbox, ns, ready))
    user_units.append((user, path))

    def systemctl(*args: str, check: bool = True) -> str:
        if user is None:
            return run(["systemctl", *args], check=check).stdout.strip()
        return systemctl_user(user, *args, check=check).stdout.strip()

    systemctl("daemon-reload")
    systemctl("start", unit)
    assert wait_until(lambda: written(ready / "job-1"), timeout=60), systemctl("status", unit, check=False)
    service_cgroup = cgroup_of(int((ready / "job-1").read_text()))
    assert service_cgroup.endswith(f"/{unit}")
    first = task_pids(sandbox, ns, "job-1", user) + task_pids(sandbox, ns, "family-1", user)
    assert len(first) == 4
    for pid in first:
        # Moved out of the service: in the namespace at the root of the tree (root), in a scope of the user's
        # manager (user).
        where = cgroup_of(pid)
        assert not where.startswith(service_cgroup)
        if user is None:
            assert where.startswith(f"{sandbox.base}/{ns}/"), where
        else:
            uid = uid_of(user)
            prefix = f"/user.slice/user-{uid}.slice/user@{uid}.service/lanco.slice/lanco-{ns}.slice/lanco-{ns}-"
            # One scope per run: lanco-NS-TASK-RUN.scope, the task's name escaped (job-1 is job\x2d1).
            assert where.startswith(prefix) and re.search(r"\\x2d1-[0-9a-f]{16}\.scope/task$", where), where

    systemctl("restart", unit)
    assert wait_until(lambda: written(ready / "job-2"), timeout=60), systemctl("status", unit, check=False)
    systemctl("stop", unit)
    assert systemctl("is-active", unit, check=False) in ("inactive", "failed")

    names = ["family-1", "family-2", "job-1", "job-2"]
    for name in names:
        assert sandbox.lanco(ns, "check", name, user=user).returncode == 0, name
    assert all(Path(f"/proc/{pid}").exists() for pid in first)
    listing = sandbox.ok(ns, "ls", user=user).stdout
    assert all(f" ├ {name}" in listing for name in names), listing
    for name in names:
        sandbox.ok(ns, "stop", name, user=user)
        assert status(sandbox, ns, name, user)["state"] == "stopped"
        assert sandbox.lanco(ns, "check", name, user=user).returncode == 1
