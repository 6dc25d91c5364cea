"""Facts about processes read from /proc: command lines, start times, liveness, the boot id."""

from __future__ import annotations

import os


def read_bytes(path: str) -> bytes:
    """A whole (small) file with os.read: a buffered open() costs five more system calls, and listings read
    these files for every process of every task."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def cmdline(pid: int) -> str:
    try:
        raw = read_bytes(f"/proc/{pid}/cmdline")
    except OSError:
        return ""
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: with the pid, it names one process for the life of the boot."""
    try:
        text = read_bytes(f"/proc/{pid}/stat").decode("ascii", errors="replace")
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def parent(pid: int) -> int | None:
    """Field 4 of /proc/PID/stat, the parent's pid; None when the process is gone or a zombie."""
    try:
        fields = read_bytes(f"/proc/{pid}/stat").decode("ascii", errors="replace").rpartition(")")[2].split()
        return None if fields[0] in ("Z", "X") else int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def argv(pid: int) -> list[str]:
    """The process's arguments as it was started with them; empty when it is gone (or a kernel thread)."""
    try:
        raw = read_bytes(f"/proc/{pid}/cmdline")
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")[:-1]


def is_same_process(pid: int, started: int) -> bool:
    return start_time(pid) == started


def boot_id() -> str:
    try:
        # Bytes, not a text open(): encoding="ascii" would import its codec for a 37-byte read.
        return read_bytes("/proc/sys/kernel/random/boot_id").decode("ascii", errors="replace").strip()
    except OSError:
        return ""


def unified_cgroup(pid: int | str = "self") -> str | None:
    """A process's cgroup in the unified hierarchy (the ``0::`` line of /proc/PID/cgroup); this one's by default."""
    try:
        text = read_bytes(f"/proc/{pid}/cgroup").decode(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:].strip()
    return None
