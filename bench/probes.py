"""Low-level probes: timing a command, reading a process's memory and CPU time from /proc."""

from __future__ import annotations

import os
import resource
import subprocess
import tempfile
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class CommandFailed(RuntimeError):
    pass


# Standard error goes to a file, not a pipe: a detached child (setsid -f, nohup &) would hold a pipe open.
_STDERR = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process


def run_command(argv: list[str], *, expect: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """One run of ``argv``: (wall ms from fork to reaped exit, CPU ms of it and every process it waited for).

    The CPU time comes from getrusage(RUSAGE_CHILDREN) around the run: it varies less than the wall time
    on a machine that other work keeps busy. The command's output is discarded.
    """
    _STDERR.seek(0)
    _STDERR.truncate()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=_STDERR,
                            cwd="/", check=False)
    elapsed = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode not in expect:
        _STDERR.seek(0)
        stderr = _STDERR.read().decode(errors="replace").strip()
        raise CommandFailed(f"{' '.join(argv)} exited {result.returncode}: {stderr}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return elapsed, cpu


def time_command(argv: list[str], *, expect: tuple[int, ...] = (0,)) -> float:
    """Wall time of one run of ``argv`` in milliseconds (see :func:`run_command`)."""
    return run_command(argv, expect=expect)[0]


def pss_kib(pid: int) -> int | None:
    """Proportional set size of one process (``Pss:`` of /proc/PID/smaps_rollup), in KiB."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of one process, in clock ticks (fields 14 and 15 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rpartition(")")[2].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    """A live process; a zombie counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cgroup_usage_usec(directory: str) -> int | None:
    """CPU used by everything that ever ran in a cgroup: v2 ``cpu.stat`` usage_usec or v1 cpuacct.usage."""
    try:
        with open(os.path.join(directory, "cpu.stat"), encoding="ascii") as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value)
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(directory, "cpuacct.usage"), encoding="ascii") as f:
            return int(f.read()) // 1000
    except (OSError, ValueError):
        return None


def loadavg() -> str:
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"
