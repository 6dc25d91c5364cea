"""A task's record directory and its locks under faults: removed while waited for, removed by hand, damaged."""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

from lanco import messages
from lanco.namespace import Namespace
from lanco.state import recorddir
from lanco.task import Task
from tests.unit.conftest import NS, TASK, FakeHost, make_namespace, write


def test_a_lock_whose_file_was_removed_while_waited_for_is_taken_anew(namespace: Namespace) -> None:
    """release removes the record directory, lock file included, while it holds the lock: the caller that waited on
    that file must not count it as held, or two runs of one name both start their command."""
    releaser, runner, third = Task(namespace, TASK), Task(namespace, TASK), Task(namespace, TASK)
    os.mkdir(releaser.state_dir)
    held = recorddir.acquire(releaser, "lock", blocking=True)
    assert held is not None
    got: list[int] = []
    waiting = threading.Thread(target=lambda: got.append(recorddir.acquire(runner, "lock", blocking=True) or -1))
    waiting.start()
    time.sleep(0.2)  # the runner has opened the lock file and waits in flock
    assert not got
    shutil.rmtree(releaser.state_dir)
    os.close(held)
    waiting.join(5)
    assert got and got[0] >= 0
    try:
        # The runner's lock is on the file the path names now (it made the directory again): nobody else gets it.
        assert os.path.isdir(runner.state_dir)
        assert recorddir.acquire(third, "lock", blocking=False) is None
    finally:
        os.close(got[0])
    again = recorddir.acquire(third, "lock", blocking=False)
    assert again is not None
    os.close(again)


def test_a_lock_of_a_record_directory_gone_makes_it_again(namespace: Namespace) -> None:
    task = Task(namespace, TASK)
    assert not os.path.exists(task.state_dir)
    with recorddir.lock(task, "stop.lock"):
        assert os.path.isfile(os.path.join(task.state_dir, "stop.lock"))
    assert os.stat(task.state_dir).st_mode & 0o777 == 0o700


def test_a_process_outside_the_trackers_cgroup_is_the_tasks_in_another_hierarchy(host: FakeHost) -> None:
    """In v1 a process may move itself out of the tracker's cgroup (lanco's named hierarchy) and stay in the task's
    cgroups of the controller hierarchies: it is still the task's."""
    backend = host.v1()
    for mount in backend.all_hierarchies:
        write(os.path.join(backend.task_dir(NS, TASK, mount), "cgroup.procs"), "")
    write(os.path.join(backend.task_dir(NS, TASK, host.memory), "cgroup.procs"), "42\n")
    write(os.path.join(backend.task_dir(NS, TASK, host.pids), "cgroup.procs"), "42\n43\n")
    assert backend.pids(NS, TASK) == [42, 43]
    assert backend.populated(NS, TASK)
    write(os.path.join(backend.task_dir(NS, TASK, host.memory), "cgroup.procs"), "")
    write(os.path.join(backend.task_dir(NS, TASK, host.pids), "cgroup.procs"), "")
    assert backend.pids(NS, TASK) == [] and not backend.populated(NS, TASK)


def test_a_running_task_whose_record_is_gone_is_known_from_its_cgroup(
        namespace: Namespace, host: FakeHost, capsys: pytest.CaptureFixture[str]) -> None:
    backend = namespace.backend
    for mount in backend.all_hierarchies:
        write(os.path.join(backend.task_dir(NS, TASK, mount), "cgroup.procs"), "")
    write(os.path.join(backend.task_dir(NS, TASK), "cgroup.procs"), f"{os.getpid()}\n")
    task = Task(namespace, TASK)
    messages.set_command("status")
    try:
        for _ in range(2):
            record = task.record()
            assert record.state == "running" and record.pids == [os.getpid()] and record.argv == []
    finally:
        messages.set_command("lanco")
    lines = capsys.readouterr().err.splitlines()
    assert [line.partition(" ")[2] for line in lines] == \
        [f"[WARN/status] task {TASK}: its record is gone; known from its cgroup only"]
    # The record directory is back, for the locks and the monitor's result.
    assert os.path.isdir(task.state_dir)


def test_the_namespace_cgroup_takes_no_process_of_its_owner_in_v1(host: FakeHost) -> None:
    backend = host.v1()
    make_namespace(backend)
    ns_dir = backend.ns_dir(NS)
    for name in ("cgroup.procs", "tasks"):
        write(os.path.join(ns_dir, name), "")
        os.chown(os.path.join(ns_dir, name), 1234, 1234)
        write(os.path.join(ns_dir, ".monitors", name), "")
    backend.create_namespace(NS, 1234, 1234, False)
    assert os.stat(ns_dir).st_uid == 1234
    for name in ("cgroup.procs", "tasks"):
        assert os.stat(os.path.join(ns_dir, name)).st_uid == 0
        assert os.stat(os.path.join(ns_dir, name)).st_mode & 0o777 == 0o644
        assert os.stat(os.path.join(ns_dir, ".monitors", name)).st_uid == 1234
