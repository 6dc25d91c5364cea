"""The lifecycle commands: init, run, check, stop, wait, release."""

from __future__ import annotations

import sys

from lanco.commands import Options, namespace_for, parser_for, task_for
from lanco.errors import LancoError, NotRunning, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from lanco.namespace import Namespace
    from lanco.state.record import TaskRecord
    from lanco.task import Task

STOP_TIMEOUT_HELP = "grace between the stop signal and the kill (default: the task's --stop-timeout, 10s)"
# check is parsed by hand (see cmd_check), so its help is written out in argparse's own layout.
CHECK_HELP = """\
usage: lanco NAMESPACE check [-h] TASK

Exit 0 when TASK is running, 1 when it is not; prints nothing.

positional arguments:
  TASK        the task to check

options:
  -h, --help  show this help message and exit
"""

def cmd_init(ns: str, args: list[str], options: Options) -> int:
    from lanco.namespace import Namespace

    parser = parser_for("init")
    parser.add_argument("-u", "--user", help="the namespace's owner (default: the caller)")
    parser.add_argument("-g", "--group",
                        help="let the members of GROUP use the namespace too (default: the owner's group, no access)")
    parser.add_argument("--take-over", action="store_true",
                        help="move the processes of the delegated cgroup above the base into a leaf first")
    opts = parser.parse_args(args)
    Namespace.init(ns, user=opts.user, group=opts.group, cgroup_mode=options.get("mode"),
                   cgroup_base=options.get("base"), take_over=opts.take_over)
    return 0


def plain_run(args: list[str]) -> tuple[str, list[str]] | None:
    """(TASK, CMD...) when ``args`` is ``TASK CMD [ARGS...]`` with no option before the command, the form scripts
    and the quick tour use; None for anything else. Building argparse's parser of some thirty options would be a
    fifth of what such a run costs, and it reads this form the same (a test compares them)."""
    if len(args) >= 2 and not args[0].startswith("-") and not _looks_like_option(args[1]):
        return args[0], args[1:]
    return None


def _looks_like_option(word: str) -> bool:
    return word.startswith("-") and word != "-"


def run_parser() -> argparse.ArgumentParser:
    import argparse

    from lanco.names import NAME_RULE
    from lanco.options import limits
    from lanco.options.lifetime import RESTART_POLICIES

    parser = parser_for("run")
    parser.add_argument("-f", "--foreground", action="store_true",
                        help="keep the terminal, wait for the task and exit with its code (interrupting stops it)")
    parser.add_argument("-L", "--keep-log", action="store_true",
                        help="append to an existing log instead of rotating it")
    parser.add_argument("-l", "--log", help="write the task's output to LOG instead of the namespace's log folder")
    parser.add_argument("--log-max-size", metavar="SIZE",
                        help="let logs --rotate rotate the log while the task runs once it is over SIZE (5M, 1G)")
    parser.add_argument("--log-keep", metavar="N", help="rotated copies of the log kept, .1 to .N (default 5)")
    parser.add_argument("-c", "--exit-command", metavar="CMD",
                        help="run /bin/sh -c CMD as the owner when the task has ended, with the LANCO_* variables")
    parser.add_argument("--label", dest="labels", action="append", metavar="KEY=VALUE",
                        help="label the task (repeatable, at most 32): a KEY of letters, digits and . _ / -, "
                             "a VALUE of up to 255 characters; ls, stop and wait --label select by them")
    parser.add_argument("--description", metavar="TEXT",
                        help="one line about the task (up to 256 characters), shown by status")
    limits.add_arguments(parser)
    lifetime = parser.add_argument_group("lifetime")
    lifetime.add_argument("--timeout", metavar="DURATION", help="stop the task this long after it started")
    lifetime.add_argument("--stop-signal", metavar="SIG", help="signal stop sends first (default TERM)")
    lifetime.add_argument("--stop-timeout", metavar="DURATION", help="grace before the kill (default 10s)")
    lifetime.add_argument("--restart", choices=RESTART_POLICIES, help="start the command again when it ends")
    lifetime.add_argument("--restart-max", metavar="N", help="restart at most N times")
    lifetime.add_argument("--restart-delay", metavar="DURATION", help="pause before a restart (default 100ms)")
    process = parser.add_argument_group("process")
    process.add_argument("-e", "--env", dest="extra_env", action="append", metavar="K=V",
                         help="set an environment variable of the task (repeatable)")
    process.add_argument("--env-file", metavar="FILE", help="K=V lines, # comments")
    process.add_argument("--cwd", metavar="DIR", help="the task's working directory")
    process.add_argument("--umask", metavar="OCTAL", help="the task's file mode creation mask, such as 027")
    process.add_argument("--nice", metavar="N", help="the task's scheduling niceness, -20 to 19")
    process.add_argument("--user", help="run the task as this account (root)")
    process.add_argument("--group", help="run the task with this group (root)")
    parser.add_argument("task", metavar="TASK", help=f"the task's name: {NAME_RULE}")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND",
                        help="the command and its arguments: every word from here on is the task's, not lanco's")
    return parser


def task_position(parser: argparse.ArgumentParser, args: list[str]) -> int | None:
    """The index of TASK in ``args``: the first word that is neither one of ``parser``'s options nor an option's
    value (after ``--``, the next word). Everything after it is the task's, and is never shown to argparse,
    which would otherwise read the command's own options as lanco's. None when there is no such word."""
    takes_value = {option: action.nargs != 0 for option, action in parser._option_string_actions.items()}
    index = 0
    while index < len(args):
        word = args[index]
        if word == "--":
            return index + 1 if index + 1 < len(args) else None
        if not _looks_like_option(word):
            return index
        if word.startswith("--"):
            index += 2 if takes_value.get(word, False) else 1  # --name=value, a flag, or unknown: one word
            continue
        index += 1
        for at, letter in enumerate(word[1:], start=2):  # a cluster of short options: -fL, -m64M, -fm 64M
            value = takes_value.get(f"-{letter}")
            if value is None:
                break  # unknown: argparse says so
            if value:
                index += 1 if at == len(word) else 0
                break
    return None


def parse_run(args: list[str]) -> tuple[argparse.Namespace, str, list[str]]:
    """lanco's options, TASK and the command of ``run [OPTIONS] TASK CMD [ARGS...]``."""
    parser = run_parser()
    at = task_position(parser, args)
    if at is None:
        parser.parse_args(args)  # says what is missing, or what is wrong with the options
        raise UsageError("run: the following arguments are required: TASK, COMMAND")
    opts = parser.parse_args(args[:at + 1])
    command = args[at + 1:]
    if command[:1] == ["--"]:
        command = command[1:]
    elif command and _looks_like_option(command[0]):
        word = command[0]
        if word.partition("=")[0] in parser._option_string_actions:
            raise UsageError(f"run: option {word} after TASK {args[at]}: lanco's options go before TASK, "
                             f"the task's own after its command")
        raise UsageError(f"run: command {word} looks like an option: lanco's options go before TASK; "
                         f"a command of that name is given as ./{word} or after --")
    if not command:
        raise UsageError("run: no command given")
    return opts, opts.task, command


def cmd_run(ns: str, args: list[str], options: Options) -> int:
    from lanco.options.runopts import RunPlan

    given: dict[str, object] = {"keep_log": False, "foreground": False}
    plain = plain_run(args)
    if plain is not None:
        name, command = plain
    else:
        from lanco.options import limits

        opts, name, command = parse_run(args)
        given.update({key: getattr(opts, key) for key in (
            "log", "exit_command", "timeout", "stop_signal", "stop_timeout", "restart", "restart_max",
            "restart_delay", "extra_env", "env_file", "cwd", "umask", "nice", "user", "group", "log_max_size",
            "log_keep", "labels", "description")})
        given.update(limits.given(opts), keep_log=opts.keep_log, foreground=opts.foreground)
    # Parsed before the namespace is opened: a bad value is a usage error whatever else is wrong.
    plan = RunPlan.build({k: v for k, v in given.items() if v is not None})
    task = task_for(ns, name, options)
    task.launch(command, plan)
    if not given["foreground"]:
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
    if args[:1] in (["-h"], ["--help"]):
        sys.stdout.write(CHECK_HELP)
        return 0
    if args[:1] == ["--"]:
        args = args[1:]
    elif args[:1] and args[0].startswith("-"):
        raise UsageError(f"check: unknown option {args[0]}")
    if len(args) != 1:
        raise UsageError("check: expected one TASK")
    task = task_for(ns, args[0], options)
    if not task.is_running():
        return 1
    if task.record_gone():
        from lanco import messages

        messages.warn("check", f"task {task.name}: its record is gone; known from its cgroup only")
    return 0


def wait_parser() -> argparse.ArgumentParser:
    """The parser of ``wait``: ``[-t SECONDS] TASK`` or ``[-t SECONDS] --any|--all [TASK...]``."""
    parser = parser_for("wait")
    parser.add_argument("-t", "--timeout", metavar="SECONDS",
                        help="give up after SECONDS (or a duration such as 5m): exit 1 if the tasks still run")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--any", action="store_true",
                       help="wait until one of the TASKs ends (none given: of the namespace's running tasks); "
                            "print a line for each that has, exit with the first one's code")
    which.add_argument("--all", action="store_true",
                       help="wait until every TASK ends (none given: every running task of the namespace), "
                            "printing a line as each does; exit with the first non-zero code, in TASK order")
    parser.add_argument("--label", dest="labels", action="append", metavar="KEY=VALUE",
                        help="instead of TASKs: every task with this label, running or finished (repeatable: all "
                             "must match); alone, exit with the greatest of their codes")
    parser.add_argument("tasks", nargs="*", metavar="TASK", help="a task to wait for, running or finished")
    return parser


def plain_timeout_and_task(args: list[str]) -> tuple[str | None, str] | None:
    """(SECONDS or None, TASK) when ``args`` is ``TASK`` or ``-t SECONDS TASK`` with nothing that looks like an
    option in the values; None for anything else. These forms are what scripts run: argparse, with the gettext,
    locale and shutil it loads, would be most of what a stop costs. Whatever else is given goes to argparse, so
    every other form, and every usage error, is argparse's own."""
    match args:
        case [task] if not task.startswith("-"):
            return None, task
        case ["-t" | "--timeout", timeout, task] if not timeout.startswith("-") and not task.startswith("-"):
            return timeout, task
    return None


def _timeout_seconds(given: str | None) -> float | None:
    if given is None:
        return None
    from lanco.options.units import parse_duration

    return parse_duration(given, what="timeout")


def stop_parser() -> argparse.ArgumentParser:
    """The parser of ``stop``: ``[-t SECONDS] TASK...`` or ``[-t SECONDS] --all``."""
    parser = parser_for("stop")
    parser.add_argument("-t", "--timeout", metavar="SECONDS", help=STOP_TIMEOUT_HELP)
    parser.add_argument("-a", "--all", action="store_true", help="every running task of the namespace")
    parser.add_argument("--label", dest="labels", action="append", metavar="KEY=VALUE",
                        help="every running task with this label (repeatable: all must match)")
    parser.add_argument("tasks", nargs="*", metavar="TASK", help="a task to stop; several are stopped together")
    return parser


def cmd_stop(ns: str, args: list[str], options: Options) -> int:
    plain = plain_timeout_and_task(args)
    selectors = None
    if plain is not None:
        given, names, every = plain[0], [plain[1]], False
    else:
        opts = stop_parser().parse_args(args)
        given, names, every = opts.timeout, opts.tasks, opts.all
        selectors = _selectors("stop", opts.labels, bool(names) or every, "TASK or --all")
    if selectors is None and every == bool(names):
        raise UsageError("stop: expected TASK..., --all or --label KEY=VALUE")
    timeout = _timeout_seconds(given)
    if selectors is not None:
        names = active_labelled(namespace_for(ns, options), selectors)
        if not names:
            return 0  # as --all in a namespace with nothing running
    if len(names) == 1:
        task_for(ns, names[0], options).stop(timeout=timeout)
        return 0
    from lanco import messages
    from lanco.names import check_task_name

    for name in names:
        check_task_name(name)
    # Every task gets its stop whatever another one meets; each failure is a line of its own, in the order the
    # tasks were named (for --all, of their names), and the exit code is the first one's.
    outcome = namespace_for(ns, options).stop_tasks(names or None, timeout=timeout)
    failures = [result for result in outcome.values() if isinstance(result, LancoError)]
    for failure in failures:
        messages.warn("stop", failure.message)
    return failures[0].exit_code if failures else 0


def cmd_wait(ns: str, args: list[str], options: Options) -> int:
    from lanco.state.record import FINISHED_STATES
    from lanco.task import LOST_EXIT_CODE

    plain = plain_timeout_and_task(args)
    if plain is not None:
        given, names, which = plain[0], [plain[1]], ""
    else:
        opts = wait_parser().parse_args(args)
        given, names, which = opts.timeout, opts.tasks, "any" if opts.any else "all" if opts.all else ""
        selectors = _selectors("wait", opts.labels, bool(names), "TASK")
        if selectors is not None:
            if which:
                chosen = [task.name for task in namespace_for(ns, options).tasks(labels=selectors)]
                return _wait_many(ns, chosen, which, _timeout_seconds(given), given, options, labelled=True)
            return _wait_labelled(ns, options, selectors, given)
    if not which and len(names) != 1:
        raise UsageError("wait: expected one TASK, --label KEY=VALUE, or --any/--all with several")
    timeout = _timeout_seconds(given)
    if which:
        return _wait_many(ns, names, which, timeout, given, options)
    task = task_for(ns, names[0], options)
    record = task.wait(timeout=timeout)
    if record.state not in FINISHED_STATES:
        raise LancoError(f"task {names[0]} is still running after {given}")
    return LOST_EXIT_CODE if record.exit_code is None else record.exit_code


def _selectors(command: str, given: list[str] | None, named: bool, instead: str) -> dict[str, str] | None:
    """The ``--label`` selectors of ``command`` (None when none is given), parsed before the namespace is opened;
    they choose the tasks themselves, so naming tasks as well is refused rather than guessed at."""
    if not given:
        return None
    if named:
        raise UsageError(f"{command}: --label chooses the tasks itself: give it without {instead}")
    from lanco.options.labels import parse_selectors

    return parse_selectors(given)


def active_labelled(namespace: Namespace, selectors: dict[str, str]) -> list[str]:
    """The names of the tasks with ``selectors`` that are running or about to restart (one whose state cannot be
    read is kept: its stop or wait says what it meets)."""
    chosen = []
    for task in namespace.tasks(labels=selectors):
        try:
            active = task.is_active()
        except LancoError:
            active = True
        if active:
            chosen.append(task.name)
    return chosen


def _wait_labelled(ns: str, options: Options, selectors: dict[str, str], given: str | None) -> int:
    """``wait --label``: wait for every task with the labels, within one deadline for all, and exit with the
    greatest of their codes (0 when every one succeeded, or no task has the labels; 255 for a lost run). A task
    that has ended already counts with its result, as ``wait TASK`` gives it: a script that starts a few tasks
    and waits for them by label is told of one that failed before the wait began."""
    import time

    from lanco.state.record import FINISHED_STATES
    from lanco.task import LOST_EXIT_CODE

    timeout = _timeout_seconds(given)
    namespace = namespace_for(ns, options)
    deadline = None if timeout is None else time.monotonic() + timeout
    worst = 0
    for task in namespace.tasks(labels=selectors):
        name = task.name
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        record = task.wait(timeout=left)
        if record.state not in FINISHED_STATES:
            raise LancoError(f"task {name} is still running after {given}")
        worst = max(worst, LOST_EXIT_CODE if record.exit_code is None else record.exit_code)
    return worst


def _wait_many(ns: str, names: list[str], which: str, timeout: float | None, given: str | None,
               options: Options, *, labelled: bool = False) -> int:
    """``wait --any`` and ``wait --all``: a line ``TASK STATE CODE`` for each task that ended, as it ends. With
    ``labelled``, ``names`` are the tasks ``--label`` chose: none is a wait for nothing, not for every task."""
    from lanco.names import check_task_name
    from lanco.task import LOST_EXIT_CODE

    for name in names:
        check_task_name(name)
    namespace = namespace_for(ns, options)
    tasks = [namespace.task(n) for n in names] if names or labelled else \
        [t for t in namespace.tasks() if t.is_active()]
    if not tasks:
        if which == "all":
            return 0
        raise NotRunning("no task has those labels" if labelled else f"namespace {ns} has no running task")
    codes: dict[str, int] = {}

    def show(batch: list[tuple[Task, TaskRecord]]) -> None:
        for task, record in batch:
            codes[task.name] = LOST_EXIT_CODE if record.exit_code is None else record.exit_code
            sys.stdout.write(f"{task.name} {record.state} {codes[task.name]}\n")
        sys.stdout.flush()

    if which == "any":
        show(namespace.wait_any(tasks, timeout=timeout))
    else:
        namespace.wait_all(tasks, timeout=timeout, on_end=show)
    if not codes or (which == "all" and len(codes) < len({t.name for t in tasks})):
        running = [t.name for t in tasks if t.name not in codes]
        raise LancoError(f"task{'s' if len(running) > 1 else ''} {', '.join(dict.fromkeys(running))} "
                         f"{'are' if len(running) > 1 else 'is'} still running after {given}")
    if which == "any":
        return next(iter(codes.values()))
    return next((codes[t.name] for t in tasks if codes[t.name] != 0), 0)


def cmd_release(ns: str, args: list[str], options: Options) -> int:
    parser = parser_for("release")
    parser.add_argument("-n", "--dry-run", action="store_true", help="say what would be released")
    parser.add_argument("task", nargs="?", metavar="TASK",
                        help="the finished task to forget; without it, the whole namespace is destroyed")
    opts = parser.parse_args(args)
    namespace = namespace_for(ns, options)
    if opts.task is not None:
        targets = namespace.task(opts.task).release(dry_run=opts.dry_run)
    else:
        targets = namespace.release(dry_run=opts.dry_run)
    if opts.dry_run:
        sys.stdout.write("".join(f"would remove {t}\n" for t in targets))
    return 0
