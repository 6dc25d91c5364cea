"""The command line: ``lanco [-d] [-D TOKEN] NAMESPACE COMMAND [OPTIONS] [ARGS]``, the original's shape.

Each command imports what it needs when it runs, so that ``check`` costs little more than starting Python.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from lanco import messages
from lanco.errors import LancoError, UsageError

if TYPE_CHECKING:
    import argparse

    from lanco.namespace import Namespace

USAGE = """\
usage: lanco [-d] [-D TOKEN] [--cgroup-mode v2|hybrid|v1] [--cgroup-base PATH] NAMESPACE COMMAND [ARGS]
       lanco ls | --version | --help

commands:
  init [-u USER] [-g GROUP]          create the namespace (root)
  run [-f] [-L] [-l LOG] [-c CMD] [-m BYTES] TASK CMD [ARGS...]
                                     start CMD as TASK; -f waits and exits with its code
  check TASK                         exit 0 when TASK runs, 1 when not
  stop [-t SECONDS] TASK             SIGTERM, wait, then kill the whole task
  status [--json] TASK               state, processes, result, figures
  wait [-t SECONDS] TASK             block until TASK ends; exit with its code
  ls [-l] [--all] [--json]           the namespace's tasks and their processes
  release [-n] [TASK]                forget a finished TASK, or destroy the namespace (root)

exit codes: 0 success (check: running), 1 refused or failed (check: not running), 2 usage,
            126/127 command not executable/not found; run -f and wait: the task's own code.
"""


class _Parser:
    """argparse, but every usage error is one line in lanco's form rather than argparse's own text."""

    @staticmethod
    def make(command: str) -> argparse.ArgumentParser:
        import argparse

        class Parser(argparse.ArgumentParser):
            def error(self, message: str) -> NoReturn:
                raise UsageError(f"{command}: {message}")

        return Parser(prog=f"lanco NAMESPACE {command}", add_help=True)


def _namespace(name: str, options: dict[str, str | None]) -> Namespace:
    from lanco.namespace import Namespace

    return Namespace(name, cgroup_mode=options.get("mode"))


def cmd_init(ns: str, args: list[str], options: dict[str, str | None]) -> int:
    from lanco.namespace import Namespace

    parser = _Parser.make("init")
    parser.add_argument("-u", "--user")
    parser.add_argument("-g", "--group")
    opts = parser.parse_args(args)
    Namespace.init(ns, user=opts.user, group=opts.group, cgroup_mode=options.get("mode"),
                   cgroup_base=options.get("base"))
    return 0


def cmd_run(ns: str, args: list[str], options: dict[str, str | None]) -> int:
    import argparse

    from lanco.units import parse_size

    parser = _Parser.make("run")
    parser.add_argument("-f", "--foreground", action="store_true")
    parser.add_argument("-L", "--keep-log", action="store_true",
                        help="append to an existing log instead of rotating it")
    parser.add_argument("-l", "--log")
    parser.add_argument("-c", "--exit-command")
    parser.add_argument("-m", "--memory-max")
    parser.add_argument("task")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    opts = parser.parse_args(args)
    if not opts.command:
        raise UsageError("run: no command given")
    memory_max = None if opts.memory_max is None else parse_size(opts.memory_max, what="memory limit")
    namespace = _namespace(ns, options)
    task = namespace.task(opts.task)
    task.start(opts.command, log=opts.log, keep_log=opts.keep_log, exit_command=opts.exit_command,
               memory_max=memory_max, foreground=opts.foreground)
    if not opts.foreground:
        return 0
    return _foreground_wait(task)


def _foreground_wait(task: object) -> int:
    from lanco.task import LOST_EXIT_CODE, Task

    assert isinstance(task, Task)
    try:
        record = task.wait()
    except KeyboardInterrupt:
        if task.is_running():
            task.stop()
        record = task.wait()
    return LOST_EXIT_CODE if record.exit_code is None else record.exit_code


def cmd_check(ns: str, args: list[str], options: dict[str, str | None]) -> int:
    # Parsed by hand: check is the hot path of scripts and daemons, argparse would double its cost.
    if args[:1] == ["--"]:
        args = args[1:]
    elif args[:1] and args[0].startswith("-"):
        raise UsageError(f"check: unknown option {args[0]}")
    if len(args) != 1:
        raise UsageError("check: expected one TASK")
    return 0 if _namespace(ns, options).task(args[0]).is_running() else 1


def cmd_stop(ns: str, args: list[str], options: dict[str, str | None]) -> int:
    from lanco.units import parse_duration

    parser = _Parser.make("stop")
    parser.add_argument("-t", "--timeout", help="seconds to wait after SIGTERM before killing")
    parser.add_argument("task")
    opts = parser.parse_args(args)
    timeout = None if opts.timeout is None else parse_duration(opts.timeout, what="timeout")
    _namespace(ns, options).task(opts.task).stop(timeout=timeout)
    return 0


def cmd_wait(ns: str, args: list[str], options: dict[str, str | None]) -> int:
    from lanco.task import LOST_EXIT_CODE
    from lanco.units import parse_duration

    parser = _Parser.make("wait")
    parser.add_argument("-t", "--timeout")
    parser.add_argument("task")
    opts = parser.parse_args(args)
    timeout = None if opts.timeout is None else parse_duration(opts.timeout, what="timeout")
    task = _namespace(ns, options).task(opts.task)
    record = task.wait(timeout=timeout)
    if record.running or record.state in ("starting", "finishing"):
        raise LancoError(f"task {opts.task} is still running after {opts.timeout}")
    return LOST_EXIT_CODE if record.exit_code is None else record.exit_code


def cmd_status(ns: str, args: list[str], options: dict[str, str | None]) -> int:
    from lanco import render

    parser = _Parser.make("status")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("task")
    opts = parser.parse_args(args)
    record = _namespace(ns, options).task(opts.task).record()
    if record.state == "unknown":
        raise LancoError(f"task {opts.task} is not known")
    sys.stdout.write(render.status_json(record) if opts.json else render.status_text(record))
    return 0


def cmd_ls(ns: str, args: list[str], options: dict[str, str | None]) -> int:
    from lanco import render

    parser = _Parser.make("ls")
    parser.add_argument("-l", "--long", action="store_true")
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args(args)
    namespace = _namespace(ns, options)
    tasks = namespace.tasks() if opts.all else namespace.running_tasks()
    records = [t.record() for t in tasks]
    if opts.json:
        sys.stdout.write(render.records_json(ns, records))
    else:
        sys.stdout.write(render.tree(ns, records, long=opts.long))
    return 0


def cmd_release(ns: str, args: list[str], options: dict[str, str | None]) -> int:
    parser = _Parser.make("release")
    parser.add_argument("-n", "--dry-run", action="store_true", help="say what would be released")
    parser.add_argument("task", nargs="?")
    opts = parser.parse_args(args)
    namespace = _namespace(ns, options)
    if opts.task is not None:
        targets = namespace.task(opts.task).release(dry_run=opts.dry_run)
    else:
        targets = namespace.release(dry_run=opts.dry_run)
    if opts.dry_run:
        sys.stdout.write("".join(f"would remove {t}\n" for t in targets))
    return 0


def list_namespaces() -> int:
    from lanco.config import list_namespaces as names

    for name in names():
        sys.stdout.write(f"{name}\n")
    return 0


COMMANDS: dict[str, Callable[[str, list[str], dict[str, str | None]], int]] = {
    "init": cmd_init,
    "run": cmd_run,
    "check": cmd_check,
    "stop": cmd_stop,
    "status": cmd_status,
    "wait": cmd_wait,
    "ls": cmd_ls,
    "release": cmd_release,
}


def _split_globals(argv: Sequence[str]) -> tuple[dict[str, str | None], list[str], int, list[str]]:
    """Global options come before the namespace, as in the original; returns (options, rest, -d count, -D)."""
    options: dict[str, str | None] = {"mode": None, "base": None}
    debug, tokens = 0, []
    args = list(argv)
    while args and args[0].startswith("-") and args[0] != "-":
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            sys.stdout.write(USAGE)
            raise SystemExit(0)
        if arg == "--version":
            from lanco import __version__

            sys.stdout.write(f"lanco {__version__}\n")
            raise SystemExit(0)
        if arg.startswith("-d") and set(arg[1:]) == {"d"}:
            debug += len(arg) - 1
        elif arg in ("-D", "--cgroup-mode", "--cgroup-base"):
            if not args:
                raise UsageError(f"option {arg} needs a value")
            value = args.pop(0)
            if arg == "-D":
                tokens.append(value)
            else:
                options["mode" if arg == "--cgroup-mode" else "base"] = value
        elif arg.startswith(("--cgroup-mode=", "--cgroup-base=")):
            key, _, value = arg.partition("=")
            options["mode" if key == "--cgroup-mode" else "base"] = value
        else:
            raise UsageError(f"unknown option {arg}")
    return options, args, debug, tokens


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    token = "lanco"
    try:
        options, rest, debug, tokens = _split_globals(args)
        messages.configure(debug, tokens)
        if rest == ["ls"] or (rest[:1] == ["ls"] and len(rest) == 1):
            return list_namespaces()
        if len(rest) < 2:
            raise UsageError("expected NAMESPACE COMMAND (see lanco --help)")
        ns, command = rest[0], rest[1]
        token = command
        handler = COMMANDS.get(command)
        if handler is None:
            raise UsageError(f"unknown command {command!r} (see lanco --help)")
        from lanco.names import check_namespace_name

        check_namespace_name(ns)
        return handler(ns, rest[2:], options)
    except LancoError as exc:
        messages.warn(token, exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed by a reader such as head: not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        # Anything the kernel refused that no lanco error names yet: still one line, not a traceback.
        where = f": {exc.filename}" if exc.filename else ""
        messages.warn(token, f"{exc.strerror or exc}{where}")
        return 1


def entry() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    entry()
