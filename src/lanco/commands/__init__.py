"""The commands of the command line, one module per group (lifecycle, control, view, rotation, restore), and the
helpers they share. ``lanco.cli`` imports only the module a command needs, so this module imports no more than
``os`` and ``sys`` at the top: each helper loads what it needs when it runs.
"""

from __future__ import annotations

import os
import sys

from lanco.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import NoReturn

    from lanco.namespace import Namespace
    from lanco.task import Task

Options = dict[str, str | None]
"""The global options before NAMESPACE: ``mode`` and ``base``, each None where not given."""


def namespace_for(name: str, options: Options) -> Namespace:
    from lanco.namespace import Namespace

    return Namespace(name, cgroup_mode=options.get("mode"), cgroup_base=options.get("base"))


def task_for(ns: str, task: str, options: Options) -> Task:
    """The task handle, with the name checked before anything is read, so a bad name is a usage error."""
    from lanco.names import check_task_name

    check_task_name(task)
    return namespace_for(ns, options).task(task)


def terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``, without importing shutil (bz2, lzma, fnmatch: about 2 ms)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    stdout = sys.__stdout__
    if stdout is None:
        return 80
    try:
        return os.get_terminal_size(stdout.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def parser_for(command: str) -> argparse.ArgumentParser:
    """argparse, but every usage error is one line in lanco's form rather than argparse's own text."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise UsageError(f"{command}: {message}")

    class Formatter(argparse.HelpFormatter):
        # argparse makes a formatter for every option it adds, and by default asks shutil for the width.
        def __init__(self, prog: str) -> None:
            super().__init__(prog, width=terminal_columns() - 2)

        def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
            # argparse shows a REMAINDER as a bare "...": run's usage line would read "TASK ...".
            if action.nargs == argparse.REMAINDER and isinstance(action.metavar, str):
                return f"{action.metavar} [ARG ...]"
            return super()._format_args(action, default_metavar)

    # allow_abbrev=False: an option is read only by its whole name, never as the start of another (a task's own
    # --cpu is no abbreviation of --cpu-quota, and a future option must not change what an old script means).
    return Parser(prog=f"lanco NAMESPACE {command}", add_help=True, formatter_class=Formatter, allow_abbrev=False)


def plain_flags(args: Sequence[str], flags: dict[str, str], positionals: int,
                valued: dict[str, tuple[str, str | None]] | None = None) -> tuple[dict[str, object], list[str]]:
    """({destination: given}, positionals) when ``args`` holds only the named flags, each whole (``--json``, not
    ``-lq``), the ``valued`` options (option: (destination, default)) each followed by a value that is no option,
    and exactly ``positionals`` other words. Views are what scripts and monitoring poll, and argparse, with the
    gettext and locale it loads, would be a third of a view's cost. Anything else raises :class:`NotPlain`, and
    the command's argparse parser reads it: ``--help``, every usage error, and every other form stay argparse's
    own (a test compares the two readings)."""
    valued = valued or {}
    given: dict[str, object] = dict.fromkeys(flags.values(), False)
    given.update(valued.values())
    words = []
    rest = iter(args)
    for arg in rest:
        if arg in flags:
            given[flags[arg]] = True
        elif arg in valued:
            value = next(rest, None)
            if value is None or value.startswith("-"):
                raise NotPlain
            given[valued[arg][0]] = value
        elif arg.startswith("-") and arg != "-":
            raise NotPlain
        else:
            words.append(arg)
    if len(words) != positionals:
        raise NotPlain
    return given, words


class NotPlain(Exception):
    """The arguments are not of the plain form :func:`plain_flags` reads: argparse reads them."""
