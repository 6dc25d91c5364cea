#!/opt/lanco/bin/python
"""A restart-safe daemon on lanco: it runs a list of jobs, a few at a time, as named tasks, and handles each end
exactly once, however often it is killed and started again. See docs/daemon.md, which walks through it.

    examples/daemon.py NAMESPACE JOURNAL [--jobs N] [--parallel P] [--seconds S]

Job ``job-007`` says it started (in its log) and sleeps S seconds, its share of a workload; its end is handled by
one line appended to JOURNAL, ``NAME RUN_ID STATE CODE``. Every task it runs carries its labels (``owner``, ``job``),
so that it finds its own among a shared namespace's. The daemon keeps no state of its own besides that journal and
the cursor of lanco's event stream it read last (JOURNAL.cursor): at every start it reads the events it missed
since that cursor, then reconciles from lanco's records, the truth, so that a task it launched before it was killed
is adopted, not launched again, and an end it had not handled yet is handled now. One thread, one asyncio loop, one
pidfd per running task.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import lanco
from lanco.state.record import FINISHED_STATES

OWNER = {"owner": "example-daemon"}
"""The label of this daemon's tasks: ns.tasks(labels=OWNER) and the event stream select them by it."""


def handled_runs(journal: str) -> set[str]:
    """The runs whose end is in the journal already (their run ids)."""
    try:
        with open(journal, encoding="utf-8") as f:
            return {line.split()[1] for line in f if len(line.split()) >= 2}
    except FileNotFoundError:
        return set()


def handle_end(journal: str, name: str, run_id: str | None, state: str, exit_code: int | None) -> None:
    """The end's handling is one append of a whole line: done or not done, never half (O_APPEND, one write)."""
    code = 255 if exit_code is None else exit_code
    line = f"{name} {run_id} {state} {code}\n".encode()
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_cursor(journal: str) -> str | None:
    try:
        with open(journal + ".cursor", encoding="utf-8") as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def save_cursor(journal: str, cursor: str | None) -> None:
    """Written whole or not at all (a temp file, then a rename): a daemon killed here keeps its older cursor, and
    reads a few events twice at its next start, which the journal of handled runs makes harmless."""
    if cursor is None:
        return
    with open(journal + ".cursor.tmp", "w", encoding="utf-8") as f:
        f.write(cursor + "\n")
    os.replace(journal + ".cursor.tmp", journal + ".cursor")


async def main(namespace: str, journal: str, jobs: int, parallel: int, seconds: float) -> int:
    ns = lanco.Namespace(namespace)
    names = [f"job-{i:03d}" for i in range(jobs)]
    done = handled_runs(journal)

    # What happened while the daemon was down, from the cursor it read last: the ends it had not handled yet.
    cursor = read_cursor(journal)
    for event in ns.events(since=cursor, labels=OWNER):
        if event.kind in ("ended", "lost") and event.run_id not in done:
            handle_end(journal, event.task, event.run_id, str(event.record.get("state")),
                       event.record.get("exit_code"))
            done.add(str(event.run_id))
        cursor = event.cursor
    save_cursor(journal, cursor)

    # Reconcile: what lanco's records say of each job is the truth, whatever this process knew before it died.
    mine = {task.name: task for task in ns.tasks(labels=OWNER)}
    running: list[lanco.Task] = []
    to_launch: list[str] = []
    for name in names:
        task = mine.get(name) or ns.task(name)
        record = task.record()
        if record.state == "unknown":
            to_launch.append(name)  # never launched (or launched by a run that never started: no record)
        elif record.state in FINISHED_STATES:
            if record.run_id not in done:
                handle_end(journal, name, record.run_id, record.state, record.exit_code)  # ended while down
                done.add(str(record.run_id))
        else:
            running.append(task)  # launched before the daemon died: adopt it

    while running or to_launch:
        while to_launch and len(running) < parallel:
            name = to_launch.pop(0)
            try:
                running.append(ns.run(name, ["sh", "-c", 'echo "$0 started"; exec sleep "$1"', name, str(seconds)],
                                      labels={**OWNER, "job": name}))
            except lanco.AlreadyRunning:
                running.append(ns.task(name))  # someone (a daemon killed mid-launch) started it meanwhile
        for task, record in await ns.wait_any_async(running):
            if record.run_id not in done:
                handle_end(journal, task.name, record.run_id, record.state, record.exit_code)
                done.add(str(record.run_id))
            running = [t for t in running if t.name != task.name]
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="run jobs as lanco tasks, restart-safe")
    parser.add_argument("namespace")
    parser.add_argument("journal", help="the file each handled end is appended to")
    parser.add_argument("--jobs", type=int, default=10, help="how many jobs (default 10)")
    parser.add_argument("--parallel", type=int, default=4, help="how many run at once (default 4)")
    parser.add_argument("--seconds", type=float, default=1.0, help="how long each job sleeps (default 1)")
    opts = parser.parse_args()
    sys.exit(asyncio.run(main(opts.namespace, opts.journal, opts.jobs, opts.parallel, opts.seconds)))
