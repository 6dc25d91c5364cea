"""Task logs: rotation of the previous run's log, a safe append-only open, and reading them for ``logs``.

Root reads and writes a user's logs only with the owner's ids (``Task.show_log`` and ``Task.launch`` run
under ``lanco.privileges.with_owner_ids``), so a log path a user planted in a record opens nothing the owner
could not open.
"""

from __future__ import annotations

import os
import time

from lanco.errors import LancoError, PermissionDenied

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

KEEP_ROTATED = 5


def rotate(path: str, keep: int = KEEP_ROTATED) -> None:
    """``log`` becomes ``log.1``, ``log.1`` becomes ``log.2``, ... and ``log.<keep>`` is dropped."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path):
        raise PermissionDenied(f"refusing to rotate log {path}: it is a symbolic link")
    for index in range(keep - 1, 0, -1):
        older = f"{path}.{index}"
        if os.path.lexists(older):
            os.replace(older, f"{path}.{index + 1}")
    os.replace(path, f"{path}.1")


def require_space(path: str) -> None:
    """Refuse a log whose file system is full: the task would run with its output silently lost."""
    try:
        free_blocks = os.statvfs(os.path.dirname(path) or ".").f_bavail
    except OSError:
        return  # a missing directory is reported by the open that follows
    if free_blocks == 0:
        raise LancoError(f"cannot log to {path}: no space left on its file system")


def open_append(path: str, owner: tuple[int, int] | None = None) -> int:
    """Open ``path`` for appending without following a symbolic link; the caller closes the descriptor."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    except OSError as exc:
        if os.path.islink(path):
            raise PermissionDenied(f"refusing to write log {path}: it is a symbolic link") from exc
        raise LancoError(f"cannot open log {path}: {exc.strerror}") from exc
    if owner is not None:
        os.fchown(fd, *owner)
    return fd


# -- reading, for ``logs`` -----------------------------------------------------------------------------------

POLL_S = 0.2
"""How often ``logs -f`` looks for new output, a rotation or a new run once the log is idle."""


def open_read(path: str) -> BinaryIO | None:
    """The log opened for reading, None when it does not exist."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None
    except PermissionError:
        raise PermissionDenied(f"cannot read log {path}: permission denied") from None
    except OSError as exc:
        raise LancoError(f"cannot read log {path}: {exc.strerror}") from None


def tail_start(f: BinaryIO, lines: int) -> int:
    """The offset of the last ``lines`` lines, found by reading backwards a block at a time."""
    end = f.seek(0, os.SEEK_END)
    if lines <= 0:
        return end
    position, found, block = end, 0, 65536
    # A final newline ends the last line rather than starting an empty one.
    f.seek(max(0, end - 1))
    skip_last = f.read(1) == b"\n"
    while position > 0:
        step = min(block, position)
        position -= step
        f.seek(position)
        chunk = f.read(step)
        if skip_last and position + step == end:
            chunk = chunk[:-1]
        index = len(chunk)
        while True:
            index = chunk.rfind(b"\n", 0, index)
            if index < 0:
                break
            found += 1
            if found == lines:
                return position + index + 1
    return 0


def copy(f: BinaryIO, out: BinaryIO) -> bool:
    copied = False
    while chunk := f.read(65536):
        out.write(chunk)
        copied = True
    if copied:
        out.flush()
    return copied


def follow(path: str, f: BinaryIO | None, out: BinaryIO, spec_path: str, current_path: Callable[[], str]) -> None:
    """``tail -F`` for a task: reopen by path when the file is replaced (the next run rotates the log to
    ``.1`` and starts a new one) or when a new run logs elsewhere (``spec_path`` changed and ``current_path()``
    names another log); start over when it is truncated. Ends with an exception (an interrupt), or when nobody
    reads ``out`` any more: a quiet log would otherwise keep a follower whose reader left (``lanco -H HOST NS logs
    -f`` over a dropped ssh connection) alive until the task's next line."""
    spec_stamp = _stamp(spec_path)
    while True:
        if f is not None and copy(f, out):
            continue
        time.sleep(POLL_S)
        if reader_gone(out):
            return
        stamp = _stamp(spec_path)
        if stamp != spec_stamp:
            spec_stamp = stamp
            new_path = current_path()
            if new_path != path:
                if f is not None:
                    copy(f, out)
                    f.close()
                path, f = new_path, open_read(new_path)
                continue
        try:
            on_disk = os.stat(path)
        except FileNotFoundError:
            continue  # rotated away, the new one not created yet
        if f is None:
            f = open_read(path)
            continue
        mine = os.fstat(f.fileno())
        if (on_disk.st_ino, on_disk.st_dev) != (mine.st_ino, mine.st_dev):
            copy(f, out)  # what the old run wrote after our last read
            f.close()
            f = open_read(path)
        elif on_disk.st_size < f.tell():
            f.seek(0)


def reader_gone(out: BinaryIO) -> bool:
    """True when ``out`` is a pipe, socket or terminal whose other end has closed (POLLERR, POLLHUP): what a
    write would learn by EPIPE, learnt without writing."""
    import select

    try:
        poller = select.poll()
        poller.register(out.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False  # no descriptor (an API caller's BytesIO), or one poll cannot watch: its writes will tell


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)
