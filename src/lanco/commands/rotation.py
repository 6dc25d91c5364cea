"""``logs --rotate``: every log over its task's ``--log-max-size`` rotated, in one namespace, or in every namespace
the caller may use (``lanco logs --rotate --all``, what the shipped timer and logrotate rule run as root).

Each failure is one warning line and keeps no other log from its rotation; the exit code is the first failure's.
With ``-v`` each log rotated is one INFO line.
"""

from __future__ import annotations

import os

from lanco import messages
from lanco.commands import Options, namespace_for, parser_for
from lanco.errors import LancoError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from lanco.state.config import NamespaceConfig
    from lanco.state.logrotation import Rotation


def rotate_namespace(ns: str, task: str | None, options: Options, *, verbose: bool, named: bool = False) -> int:
    """Rotate the logs of namespace ``ns`` (only ``task``'s when given) and report; ``named`` puts the namespace's
    name before each line (``--all``)."""
    namespace = namespace_for(ns, options)
    outcome: Sequence[tuple[str, Rotation | LancoError]]
    if task is None:
        outcome = namespace.rotate_logs()
    else:
        from lanco.names import check_task_name

        handle = namespace.task(check_task_name(task))
        if handle.record().state == "unknown":
            raise LancoError(f"task {task} is not known")
        rotation = handle.rotate_log()
        outcome = [] if rotation is None else [(task, rotation)]
    return report(ns if named else None, outcome, verbose=verbose)


def report(ns: str | None, outcome: Sequence[tuple[str, Rotation | LancoError]], *, verbose: bool) -> int:
    from lanco.options.units import format_size

    prefix = "" if ns is None else f"namespace {ns}: "
    code = 0
    for name, result in outcome:
        if isinstance(result, LancoError):
            messages.warn("logs", f"{prefix}task {name}: {result.message}")
            code = code or result.exit_code
        elif verbose:
            held = (f"its writes held back for {result.pause_s * 1000:.1f} ms" if result.paused else
                    "its writes not held back: its cgroup mode has no freezer")
            messages.announce("logs", f"{prefix}task {name}: rotated {result.path} "
                                    f"({format_size(result.copied_bytes)} to {os.path.basename(result.path)}.1, "
                                    f"{held})")
    return code


def cmd_rotate_all(args: list[str], options: Options) -> int:
    """``lanco logs --rotate --all [-v]``: every namespace ``lanco ls`` lists for the caller (root: every one
    initialised by root, in /var/lib/lanco; a user: their own, and those of their groups)."""
    from lanco.state.config import list_namespaces, load_config

    parser = parser_for("logs")
    parser.prog = "lanco logs"
    parser.add_argument("--rotate", action="store_true", help="rotate the logs over their task's --log-max-size")
    parser.add_argument("--all", action="store_true", help="in every namespace you may use (root: every one)")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per log rotated")
    opts = parser.parse_args(args)
    if not (opts.rotate and opts.all):
        raise UsageError("logs: without a namespace, expected --rotate --all (lanco NAMESPACE logs TASK prints a log)")
    code = 0
    for name in list_namespaces():
        try:
            config = load_config(name)
        except LancoError:
            continue  # unreadable: someone else's
        if not _may_use(config):
            continue
        try:
            outcome = rotate_namespace(name, None, options, verbose=opts.verbose, named=True)
        except LancoError as exc:
            messages.warn("logs", f"namespace {name}: {exc.message}")
            outcome = exc.exit_code
        code = code or outcome
    return code


def _may_use(config: NamespaceConfig) -> bool:
    euid = os.geteuid()
    return euid in (0, config.owner_uid) or (config.group_access and config.owner_gid in {os.getegid(),
                                                                                            *os.getgroups()})
