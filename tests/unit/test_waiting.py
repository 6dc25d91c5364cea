"""lanco.waiting and lanco.waiting_async on the fake cgroupfs: the tasks' monitors are real processes (sleeps this
test starts and ends), so that their pidfds are the kernel's; what the records say is written by hand, as the
monitor would write it. Nothing here is timed: a wait either returns what ended, or (timeout) nothing."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator

import pytest

from lanco import procfs, waiting
from lanco.errors import NotRunning
from lanco.launch.monitorcontract import format_result
from lanco.namespace import Namespace
from lanco.state.record import write_spec
from lanco.task import Task
from tests.unit.conftest import NS, write


class FakeRun:
    """One run of a task as its monitor leaves it: a spec, a monitor (a live process), a process in its cgroups."""

    def __init__(self, namespace: Namespace, name: str) -> None:
        self.task = Task(namespace, name)
        os.makedirs(self.task.state_dir, exist_ok=True)
        write_spec(self.task.state_dir, {"run_id": f"run-{name}", "argv": ["sleep", "60"], "started": 1.0})
        self.monitor = subprocess.Popen(["sleep", "60"])
        write(os.path.join(self.task.state_dir, "monitor"),
              f"{self.monitor.pid} {procfs.start_time(self.monitor.pid)}\n")
        write(os.path.join(self.task.state_dir, "pid"), f"{self.monitor.pid}\n")
        backend = namespace.backend
        for mount in backend.all_hierarchies:
            write(os.path.join(backend.task_dir(NS, name, mount), "cgroup.procs"), f"{self.monitor.pid}\n")

    def end(self, code: int | None = 3) -> None:
        """The run ends: its processes leave, the monitor writes the result (unless None: it died without one) and
        exits (reaped, as a detached monitor is by its parent)."""
        backend = self.task.namespace.backend
        for mount in backend.all_hierarchies:
            if code is None:  # the fake's cgroups are plain directories, which lanco's removal of a lost run's
                shutil.rmtree(backend.task_dir(NS, self.task.name, mount))  # cgroups cannot rmdir
            else:
                write(os.path.join(backend.task_dir(NS, self.task.name, mount), "cgroup.procs"), "")
        if code is not None:
            write(os.path.join(self.task.state_dir, "result"), format_result(
                {"run_id": f"run-{self.task.name}", "result": "exited", "exit_code": str(code), "signal": ""}))
        self.monitor.kill()
        self.monitor.wait()


@pytest.fixture
def runs(namespace: Namespace) -> Iterator[list[FakeRun]]:
    made = [FakeRun(namespace, name) for name in ("a", "b", "c", "d")]
    yield made
    for run in made:
        if run.monitor.poll() is None:
            run.monitor.kill()
            run.monitor.wait()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_first_to_end_is_returned_with_its_record(runs: list[FakeRun]) -> None:
    before = open_fds()
    runs[1].end(3)
    ended = waiting.wait_any([r.task for r in runs], None)
    assert [(task.name, record.state, record.exit_code) for task, record in ended] == [("b", "exited", 3)]
    assert open_fds() == before


def test_a_blocked_wait_returns_when_a_monitor_exits(runs: list[FakeRun]) -> None:
    ender = threading.Timer(0.1, runs[1].end, args=(5,))
    ender.start()
    try:
        ended = waiting.wait_any([r.task for r in runs], None)
    finally:
        ender.join()
    assert [(task.name, record.exit_code) for task, record in ended] == [("b", 5)]


def test_a_wait_wakes_on_the_monitors_exit(runs: list[FakeRun]) -> None:
    """The poll sleeps until a pidfd says its monitor exited: the end comes from the poll, not from a pause."""
    watch = waiting.Watch([r.task for r in runs[:2]])
    with watch:
        assert watch.look() == []
        assert len(watch.fds) == 2 and watch.pause(None) is None  # nothing to look at but the pidfds
        runs[0].end(0)
        fd = next(fd for fd, entry in watch.fds.items() if entry.task.name == "a")
        assert watch.look() == []  # not due: its pidfd has not been read yet
        watch.fired(fd)
        assert [(t.name, r.exit_code) for t, r in watch.look()] == [("a", 0)]
        assert [entry.task.name for entry in watch.pending] == ["b"] and len(watch.fds) == 1
    assert watch.fds == {}


def test_tasks_ended_already_come_back_at_once_all_of_them(runs: list[FakeRun]) -> None:
    runs[2].end(0)
    runs[0].end(1)
    ended = waiting.wait_any([r.task for r in runs], None)
    assert [(task.name, record.exit_code) for task, record in ended] == [("a", 1), ("c", 0)]  # in the order given


def test_a_timeout_returns_nothing_and_leaves_no_descriptor(runs: list[FakeRun]) -> None:
    before = open_fds()
    assert waiting.wait_any([r.task for r in runs], 0.05) == []
    assert waiting.wait_all([r.task for r in runs], 0) == []
    record = waiting.wait(runs[0].task, 0.01)
    assert record.state == "running"
    assert open_fds() == before


def test_an_unknown_task_is_refused_before_anything_is_awaited(namespace: Namespace, runs: list[FakeRun]) -> None:
    before = open_fds()
    with pytest.raises(NotRunning, match="task nosuch is not running"):
        waiting.wait_any([runs[0].task, Task(namespace, "nosuch")], None)
    assert open_fds() == before


def test_a_monitor_gone_without_a_result_ends_the_task_lost(runs: list[FakeRun]) -> None:
    runs[3].end(None)
    ended = waiting.wait_any([r.task for r in runs], None)
    assert [(task.name, record.state, record.exit_code) for task, record in ended] == [("d", "lost", None)]
    assert runs[3].task.record().state == "lost"


def test_wait_all_returns_every_end_as_it_comes_and_tells_each_batch(runs: list[FakeRun]) -> None:
    for run in runs:
        run.end(runs.index(run))
    batches: list[list[str]] = []
    ended = waiting.wait_all([r.task for r in runs] + [runs[0].task], None,
                             on_end=lambda batch: batches.append([t.name for t, _ in batch]))
    assert [(t.name, r.exit_code) for t, r in ended] == [("a", 0), ("b", 1), ("c", 2), ("d", 3)]  # "a" once
    assert batches == [["a", "b", "c", "d"]]


def test_the_window_bounds_the_descriptors_and_slides(runs: list[FakeRun], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiting, "watch_window", lambda: 2)
    watch = waiting.Watch([r.task for r in runs])
    with watch:
        assert watch.look() == []
        watched = sorted(entry.task.name for entry in watch.fds.values())
        assert watched == ["a", "b"]
        assert all(entry.due > 0 for entry in watch.pending if entry.fd < 0)  # the others: a look in a while
        runs[0].end(0)
        watch.fired(next(fd for fd, entry in watch.fds.items() if entry.task.name == "a"))
        assert [t.name for t, _ in watch.look()] == ["a"]
        assert sorted(entry.task.name for entry in watch.fds.values()) == ["b", "c"]  # c got the free slot


def test_a_monitor_that_reads_alive_after_its_exit_is_not_watched_again(runs: list[FakeRun]) -> None:
    """A zombie monitor (a child of this very process, not reaped) still reads alive: after its pidfd fired, the
    watch looks again after a pause rather than opening a pidfd that is readable at once, for ever."""
    watch = waiting.Watch([runs[0].task])
    with watch:
        watch.look()
        runs[0].monitor.kill()
        os.waitid(os.P_PID, runs[0].monitor.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        watch.fired(next(iter(watch.fds)))
        assert watch.look() == []
        assert watch.fds == {} and watch.pending[0].due > 0


def test_the_awaitables_end_like_the_blocking_calls(runs: list[FakeRun]) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        waiter = asyncio.ensure_future(runs[0].task.namespace.wait_any_async([r.task for r in runs]))
        await asyncio.sleep(0)
        assert not waiter.done()
        loop.call_soon(runs[2].end, 7)
        ended = await waiter
        assert [(t.name, r.exit_code) for t, r in ended] == [("c", 7)]
        assert (await runs[2].task.wait_async()).exit_code == 7
        assert (await runs[0].task.wait_async(timeout=0.01)).state == "running"

    before = open_fds()
    asyncio.run(scenario())
    assert open_fds() == before


def test_a_cancelled_wait_removes_its_readers_and_closes_its_descriptors(runs: list[FakeRun]) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        before = open_fds()
        waiter = asyncio.ensure_future(runs[0].task.namespace.wait_all_async([r.task for r in runs]))
        await asyncio.sleep(0)
        assert open_fds() == before + 4
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert open_fds() == before
        selector = loop._selector  # type: ignore[attr-defined]
        assert len(selector.get_map()) == 1  # the loop's own self-pipe alone

    asyncio.run(scenario())


def test_a_run_whose_record_vanished_while_awaited_ends_lost_with_a_warning(
        runs: list[FakeRun], capsys: pytest.CaptureFixture[str]) -> None:
    """Its record directory removed (by hand, or a release racing the end): no one can tell how it ended, and
    waiting longer would be forever."""
    watch = waiting.Watch([runs[0].task])
    with watch:
        assert watch.look() == []
        runs[0].end(None)
        shutil.rmtree(runs[0].task.state_dir)
        watch.fired(next(iter(watch.fds)))
        ended = watch.look()
    assert [(task.name, record.state, record.pids) for task, record in ended] == [("a", "lost", [])]
    assert "task a: ended with no record of its result" in capsys.readouterr().err
