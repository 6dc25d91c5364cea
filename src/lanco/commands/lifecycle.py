"""The lifecycle commands: init, run, check, stop, wait, release."""

from __future__ import annotations

import sys

from lanco.cli import Options, namespace_for, parser_for, task_for
from lanco.errors import LancoError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lanco.task import Task

def cmd_init(ns: str, args: list[str], options: Options) -> int:
    from lanco.namespace import Namespace

    parser = parser_for("init")
    parser.add_argument("-u", "--user")
    parser.add_argument("-g", "--group")
    parser.add_argument("--take-over", action="store_true",
                        help="move the processes of the delegated cgroup above the base into a leaf first")
    opts = parser.parse_args(args)
    Namespace.init(ns, user=opts.user, group=opts.group, cgroup_mode=options.get("mode"),
                   cgroup_base=options.get("base"), take_over=opts.take_over)
    return 0


def cmd_run(ns: str, args: list[str], options: Options) -> int:
    import argparse

    from lanco import limits
    from lanco.runopts import RESTART_POLICIES, RunPlan

    parser = parser_for("run")
    parser.add_argument("-f", "--foreground", action="store_true")
    parser.add_argument("-L", "--keep-log", action="store_true",
                        help="append to an existing log instead of rotating it")
    parser.add_argument("-l", "--log")
    parser.add_argument("-c", "--exit-command")
    limits.add_arguments(parser)
    lifetime = parser.add_argument_group("lifetime")
    lifetime.add_argument("--timeout", metavar="DURATION", help="stop the task this long after it started")
    lifetime.add_argument("--stop-signal", metavar="SIG", help="signal stop sends first (default TERM)")
    lifetime.add_argument("--stop-timeout", metavar="DURATION", help="grace before the kill (default 10s)")
    lifetime.add_argument("--restart", choices=RESTART_POLICIES, help="start the command again when it ends")
    lifetime.add_argument("--restart-max", metavar="N", help="restart at most N times")
    lifetime.add_argument("--restart-delay", metavar="DURATION", help="pause before a restart (default 100ms)")
    process = parser.add_argument_group("process")
    process.add_argument("-e", "--env", dest="extra_env", action="append", metavar="K=V")
    process.add_argument("--env-file", metavar="FILE", help="K=V lines, # comments")
    process.add_argument("--cwd", metavar="DIR")
    process.add_argument("--umask", metavar="OCTAL")
    process.add_argument("--nice", metavar="N")
    process.add_argument("--user", help="run the task as this account (root)")
    process.add_argument("--group", help="run the task with this group (root)")
    parser.add_argument("task")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    opts = parser.parse_args(args)
    if not opts.command:
        raise UsageError("run: no command given")
    given = {key: getattr(opts, key) for key in ("log", "exit_command", "timeout", "stop_signal", "stop_timeout",
                                                 "restart", "restart_max", "restart_delay", "extra_env",
                                                 "env_file", "cwd", "umask", "nice", "user", "group")}
    given.update(limits.given(opts), keep_log=opts.keep_log, foreground=opts.foreground)
    # Parsed before the namespace is opened: a bad value is a usage error whatever else is wrong.
    plan = RunPlan.build({k: v for k, v in given.items() if v is not None})
    task = task_for(ns, opts.task, options)
    task.launch(opts.command, plan)
    if not opts.foreground:
        return 0
    return _foreground_wait(task)


def _foreground_wait(task: Task) -> int:
    from lanco.task import LOST_EXIT_CODE

    try:
        record = task.wait()
    except KeyboardInterrupt:
        if task.is_active():
            task.stop()
        record = task.wait()
    return LOST_EXIT_CODE if record.exit_code is None else record.exit_code


def cmd_check(ns: str, args: list[str], options: Options) -> int:
    # Parsed by hand: check is the hot path of scripts and daemons, argparse would double its cost.
    if args[:1] == ["--"]:
        args = args[1:]
    elif args[:1] and args[0].startswith("-"):
        raise UsageError(f"check: unknown option {args[0]}")
    if len(args) != 1:
        raise UsageError("check: expected one TASK")
    return 0 if task_for(ns, args[0], options).is_running() else 1


def cmd_stop(ns: str, args: list[str], options: Options) -> int:
    from lanco.units import parse_duration

    parser = parser_for("stop")
    parser.add_argument("-t", "--timeout",
                        help="grace between the stop signal and the kill (default: the task's --stop-timeout, 10s)")
    parser.add_argument("task")
    opts = parser.parse_args(args)
    timeout = None if opts.timeout is None else parse_duration(opts.timeout, what="timeout")
    task_for(ns, opts.task, options).stop(timeout=timeout)
    return 0


def cmd_wait(ns: str, args: list[str], options: Options) -> int:
    from lanco.record import FINISHED_STATES
    from lanco.task import LOST_EXIT_CODE
    from lanco.units import parse_duration

    parser = parser_for("wait")
    parser.add_argument("-t", "--timeout")
    parser.add_argument("task")
    opts = parser.parse_args(args)
    timeout = None if opts.timeout is None else parse_duration(opts.timeout, what="timeout")
    task = task_for(ns, opts.task, options)
    record = task.wait(timeout=timeout)
    if record.state not in FINISHED_STATES:
        raise LancoError(f"task {opts.task} is still running after {opts.timeout}")
    return LOST_EXIT_CODE if record.exit_code is None else record.exit_code


def cmd_release(ns: str, args: list[str], options: Options) -> int:
    parser = parser_for("release")
    parser.add_argument("-n", "--dry-run", action="store_true", help="say what would be released")
    parser.add_argument("task", nargs="?")
    opts = parser.parse_args(args)
    namespace = namespace_for(ns, options)
    if opts.task is not None:
        targets = namespace.task(opts.task).release(dry_run=opts.dry_run)
    else:
        targets = namespace.release(dry_run=opts.dry_run)
    if opts.dry_run:
        sys.stdout.write("".join(f"would remove {t}\n" for t in targets))
    return 0
