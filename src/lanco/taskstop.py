"""A run's end as a caller brings it about: stop, of one task or several together (waiting for ends is
lanco.waiting's).

A stop is two halves, so that several tasks can get their stop signal before any is awaited: :func:`begin` (the
stop marker, the signal, a thaw) and :func:`finish` (the grace, the kill, the monitor's result). Stops of one name
take turns on its ``stop.lock`` (:func:`take_turn`).
"""

from __future__ import annotations

import os
import time

from lanco import contexts, messages, signums
from lanco.errors import CgroupError, LancoError, NotRunning, PermissionDenied, StateError, as_lanco_error
from lanco.state import recorddir
from lanco.state.record import (
    FINISHED_STATES,
    TaskRecord,
    apply_result,
    monitor_pid,
    read_result,
    restart_pending,
    stray_first_process,
)
from lanco.taskrecovery import live_spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from lanco.options.lifetime import Lifetime
    from lanco.task import Task


def stop(task: Task, timeout: float | None, stop_signal: int | None) -> TaskRecord:
    """:meth:`lanco.task.Task.stop`."""
    with contexts.ExitStack() as locks:
        take_turn(task, locks)
        deadline, restart_delay = begin(task, timeout, stop_signal)
        return finish(task, deadline, restart_delay)


def take_turn(task: Task, locks: contexts.ExitStack) -> None:
    """Hold this task's stop lock in ``locks``; NotRunning when the task is not running, before the lock or
    once it is ours (a concurrent stop has ended it)."""
    if not task.is_active():
        raise NotRunning(f"task {task.name} is not running")
    locks.enter_context(recorddir.lock(task, "stop.lock"))
    if not task.is_active():
        raise NotRunning(f"task {task.name} is not running")


def begin(task: Task, timeout: float | None, stop_signal: int | None) -> tuple[float, float]:
    """The first half of a stop: marker, stop signal, thaw. Returns the monotonic time after which the task
    gets killed and its restart delay (how long a monitor pausing before a restart may take to end)."""
    ns, backend = task.namespace.name, task.namespace.backend
    task.stopped_cgroup = _cgroup_id(task)
    spec = live_spec(task) or {}
    lifetime = _lifetime(spec)
    timeout = lifetime.stop_timeout if timeout is None else timeout
    stop_signal = lifetime.stop_signal if stop_signal is None else stop_signal
    # The marker names the run it stops; "*" any run of the monitor, where the record of which is lost.
    recorddir.write_marker(task, "stop", str(spec.get("run_id", "")) or "*")
    if restart_pending(task.state_dir, spec):
        _wake_monitor(task)
    try:
        signalled = task.signal(stop_signal, resume=True)
        messages.debug("stop", f"task {task.name}: signal {stop_signal} sent to {signalled} processes, "
                               f"waiting up to {timeout}s")
    except PermissionDenied:
        with contexts.suppress(FileNotFoundError):
            os.unlink(os.path.join(task.state_dir, "stop"))
        raise
    if backend.frozen(ns, task.name):
        # Thawed once signalled, so that it acts on the signal before running anything else (a frozen
        # process takes only a fatal signal, and v1 delivers even that on thaw).
        with contexts.suppress(LancoError):
            backend.set_frozen(ns, task.name, False)
    return time.monotonic() + timeout, lifetime.restart_delay


def finish(task: Task, deadline: float, restart_delay: float) -> TaskRecord:
    """The second half: wait for the task to end until ``deadline``, kill what is left, await its result."""
    ns, backend = task.namespace.name, task.namespace.backend
    if not _wait_gone(task, deadline):
        if _cgroup_id(task) != task.stopped_cgroup:
            # The run stopped ended, and a new run of the name (run does not wait for stops) has a new cgroup:
            # it is not this stop's to kill.
            return _ended_record(task)
        messages.debug("stop", f"task {task.name}: still running after its stop timeout, killing it")
        for _ in range(10):
            backend.kill(ns, task.name)
            _kill_stray(task)
            if _wait_gone(task, time.monotonic() + 1.0):
                break
        else:
            raise CgroupError(f"task {task.name} still has processes after SIGKILL: "
                              f"{' '.join(map(str, task.pids()))}")
    # A monitor pausing before a restart that could not be woken ends when its pause does.
    return _await_end(task, 5.0 + restart_delay)


_STOP_BATCH = 256
"""Tasks stopped together at most: each holds its stop lock, an open descriptor, until it has ended."""


def stop_together(tasks: list[Task], timeout: float | None,
                  stop_signal: int | None) -> dict[str, TaskRecord | LancoError]:
    """:func:`lanco.task.stop_together`."""
    unique = list({task.name: task for task in tasks}.values())  # in the order of their first mention
    outcome: dict[str, TaskRecord | LancoError] = {}
    for first in range(0, len(unique), _STOP_BATCH):
        with contexts.ExitStack() as locks:
            begun: list[tuple[Task, float, float]] = []
            for task in unique[first:first + _STOP_BATCH]:
                try:
                    take_turn(task, locks)
                    begun.append((task, *begin(task, timeout, stop_signal)))
                except Exception as exc:
                    outcome[task.name] = _stop_failure(task, exc)
            for task, deadline, restart_delay in begun:
                try:
                    outcome[task.name] = finish(task, deadline, restart_delay)
                except Exception as exc:
                    outcome[task.name] = _stop_failure(task, exc)
    return {task.name: outcome[task.name] for task in unique}


def _stop_failure(task: Task, exc: Exception) -> LancoError:
    """The error of one task's stop among several; one that does not name its task yet (an OSError, a bug) is
    told with the task's name, so that each of the lines stop prints says whose it is."""
    if isinstance(exc, LancoError):
        return exc
    failure = as_lanco_error(exc)
    failure.message = f"task {task.name}: {failure.message}"
    return failure


def _lifetime(spec: dict[str, Any]) -> Lifetime:
    from lanco.options.lifetime import Lifetime

    return Lifetime.from_record(spec.get("lifetime"))


def _cgroup_id(task: Task) -> int | None:
    """The tracker cgroup's inode: each run has a cgroup of its own (restarts of one run keep theirs)."""
    try:
        return os.stat(task.namespace.backend.task_dir(task.namespace.name, task.name)).st_ino
    except OSError:
        return None


def _wait_gone(task: Task, deadline: float) -> bool:
    """Wait until the task's cgroups are empty and no first process of it lives outside them."""
    if not task.namespace.backend.wait_empty(task.namespace.name, task.name,
                                             max(0.0, deadline - time.monotonic())):
        return False
    delay = 0.005
    while stray_first_process(task.state_dir, []) is not None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return True


def _kill_stray(task: Task) -> None:
    stray = stray_first_process(task.state_dir, [])
    if stray is None:
        return
    try:
        os.kill(stray, signums.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        raise PermissionDenied(f"cannot kill process {stray} of task {task.name}: it runs as another user") \
            from None


def _wake_monitor(task: Task) -> None:
    """Cut short a monitor's pause before a restart (it checks the stop marker when woken)."""
    monitor = monitor_pid(task.state_dir)
    if monitor is not None:
        with contexts.suppress(OSError):
            os.kill(monitor, signums.SIGUSR1)


def _await_end(task: Task, timeout: float) -> TaskRecord:
    deadline = time.monotonic() + timeout
    record = _ended_record(task)
    # Looks 2 ms apart at first, then further apart (up to 25 ms): the monitor's last steps (its figures, the
    # result's rename, the cgroup's removal) take longer where processes start slowly, and a stop reading the
    # record all the while takes CPU from the very monitor it waits for.
    pause = 0.002
    while record.state not in FINISHED_STATES and time.monotonic() < deadline:
        time.sleep(pause)
        pause = min(pause * 1.5, 0.025)
        record = _ended_record(task)
    return record


def _ended_record(task: Task) -> TaskRecord:
    """:meth:`lanco.task.Task.record`, or where the spec is damaged (named in a warning already), what the result
    says: a stop of a task known from its cgroup only does not fail once the task has ended."""
    try:
        return task.record()
    except StateError:
        record = TaskRecord(task.namespace.name, task.name, "unknown")
        with contexts.suppress(StateError):
            if (result := read_result(task.state_dir)) is not None:
                apply_result(record, *result)
        return record
