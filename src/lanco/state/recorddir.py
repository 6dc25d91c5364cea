"""A task's record directory as the lanco commands share it: made again when it is gone, its run files cleared for
a new run, its markers written, and its two locks (``lock`` serialises the starts of a name, ``stop.lock`` its
stops).

Several users write here (the owner, members of the namespace's group, root acting for the owner), and a release
may remove the whole directory at any moment: every write is a new file renamed into place, owned as the owner's,
and a lock counts only while its path still names the very file locked.
"""

from __future__ import annotations

import fcntl
import os

from lanco import contexts, messages
from lanco.errors import LancoError, StateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from lanco.task import Task

RUN_FILES = ("spec.json", "monitor", "pid", "result", "stop", "timeout", "restarting", "runs.jsonl", "oom_base",
             "journaled")
"""What one run leaves in the directory; a new run of the name starts without any of them (``journaled``, the
claim of its events, once the launcher has journaled the previous run's end: lanco.taskstart)."""


def ensure(task: Task, owner: tuple[int, int] | None) -> None:
    """Make the record directory where it is missing, given to ``owner`` when root acts for them."""
    config = task.namespace.config
    mode = 0o2770 if config.group_access else 0o700
    try:
        os.mkdir(task.state_dir, mode)
    except FileExistsError:
        return
    except FileNotFoundError:
        raise StateError(f"the state directory of namespace {task.namespace.name} is damaged: "
                         f"{config.tasks_dir} is gone (run init again to recreate it)") from None
    os.chmod(task.state_dir, mode)  # the umask took the group's write bit
    if owner is not None:
        os.chown(task.state_dir, *owner)


def clear_run_files(task: Task) -> None:
    for name in RUN_FILES:
        with contexts.suppress(FileNotFoundError):
            os.unlink(os.path.join(task.state_dir, name))
    with contexts.suppress(FileNotFoundError, OSError):
        os.rmdir(os.path.join(task.state_dir, "hook.claimed"))


def write_marker(task: Task, name: str, content: str) -> None:
    # A new file renamed over the old one: the old one may belong to another member of the group.
    path = os.path.join(task.state_dir, name)
    tmp = f"{path}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, content.encode() + b"\n")
        if (owner := task.namespace.acting_for_owner) is not None:
            os.fchown(fd, *owner)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        with contexts.suppress(OSError):
            os.unlink(tmp)
        raise


def chown_record(directory: str, owner: tuple[int, int]) -> None:
    """Give every file of a record directory to ``owner`` (root wrote them acting for the owner)."""
    for entry in os.scandir(directory):
        with contexts.suppress(OSError):
            os.chown(entry.path, *owner, follow_symlinks=False)


@contexts.contextmanager
def lock(task: Task, name: str = "lock") -> Iterator[int]:
    """Serialise the starts (``lock``) or the stops (``stop.lock``) of one name; yields the lock's descriptor
    (a start hands it on to the monitor, which holds the lock until it is known alive)."""
    fd = acquire(task, name, blocking=True)
    assert fd is not None
    try:
        yield fd
    finally:
        os.close(fd)


@contexts.contextmanager
def try_lock(task: Task) -> Iterator[bool]:
    """The start lock if it is free at once; yields whether it was taken."""
    try:
        fd = acquire(task, "lock", blocking=False)
    except (OSError, LancoError):
        yield False
        return
    if fd is None:
        yield False
        return
    try:
        yield True
    finally:
        os.close(fd)


def acquire(task: Task, name: str, *, blocking: bool) -> int | None:
    """A descriptor holding the exclusive flock of the record directory's ``name``; None when not ``blocking``
    and another holds it.

    release removes the record directory, its lock files with it, while it holds ``lock``: a caller that had
    opened the file and waited then holds a lock on an unlinked file, while the next caller creates a new
    file at the path and locks that. A lock on an unlinked file protects nothing (two runs of one name both
    started their command), so a lock counts only while the path still names the very file locked.
    """
    path = os.path.join(task.state_dir, name)
    while True:
        fd = _open_lock(task, name)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            held = os.fstat(fd)
            try:
                named = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                named = None
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        if named is not None and held.st_nlink > 0 and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
            return fd
        messages.debug("lock", f"task {task.name}: {name} was removed while waiting for it, locking anew")
        os.close(fd)


def _open_lock(task: Task, name: str) -> int:
    path = os.path.join(task.state_dir, name)
    # Read-only is enough for flock; readable by all, so that whoever of the owner and the group
    # members created it, the others can lock it too.
    flags = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    owner = task.namespace.acting_for_owner
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        # The record directory is gone (removed by release meanwhile, or by hand while the task runs): the
        # cgroup is the truth, and the locks need a directory again.
        ensure(task, owner)
        fd = os.open(path, flags, 0o644)
    if owner is not None:
        with contexts.suppress(OSError):
            os.fchown(fd, *owner)
    return fd
