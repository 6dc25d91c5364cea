"""Waiting for tasks to end, for asyncio daemons: the awaitables of lanco.waiting on the running loop.

The same :class:`lanco.waiting.Watch` as the blocking calls, its pidfds handed to the loop with
``loop.add_reader``: one thread however many tasks are awaited, one descriptor per task still awaited (up to the
watch's window), and none left behind. A reader is removed as soon as it fires (a pidfd stays readable once its
process exited, and a level-triggered reader would spin), and a cancelled wait removes every reader and closes
every descriptor before the cancellation reaches its caller. The looks at records are short file reads, done on the
loop's thread.

This is the only module of lanco that imports asyncio: neither ``import lanco`` nor the command line loads it.
"""

from __future__ import annotations

import asyncio
import time

from lanco.errors import as_lanco_error
from lanco.waiting import Watch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from lanco.state.record import TaskRecord
    from lanco.task import Task
    from lanco.waiting import Ended


class _LoopWatch:
    """A watch whose pidfds are readers of the running loop; :meth:`next_ends` awaits the next tasks to end."""

    def __init__(self, tasks: Sequence[Task]) -> None:
        self.loop = asyncio.get_running_loop()
        self.wake: asyncio.Future[None] | None = None
        self.watch = Watch(tasks, on_open=self._add, on_close=self.loop.remove_reader)

    def _add(self, fd: int) -> None:
        self.loop.add_reader(fd, self._fire, fd)

    def _fire(self, fd: int) -> None:
        self.loop.remove_reader(fd)
        self.watch.fired(fd)
        self._wake_up()

    def _wake_up(self) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    async def next_ends(self, deadline: float | None) -> list[Ended]:
        """The next tasks to end, or [] once ``deadline`` (monotonic) passed first."""
        watch = self.watch
        while True:
            ended = watch.look()
            if ended or not watch.pending:
                return ended
            if deadline is not None and time.monotonic() >= deadline:
                return []
            pause = watch.pause(deadline)
            self.wake = self.loop.create_future()
            timer = None if pause is None else self.loop.call_later(pause, self._wake_up)
            try:
                await self.wake
            finally:
                if timer is not None:
                    timer.cancel()
                self.wake = None


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + max(0.0, timeout)


async def wait_async(task: Task, timeout: float | None) -> TaskRecord:
    """:meth:`lanco.task.Task.wait_async`."""
    deadline = _deadline(timeout)
    try:
        waiter = _LoopWatch([task])
        with waiter.watch:
            ended = await waiter.next_ends(deadline)
            if ended:
                return ended[0][1]
            record = waiter.watch.pending[0].record
            return task.record() if record is None else record
    except OSError as exc:
        raise as_lanco_error(exc) from exc


async def wait_any_async(tasks: Sequence[Task], timeout: float | None) -> list[Ended]:
    """:meth:`lanco.namespace.Namespace.wait_any_async`."""
    deadline = _deadline(timeout)
    try:
        waiter = _LoopWatch(tasks)
        with waiter.watch:
            return await waiter.next_ends(deadline)
    except OSError as exc:
        raise as_lanco_error(exc) from exc


async def wait_all_async(tasks: Sequence[Task], timeout: float | None) -> list[Ended]:
    """:meth:`lanco.namespace.Namespace.wait_all_async`."""
    deadline = _deadline(timeout)
    ended: list[Ended] = []
    try:
        waiter = _LoopWatch(tasks)
        with waiter.watch:
            while waiter.watch.pending:
                batch = await waiter.next_ends(deadline)
                if not batch:
                    break
                ended.extend(batch)
    except OSError as exc:
        raise as_lanco_error(exc) from exc
    return ended
