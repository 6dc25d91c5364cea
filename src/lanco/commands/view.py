"""The commands that show tasks: ls, status."""

from __future__ import annotations

import sys

from lanco.cli import Options, namespace_for, parser_for, task_for
from lanco.errors import LancoError


def cmd_status(ns: str, args: list[str], options: Options) -> int:
    from lanco import render

    parser = parser_for("status")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("task")
    opts = parser.parse_args(args)
    record = task_for(ns, opts.task, options).record()
    if record.state == "unknown":
        raise LancoError(f"task {opts.task} is not known")
    sys.stdout.write(render.status_json(record) if opts.json else render.status_text(record))
    return 0


def cmd_ls(ns: str, args: list[str], options: Options) -> int:
    from lanco import render

    parser = parser_for("ls")
    parser.add_argument("-l", "--long", action="store_true")
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args(args)
    namespace = namespace_for(ns, options)
    tasks = namespace.tasks() if opts.all else namespace.running_tasks()
    records = [t.record() for t in tasks]
    if opts.json:
        sys.stdout.write(render.records_json(ns, records))
    else:
        sys.stdout.write(render.tree(ns, records, long=opts.long))
    return 0
