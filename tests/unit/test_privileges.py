"""lanco.privileges: root does the work of a user's namespace with the owner's ids, through one decorator.

The behavioural tests switch ids for real, so they need root (as the project's test machines run them); the
namespace's state lives in a world-traversable directory under /tmp, since pytest's own is root's alone."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanco.cgroups.detect import CgroupMount
from lanco.errors import NamespaceExists, PermissionDenied, StateError
from lanco.namespace import Namespace
from lanco.privileges import OWNER_IDS_MARK
from lanco.state.config import NamespaceConfig, load_config
from lanco.task import Task
from tests.unit.conftest import NS, FakeHost, make_namespace

NOBODY = 65534

CGROUP_ONLY = {
    # Read the kernel's cgroup files only (no file a user can plant), or only call methods that switch.
    (Task, "is_running"): "cgroupfs: check must stay cheap",
    (Task, "pids"): "cgroupfs",
    (Task, "record_gone"): "looks whether spec.json exists, reads nothing",
    (Task, "start"): "parses options, then launch (switches)",
    (Task, "set_limits"): "parses limits, then apply_limits (switches)",
    (Task, "owner_ids"): "the switch itself",
    (Namespace, "owner_ids"): "the switch itself",
    (Namespace, "authorize"): "compares ids with the loaded configuration",
    (Namespace, "init"): "root's own directories; refuses a user's own namespace",
    (Namespace, "restore"): "init's steps: root's own directories; refuses a user's own namespace",
    (Namespace, "release"): "is_active, settle and the record removal switch; root removes its own directory",
    (Namespace, "task"): "a handle",
    (Namespace, "tasks"): "task_names (switches)",
    (Namespace, "tracked_tasks"): "cgroupfs",
    (Namespace, "running_tasks"): "cgroupfs",
    (Namespace, "run"): "Task.start (switches)",
    (Namespace, "rotate_logs"): "task_names and Task.rotate_log (both switch)",
    (Namespace, "events"): "an iterator: its sweep switches per record read, never across a yield",
    (Namespace, "events_async"): "as events",
    # A coroutine must not hold the ids across an await (they are the process's): each look switches on its own.
    (Task, "wait_async"): "makes the coroutine; its looks switch (record, the monitor file), never across an await",
    (Namespace, "wait_any_async"): "as Task.wait_async",
    (Namespace, "wait_all_async"): "as Task.wait_async",
}


@pytest.mark.parametrize("cls", [Task, Namespace])
def test_every_method_that_may_open_a_users_file_switches_ids(cls: type) -> None:
    for name, member in vars(cls).items():
        if name.startswith("_") or (not callable(member) and not isinstance(member, classmethod)):
            continue
        function = member.__func__ if isinstance(member, classmethod) else member
        if getattr(function, OWNER_IDS_MARK, False):
            assert (cls, name) not in CGROUP_ONLY, f"{cls.__name__}.{name} switches: drop it from CGROUP_ONLY"
        else:
            assert (cls, name) in CGROUP_ONLY, \
                f"{cls.__name__}.{name} neither runs with the owner's ids nor is listed as touching no user file"


@pytest.fixture
def world_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("switching effective ids needs root")
    root = Path(tempfile.mkdtemp(prefix="lanco-unit-"))
    root.chmod(0o755)
    monkeypatch.setenv("LANCO_STATE_DIR", str(root / "state"))
    try:
        yield root
    finally:
        shutil.rmtree(root)


@pytest.fixture
def world_host(world_dir: Path) -> FakeHost:
    """The fake cgroupfs of tests.unit.conftest, where the owner's ids may look too."""
    def mount(name: str, controllers: set[str], named: str | None = None) -> CgroupMount:
        path = world_dir / "cgroup" / name
        path.mkdir(parents=True)
        return CgroupMount(str(path), "/", 1, frozenset(controllers), named)

    (world_dir / "cgroup").mkdir()
    unified = world_dir / "cgroup" / "unified"
    unified.mkdir()
    return FakeHost(root=world_dir / "cgroup", unified=CgroupMount(str(unified), "/", 2, frozenset(), None),
                    memory=mount("memory", {"memory"}), cpu=mount("cpu,cpuacct", {"cpu", "cpuacct"}),
                    pids=mount("pids", {"pids"}), freezer=mount("freezer", {"freezer"}),
                    named=mount("lanco-named", set(), "lanco"))


def users_namespace(root: Path, host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> Namespace:
    backend = host.hybrid_named()
    make_namespace(backend)
    monkeypatch.setattr("lanco.namespace.open_namespace_backend", lambda *a, **k: backend)
    state = root / "state" / NS
    (state / "tasks").mkdir(parents=True)
    (root / "log").mkdir()
    os.chown(state / "tasks", NOBODY, NOBODY)
    os.chown(root / "log", NOBODY, NOBODY)
    NamespaceConfig(name=NS, owner_uid=NOBODY, owner_gid=NOBODY, group_access=False, mode="hybrid", tracker="named",
                    cgroup_base="/lanco", state_dir=str(state), log_dir=str(root / "log"), created=1.0).save()
    return Namespace(NS)


def owners_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(exist_ok=True)
    os.chown(path.parent, NOBODY, NOBODY)
    path.write_text(text)
    path.chmod(mode)
    os.chown(path, NOBODY, NOBODY)
    return path


def test_root_reads_a_users_log_as_the_user(world_dir: Path, world_host: FakeHost,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = users_namespace(world_dir, world_host, monkeypatch)
    task = namespace.task("t")
    owners_file(world_dir / "log" / "task-t.log", "the owner's own\n")
    owners_file(Path(task.state_dir) / "spec.json", json.dumps({"run_id": "r"}))
    out = io.BytesIO()
    task.show_log(out)
    assert out.getvalue() == b"the owner's own\n"  # the owner's file, mode 0600: readable with the owner's ids
    secret = world_dir / "secret"
    secret.write_text("root only\n")
    secret.chmod(0o600)
    owners_file(Path(task.state_dir) / "spec.json", json.dumps({"run_id": "r", "log": str(secret)}))
    with pytest.raises(PermissionDenied, match=f"^cannot read log {secret}: permission denied$"):
        task.show_log(out)
    assert os.geteuid() == 0 and os.getegid() == 0  # and root again afterwards


def test_root_reads_no_record_a_user_links_elsewhere(world_dir: Path, world_host: FakeHost,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = users_namespace(world_dir, world_host, monkeypatch)
    task = namespace.task("t")
    secret = world_dir / "secret.json"
    secret.write_text(json.dumps({"run_id": "r", "argv": ["secret"]}))
    secret.chmod(0o600)
    owners_file(Path(task.state_dir) / "result", "result=exited\n")
    os.symlink(secret, Path(task.state_dir) / "spec.json")
    with pytest.raises(StateError, match=r"^cannot read the record of task t: .*: permission denied$"):
        task.record()
    assert namespace.task_names() == ["t"]


def test_a_configuration_written_by_another_user_is_not_trusted(world_dir: Path) -> None:
    path = world_dir / "state" / NS / "config.json"
    path.parent.mkdir(parents=True)
    values = dict(name=NS, owner_uid=0, owner_gid=0, group_access=False, mode="hybrid", tracker="named",
                  cgroup_base="/lanco", state_dir="/nonexistent/state", log_dir="/nonexistent/log", created=1.0,
                  version=1)
    path.write_text(json.dumps(values))
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(StateError, match=f"^the configuration of namespace {NS} is not to be trusted: .* belongs "
                                         f"to uid {NOBODY}, neither root nor the owner it names \\(uid 0\\)$"):
        load_config(NS)
    path.write_text(json.dumps({**values, "owner_uid": NOBODY}))
    assert load_config(NS).owner_uid == NOBODY
    os.chown(path, 0, 0)
    assert load_config(NS).owner_uid == NOBODY  # written by root: trusted


def test_root_init_leaves_a_users_own_namespace_alone(world_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # root with a user's HOME (su without -): the user's own configuration is found, and must not be chowned.
    own = world_dir / "home" / "lanco" / NS
    monkeypatch.setenv("XDG_STATE_HOME", str(world_dir / "home"))
    own.mkdir(parents=True)
    NamespaceConfig(name=NS, owner_uid=NOBODY, owner_gid=NOBODY, group_access=False, mode="hybrid", tracker="named",
                    cgroup_base="/lanco", state_dir=str(own), log_dir="/etc", created=1.0).save()

    def no_further(*args: object, **kwargs: object) -> None:
        raise AssertionError("init went on to the cgroups and the chowns")

    monkeypatch.setattr("lanco.namespace.open_backend", no_further)
    with pytest.raises(NamespaceExists, match=f"^namespace {NS} is a user's own namespace"):
        Namespace.init(NS, user=str(NOBODY))
    assert os.stat("/etc").st_uid == 0
