"""The command line: ``lanco [-d] [-D TOKEN] NAMESPACE COMMAND [OPTIONS] [ARGS]``, the original's shape.

Each command imports what it needs when it runs, so that ``check`` costs little more than starting Python.
"""

from __future__ import annotations

import os
import sys

from lanco import messages
from lanco.errors import LancoError, UsageError, as_lanco_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import NoReturn

    from lanco.commands import Options

USAGE = """\
usage: lanco [-H [USER@]HOST[:PORT]] [-d] [-D TOKEN] [--cgroup-mode v2|hybrid|v1] [--cgroup-base PATH]
             NAMESPACE COMMAND [ARGS]
       lanco ls [--json] | --version | --help    (ls: the namespaces you may use)
       lanco restore [NAMESPACE...]              (root, at boot: make the namespaces' cgroups again)
       lanco logs --rotate --all [-v]            (the logs over their size, in every namespace you may use)

arguments:
  NAMESPACE                          a named group of tasks of one owner, created by init
  COMMAND                            one of the commands below; lanco NAMESPACE COMMAND --help tells its options

options (before NAMESPACE):
  -H, --host [USER@]HOST[:PORT]      run the command on HOST's lanco over ssh (LANCO_SSH, LANCO_REMOTE_LANCO;
                                     docs/fleet.md); exit 255 when ssh cannot reach HOST
  -d, -dd                            information messages; twice, debug messages too
  -D TOKEN                           with -dd, only the debug messages of TOKEN (a command name); repeatable
  --cgroup-mode v2|hybrid|v1         force the cgroup mode (also LANCO_CGROUP_MODE)
  --cgroup-base PATH                 the cgroup the namespaces live under (default /lanco; also LANCO_CGROUP_BASE)
  --version                          print the version and exit
  -h, --help                         print this summary and exit

commands:
  init [-u USER] [-g GROUP] [--take-over]
                                     create the namespace (root; a user's own where systemd delegates)
  run [-f] [-L] [-l LOG] [--log-max-size SIZE] [--log-keep N] [-c CMD] [--label KEY=VALUE]...
      [--description TEXT] [LIMITS] [LIFETIME] [PROCESS]
      TASK CMD [ARGS...]             start CMD as TASK; -f waits and exits with its code
      LIMITS   -m/--memory-max SIZE, --memory-high SIZE, --memory-low SIZE, --memory-swap-max SIZE,
               --cpu-quota PERCENT, --cpu-weight N, --cpuset CPUS, --pids-max N, --io-weight N,
               --io-read-bps DEV=RATE, --io-write-bps DEV=RATE   (sizes 512K 64M 2G max; DEV a path or MAJ:MIN)
      LIFETIME --timeout DURATION, --stop-signal SIG, --stop-timeout DURATION,
               --restart no|on-failure|always, --restart-max N, --restart-delay DURATION (500ms 30s 5m 2h)
      PROCESS  -e/--env K=V, --env-file FILE, --cwd DIR, --umask OCTAL, --nice N, --user USER, --group GROUP
  check TASK                         exit 0 when TASK runs, 1 when not
  stop [-t SECONDS] TASK... | --all | --label KEY=VALUE...
                                     the stop signal (TERM), wait, then kill the whole task; several together
  kill [-s SIG] TASK                 send SIG (default TERM) to every process of TASK
  freeze TASK, thaw TASK             stop TASK's processes where they stand, and resume them
  set [LIMITS] TASK                  change the limits of running TASK
  status [--json] TASK               state, processes, result, figures, limits
  wait [-t SECONDS] TASK | --label KEY=VALUE...
                                     block until TASK (or every labelled task) ends; exit with its (greatest) code
  wait [-t SECONDS] --any|--all [TASK... | --label KEY=VALUE...]
                                     until one (every one) of them ends; a line "TASK STATE CODE" for each
  ls [-l] [--all] [--json] [-q] [--label KEY=VALUE]...
                                     the namespace's tasks and their processes
  dump                               the namespace's running tasks as JSON
  top [-d SECONDS] [-n N] [-s KEY] [--json]
                                     live CPU, memory, pids and pressure per task
  logs [-f] [-n LINES] TASK          TASK's log; -f follows it across new runs
  logs --rotate [-v] [TASK]          rotate the logs over their task's --log-max-size (copy, then truncate)
  events [-f] [--json] [--since CURSOR] [--label KEY=VALUE]
                                     the tasks' starts and ends, one line each; resumable from a cursor
  release [-n] [TASK]                forget a finished TASK, or destroy the namespace (root; a user's own)

exit codes: 0 success (check: running), 1 refused or failed (check: not running), 2 usage,
            3/4 events: the cursor is older than the events kept / of a namespace made again since,
            70 internal error (a bug: lanco -dd shows where), 126/127 command not executable/not found,
            255 with -H: ssh could not reach HOST or lost the connection;
            run -f and wait: the task's own code.
"""


# command -> (module, function): modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("lanco.commands.lifecycle", "cmd_init"),
    "run": ("lanco.commands.lifecycle", "cmd_run"),
    "check": ("lanco.commands.lifecycle", "cmd_check"),
    "stop": ("lanco.commands.lifecycle", "cmd_stop"),
    "wait": ("lanco.commands.lifecycle", "cmd_wait"),
    "release": ("lanco.commands.lifecycle", "cmd_release"),
    "status": ("lanco.commands.view", "cmd_status"),
    "ls": ("lanco.commands.view", "cmd_ls"),
    "dump": ("lanco.commands.view", "cmd_dump"),
    "top": ("lanco.commands.view", "cmd_top"),
    "logs": ("lanco.commands.view", "cmd_logs"),
    "events": ("lanco.commands.events", "cmd_events"),
    "freeze": ("lanco.commands.control", "cmd_freeze"),
    "thaw": ("lanco.commands.control", "cmd_thaw"),
    "kill": ("lanco.commands.control", "cmd_kill"),
    "set": ("lanco.commands.control", "cmd_set"),
}


def _split_globals(argv: Sequence[str]) -> tuple[Options, list[str], int, list[str]]:
    """Global options come before the namespace, as in the original; returns (options, rest, -d count, -D)."""
    options: Options = {"mode": None, "base": None}
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
            raise UsageError(f"unknown option {arg!r}")
    from lanco.cgroups.detect import MODES

    if options["mode"] is not None and options["mode"] not in MODES:
        raise UsageError(f"invalid cgroup mode {options['mode']!r}: expected one of {', '.join(MODES)}")
    return options, args, debug, tokens


def _take_host(args: list[str]) -> tuple[str | None, list[str]]:
    """``-H HOST`` among the global options: taken out, the rest of the command line left for the remote lanco."""
    at = 0
    while at < len(args) and args[at].startswith("-") and args[at] != "-":
        arg = args[at]
        if arg in ("-H", "--host"):
            if at + 1 == len(args):
                raise UsageError(f"option {arg} needs a value")
            return args[at + 1], args[:at] + args[at + 2:]
        if arg.startswith(("--host=", "-H")):
            return arg.partition("=")[2] if arg.startswith("--") else arg[2:], args[:at] + args[at + 1:]
        at += 2 if arg in ("-D", "--cgroup-mode", "--cgroup-base") else 1
    return None, args


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    token = "lanco"
    try:
        host, args = _take_host(args)
        options, rest, debug, tokens = _split_globals(args)
        messages.configure(debug, tokens)
        if host is not None:
            token = "-H"
            from lanco.remote.ssh import run_remote

            return run_remote(host, args)
        if rest[:1] == ["ls"] and (len(rest) == 1 or rest[1].startswith("-")):
            # "lanco ls [--json]" lists namespaces; "lanco ls ls" is still the tree of a namespace named ls.
            token = "ls"
            from lanco.commands.view import cmd_namespaces

            return cmd_namespaces(rest[1:], options)
        if rest[:1] == ["restore"] and (len(rest) == 1 or rest[1] not in COMMANDS):
            # "lanco restore [NAMESPACE...]" as at boot; "lanco restore ls" is still a command of a namespace restore.
            token = "restore"
            messages.set_command(token)
            from lanco.commands.restore import cmd_restore

            return cmd_restore(rest[1:], options)
        if rest[:1] == ["logs"] and (len(rest) == 1 or rest[1].startswith("-")):
            # "lanco logs --rotate --all": every namespace; "lanco logs logs TASK" is a namespace named logs.
            token = "logs"
            messages.set_command(token)
            from lanco.commands.rotation import cmd_rotate_all

            return cmd_rotate_all(rest[1:], options)
        if len(rest) < 2:
            raise UsageError("expected NAMESPACE COMMAND (see lanco --help)")
        ns, command = rest[0], rest[1]
        if command not in COMMANDS:
            raise UsageError(f"unknown command {command!r} (see lanco --help)")
        token = command
        messages.set_command(command)
        from lanco.names import check_namespace_name

        check_namespace_name(ns)
        module, function = COMMANDS[command]
        # __import__ rather than importlib.import_module: importlib's package (and warnings) stay unloaded.
        handler: Callable[[str, list[str], Options], int] = getattr(__import__(module, fromlist=[function]),
                                                                     function)
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
    except Exception as exc:
        # Anything the kernel refused that no lanco error names yet, or a fault of lanco's own (a bug, or a state
        # file damaged in a way nothing checks yet): one line, and the traceback at -dd for the bug report.
        if messages.debugging(token):
            import traceback

            traceback.print_exc()
        failure = as_lanco_error(exc)
        messages.warn(token, failure.message)
        return failure.exit_code


def entry() -> NoReturn:
    """The command's end: Python's buffers flushed, then out without finalizing the interpreter. Tearing every
    module and object down costs about 3 ms, a tenth of what ``check`` takes, and nothing of lanco's needs it: no
    atexit handler, no finalizer whose effect outlives the process (descriptors and locks end with it)."""
    try:
        code = main()
    except SystemExit as exc:  # argparse's --help, --version and usage errors: their text is already written
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass  # as in main: stdout closed by a reader such as head
    except OSError as exc:
        messages.warn(messages.command(), f"cannot write the output: {exc.strerror or exc}")
        code = code or 1
    try:
        sys.stderr.flush()
    except OSError:
        pass  # nowhere left to say so
    os._exit(code)


if __name__ == "__main__":
    entry()
