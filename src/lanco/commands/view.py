"""The commands that show tasks: ls, status, dump, top, logs, and ``lanco ls`` (the namespaces)."""

from __future__ import annotations

import os
import sys
import time

from lanco.commands import NotPlain, Options, namespace_for, parser_for, plain_flags, task_for, terminal_columns
from lanco.errors import LancoError, UsageError
from lanco.state import logfile

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

    from lanco.state.record import TaskRecord
    from lanco.task import Task
    from lanco.views import top

LOG_POLL_S = logfile.POLL_S
_tail_start = logfile.tail_start


def cmd_namespaces(args: list[str], options: Options) -> int:
    """``lanco ls``: the namespaces the caller may use (its own, its group's with group access; all for root)."""
    from lanco.privileges import user_name
    from lanco.state.config import list_namespaces, load_config
    from lanco.views import render

    opts = _flags(args, JSON_FLAG, namespaces_parser)
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
    sys.stdout.write(render.namespaces_json(infos) if opts["json"] else render.namespaces_text(infos))
    return 0


def namespaces_parser() -> argparse.ArgumentParser:
    parser = parser_for("ls")
    parser.prog = "lanco ls"
    parser.add_argument("--json", action="store_true", help="the namespaces as one JSON document (docs/json.md)")
    return parser


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def cmd_ls(ns: str, args: list[str], options: Options) -> int:
    from lanco.views import render

    opts = _flags(args, LS_FLAGS, ls_parser)
    selectors = None
    if opts.get("labels"):
        from lanco.options.labels import parse_selectors

        selectors = parse_selectors(opts["labels"])
    namespace = namespace_for(ns, options)
    if opts["quiet"] and not opts["json"] and selectors is None:
        namespace.authorize()
        listed = namespace.task_names() if opts["all"] else [t.name for t in namespace.running_tasks()]
        sys.stdout.write("".join(f"{n}\n" for n in listed))
        return 0
    tasks = namespace.tasks() if opts["all"] else namespace.running_tasks()
    records = readable_records(tasks, "ls")
    # A task that ended between the listing and its record is no longer running: ls without --all drops it.
    records = [r for r in records if r.state != "unknown" and (opts["all"] or r.state in render.LIVE_STATES)]
    if selectors is not None:
        from lanco.options.labels import matches

        records = [r for r in records if matches(r.labels, selectors)]
    if opts["quiet"] and not opts["json"]:
        sys.stdout.write(render.names(records))
    elif opts["json"]:
        sys.stdout.write(render.records_json(ns, records))
    else:
        sys.stdout.write(render.tree(ns, records, long=opts["long"]))
    return 0


LS_FLAGS = {"-l": "long", "--long": "long", "--all": "all", "--json": "json", "-q": "quiet", "--quiet": "quiet"}
JSON_FLAG = {"--json": "json"}


def _flags(args: list[str], flags: dict[str, str], parser: Callable[[], argparse.ArgumentParser],
           positionals: int = 0, valued: dict[str, tuple[str, str | None]] | None = None) -> dict[str, Any]:
    """The options of a view: read by hand in the plain form, else by its argparse parser."""
    try:
        given, words = plain_flags(args, flags, positionals, valued)
    except NotPlain:
        return vars(parser().parse_args(args))
    return {**given, "task": words[0]} if words else given


def ls_parser() -> argparse.ArgumentParser:
    parser = parser_for("ls")
    parser.add_argument("-l", "--long", action="store_true", help="whole command lines")
    parser.add_argument("--all", action="store_true", help="finished tasks too, with their result")
    parser.add_argument("--json", action="store_true", help="the tasks as one JSON document (docs/json.md)")
    parser.add_argument("-q", "--quiet", action="store_true", help="task names only (for scripts and completion)")
    parser.add_argument("--label", dest="labels", action="append", metavar="KEY=VALUE",
                        help="only the tasks with this label (repeatable: all must match)")
    return parser


def cmd_status(ns: str, args: list[str], options: Options) -> int:
    from lanco.views import render, stats

    opts = _flags(args, JSON_FLAG, status_parser, positionals=1)
    task = task_for(ns, opts["task"], options)
    record = task.record()
    if record.state == "unknown":
        raise LancoError(f"task {task.name} is not known")
    live = None
    if record.state in ("running", "frozen"):
        live = stats.live_detail(task.namespace.backend, ns, task.name)
    if opts["json"]:
        sys.stdout.write(render.status_json(record, live))
    else:
        sys.stdout.write(render.status_text(record, live, now=time.time()))
    return 0


def status_parser() -> argparse.ArgumentParser:
    parser = parser_for("status")
    parser.add_argument("--json", action="store_true", help="one JSON document (docs/json.md)")
    parser.add_argument("task", metavar="TASK", help="the task to describe, running or finished")
    return parser


def cmd_dump(ns: str, args: list[str], options: Options) -> int:
    from lanco.views import render, stats

    if args:
        parser_for("dump").parse_args(args)  # the help, or the usage error
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
    from lanco.options.units import parse_duration
    from lanco.views import stats, top

    opts = _flags(args, JSON_FLAG, top_parser, valued=TOP_VALUED)
    if opts["sort"] not in top.SORT_KEYS.values():
        top_parser().parse_args(args)  # the usage error, in argparse's words
    delay = parse_duration(opts["delay"], what="delay")
    iterations = None
    if opts["iterations"] is not None:
        if not opts["iterations"].isdigit() or int(opts["iterations"]) < 1:
            raise UsageError(f"invalid number of frames {opts['iterations']!r}: a whole number from 1")
        iterations = int(opts["iterations"])
    namespace = namespace_for(ns, options)
    namespace.authorize()

    def sampler() -> top.Sample:
        return stats.sample_namespace(namespace, labels=opts["json"])

    if not opts["json"] and iterations is None and sys.stdout.isatty() and sys.stdin.isatty():
        from lanco.views import topscreen

        return topscreen.run(sampler, delay, opts["sort"])
    return _top_stream(sampler, delay, opts["sort"], iterations, opts["json"])


TOP_DEFAULT_DELAY, TOP_DEFAULT_SORT = "1", "cpu"
"""What top's plain reading and its argparse parser both take when the option is not given."""
TOP_VALUED: dict[str, tuple[str, str | None]] = {
    "-d": ("delay", TOP_DEFAULT_DELAY), "--delay": ("delay", TOP_DEFAULT_DELAY), "-n": ("iterations", None),
    "--iterations": ("iterations", None), "-s": ("sort", TOP_DEFAULT_SORT), "--sort": ("sort", TOP_DEFAULT_SORT)}


def top_parser() -> argparse.ArgumentParser:
    from lanco.views import top

    parser = parser_for("top")
    parser.add_argument("-d", "--delay", default=TOP_DEFAULT_DELAY, metavar="SECONDS",
                        help=f"seconds between frames (default {TOP_DEFAULT_DELAY})")
    parser.add_argument("-n", "--iterations", metavar="N",
                        help="print N frames (text, or JSON with --json), then exit")
    keys = sorted(top.SORT_KEYS.values())
    parser.add_argument("-s", "--sort", choices=keys, default=TOP_DEFAULT_SORT, metavar="KEY",
                        help=f"sort by KEY: {', '.join(keys)} (default {TOP_DEFAULT_SORT})")
    parser.add_argument("--json", action="store_true", help="frames as JSON lines")
    return parser


def _top_stream(take: Callable[[], top.Sample], delay: float, sort: str, iterations: int | None,
                as_json: bool) -> int:
    """Frames as plain text (a blank line between two) or JSON lines, for pipes, scripts and tests."""
    from lanco.views import top

    width = terminal_columns() if sys.stdout.isatty() else None
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


def cmd_logs(ns: str, args: list[str], options: Options) -> int:
    parser = parser_for("logs")
    parser.add_argument("-f", "--follow", action="store_true",
                        help="keep printing new output, across rotations and new runs of the task")
    parser.add_argument("-n", "--lines", help="only the last LINES lines")
    parser.add_argument("--rotate", action="store_true",
                        help="rotate the logs over their task's --log-max-size (every task's, or TASK's) rather "
                             "than print one")
    parser.add_argument("-v", "--verbose", action="store_true", help="with --rotate: one line per log rotated")
    parser.add_argument("task", nargs="?", metavar="TASK",
                        help="the task whose log to print, running or finished (with --rotate: the only one rotated)")
    opts = parser.parse_args(args)
    if opts.rotate:
        if opts.follow or opts.lines is not None:
            raise UsageError("logs: --rotate prints no log, it takes neither -f nor -n")
        from lanco.commands.rotation import rotate_namespace

        return rotate_namespace(ns, opts.task, options, verbose=opts.verbose)
    if opts.verbose:
        raise UsageError("logs: -v goes with --rotate")
    if opts.task is None:
        raise UsageError("logs: the following arguments are required: task")
    lines = None
    if opts.lines is not None:
        if not opts.lines.isdigit():
            raise UsageError(f"invalid number of lines {opts.lines!r}: a whole number")
        lines = int(opts.lines)
    task_for(ns, opts.task, options).show_log(sys.stdout.buffer, lines=lines, follow=opts.follow)
    return 0


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
