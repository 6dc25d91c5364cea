"""``lanco NS events``: the namespace's starts and ends, one line each, resumable from a cursor."""

from __future__ import annotations

import sys
import time

from lanco.commands import Options, namespace_for, parser_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from lanco.eventlog.stream import Event


def events_parser() -> argparse.ArgumentParser:
    parser = parser_for("events")
    parser.add_argument("-f", "--follow", action="store_true",
                        help="go on printing events as they come, until interrupted")
    parser.add_argument("--json", action="store_true", help="one JSON object per event (docs/json.md)")
    parser.add_argument("--since", metavar="CURSOR",
                        help="only the events after CURSOR (as a line printed it): resume where a reader stopped")
    parser.add_argument("--label", metavar="KEY=VALUE", action="append", default=[],
                        help="only the events of tasks with this label; repeatable (all must match)")
    return parser


def cmd_events(ns: str, args: list[str], options: Options) -> int:
    from lanco.options.labels import parse_selectors

    opts = events_parser().parse_args(args)
    selectors = parse_selectors(opts.label)
    namespace = namespace_for(ns, options)
    render = event_json if opts.json else event_text
    for event in namespace.events(since=opts.since, follow=opts.follow, labels=selectors or None):
        sys.stdout.write(render(event))
        # A consumer killed at any moment has its cursor for every line it read: none waits in a buffer.
        sys.stdout.flush()
    return 0


def event_json(event: Event) -> str:
    from lanco.views.render import compact_json

    return compact_json(event.as_dict()) + "\n"


def event_text(event: Event) -> str:
    from lanco.messages import escape

    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(event.time or 0))
    record = event.record
    if event.kind == "started":
        detail = " ".join(escape(a) for a in record.get("argv") or [])
    else:
        detail = str(record.get("state"))
        if record.get("signal"):
            detail += f", signal {record['signal']}"
        elif record.get("exit_code") is not None:
            detail += f", code {record['exit_code']}"
        if record.get("oom_kills"):
            detail += f", {record['oom_kills']} OOM kills"
        if record.get("cpu_usage_usec") is not None:
            detail += f", cpu {record['cpu_usage_usec'] / 1e6:.2f}s"
        if record.get("memory_peak_bytes") is not None:
            from lanco.options.units import format_size

            detail += f", peak {format_size(record['memory_peak_bytes'])}"
    run = f" run {event.run}" if event.kind == "run_ended" else ""
    return f"{stamp} {event.cursor} {event.kind} {escape(event.task)}{run} {detail}\n"
