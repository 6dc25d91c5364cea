"""Waiting for tasks to end: one, any of many, or all of them, in one thread and one poll.

A task ends when its record says a finished state: its monitor wrote the result, or, where the monitor died
without one, whoever looked next recorded the run ``lost`` (once, :meth:`lanco.task.Task.record`). The moment to
look again is the monitor's exit, which a pidfd (``os.pidfd_open``) makes a readable descriptor: a :class:`Watch`
holds one pidfd per task still awaited, closed as soon as that task's monitor has exited, so that many tasks are
awaited by a single ``poll`` (here) or by the readers of one asyncio loop (lanco.waiting_async), never by a thread
or a process per task. A ``--restart`` task keeps one monitor across its runs: it ends when that monitor stops
restarting it.

A task has no pidfd to watch while its monitor is not known yet (a start under way), when its monitor died and its
processes run on (it ends, and is recorded lost, once they are gone), and beyond the window of descriptors (a
quarter of the soft ``RLIMIT_NOFILE``, 256 under the usual 1024, at most 4096): such a task is looked at again
after a pause growing from 5 ms to 1 s. A look at a task whose monitor lives and has written no result reads two
small files (the monitor's, and its /proc stat); only a task that may have ended has its whole record read.
"""

from __future__ import annotations

import os
import select
import time

from lanco import messages
from lanco.errors import NotRunning
from lanco.state.record import FINISHED_STATES, monitor_pid

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from lanco.state.record import TaskRecord
    from lanco.task import Task

    Ended = tuple[Task, TaskRecord]

LONGEST_PAUSE = 1.0
"""The longest pause between two looks at a task that has no pidfd watched."""


def watch_window() -> int:
    """How many pidfds one watch holds open at most: a quarter of the soft descriptor limit, 16 to 4096."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(16, min(4096, soft // 4))


class _Awaited:
    """One task of a watch: its last record, and its monitor's pidfd or the time of its next look."""

    __slots__ = ("delay", "due", "exited", "fd", "monitor", "record", "task")

    def __init__(self, task: Task) -> None:
        self.task = task
        self.record: TaskRecord | None = None
        self.fd = -1
        self.monitor: int | None = None  # the pid the pidfd (or the next look) is for
        self.exited: int | None = None  # a monitor whose pidfd said it exited (a zombie reads alive)
        self.due = 0.0
        self.delay = 0.005


class Watch:
    """Tasks awaited together. :meth:`look` looks at every task that is due (its pidfd fired, or its pause is
    over) and returns those that ended; the caller sleeps in between until one of :attr:`fds` is
    readable (then :meth:`fired`) or :meth:`pause` has passed. ``on_open`` and ``on_close`` let the caller's
    poller follow the descriptors. :meth:`close` closes every descriptor left; a watch is used once."""

    def __init__(self, tasks: Sequence[Task], on_open: Callable[[int], object] | None = None,
                 on_close: Callable[[int], object] | None = None) -> None:
        unique: dict[str, Task] = {}
        for task in tasks:
            unique.setdefault(task.name, task)  # a name given twice is awaited once
        self.pending = [_Awaited(task) for task in unique.values()]
        self.fds: dict[int, _Awaited] = {}
        self.on_open = on_open
        self.on_close = on_close
        self.window = watch_window()
        self._started = False

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for entry in list(self.fds.values()):
            self._release(entry)

    def fired(self, fd: int) -> None:
        """The pidfd ``fd`` is readable: its monitor exited, and its task is due for a look."""
        entry = self.fds.get(fd)
        if entry is not None:
            entry.exited = entry.monitor
            self._release(entry)
            entry.due = 0.0

    def pause(self, deadline: float | None) -> float | None:
        """Seconds until the next look is due or ``deadline`` passes (None: only a pidfd can wake the watch)."""
        dues = [entry.due for entry in self.pending if entry.fd < 0]
        if deadline is not None:
            dues.append(deadline)
        return max(0.0, min(dues) - time.monotonic()) if dues else None

    def look(self) -> list[Ended]:
        """The tasks that have ended, in the order given, dropped from :attr:`pending`. The first look is at every
        task, and raises NotRunning for one that is not known (neither a record nor a cgroup) before it waits."""
        first = not self._started
        now = time.monotonic()
        due = self.pending if first else [entry for entry in self.pending if entry.fd < 0 and entry.due <= now]
        looks: list[tuple[_Awaited, TaskRecord | None]] = []
        for entry in due:
            monitor = self._live_monitor(entry)
            if monitor is not None:  # known, and not ended: its record need not be read (a few files more)
                looks.append((entry, None))
                entry.monitor = monitor
                continue
            record = entry.task.record()
            if first and record.state == "unknown":
                raise NotRunning(f"task {entry.task.name} is not running")
            looks.append((entry, record))
        self._started = True
        ended: list[Ended] = []
        for entry, looked in looks:
            final = None if looked is None else self._settle(entry, looked)
            if final is not None:
                ended.append((entry.task, final))
        if ended:
            done = {task.name for task, _ in ended}
            self.pending = [entry for entry in self.pending if entry.task.name not in done]
        self._arm()
        return ended

    def _live_monitor(self, entry: _Awaited) -> int | None:
        """The task's monitor while it lives and no result is written (the run has not ended; a monitor running
        the exit hook has written the result already), else None. The cheap look: two small files."""
        with entry.task.owner_ids():
            monitor = monitor_pid(entry.task.state_dir)
            if monitor is None or monitor == entry.exited or os.path.exists(os.path.join(entry.task.state_dir,
                                                                                        "result")):
                return None
        if entry.fd < 0:
            messages.debug("wait", f"task {entry.task.name} has its monitor {monitor}, waiting")
        return monitor

    def _settle(self, entry: _Awaited, record: TaskRecord) -> TaskRecord | None:
        """The task's final record if it has ended; else None, with its monitor noted for :meth:`_arm`."""
        previous, entry.record = entry.record, record
        if record.state in FINISHED_STATES:
            self._release(entry)
            from lanco.eventlog.claims import journal_found_end  # here: the end seen, journaled if nobody did yet

            with entry.task.owner_ids():
                journal_found_end(entry.task)
            return record
        if record.state == "unknown":
            # Known at the first look, the run ended, and neither its monitor nor anyone else could record how (its
            # record directory was removed again): waiting longer would be forever.
            messages.warn(messages.command(), f"task {entry.task.name}: ended with no record of its result")
            lost = previous or record
            lost.state, lost.pids = "lost", []
            self._release(entry)
            return lost
        messages.debug("wait", f"task {entry.task.name} is {record.state}, waiting")
        with entry.task.owner_ids():
            monitor = monitor_pid(entry.task.state_dir)
        self._release(entry)
        if monitor is None or monitor == entry.exited:
            # A start under way, a monitor gone while the task runs on, or one that exited but reads alive (a
            # zombie of this very process): look again after a pause.
            entry.monitor = None
            self._pause(entry)
        else:
            entry.monitor = monitor
        return None

    def _pause(self, entry: _Awaited) -> None:
        entry.due = time.monotonic() + entry.delay
        entry.delay = min(entry.delay * 2, LONGEST_PAUSE)

    def _arm(self) -> None:
        """A pidfd for every pending task with a live monitor, as far as the window allows; a look in a second for
        the others."""
        for entry in self.pending:
            if entry.fd >= 0 or entry.monitor is None:
                continue
            if len(self.fds) >= self.window:
                entry.due = time.monotonic() + LONGEST_PAUSE
                continue
            try:
                fd = os.pidfd_open(entry.monitor)
            except OSError:  # gone already (ESRCH), or out of descriptors: look again soon
                entry.monitor = None
                self._pause(entry)
                continue
            with entry.task.owner_ids():
                same = monitor_pid(entry.task.state_dir) == entry.monitor
            if not same:  # it exited, and its pid may be another process's already
                os.close(fd)
                entry.monitor = None
                entry.due = 0.0
                continue
            entry.fd = fd
            entry.delay = 0.005
            self.fds[fd] = entry
            if self.on_open is not None:
                self.on_open(fd)

    def _release(self, entry: _Awaited) -> None:
        if entry.fd < 0:
            return
        fd, entry.fd = entry.fd, -1
        del self.fds[fd]
        try:
            if self.on_close is not None:
                self.on_close(fd)
        finally:
            os.close(fd)


def _next_ends(watch: Watch, poller: select.poll, deadline: float | None) -> list[Ended]:
    """The next tasks of ``watch`` to end, or [] once ``deadline`` passed first."""
    from lanco.cgroups.cgroupfs import poll_ms

    while True:
        ended = watch.look()
        if ended or not watch.pending:
            return ended
        if deadline is not None and time.monotonic() >= deadline:
            return []
        for fd, _ in poller.poll(poll_ms(watch.pause(deadline))):
            watch.fired(fd)


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + max(0.0, timeout)


def _polled(tasks: Sequence[Task]) -> tuple[Watch, select.poll]:
    poller = select.poll()
    return Watch(tasks, on_open=lambda fd: poller.register(fd, select.POLLIN), on_close=poller.unregister), poller


def wait(task: Task, timeout: float | None) -> TaskRecord:
    """:meth:`lanco.task.Task.wait`: the final record, or after ``timeout`` the record as it stands."""
    deadline = _deadline(timeout)
    watch, poller = _polled([task])
    with watch:
        ended = _next_ends(watch, poller, deadline)
        if ended:
            return ended[0][1]
        record = watch.pending[0].record
        return task.record() if record is None else record


def wait_any(tasks: Sequence[Task], timeout: float | None) -> list[Ended]:
    """:meth:`lanco.namespace.Namespace.wait_any`."""
    deadline = _deadline(timeout)
    watch, poller = _polled(tasks)
    with watch:
        return _next_ends(watch, poller, deadline)


def wait_all(tasks: Sequence[Task], timeout: float | None,
             on_end: Callable[[list[Ended]], object] | None = None) -> list[Ended]:
    """:meth:`lanco.namespace.Namespace.wait_all`."""
    deadline = _deadline(timeout)
    watch, poller = _polled(tasks)
    ended: list[Ended] = []
    with watch:
        while watch.pending:
            batch = _next_ends(watch, poller, deadline)
            if not batch:
                break
            ended.extend(batch)
            if on_end is not None:
                on_end(batch)
    return ended
