"""Rotation of a log while its task writes to it: copy the log to ``.1`` (the older copies shifted, ``keep`` of
them kept), then truncate the live file, losing nothing the task wrote.

Tasks hold their log open ``O_APPEND``, so after a truncate their next write lands at the new end (offset 0),
never past a hole: copy and truncate is the only rotation that needs no help from the task. Its danger is the
moment between the copy's last read and the truncate: whatever the task writes then is in neither file. So the
copy is made in passes while the task runs, until what is left to copy is small, and the last pass, the rename
of the copy to ``.1`` and the truncate happen inside ``pause``: the caller's promise that nothing writes to the
log meanwhile (lanco freezes the task's cgroup, see ``Task.rotate_log``). The copy is renamed to ``.1`` before
the live file is truncated, so a rotation killed at any point leaves every byte in at least one file (at worst
twice: in ``.1`` and still in the live file).

This module knows files only; it is imported by ``logs --rotate`` and the API alone.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time

from lanco.errors import LancoError, PermissionDenied
from lanco.values import FrozenValue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

CHUNK = 1 << 20
SMALL_TAIL = 64 << 10
"""Copy passes go on while the task runs until a pass finds less than this to copy: the pause then covers the
copy of at most about this much (under a millisecond), whatever the size of the log."""
MAX_PASSES = 8
"""A task that writes faster than the copy reads is paused after this many passes anyway."""
PARTIAL_SUFFIX = ".rotating"


class Rotation(FrozenValue):
    """One rotation done: the live log, how many bytes went to ``.1``, and how long writers were held back
    (``paused`` False where they could not be: see :func:`rotate_over`)."""

    _fields = ("path", "copied_bytes", "pause_s", "paused")
    __slots__ = _fields
    path: str
    copied_bytes: int
    pause_s: float
    paused: bool

    def __init__(self, path: str, copied_bytes: int, pause_s: float, paused: bool) -> None:
        self._set_fields(path, copied_bytes, pause_s, paused)


def rotated_name(path: str, index: int) -> str:
    return f"{path}.{index}"


def rotate_over(path: str, max_size: int, keep: int,
                pause: Callable[[], AbstractContextManager[bool]]) -> Rotation | None:
    """Rotate ``path`` when it holds more than ``max_size`` bytes; None when it does not, does not exist, or is
    being rotated by another lanco at this very moment.

    ``pause()`` is entered once, around the last copy pass, the rename and the truncate; it yields whether
    writers are really held back (False: the caller could not pause them, and what they write between the last
    read and the truncate, a few microseconds, is lost). Should it raise, nothing has changed on disk (the partial
    copy is removed). The older copies are shifted inside the pause too, so that a failed pause drops none."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if os.path.islink(path):
            raise PermissionDenied(f"refusing to rotate log {path}: it is a symbolic link") from exc
        raise LancoError(f"cannot open log {path} to rotate it: {exc.strerror}") from exc
    try:
        live = os.fstat(fd)
        if not stat.S_ISREG(live.st_mode):
            raise LancoError(f"refusing to rotate log {path}: it is not a regular file")
        if live.st_size <= max_size:
            return None
        try:
            # Rotations of one file exclude each other (two tasks sharing a -l file, root's timer and the owner's);
            # the task itself never locks its log. The one under way does the work: no failure, nothing to do.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        return _rotate_open(fd, path, keep, live.st_mode, pause)
    finally:
        os.close(fd)


def _rotate_open(fd: int, path: str, keep: int, mode: int,
                 pause: Callable[[], AbstractContextManager[bool]]) -> Rotation:
    partial = path + PARTIAL_SUFFIX
    # A partial copy left by a rotation killed before its rename: the live file still holds all of it.
    if os.path.lexists(partial):
        os.unlink(partial)
    out = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                  stat.S_IMODE(mode))
    renamed = False
    try:
        copied = 0
        for _ in range(MAX_PASSES):
            step = _copy_to_end(fd, out, copied)
            copied += step
            if step < SMALL_TAIL:
                break
        # What is copied so far reaches the disk before the live file can lose it (the live file had a chance
        # to be written back already); the little the paused pass adds is synced after the pause.
        os.fdatasync(out)
        with pause() as paused:
            started = time.monotonic()
            _shift(path, keep)
            copied += _copy_to_end(fd, out, copied)
            os.replace(partial, rotated_name(path, 1))
            renamed = True
            os.ftruncate(fd, 0)
            pause_s = time.monotonic() - started
        os.fdatasync(out)
    finally:
        os.close(out)
        if not renamed:
            try:
                os.unlink(partial)
            except FileNotFoundError:
                pass
    return Rotation(path, copied, pause_s, paused)


def _copy_to_end(fd: int, out: int, offset: int) -> int:
    """Append to ``out`` what ``fd`` holds from ``offset`` to its current end; the number of bytes copied."""
    copied = 0
    while chunk := os.pread(fd, CHUNK, offset + copied):
        view = memoryview(chunk)
        while view:
            view = view[os.write(out, view):]
        copied += len(chunk)
    return copied


def _shift(path: str, keep: int) -> None:
    """``.keep-1`` becomes ``.keep`` (the old ``.keep`` goes), ..., ``.1`` becomes ``.2``: room for a new ``.1``.
    Renames move links themselves, never what they point to."""
    for index in range(keep - 1, 0, -1):
        older = rotated_name(path, index)
        if os.path.lexists(older):
            os.replace(older, rotated_name(path, index + 1))
