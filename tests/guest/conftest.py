"""Tests that need the real thing: a pure cgroup v2 host with systemd as PID 1 and a lingering user, the qemu
guest of tests/vm. Elsewhere they are skipped; ``tests/vm/guest_suite.py`` boots the guest and runs them there
(``scripts/test`` does, unless ``LANCO_TEST_VM=0``)."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Sandbox, ensure_user_manager, lanco_command, systemd_delegates
from tests.integration.conftest import wait_until as integration_wait_until

GUEST_USER = os.environ.get("LANCO_GUEST_USER", "alice")
"""The guest's lingering user (tests/vm/README.md)."""
HERE = Path(__file__).resolve().parent


def _guest_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not systemd_delegates():
        return "needs a pure cgroup v2 host with systemd as PID 1"
    try:
        pwd.getpwnam(GUEST_USER)
    except KeyError:
        return f"needs the user {GUEST_USER}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problem = _guest_problem()
    if problem is None:
        return
    skip = pytest.mark.skip(reason=f"guest test {problem}: tests/vm/guest_suite.py runs it in a qemu guest")
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def alice() -> str:
    ensure_user_manager(GUEST_USER)
    return GUEST_USER


def uid_of(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def user_env(user: str) -> dict[str, str]:
    """What a login session of ``user`` would have for systemctl --user and systemd-run --user."""
    uid = uid_of(user)
    env = {"XDG_RUNTIME_DIR": f"/run/user/{uid}", "DBUS_SESSION_BUS_ADDRESS": f"unix:path=/run/user/{uid}/bus"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def as_user(user: str | None, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
    """``argv`` run as ``user`` (None: root) with ``env`` added."""
    pairs = [f"{k}={v}" for k, v in (env or {}).items()]
    if user is None:
        return ["env", *pairs, *argv] if pairs else argv
    return ["runuser", "-u", user, "--", "env", *pairs, *argv]


def run(argv: list[str], timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd="/", check=False)
    if check:
        assert result.returncode == 0, f"{' '.join(argv)} -> {result.returncode}: {result.stdout}{result.stderr}"
    return result


def run_api(sandbox: Sandbox, program: str, user: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A Python program using lanco's API, run as ``user`` in the sandbox's environment."""
    return run(as_user(user, [sys.executable, "-c", program], sandbox.env), timeout=timeout)


def shared_dir(sandbox: Sandbox) -> Path:
    """A folder every test user may write (the sandbox root is root's)."""
    path = sandbox.root / "shared"
    path.mkdir(exist_ok=True)
    path.chmod(0o1777)
    return path


def systemctl_user(user: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(as_user(user, ["systemctl", "--user", *args], user_env(user)), check=check)


def status(sandbox: Sandbox, ns: str, task: str, user: str | None = None) -> dict[str, object]:
    result = sandbox.ok(ns, "status", "--json", task, user=user)
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def cgroup_of(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
        return next(line[3:].strip() for line in f if line.startswith("0::"))


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, interval: float = 0.1) -> bool:
    """The integration tests' wait, with room for emulation by default."""
    return integration_wait_until(predicate, timeout, interval)


@pytest.fixture
def user_units() -> Iterator[list[tuple[str | None, Path]]]:
    """Unit files a test installs: (user or None for the system manager, path); removed afterwards."""
    installed: list[tuple[str | None, Path]] = []
    yield installed
    for user, path in installed:
        unit = path.name
        if user is None:
            run(["systemctl", "stop", unit])
        else:
            systemctl_user(user, "stop", unit, check=False)
        path.unlink(missing_ok=True)
        if user is None:
            run(["systemctl", "daemon-reload"])
        else:
            systemctl_user(user, "daemon-reload", check=False)


__all__ = ["GUEST_USER", "HERE", "as_user", "cgroup_of", "lanco_command", "run", "run_api", "shared_dir", "status",
           "systemctl_user", "uid_of", "user_env", "wait_until"]
