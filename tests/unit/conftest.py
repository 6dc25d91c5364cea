"""Unit-test fixtures: an isolated environment and a fake cgroupfs tree under tmp_path.

Nothing here touches a real cgroup or starts a process. The fake tree is plain directories and files; on a plain
filesystem ``mkdir`` makes an empty directory, so a test writes the kernel's files itself where it needs them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lanco import messages
from lanco.cgroups.backend import Backend
from lanco.cgroups.detect import CgroupMount
from lanco.namespace import Namespace
from lanco.state.config import NamespaceConfig

NS = "testns"
TASK = "first-task"
BASE = "/lanco"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No unit test may read the machine's lanco state or inherit a forced mode from the caller's shell."""
    for name in ("LANCO_CGROUP_MODE", "LANCO_CGROUP_BASE", "LANCO_STATE_DIR", "LANCO_LOG_DIR", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path_factory.mktemp("env")
    monkeypatch.setenv("LANCO_STATE_DIR", str(root / "system-state"))
    monkeypatch.setenv("LANCO_LOG_DIR", str(root / "system-log"))
    monkeypatch.setenv("XDG_STATE_HOME", str(root / "xdg-state"))
    messages.configure(0, [])
    yield
    messages.configure(0, [])


def write(path: str | os.PathLike[str], text: str) -> None:
    """Create a (fake kernel) file, and its parent directories."""
    os.makedirs(os.path.dirname(os.fspath(path)), exist_ok=True)
    with open(path, "w", encoding="ascii") as f:
        f.write(text)


def read(path: str | os.PathLike[str]) -> str:
    with open(path, encoding="ascii") as f:
        return f.read()


@dataclass
class FakeHost:
    """The mounts of a hybrid host, every one of them a directory under tmp_path."""

    root: Path
    unified: CgroupMount
    memory: CgroupMount
    cpu: CgroupMount  # co-mounted cpu,cpuacct: one hierarchy serving two controllers
    pids: CgroupMount
    freezer: CgroupMount
    named: CgroupMount

    @property
    def v1_controllers(self) -> dict[str, CgroupMount]:
        return {"memory": self.memory, "cpu": self.cpu, "cpuacct": self.cpu, "pids": self.pids,
                "freezer": self.freezer}

    def v2(self) -> Backend:
        return Backend("v2", BASE, self.unified, {})

    def hybrid(self) -> Backend:
        return Backend("hybrid", BASE, self.unified, self.v1_controllers)

    def hybrid_named(self) -> Backend:
        return Backend("hybrid", BASE, self.named, self.v1_controllers)

    def v1(self) -> Backend:
        return Backend("v1", BASE, self.named, self.v1_controllers)


def make_namespace(backend: Backend, ns: str = NS) -> None:
    """What ``init`` leaves behind: ``<base>/<ns>/.monitors`` in every hierarchy the backend uses."""
    for mount in backend.hierarchies:
        os.makedirs(os.path.join(backend.ns_dir(ns, mount), ".monitors"), exist_ok=True)


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    def mount(name: str, version: int, controllers: set[str], named: str | None = None) -> CgroupMount:
        path = tmp_path / name
        path.mkdir()
        return CgroupMount(str(path), "/", version, frozenset(controllers), named)

    return FakeHost(
        root=tmp_path,
        unified=mount("unified", 2, set()),
        memory=mount("memory", 1, {"memory"}),
        cpu=mount("cpu,cpuacct", 1, {"cpu", "cpuacct"}),
        pids=mount("pids", 1, {"pids"}),
        freezer=mount("freezer", 1, {"freezer"}),
        named=mount("lanco-named", 1, set(), "lanco"),
    )


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC while the test runs: golden texts show times of day."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def namespace(host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> Namespace:
    """A v1 namespace of the caller's on the fake cgroupfs, as init leaves it."""
    backend = host.v1()
    make_namespace(backend)
    state = os.path.join(os.environ["LANCO_STATE_DIR"], NS)
    os.makedirs(os.path.join(state, "tasks"))
    NamespaceConfig(name=NS, owner_uid=os.geteuid(), owner_gid=os.getegid(), group_access=False, mode="v1",
                    tracker="named", cgroup_base="/lanco", state_dir=state, log_dir=os.path.join(state, "log"),
                    created=0.0).save()
    monkeypatch.setattr("lanco.namespace.open_namespace_backend", lambda *a, **k: backend)
    return Namespace(NS)
