"""``lanco restore`` and ``Namespace.restore`` on the fake cgroupfs: a boot takes the cgroups and leaves the state;
restore makes again what init made, says what it changed, and a second restore changes nothing. The runs the boot
ended are recorded ``lost`` once."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from lanco import messages
from lanco.cgroups.backend import Backend
from lanco.cgroups.detect import parse_mountinfo
from lanco.cli import main
from lanco.errors import CgroupsMissing, PermissionDenied
from lanco.namespace import Namespace
from lanco.state.config import NamespaceConfig
from lanco.task import Task
from tests.unit.conftest import NS, TASK, FakeHost, make_namespace
from tests.unit.test_cli import LINE
from tests.unit.test_detect import HYBRID

NAMED = "90 33 0:45 / /sys/fs/cgroup/lanco rw,relatime shared:40 - cgroup lanco rw,name=lanco\n"


@pytest.fixture
def backend(host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> Backend:
    """A v1 namespace of the caller's, as init leaves it on the fake cgroupfs, with its state."""
    if os.geteuid() != 0:
        pytest.skip("restore is root's")
    backend = host.v1()
    make_namespace(backend)
    state = os.path.join(os.environ["LANCO_STATE_DIR"], NS)
    for directory in ("tasks", "log"):
        os.makedirs(os.path.join(state, directory), mode=0o700)
        os.chmod(os.path.join(state, directory), 0o700)
    NamespaceConfig(name=NS, owner_uid=os.geteuid(), owner_gid=os.getegid(), group_access=False, mode="v1",
                    tracker="named", cgroup_base="/lanco", state_dir=state, log_dir=os.path.join(state, "log"),
                    created=0.0).save()
    monkeypatch.setattr("lanco.namespace.open_backend", lambda *a, **k: backend)
    monkeypatch.setattr("lanco.namespace.read_mounts", lambda: parse_mountinfo(HYBRID + NAMED))
    return backend


def boot(backend: Backend) -> None:
    """What a boot does to the namespace: its cgroups are gone, in every hierarchy."""
    for mount in backend.all_hierarchies:
        shutil.rmtree(backend.base_dir(mount))


def record_of_an_earlier_boot(namespace: Namespace, name: str = TASK) -> Task:
    """A run that was going when the machine went down: its spec, its first process's pid, no result."""
    task = Task(namespace, name)
    os.makedirs(task.state_dir)
    with open(os.path.join(task.state_dir, "spec.json"), "w", encoding="utf-8") as f:
        json.dump({"run_id": "0123456789abcdef", "argv": ["sleep", "300"], "boot_id": "an-earlier-boot",
                   "started": 1.0}, f)
    with open(os.path.join(task.state_dir, "pid"), "w", encoding="ascii") as f:
        f.write("4242\n")
    return task


def test_restore_makes_again_what_the_boot_took_then_nothing(backend: Backend) -> None:
    boot(backend)
    with pytest.raises(CgroupsMissing):
        backend.create_task(NS, TASK)
    # base, namespace and .monitors in each hierarchy
    assert Namespace.restore(NS) == [f"made {3 * len(backend.all_hierarchies)} cgroups"]
    for mount in backend.all_hierarchies:
        assert os.path.isdir(os.path.join(backend.ns_dir(NS, mount), ".monitors"))
    assert Namespace.restore(NS) == []


def test_restore_makes_the_state_directories_again(backend: Backend) -> None:
    namespace = Namespace(NS)
    shutil.rmtree(namespace.config.log_dir)
    assert Namespace.restore(NS) == [f"made {namespace.config.log_dir}"]
    assert os.stat(namespace.config.log_dir).st_mode & 0o7777 == 0o700
    os.chmod(namespace.config.tasks_dir, 0o755)
    assert Namespace.restore(NS) == [f"set the owner or mode of {namespace.config.tasks_dir} right"]
    assert Namespace.restore(NS) == []


def test_restore_is_root_s(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(PermissionDenied, match=f"restore of namespace {NS} needs root"):
        Namespace.restore(NS)


def test_the_runs_of_an_earlier_boot_are_recorded_lost_once(backend: Backend) -> None:
    task = record_of_an_earlier_boot(Namespace(NS))
    boot(backend)
    Namespace.restore(NS)
    assert Namespace(NS).settle_tasks() == [TASK]
    record = task.record()
    assert (record.state, record.exit_code, record.pids) == ("lost", None, [])
    assert Namespace(NS).settle_tasks() == []
    assert task.record().state == "lost"


def messages_of(capsys: pytest.CaptureFixture[str]) -> list[tuple[str, str, str]]:
    captured = capsys.readouterr()
    assert captured.out == ""
    found = [re.fullmatch(LINE, line) for line in captured.err.splitlines()]
    assert all(found), captured.err
    return [(m["level"], m["token"], m["text"]) for m in found if m is not None]


def test_the_command_says_one_line_per_namespace(backend: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    record_of_an_earlier_boot(Namespace(NS))
    boot(backend)
    assert main(["restore"]) == 0
    made = 3 * len(backend.all_hierarchies)
    assert messages_of(capsys) == [
        ("INFO", "restore", f"namespace {NS} restored: made {made} cgroups; 1 run that ended unseen recorded lost "
                            f"({TASK})")]
    assert main(["restore", NS]) == 0
    assert messages_of(capsys) == [("INFO", "restore", f"namespace {NS} is in place: nothing to restore")]
    # Another base than the namespace's (as a test's own): not this restore's.
    assert main(["--cgroup-base", "/elsewhere", "restore"]) == 0
    assert messages_of(capsys) == []
    assert main(["restore", NS, "nosuch"]) == 1
    assert messages_of(capsys) == [
        ("WARN", "restore", f"namespace nosuch is not recorded in {os.environ['LANCO_STATE_DIR']}: nothing to "
                            "restore"),
        ("INFO", "restore", f"namespace {NS} is in place: nothing to restore")]


def test_the_command_with_nothing_recorded(capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() != 0:
        pytest.skip("restore is root's")
    assert main(["restore"]) == 0
    assert messages_of(capsys) == [
        ("INFO", "restore", f"no namespace is recorded in {os.environ['LANCO_STATE_DIR']}: nothing to restore")]


def test_the_command_refuses_a_user(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["restore"]) == 1
    ((level, token, text),) = messages_of(capsys)
    assert (level, token) == ("WARN", "restore") and text.startswith("restore needs root")


def test_a_namespace_named_restore_keeps_its_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["restore", "ls"]) == 1
    assert messages_of(capsys) == [("WARN", "ls", "namespace restore should be created with init command")]


def test_announce_shows_whatever_the_debug_level(capsys: pytest.CaptureFixture[str]) -> None:
    messages.configure(0, [])
    messages.announce("restore", "namespace a restored")
    messages.info("restore", "hidden")
    assert messages_of(capsys) == [("INFO", "restore", "namespace a restored")]
