"""A task's log as a caller reads it (``logs``, ``logs -f``) and bounds it (``logs --rotate``).

The log is the one the run's record names; its rotation pauses the running task for the last moment of the copy
(lanco.state.logrotation does the copying), under the same locks as a stop and a start, so that neither lands in the
pause.
"""

from __future__ import annotations

import os

from lanco import contexts, messages
from lanco.errors import LancoError, StateError
from lanco.state import logfile, recorddir
from lanco.state.record import read_spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import BinaryIO

    from lanco.state.logrotation import Rotation
    from lanco.task import Task

ROTATION_FREEZE_TIMEOUT = 2.0
"""How long a log rotation waits for its task to freeze (a process in uninterruptible sleep holds it up)
before it gives up, thaws the task and leaves the log for the next rotation."""


def _log_path(task: Task) -> str:
    log = (read_spec(task.state_dir) or {}).get("log")
    return str(log) if log else task.namespace.config.default_log(task.name)


def show_log(task: Task, out: BinaryIO, lines: int | None, follow: bool) -> None:
    """:meth:`lanco.task.Task.show_log`."""
    path = _log_path(task)
    f = logfile.open_read(path)
    if f is None and not follow:
        if task.record().state == "unknown":
            raise LancoError(f"task {task.name} is not known")
        raise LancoError(f"task {task.name} has no log: {path} does not exist")
    if f is not None:
        if lines is not None:
            f.seek(logfile.tail_start(f, lines))
        logfile.copy(f, out)
        if not follow:
            f.close()
            return
    logfile.follow(path, f, out, os.path.join(task.state_dir, "spec.json"), lambda: _log_path(task))


def rotate_log(task: Task) -> Rotation | None:
    """:meth:`lanco.task.Task.rotate_log`."""
    from lanco.options.runopts import LogBounds
    from lanco.state import logrotation

    # The stop lock, then the start lock (the order stop takes them in): a stop thaws the task it signals, a
    # new run rotates the log as it starts, and a freeze or thaw must not land in the pause.
    rotation = None
    with recorddir.lock(task, "stop.lock"), recorddir.lock(task):
        spec = read_spec(task.state_dir)
        try:
            bounds = LogBounds.from_record((spec or {}).get("log_bounds"))
        except StateError as exc:
            raise StateError(f"the record of task {task.name} is damaged: "
                             f"{os.path.join(task.state_dir, 'spec.json')}: {exc.message}") from None
        if spec is not None and spec.get("log") and bounds.max_size is not None:
            rotation = logrotation.rotate_over(str(spec["log"]), bounds.max_size, bounds.keep,
                                               lambda: _writers_paused(task))
    return rotation


@contexts.contextmanager
def _writers_paused(task: Task) -> Iterator[bool]:
    """Freeze the running task for the rotation's last moment; yields whether its writes are held back (True
    too for a task that is not running or frozen already: nothing of it writes)."""
    backend, ns = task.namespace.backend, task.namespace.name
    if not task.is_running() or backend.frozen(ns, task.name):
        yield True
        return
    if not backend.freezable(ns, task.name):
        messages.debug("logs", f"task {task.name}: no freezer in cgroup mode {backend.mode}, its log is "
                               "truncated right after the last copy without a pause")
        yield False
        return
    try:
        backend.set_frozen(ns, task.name, True, settle_timeout=ROTATION_FREEZE_TIMEOUT)
    except LancoError as exc:
        with contexts.suppress(LancoError, OSError):
            backend.set_frozen(ns, task.name, False)
        raise LancoError(f"cannot pause task {task.name} to rotate its log: {exc.message}; the log is left as "
                         "it was") from None
    try:
        yield True
    finally:
        try:
            backend.set_frozen(ns, task.name, False)
        except LancoError:
            if backend.task_exists(ns, task.name):
                raise  # still there, and frozen: never hidden
