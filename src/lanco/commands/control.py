"""The commands that act on a running task: freeze, thaw, kill, set."""

from __future__ import annotations

from lanco.commands import Options, parser_for, task_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lanco.task import Task


def _only_task(command: str, ns: str, args: list[str], options: Options, task_help: str) -> Task:
    """The task of a command whose one argument is TASK."""
    parser = parser_for(command)
    parser.add_argument("task", metavar="TASK", help=task_help)
    return task_for(ns, parser.parse_args(args).task, options)


def cmd_freeze(ns: str, args: list[str], options: Options) -> int:
    _only_task("freeze", ns, args, options, "the running task whose processes to stop where they stand").freeze()
    return 0


def cmd_thaw(ns: str, args: list[str], options: Options) -> int:
    _only_task("thaw", ns, args, options, "the frozen task whose processes to resume").thaw()
    return 0


def cmd_kill(ns: str, args: list[str], options: Options) -> int:
    from lanco.errors import NotRunning
    from lanco.options.signals import parse_signal

    parser = parser_for("kill")
    parser.add_argument("-s", "--signal", default="TERM", metavar="SIG", help="signal name or number (default TERM)")
    parser.add_argument("task", metavar="TASK", help="the running task whose every process gets SIG")
    opts = parser.parse_args(args)
    signum = parse_signal(opts.signal)
    task = task_for(ns, opts.task, options)
    if not task.is_running() or task.signal(signum) == 0:
        raise NotRunning(f"task {opts.task} is not running")
    return 0


def cmd_set(ns: str, args: list[str], options: Options) -> int:
    from lanco.errors import UsageError
    from lanco.options import limits

    parser = parser_for("set")
    limits.add_arguments(parser)
    parser.add_argument("task", metavar="TASK", help="the running task whose limits to change (max lifts one)")
    opts = parser.parse_args(args)
    # Parsed before the namespace is opened: a bad value is a usage error whatever else is wrong.
    wanted = limits.Limits.build(limits.given(opts))
    if not wanted:
        raise UsageError("set: no limit given")
    task_for(ns, opts.task, options).apply_limits(wanted)
    return 0
