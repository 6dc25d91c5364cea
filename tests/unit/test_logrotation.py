"""lanco.state.logrotation on a tmp folder: copy, shift and truncate; nothing lost while a writer appends; nothing
changed when the pause fails; and the options that bound a log (``--log-max-size``, ``--log-keep``)."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanco import contexts
from lanco.cli import main
from lanco.commands.lifecycle import parse_run
from lanco.errors import LancoError, PermissionDenied, StateError, UsageError
from lanco.options.runopts import DEFAULT_LOG_KEEP, LogBounds, RunPlan
from lanco.state import logrotation
from lanco.state.logrotation import SMALL_TAIL, rotate_over
from tests.unit.test_cli import one_line


@contexts.contextmanager
def quiet() -> Iterator[bool]:
    yield True


def log_with(tmp_path: Path, data: bytes, name: str = "task-t.log") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_log_within_its_size_is_left_alone(tmp_path: Path) -> None:
    log = log_with(tmp_path, b"x" * 100)
    assert rotate_over(str(log), 100, 2, quiet) is None
    assert log.read_bytes() == b"x" * 100 and sorted(p.name for p in tmp_path.iterdir()) == ["task-t.log"]
    assert rotate_over(str(tmp_path / "missing.log"), 1, 2, quiet) is None


def test_a_log_over_its_size_is_copied_to_1_and_truncated(tmp_path: Path) -> None:
    log = log_with(tmp_path, b"line\n" * 30)
    log.chmod(0o640)
    rotation = rotate_over(str(log), 100, 2, quiet)
    assert rotation is not None and rotation.copied_bytes == 150 and rotation.paused
    assert rotation.path == str(log)
    assert log.read_bytes() == b"" and Path(f"{log}.1").read_bytes() == b"line\n" * 30
    assert Path(f"{log}.1").stat().st_mode & 0o777 == 0o640
    assert not Path(f"{log}{logrotation.PARTIAL_SUFFIX}").exists()


@pytest.mark.parametrize("keep", [1, 2, 5])
def test_keep_copies_are_kept_the_oldest_dropped(tmp_path: Path, keep: int) -> None:
    log = tmp_path / "task-t.log"
    for generation in range(8):
        log.write_bytes(f"generation {generation}\n".encode() * 10)
        assert rotate_over(str(log), 10, keep, quiet) is not None
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == ["task-t.log", *(f"task-t.log.{i}" for i in range(1, keep + 1))]
    for index in range(1, keep + 1):
        assert Path(f"{log}.{index}").read_text().startswith(f"generation {8 - index}\n")


def test_nothing_a_writer_appends_meanwhile_is_lost(tmp_path: Path) -> None:
    """A thread appends numbered lines (O_APPEND, as a task's log is opened) while the log is rotated again and
    again; the pause holds the writer back as a freeze would. The kept files and the live log, oldest first, hold
    every line from the oldest kept one on, in order, without a gap."""
    log = tmp_path / "task-t.log"
    holding = threading.Lock()
    stop = threading.Event()

    def writer() -> None:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        number = 0
        try:
            while not stop.is_set():
                with holding:
                    # Several lines per write, and a line cut across two writes now and then, as stdio does.
                    chunk = b"".join(b"%08d %s\n" % (n, b"y" * 40) for n in range(number, number + 20))
                    os.write(fd, chunk[:500])
                    os.write(fd, chunk[500:])
                number += 20
        finally:
            os.close(fd)

    @contexts.contextmanager
    def paused() -> Iterator[bool]:
        with holding:
            yield True

    thread = threading.Thread(target=writer)
    thread.start()
    rotations = 0
    try:
        while rotations < 40:
            if rotate_over(str(log), 20_000, 3, paused) is not None:
                rotations += 1
    finally:
        stop.set()
        thread.join()
    stream = b"".join(Path(f"{log}.{i}").read_bytes() for i in (3, 2, 1)) + log.read_bytes()
    lines = stream.decode().splitlines()
    numbers = [int(line.split()[0]) for line in lines]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert all(line.endswith("y" * 40) for line in lines)


def test_the_pause_covers_only_the_last_small_copy(tmp_path: Path) -> None:
    log = log_with(tmp_path, b"z" * (3 << 20))
    seen: list[int] = []

    @contexts.contextmanager
    def paused() -> Iterator[bool]:
        seen.append(os.path.getsize(f"{log}{logrotation.PARTIAL_SUFFIX}"))
        yield True

    rotation = rotate_over(str(log), 1 << 20, 2, paused)
    assert rotation is not None and rotation.copied_bytes == 3 << 20
    assert seen and seen[0] >= (3 << 20) - SMALL_TAIL


def test_a_failed_pause_changes_nothing(tmp_path: Path) -> None:
    log = log_with(tmp_path, b"new\n" * 100)
    Path(f"{log}.1").write_text("older\n")

    @contexts.contextmanager
    def refused() -> Iterator[bool]:
        raise LancoError("cannot pause task t")
        yield True  # pragma: no cover

    with pytest.raises(LancoError, match="cannot pause task t"):
        rotate_over(str(log), 10, 2, refused)
    assert log.read_bytes() == b"new\n" * 100 and Path(f"{log}.1").read_text() == "older\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task-t.log", "task-t.log.1"]


def test_an_unpaused_rotation_says_so(tmp_path: Path) -> None:
    @contexts.contextmanager
    def unpaused() -> Iterator[bool]:
        yield False

    rotation = rotate_over(str(log_with(tmp_path, b"a" * 50)), 10, 2, unpaused)
    assert rotation is not None and not rotation.paused


def test_a_partial_copy_left_by_a_killed_rotation_is_replaced(tmp_path: Path) -> None:
    log = log_with(tmp_path, b"whole\n" * 10)
    Path(f"{log}{logrotation.PARTIAL_SUFFIX}").write_text("whol")
    assert rotate_over(str(log), 10, 2, quiet) is not None
    assert Path(f"{log}.1").read_bytes() == b"whole\n" * 10


def test_links_and_other_files_are_refused(tmp_path: Path) -> None:
    target = log_with(tmp_path, b"secret\n" * 10, "elsewhere")
    link = tmp_path / "task-t.log"
    link.symlink_to(target)
    with pytest.raises(PermissionDenied, match=r"refusing to rotate log .*: it is a symbolic link"):
        rotate_over(str(link), 1, 2, quiet)
    assert target.read_bytes() == b"secret\n" * 10
    fifo = tmp_path / "task-f.log"
    os.mkfifo(fifo)
    with pytest.raises(LancoError, match="it is not a regular file"):
        rotate_over(str(fifo), 0, 2, quiet)


def test_a_rotation_under_way_elsewhere_is_not_doubled(tmp_path: Path) -> None:
    log = log_with(tmp_path, b"b" * 100)
    fd = os.open(log, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert rotate_over(str(log), 10, 2, quiet) is None
    finally:
        os.close(fd)
    assert log.read_bytes() == b"b" * 100


# -- the options ------------------------------------------------------------------------------------------------


def test_log_bounds_from_the_api_and_the_command_line_are_the_same() -> None:
    assert RunPlan.build({}).log_bounds == LogBounds(None, DEFAULT_LOG_KEEP)
    api = RunPlan.build({"log_max_size": "5M", "log_keep": "2"}).log_bounds
    assert api == LogBounds(5 << 20, 2) == RunPlan.build({"log_max_size": 5 << 20, "log_keep": 2}).log_bounds
    opts, task, command = parse_run(["--log-max-size", "5M", "--log-keep", "2", "t", "cat", "--log-keep"])
    assert (opts.log_max_size, opts.log_keep, task, command) == ("5M", "2", "t", ["cat", "--log-keep"])
    assert RunPlan.build({"log_max_size": "max"}).log_bounds.max_size is None
    assert LogBounds.from_record(api.as_record()) == api
    assert LogBounds.from_record(None) == LogBounds()


@pytest.mark.parametrize(("options", "message"), [
    ({"log_max_size": "0"}, "invalid log size '0': must be greater than zero"),
    ({"log_max_size": 0}, "invalid log size 0: must be greater than zero"),
    ({"log_max_size": "big"}, "invalid log size 'big': expected a number of bytes with K, M, G or T, or max"),
    ({"log_max_size": True}, "invalid log size True"),
    ({"log_keep": "0"}, "invalid number of kept logs '0': must be from 1 to 1000"),
    ({"log_keep": "two"}, "invalid number of kept logs 'two': expected a whole number"),
])
def test_bad_log_bounds_are_usage_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        RunPlan.build(options)
    assert caught.value.message == message


@pytest.mark.parametrize("record", ["5M", {"max_size_bytes": "5M", "keep": 2}, {"max_size_bytes": 1, "keep": 0},
                                    {"max_size_bytes": -1, "keep": 2}, {"max_size_bytes": 1}])
def test_damaged_log_bounds_in_a_record_are_refused(record: object) -> None:
    with pytest.raises(StateError, match="log_bounds is damaged"):
        LogBounds.from_record(record)


@pytest.mark.parametrize(("argv", "text"), [
    (["testns", "run", "--log-max-size", "0", "t", "true"], "invalid log size '0': must be greater than zero"),
    (["testns", "run", "--log-keep", "0", "t", "true"], "invalid number of kept logs '0': must be from 1 to 1000"),
    (["testns", "logs", "--rotate", "-f"], "logs: --rotate prints no log, it takes neither -f nor -n"),
    (["testns", "logs", "-v", "t"], "logs: -v goes with --rotate"),
    (["testns", "logs"], "logs: the following arguments are required: task"),
    (["logs"], "logs: without a namespace, expected --rotate --all (lanco NAMESPACE logs TASK prints a log)"),
    (["logs", "--rotate"], "logs: without a namespace, expected --rotate --all (lanco NAMESPACE logs TASK prints a "
                           "log)"),
])
def test_usage_errors_of_bounded_logs(capsys: pytest.CaptureFixture[str], argv: list[str], text: str) -> None:
    assert main(argv) == 2
    assert one_line(capsys) == (argv[1] if argv[0] == "testns" else "logs", text)


def test_rotate_all_without_namespaces_does_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "--rotate", "--all", "-v"]) == 0
    assert capsys.readouterr() == ("", "")


# -- what is shipped to run it ----------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_timer_and_logrotate_rule_run_the_rotation_and_are_installed() -> None:
    service = (ROOT / "contrib" / "systemd" / "lanco-logs.service").read_text()
    timer = (ROOT / "contrib" / "systemd" / "lanco-logs.timer").read_text()
    rule = (ROOT / "contrib" / "logrotate" / "lanco").read_text()
    assert "\nExecStart=/usr/local/bin/lanco logs --rotate --all\n" in service and "\nType=oneshot\n" in service
    assert "\nOnUnitActiveSec=1min\n" in timer and "\nWantedBy=timers.target\n" in timer
    directives = [line.strip() for line in rule.splitlines() if not line.lstrip().startswith("#")]
    assert "/usr/local/bin/lanco logs --rotate --all" in rule and "copytruncate" not in directives
    install = (ROOT / "scripts" / "install").read_text()
    for shipped in ("contrib/systemd/lanco-logs.service", "contrib/systemd/lanco-logs.timer", "contrib/logrotate/lanco",
                    "systemctl enable --now lanco-logs.timer"):
        assert shipped in install, shipped
