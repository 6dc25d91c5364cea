#!/opt/lanco/bin/python
"""A restart-safe daemon on lanco: it runs a list of jobs, a few at a time, as named tasks, and handles each end
exactly once, however often it is killed and started again. See docs/daemon.md, which walks through it.

    examples/daemon.py NAMESPACE JOURNAL [--jobs N] [--parallel P] [--seconds S]

Job ``job-007`` says it started (in its log) and sleeps S seconds, its share of a workload; its end is handled by one line appended to JOURNAL,
``NAME RUN_ID STATE CODE``. The daemon keeps no state of its own besides that journal: at every start it reconciles
from lanco's records, so that a task it launched before it was killed is adopted, not launched again, and an end it
had not handled yet is handled now. One thread, one asyncio loop, one pidfd per running task.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import lanco
from lanco.state.record import FINISHED_STATES


def handled_runs(journal: str) -> set[str]:
    """The runs whose end is in the journal already (their run ids)."""
    try:
        with open(journal, encoding="utf-8") as f:
            return {line.split()[1] for line in f if len(line.split()) >= 2}
    except FileNotFoundError:
        return set()


def handle_end(journal: str, task: lanco.Task, record: lanco.TaskRecord) -> None:
    """The end's handling is one append of a whole line: done or not done, never half (O_APPEND, one write)."""
    code = 255 if record.exit_code is None else record.exit_code
    line = f"{task.name} {record.run_id} {record.state} {code}\n".encode()
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


async def main(namespace: str, journal: str, jobs: int, parallel: int, seconds: float) -> int:
    ns = lanco.Namespace(namespace)
    names = [f"job-{i:03d}" for i in range(jobs)]
    done = handled_runs(journal)

    # Reconcile: what lanco's records say of each job is the truth, whatever this process knew before it died.
    # (With labels, ns.tasks(labels={"owner": "this-daemon"}) would find this daemon's tasks among others'; with
    # the event stream, ns.events_async(since=cursor) would tell what happened while it was down.)
    running: list[lanco.Task] = []
    to_launch: list[str] = []
    for name in names:
        task = ns.task(name)
        record = task.record()
        if record.state == "unknown":
            to_launch.append(name)  # never launched (or launched by a run that never started: no record)
        elif record.state in FINISHED_STATES:
            if record.run_id not in done:
                handle_end(journal, task, record)  # it ended while the daemon was down
                done.add(str(record.run_id))
        else:
            running.append(task)  # launched before the daemon died: adopt it

    while running or to_launch:
        while to_launch and len(running) < parallel:
            name = to_launch.pop(0)
            try:
                running.append(ns.run(name, ["sh", "-c", 'echo "$0 started"; exec sleep "$1"', name, str(seconds)]))
            except lanco.AlreadyRunning:
                running.append(ns.task(name))  # someone (a daemon killed mid-launch) started it meanwhile
        for task, record in await ns.wait_any_async(running):
            if record.run_id not in done:
                handle_end(journal, task, record)
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
