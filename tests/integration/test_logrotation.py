"""Bounded logs on the real kernel: a task writes numbered lines at a steady rate under ``run --log-max-size
--log-keep`` while ``logs --rotate`` runs on a timer; no file grows past its size plus what one interval writes,
nothing the task wrote is lost (the kept files and the live log, oldest first, hold every line from the first
one kept on, in order, without a gap), and the task never notices (it runs on, the same process, without an
error)."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Sandbox
from tests.integration.conftest import make_namespace, slack, wait_until

# Lines of 100 bytes, numbered, written straight to the log (no buffering a stop could cut), in batches every
# 10 ms at the rate given in bytes per second at most: a writer held up (a busy host) does not catch up in a burst,
# which the bound on the files' sizes would take for a rotation come late. A failed write would end it with a
# traceback in its own log.
WRITER = """
import os, sys, time
rate = int(sys.argv[1])
per_batch = max(1, rate // 100 // 100)
number, due = 0, time.monotonic()
while True:
    os.write(1, b"".join(b"%012d %s\\n" % (n, b"x" * 86) for n in range(number, number + per_batch)))
    number += per_batch
    due = max(due + 0.01, time.monotonic())
    time.sleep(max(0.0, due - time.monotonic()))
"""
LINE = re.compile(r"(\d{12}) x{86}")


def kept_stream(log: Path, keep: int) -> bytes:
    """The rotated copies, oldest first, then the live log: everything the task wrote that is still kept."""
    return b"".join(Path(f"{log}.{i}").read_bytes() for i in range(keep, 0, -1) if Path(f"{log}.{i}").exists()) \
        + log.read_bytes()


def assert_nothing_lost(stream: bytes) -> tuple[int, int]:
    """Every line from the first whole one on is there, in order, without a gap; returns how many there are and the
    number of the last. The
    first line may be cut (its start went with a copy dropped), the last one too (the stop came mid-write)."""
    lines = stream.decode().split("\n")
    whole = [LINE.fullmatch(line) for line in lines]
    first = next(i for i, match in enumerate(whole) if match)
    numbers = []
    for index, match in enumerate(whole[first:], start=first):
        if match is None:
            assert index == len(lines) - 1, f"line {index} is damaged: {lines[index][:120]!r}"
            break
        numbers.append(int(match.group(1)))
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "a line is missing or out of order"
    return len(numbers), numbers[-1]


def sizes(log: Path, keep: int) -> dict[str, int]:
    found = {}
    for path in [log, *(Path(f"{log}.{i}") for i in range(1, keep + 2))]:
        try:
            found[path.name] = path.stat().st_size
        except FileNotFoundError:
            pass
    return found


def bounded_run(sandbox: Sandbox, ns: str, *, rate: int, max_size: int, keep: int, interval: float,
                duration: float, user: str | None = None, every_namespace: bool = False) -> None:
    started = time.monotonic()  # before the run: the task writes from the moment it starts
    sandbox.ok(ns, "run", "--log-max-size", str(max_size), "--log-keep", str(keep), "writer", sys.executable, "-c",
               WRITER, str(rate), user=user)
    first = json.loads(sandbox.ok(ns, "status", "--json", "writer", user=user).stdout)
    log = sandbox.log_dir(ns) / "task-writer.log"
    rotate = ["logs", "--rotate", "--all", "-v"] if every_namespace else [ns, "logs", "--rotate", "-v"]
    rotations, biggest, longest_gap = 0, 0, 0.0
    previous_start = started
    while time.monotonic() - started < duration:
        time.sleep(interval)
        biggest = max(biggest, *sizes(log, keep).values())
        start = time.monotonic()
        result = sandbox.ok(*rotate)  # as root, the timer's way, for root's and the user's namespace alike
        # The longest a log can go unrotated: from one command's start (its check found the log just within its
        # size) to the next one's end (its copy ends then at the latest).
        longest_gap, previous_start = max(longest_gap, time.monotonic() - previous_start), start
        lines = result.stderr.splitlines()
        assert all("[INFO/logs]" in line and "writes held back for" in line for line in lines), result.stderr
        rotations += len(lines)
        # Just rotated, or within its size when this command looked at it.
        assert sizes(log, keep).get(log.name, 0) <= max_size + 64 * 1024 + rate * (time.monotonic() - start) * 1.1
    # The task never noticed: the same process runs on, and its log has nothing but its lines.
    last = json.loads(sandbox.ok(ns, "status", "--json", "writer", user=user).stdout)
    assert last["state"] == "running" and last["main_pid"] == first["main_pid"], last
    sandbox.ok(ns, "stop", "writer", user=user)
    assert sorted(sizes(log, keep)) == sorted([log.name, *(f"{log.name}.{i}" for i in range(1, keep + 1))])
    # No file past its size plus what the task writes between two rotations (each interval, with the time the
    # rotate commands take, is measured), plus the last copy pass's 64 KiB.
    bound = max_size + rate * longest_gap * 1.1 + 64 * 1024
    assert biggest <= bound, f"a file reached {biggest} bytes, over {bound:.0f}"
    for name, size in sizes(log, keep).items():
        assert size <= bound, f"{name} holds {size} bytes, over {bound:.0f}"
    count, last = assert_nothing_lost(kept_stream(log, keep))
    assert count * 100 >= max_size * keep  # the copies are not empty: they hold what the task wrote
    # Each rotation empties the log, which then takes at most one gap past its size to be over it again (what the
    # task wrote is counted by its lines: a busy host slows it down).
    expected = int((last + 1) * 100 / (max_size + rate * longest_gap)) - 1
    assert rotations >= expected, f"only {rotations} rotations, not {expected}"
    if user is not None:
        import pwd

        owner = pwd.getpwnam(user).pw_uid
        for path in [log, *(Path(f"{log}.{i}") for i in range(1, keep + 1))]:
            assert path.stat().st_uid == owner, f"{path} is not the owner's"


@pytest.mark.parametrize("every_namespace", [False, True], ids=["namespace", "all"])
def test_a_bounded_log_loses_nothing_and_the_task_never_notices(sandbox: Sandbox, mode: str, owner: str | None,
                                                                 every_namespace: bool) -> None:
    """A few seconds at 300 KB/s, bounded at 100K with two copies kept, rotated every half second; in every cgroup
    mode, for root's namespace and for the test user's (rotated by root, as the shipped timer does)."""
    ns = make_namespace(sandbox, mode, user=owner)
    # In the emulated guest a rotate command alone takes a second or two, and the writer starts that late: the
    # same rate and size over eight times the time, so that the log still goes over its size several times.
    bounded_run(sandbox, ns, rate=300_000, max_size=100_000, keep=2, interval=slack(0.5), duration=slack(4.0),
                user=owner, every_namespace=every_namespace)


@pytest.mark.slow
def test_a_task_writing_1mb_a_second_for_a_minute(sandbox: Sandbox) -> None:
    """Issue 16's case: 1 MB/s, --log-max-size 5M --log-keep 2, logs --rotate every few seconds for a minute."""
    ns = make_namespace(sandbox)
    bounded_run(sandbox, ns, rate=1_000_000, max_size=5 << 20, keep=2, interval=3.0, duration=60.0,
                every_namespace=True)


def test_what_is_rotated_and_what_is_not(sandbox: Sandbox) -> None:
    """Only logs over their task's bound are rotated; a task frozen by its user stays frozen; one log that cannot
    be rotated is one warning line and exit 1, and the others are still rotated."""
    ns = make_namespace(sandbox)
    logs = sandbox.log_dir(ns)
    big = "head -c 300000 /dev/zero | tr '\\0' 'x'; exec sleep 300"
    sandbox.ok(ns, "run", "unbounded", "sh", "-c", big)
    sandbox.ok(ns, "run", "--log-max-size", "1M", "within", "sh", "-c", big)
    sandbox.ok(ns, "run", "--log-max-size", "100K", "frozen", "sh", "-c", big)
    sandbox.ok(ns, "run", "--log-max-size", "100K", "ended", "sh", "-c", "head -c 300000 /dev/zero")
    elsewhere = sandbox.root / "elsewhere.log"
    sandbox.ok(ns, "run", "--log-max-size", "100K", "-l", str(elsewhere), "linked", "sleep", "300")
    assert wait_until(lambda: all((logs / f"task-{t}.log").exists() and (logs / f"task-{t}.log").stat().st_size
                                  >= 300000 for t in ("unbounded", "within", "frozen", "ended")))
    sandbox.lanco(ns, "wait", "ended")
    sandbox.ok(ns, "freeze", "frozen")
    # The linked task's log is replaced by a link to a big file: refused, never followed.
    target = sandbox.root / "target"
    target.write_bytes(b"y" * 200000)
    elsewhere.unlink()
    elsewhere.symlink_to(target)

    result = sandbox.lanco(ns, "logs", "--rotate", "-v")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    assert re.search(r"\[INFO/logs\] task ended: rotated .*/task-ended\.log \(293\.0K to task-ended\.log\.1, "
                     r"its writes held back for [0-9.]+ ms\)$", lines[0]), lines[0]
    assert re.search(r"\[INFO/logs\] task frozen: rotated ", lines[1]), lines[1]
    assert re.search(rf"\[WARN/logs\] task linked: refusing to rotate log {re.escape(str(elsewhere))}: it is a "
                     "symbolic link$", lines[2]), lines[2]
    assert target.read_bytes() == b"y" * 200000
    for task, rotated in (("unbounded", False), ("within", False), ("frozen", True), ("ended", True)):
        assert (logs / f"task-{task}.log.1").exists() == rotated, task
        assert (logs / f"task-{task}.log").stat().st_size == (0 if rotated else 300000), task
    assert json.loads(sandbox.ok(ns, "status", "--json", "frozen").stdout)["state"] == "frozen"
    sandbox.ok(ns, "thaw", "frozen")
    # Nothing over its size is left: a second rotation has nothing to do, and says nothing.
    elsewhere.unlink()
    again = sandbox.lanco(ns, "logs", "--rotate", "-v", "frozen")
    assert (again.returncode, again.stderr) == (0, "")
    assert os.path.exists(logs / "task-frozen.log.1")
