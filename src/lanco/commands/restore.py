"""``lanco restore``: after a boot, make again every namespace root initialised, as the boot unit does.

cgroupfs starts empty at every boot while ``/var/lib/lanco`` keeps the namespaces' configurations: each namespace
gets back its cgroups, handed to its owner, and lanco's named hierarchy its mount, by init's own steps
(:meth:`lanco.namespace.Namespace.restore`); the runs the boot ended are recorded ``lost``, each exit hook run
once. One line per namespace; a second restore finds everything in place and says so.
"""

from __future__ import annotations

import os

from lanco import messages
from lanco.commands import Options, parser_for
from lanco.errors import PermissionDenied, UsageError, as_lanco_error

TOKEN = "restore"


def cmd_restore(args: list[str], options: Options) -> int:
    from lanco.state.config import system_namespaces, system_state_root

    parser = parser_for(TOKEN)
    parser.prog = "lanco restore"
    parser.add_argument("namespaces", nargs="*", metavar="NAMESPACE",
                        help=f"only these (default: every namespace recorded in {system_state_root()})")
    opts = parser.parse_args(args)
    if os.geteuid() != 0:
        raise PermissionDenied("restore needs root: it makes cgroups, hands them to their owners and mounts "
                               "lanco's named hierarchy")
    recorded = system_namespaces()
    failed = False
    for name in opts.namespaces:
        if name not in recorded:
            messages.warn(TOKEN, f"namespace {name} is not recorded in {system_state_root()}: nothing to restore")
            failed = True
    names = [n for n in recorded if n in opts.namespaces] if opts.namespaces else recorded
    for name in names:
        try:
            line = restore_one(name, options)
        except Exception as exc:  # one namespace's failure, whatever it is, keeps no other from its restore
            messages.warn(TOKEN, f"namespace {name} not restored: {as_lanco_error(exc).message}")
            failed = True
            continue
        if line is not None:
            messages.announce(TOKEN, line)
    if not names and not opts.namespaces:
        messages.announce(TOKEN, f"no namespace is recorded in {system_state_root()}: nothing to restore")
    return 1 if failed else 0


def restore_one(name: str, options: Options) -> str | None:
    """Restore namespace ``name`` and settle its runs; the line that says what changed, or None for a namespace of
    another cgroup base or mode than the one given (option or environment), which is not this restore's."""
    from lanco.namespace import Namespace

    given = options.get("base") or options.get("mode") or os.environ.get("LANCO_CGROUP_BASE") \
        or os.environ.get("LANCO_CGROUP_MODE")
    try:
        namespace = Namespace(name, cgroup_mode=options.get("mode"), cgroup_base=options.get("base"))
    except UsageError:
        if given:
            return None
        raise
    changes = Namespace.restore(name)
    lost = namespace.settle_tasks()
    said = f"namespace {name} restored: {', '.join(changes)}" if changes else f"namespace {name} is in place"
    if lost:
        runs = "1 run" if len(lost) == 1 else f"{len(lost)} runs"
        return f"{said}; {runs} that ended unseen recorded lost ({', '.join(lost)})"
    return said if changes else f"{said}: nothing to restore"
