"""cgroupfs file I/O: the one module through which lanco's Python code reads and writes cgroup files.

Every write a launch, a limit, a kill or a set-up makes goes through :func:`write` (or :func:`join` and
:func:`enable_controllers`, which name the two files that matter most), so that the rules of cgroupfs are kept in
one place: one ``write(2)`` per value (the kernel takes one value per write and reports its error there), no
buffering, close-on-exec. Reads are unbuffered too: listings read several files of every task, and a buffered
``open()`` costs five more system calls. The monitor script writes its own ``cgroup.procs`` files, at the paths
the backend hands it.

It imports no more than ``os``, ``errno``, ``select`` and ``time``: ``check`` loads it and must stay quick.
"""

from __future__ import annotations

import errno
import os
import select
import time

from lanco.procfs import read_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

_ATTRIBUTE_READ = 65536
_EVENTS_RECHECK = 0.1


def write(path: str, value: str) -> None:
    """Write ``value`` to the cgroup file ``path`` in one system call; OSError as the kernel says it."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def join(directory: str, pid: int | str) -> None:
    """Move process ``pid`` (0: the caller) into the cgroup ``directory``."""
    write(os.path.join(directory, "cgroup.procs"), str(pid))


def enable_controllers(directory: str, controllers: Iterable[str]) -> None:
    """Hand ``controllers`` down to the children of the v2 cgroup ``directory``."""
    write(os.path.join(directory, "cgroup.subtree_control"), " ".join(f"+{c}" for c in controllers))


def enabled_controllers(directory: str) -> set[str]:
    """The controllers the v2 cgroup ``directory`` hands down to its children (none where unreadable)."""
    return words(os.path.join(directory, "cgroup.subtree_control"))


def read(path: str) -> str:
    """A whole cgroup file as text: lists such as ``cgroup.procs``, which the kernel hands over a page at a time."""
    return read_bytes(path).decode("ascii", errors="replace")


def read_attribute(path: str) -> str:
    """A cgroup file of one value or a few keyed lines, read with one system call fewer than :func:`read`.

    The kernel shows such a file as a single record, which a read hands over whole up to the size asked for: a
    shorter read is the end, and the read that would return nothing is spared (dump reads some 20 files a task).
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunk = os.read(fd, _ATTRIBUTE_READ)
        chunks = [chunk]
        while len(chunk) == _ATTRIBUTE_READ:
            chunk = os.read(fd, _ATTRIBUTE_READ)
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("ascii", errors="replace")


def words(path: str) -> set[str]:
    """The space-separated words of a file such as ``cgroup.controllers``; none where it cannot be read."""
    try:
        return set(read_attribute(path).split())
    except OSError:
        return set()


def pids(directory: str) -> list[int]:
    """The processes in cgroup ``directory`` (none where it cannot be read)."""
    try:
        return [int(p) for p in read(os.path.join(directory, "cgroup.procs")).split()]
    except (OSError, ValueError):
        return []


def procs_under(top: str) -> list[int]:
    """The processes in cgroup ``top`` and in every cgroup below it, parents' first (none where it is gone)."""
    found: list[int] = []
    try:
        found.extend(map(int, read(top + "/cgroup.procs").split()))
    except (FileNotFoundError, ProcessLookupError):
        return found  # gone, and so are its children: no look for them
    except OSError as exc:
        # ENODEV: the monitor removed the cgroup between our open and read; it had no process left.
        if exc.errno != errno.ENODEV:
            raise
        return found
    try:
        # cgroupfs counts a directory's subdirectories in its links (2 + subdirectories): a stat is a third of
        # the cost of a listing, and a task's cgroup rarely has children. Other filesystems may say 1: list.
        if os.stat(top).st_nlink == 2:
            return found
        children = [e.path for e in os.scandir(top) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return found
    for child in children:
        found.extend(procs_under(child))
    return found


def keyed(path: str, key: str) -> int | None:
    """The value of ``key`` in a flat-keyed cgroup file (``key value`` lines), or None."""
    try:
        for line in read_attribute(path).splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def single(path: str) -> int | None:
    """A cgroup file of one number, or None (absent, unreadable, or ``max``)."""
    try:
        text = read_attribute(path).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def describe(exc: OSError) -> str:
    """An OSError as one clause for a message: ``Device or resource busy (EBUSY): PATH``."""
    name = errno.errorcode.get(exc.errno or 0, "error")
    return f"{exc.strerror} ({name})" + (f": {exc.filename}" if exc.filename else "")


def set_owner(path: str, uid: int, gid: int, mode: int | None, add_bits: int = 0) -> bool:
    """Give ``path`` to ``uid``:``gid`` with permission bits ``mode`` (None: those it has) plus ``add_bits``, each
    only where it differs; True if anything had to change."""
    st = os.stat(path)
    changed = False
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.chown(path, uid, gid)
        changed = True
    current = st.st_mode & 0o7777
    wanted = (current if mode is None else mode) | add_bits
    if wanted != current:
        os.chmod(path, wanted)
        changed = True
    return changed


def chown_tree(directory: str, uid: int, gid: int) -> None:
    """Give a cgroup and its files to ``uid``:``gid`` (its subdirectories are not visited)."""
    os.chown(directory, uid, gid)
    for entry in os.scandir(directory):
        if entry.is_file(follow_symlinks=False):
            try:
                os.chown(entry.path, uid, gid)
            except OSError:
                pass


def poll_ms(seconds: float | None) -> int | None:
    """A poll() timeout: milliseconds, at least 1, capped at an hour (poll takes a C int)."""
    return None if seconds is None else max(1, min(int(seconds * 1000), 3_600_000))


def wait_unpopulated(events: str, deadline: float) -> bool:
    """Wait until the v2 ``cgroup.events`` file ``events`` says ``populated 0`` (or the cgroup is gone), until the
    monotonic ``deadline``; True if it did."""
    try:
        fd = os.open(events, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLPRI | select.POLLERR)
        while True:
            os.lseek(fd, 0, os.SEEK_SET)
            text = os.read(fd, 4096).decode()
            if "populated 0" in text:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # kernfs raises POLLPRI when the file changes; the read above re-armed it. A change right after
            # another (a thaw, then the last exit) can come without a wake-up (measured: 1 stop of a frozen
            # task in 2 on 6.18), so look again every 100 ms all the same.
            poller.poll(poll_ms(min(remaining, _EVENTS_RECHECK)))
    except OSError as exc:
        if exc.errno == errno.ENODEV or exc.errno == errno.ENOENT:
            return True
        raise
    finally:
        os.close(fd)


V1_UNLIMITED = 1 << 62
"""v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages); anything this large is no limit."""


def limit_value(path: str) -> int | None:
    """A limit file's value, or None for ``max``, a v1 "no limit", or a file that is not there."""
    try:
        text = read_attribute(path).strip()
    except OSError:
        return None
    if not text.isdigit():
        return None
    value = int(text)
    return None if value >= V1_UNLIMITED else value
