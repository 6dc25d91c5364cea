"""The commands that show tasks: ls, status, dump, top, logs, and ``lanco ls`` (the namespaces)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from lanco.cli import Options, namespace_for, parser_for, task_for
from lanco.errors import LancoError, PermissionDenied, UsageError

if TYPE_CHECKING:
    from lanco import top
    from lanco.record import TaskRecord
    from lanco.task import Task

LOG_POLL_S = 0.2
"""How often ``logs -f`` looks for new output, a rotation or a new run once the log is idle."""


def cmd_namespaces(args: list[str], options: Options) -> int:
    """``lanco ls``: the namespaces the caller may use (its own, its group's with group access; all for root)."""
    from lanco import render
    from lanco.config import list_namespaces, load_config
    from lanco.privileges import user_name

    parser = parser_for("ls")
    parser.prog = "lanco ls"
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args(args)
    euid, groups = os.geteuid(), {os.getegid(), *os.getgroups()}
    infos: list[render.NamespaceInfo] = []
    for name in list_namespaces():
        try:
            config = load_config(name)
        except LancoError:
            continue  # unreadable: it is someone else's
        if not (euid == 0 or config.owner_uid == euid or (config.group_access and config.owner_gid in groups)):
            continue
        infos.append(render.NamespaceInfo(
            name=name, owner=user_name(config.owner_uid), owner_uid=config.owner_uid,
            group=_group_name(config.owner_gid), owner_gid=config.owner_gid, group_access=config.group_access,
            cgroup_mode=config.mode, state_dir=config.state_dir, log_dir=config.log_dir, created=config.created))
    sys.stdout.write(render.namespaces_json(infos) if opts.json else render.namespaces_text(infos))
    return 0


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def cmd_ls(ns: str, args: list[str], options: Options) -> int:
    from lanco import render

    parser = parser_for("ls")
    parser.add_argument("-l", "--long", action="store_true", help="whole command lines")
    parser.add_argument("--all", action="store_true", help="finished tasks too, with their result")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("-q", "--quiet", action="store_true", help="task names only (for scripts and completion)")
    opts = parser.parse_args(args)
    namespace = namespace_for(ns, options)
    if opts.quiet and not opts.json:
        namespace.authorize()
        listed = namespace.task_names() if opts.all else [t.name for t in namespace.running_tasks()]
        sys.stdout.write("".join(f"{n}\n" for n in listed))
        return 0
    tasks = namespace.tasks() if opts.all else namespace.running_tasks()
    records = readable_records(tasks, "ls")
    # A task that ended between the listing and its record is no longer running: ls without --all drops it.
    records = [r for r in records if r.state != "unknown" and (opts.all or r.state in render.LIVE_STATES)]
    if opts.json:
        sys.stdout.write(render.records_json(ns, records))
    else:
        sys.stdout.write(render.tree(ns, records, long=opts.long))
    return 0


def cmd_status(ns: str, args: list[str], options: Options) -> int:
    from lanco import render, stats

    parser = parser_for("status")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("task")
    opts = parser.parse_args(args)
    task = task_for(ns, opts.task, options)
    record = task.record()
    if record.state == "unknown":
        raise LancoError(f"task {opts.task} is not known")
    live = None
    if record.state in ("running", "frozen"):
        live = stats.live_detail(task.namespace.backend, ns, task.name)
    if opts.json:
        sys.stdout.write(render.status_json(record, live))
    else:
        sys.stdout.write(render.status_text(record, live, now=time.time()))
    return 0


def cmd_dump(ns: str, args: list[str], options: Options) -> int:
    from lanco import render, stats

    parser = parser_for("dump")
    parser.parse_args(args)
    namespace = namespace_for(ns, options)
    backend = namespace.backend
    entries = {}
    # The records say which tasks run: filtering on cgroup.events first would be one more open per task.
    for record in readable_records(namespace.tracked_tasks(), "dump"):
        if record.state not in ("running", "frozen"):
            continue  # ending, or ended since the listing
        entries[record.name] = render.dump_task(record, stats.live_detail(backend, ns, record.name))
    sys.stdout.write(render.dump_json(ns, entries, namespace_cpu_usec=backend.cpu_usage_usec(ns, ""),
                                      nbcpus=stats.online_cpus(), monotonic_ms=int(time.monotonic() * 1000),
                                      epoch_s=round(time.time(), 3)))
    return 0


# -- top -------------------------------------------------------------------------------------------------------


def cmd_top(ns: str, args: list[str], options: Options) -> int:
    from lanco import stats, top
    from lanco.units import parse_duration

    parser = parser_for("top")
    parser.add_argument("-d", "--delay", default="1", help="seconds between frames (default 1)")
    parser.add_argument("-n", "--iterations", help="print N frames (text, or JSON with --json), then exit")
    parser.add_argument("-s", "--sort", choices=sorted(top.SORT_KEYS.values()), default="cpu")
    parser.add_argument("--json", action="store_true", help="frames as JSON lines")
    opts = parser.parse_args(args)
    delay = parse_duration(opts.delay, what="delay")
    iterations = None
    if opts.iterations is not None:
        if not opts.iterations.isdigit() or int(opts.iterations) < 1:
            raise UsageError(f"invalid number of frames {opts.iterations!r}: a whole number from 1")
        iterations = int(opts.iterations)
    namespace = namespace_for(ns, options)
    namespace.authorize()

    def sampler() -> top.Sample:
        return stats.sample_namespace(namespace)

    if not opts.json and iterations is None and sys.stdout.isatty() and sys.stdin.isatty():
        from lanco import topscreen

        return topscreen.run(sampler, delay, opts.sort)
    return _top_stream(sampler, delay, opts.sort, iterations, opts.json)


def _top_stream(take: Callable[[], top.Sample], delay: float, sort: str, iterations: int | None,
                as_json: bool) -> int:
    """Frames as plain text (a blank line between two) or JSON lines, for pipes, scripts and tests."""
    import shutil

    from lanco import top

    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    previous = take()
    # CPU % needs two samples: the first frame comes after a short priming interval rather than without it.
    time.sleep(min(delay, 0.5))
    history: dict[str, tuple[float, ...]] = {}
    count = 0
    while True:
        current = take()
        frame = top.build_frame(previous, current, sort=sort, history=history)
        history = dict(frame.history)
        if as_json:
            sys.stdout.write(top.frame_json(frame))
        else:
            sys.stdout.write(("\n" if count else "") + top.frame_text(frame, width))
        sys.stdout.flush()
        count += 1
        if iterations is not None and count >= iterations:
            return 0
        previous = current
        time.sleep(delay)


# -- logs ------------------------------------------------------------------------------------------------------


def _log_path(task: Task) -> str:
    from lanco.record import read_spec

    spec = read_spec(task.state_dir) or {}
    log = spec.get("log")
    return str(log) if log else task.namespace.config.default_log(task.name)


def _open_log(path: str) -> BinaryIO | None:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None
    except PermissionError:
        raise PermissionDenied(f"cannot read log {path}: permission denied") from None


def _tail_start(f: BinaryIO, lines: int) -> int:
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


def cmd_logs(ns: str, args: list[str], options: Options) -> int:
    parser = parser_for("logs")
    parser.add_argument("-f", "--follow", action="store_true",
                        help="keep printing new output, across rotations and new runs of the task")
    parser.add_argument("-n", "--lines", help="only the last LINES lines")
    parser.add_argument("task")
    opts = parser.parse_args(args)
    lines = None
    if opts.lines is not None:
        if not opts.lines.isdigit():
            raise UsageError(f"invalid number of lines {opts.lines!r}: a whole number")
        lines = int(opts.lines)
    task = task_for(ns, opts.task, options)
    path = _log_path(task)
    out = sys.stdout.buffer
    f = _open_log(path)
    if f is None and not opts.follow:
        if task.record().state == "unknown":
            raise LancoError(f"task {opts.task} is not known")
        raise LancoError(f"task {opts.task} has no log: {path} does not exist")
    if f is not None:
        if lines is not None:
            f.seek(_tail_start(f, lines))
        _copy(f, out)
    if not opts.follow:
        if f is not None:
            f.close()
        return 0
    _follow(task, path, f, out)
    return 0  # not reached: following ends with an interrupt


def _copy(f: BinaryIO, out: BinaryIO) -> bool:
    copied = False
    while chunk := f.read(65536):
        out.write(chunk)
        copied = True
    if copied:
        out.flush()
    return copied


def _follow(task: Task, path: str, f: BinaryIO | None, out: BinaryIO) -> None:
    """``tail -F`` for a task: reopen by path when the file is replaced (the next run rotates the log to
    ``.1`` and starts a new one) or when a new run logs elsewhere; start over when it is truncated."""
    spec_path = os.path.join(task.state_dir, "spec.json")
    spec_stamp = _stamp(spec_path)
    while True:
        if f is not None and _copy(f, out):
            continue
        time.sleep(LOG_POLL_S)
        stamp = _stamp(spec_path)
        if stamp != spec_stamp:
            spec_stamp = stamp
            new_path = _log_path(task)
            if new_path != path:
                if f is not None:
                    _copy(f, out)
                    f.close()
                path, f = new_path, _open_log(new_path)
                continue
        try:
            on_disk = os.stat(path)
        except FileNotFoundError:
            continue  # rotated away, the new one not created yet
        if f is None:
            f = _open_log(path)
            continue
        mine = os.fstat(f.fileno())
        if (on_disk.st_ino, on_disk.st_dev) != (mine.st_ino, mine.st_dev):
            _copy(f, out)  # what the old run wrote after our last read
            f.close()
            f = _open_log(path)
        elif on_disk.st_size < f.tell():
            f.seek(0)


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def readable_records(tasks: list[Task], token: str) -> list[TaskRecord]:
    """The records of ``tasks``; a damaged one is named in a warning and the others are still shown."""
    from lanco import messages
    from lanco.errors import StateError

    records = []
    for task in tasks:
        try:
            records.append(task.record())
        except StateError as exc:
            messages.warn(token, exc.message)
    return records
