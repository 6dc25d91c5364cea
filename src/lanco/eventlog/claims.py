"""What is journaled of a run, and that it is journaled exactly once, whoever finds it first.

A run's events are, in order: ``started`` (the launcher, once the monitor reports the task's first process),
for a ``--restart`` task one ``run_ended`` per line of the monitor's ``runs.jsonl`` (each run's end, the task
restarting or not), and ``ended`` (or ``lost``) from the ``result`` file. The monitor is shell and writes no
journal: whichever lanco command finds an end not yet journaled (``events`` before it prints, the lost path of
any command) appends it. The claim is the task's ``journaled`` marker, ``RUN_ID RUNS ENDED INODE OFFSET`` (the run it is
for, how many ``run_ended`` events and whether the end are journaled, and where the last of them was written),
read and rewritten under the journal's lock, so that two finders append one event; a finder that finds no
``started`` of the run journals it first, so that a run's start always comes before its end.

The marker is written just before each event's line, naming where that line goes: a writer killed between the
two leaves a marker whose line is not there (:func:`lanco.state.journal.holds`), and the next finder takes the
claim back by one event and appends it, so that a kill at any moment neither loses an event nor doubles one.
"""

from __future__ import annotations

import os
import time

from lanco import contexts, messages
from lanco.state import journal
from lanco.state.record import TaskRecord, apply_result, apply_spec, read_result, read_spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from lanco.task import Task

MARKER = "journaled"


def access(task: Task) -> journal.Access:
    namespace = task.namespace
    return journal.Access(namespace.config.tasks_dir, namespace.config.group_access, namespace.acting_for_owner)


class Claim:
    """What the marker says of a run: its id, the ``run_ended`` events and the end journaled, and where the last
    event's line was written."""

    __slots__ = ("ended", "inode", "offset", "run_id", "runs")

    def __init__(self, run_id: str = "", runs: int = 0, ended: bool = False, inode: int = 0, offset: int = -1) -> None:
        self.run_id, self.runs, self.ended, self.inode, self.offset = run_id, runs, ended, inode, offset

    @property
    def last(self) -> str:
        """The claim token of the last event journaled (lanco.state.journal.append)."""
        return f"{self.run_id}/{'end' if self.ended else f'run{self.runs}' if self.runs else 'start'}"

    def step_back(self) -> Claim:
        """The claim before its last event, which was never written."""
        if self.ended:
            return Claim(self.run_id, self.runs, False)
        if self.runs:
            return Claim(self.run_id, self.runs - 1, False)
        return Claim()

    def text(self) -> str:
        return f"{self.run_id} {self.runs} {int(self.ended)} {self.inode} {self.offset}"


def _marker(task: Task) -> Claim:
    """The task's marker, taken back by one event where that event's line is not in the journal."""
    try:
        with open(os.path.join(task.state_dir, MARKER), "rb") as f:
            run_id, runs, ended, inode, offset = f.read().decode("ascii").split()
        claim = Claim(run_id, int(runs), ended == "1", int(inode), int(offset))
    except (OSError, ValueError, UnicodeDecodeError):
        return Claim()
    if claim.offset >= 0 and not journal.holds(access(task), claim.inode, claim.offset, claim.last):
        messages.debug("events", f"task {task.name}: the journal lacks {claim.last}: journaling it again")
        return claim.step_back()
    return claim


def _append(task: Task, claim: Claim, event: dict[str, Any]) -> None:
    """Append ``event``, the next of ``claim`` (already advanced to it), the marker written just before."""

    def mark(inode: int, offset: int) -> None:
        claim.inode, claim.offset = inode, offset
        journal.write_claim(os.path.join(task.state_dir, MARKER), claim.text(), task.namespace.acting_for_owner)

    journal.append(access(task), event, claim.last, mark)


def _labels(spec: dict[str, Any]) -> dict[str, str]:
    from lanco.options.labels import spec_labels

    return spec_labels(spec)


def _description(spec: dict[str, Any]) -> str | None:
    from lanco.options.labels import spec_description

    return spec_description(spec)


def started_event(task: Task, spec: dict[str, Any]) -> dict[str, Any]:
    pid = recorddir_pid(task)
    return {"kind": "started", "task": task.name, "run_id": spec.get("run_id"), "run": 1,
            "time_epoch_s": time.time(),
            "record": {"state": "running", "argv": spec.get("argv", []), "main_pid": pid,
                       "started_epoch_s": spec.get("started"), "log": spec.get("log"),
                       "labels": _labels(spec), "description": _description(spec)}}


def recorddir_pid(task: Task) -> int | None:
    from lanco.state.record import read_int_file

    pid = read_int_file(os.path.join(task.state_dir, "pid"))
    return pid[0] if pid else None


def journal_started(task: Task, spec: dict[str, Any]) -> None:
    """The launcher's one append: ``started``, unless a finder of the run's end journaled it already. A journal
    that cannot be written costs the run nothing but a warning (the task runs); the end's finder journals the
    start then."""
    try:
        with journal.Lock(access(task)):
            if _marker(task).run_id == spec.get("run_id"):
                return
            _append(task, Claim(str(spec.get("run_id"))), started_event(task, spec))
    except OSError as exc:
        messages.warn(messages.command(), f"task {task.name}: cannot write the event journal: "
                      f"{exc.strerror or exc}")


def completed_run_lines(task: Task) -> list[dict[str, Any]]:
    """The lines of the monitor's ``runs.jsonl``, in order, the damaged ones skipped."""
    from lanco.state import jsonread

    try:
        with open(os.path.join(task.state_dir, "runs.jsonl"), "rb") as f:
            text = f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    lines = []
    for line in text.splitlines():
        with contexts.suppress(ValueError):
            data = jsonread.loads(line)
            if isinstance(data, dict) and isinstance(data.get("run"), int):
                lines.append(data)
    return lines


def _may_restart(spec: dict[str, Any]) -> bool:
    lifetime = spec.get("lifetime")
    return not (isinstance(lifetime, dict) and lifetime.get("restart", "no") == "no")


def journal_end(task: Task, *, settle: bool = True) -> int:
    """Journal what this run's files tell of its end and is not journaled yet; returns how many events this call
    appended. With ``settle``, a run whose monitor is gone without a result is first recorded ``lost``."""
    spec = read_spec(task.state_dir)
    if spec is None:
        return 0
    run_id = str(spec.get("run_id") or "")
    claim = _marker(task)
    if claim.run_id == run_id and claim.ended:
        return 0
    result = read_result(task.state_dir)
    if result is not None and result[0].get("run_id") != run_id:
        result = None
    if result is None and settle:
        from lanco.state.record import monitor_alive

        if not monitor_alive(task.state_dir, spec) and recorddir_pid(task) is not None:
            task.record()  # records the run lost where it is (under the start lock), as every view does
            return journal_end(task, settle=False)
    runs = completed_run_lines(task) if _may_restart(spec) else []
    pending_runs = [line for line in runs if line["run"] > (claim.runs if claim.run_id == run_id else 0)]
    if result is None and not pending_runs:
        return 0
    appended = 0
    with journal.Lock(access(task)):
        claim = _marker(task)
        if claim.run_id != run_id:
            claim = Claim(run_id)
            _append(task, claim, started_event(task, spec))
            appended += 1
        for line in runs:
            if line["run"] > claim.runs:
                claim.runs = line["run"]
                _append(task, claim, _run_ended_event(task, spec, line))
                appended += 1
        if result is not None and not claim.ended:
            claim.ended = True
            _append(task, claim, _ended_event(task, spec, *result))
            appended += 1
    return appended


def journal_found_end(task: Task) -> None:
    """:func:`journal_end` for a command that found the run ended (``wait``, ``run -f``): the journal is not its
    answer, so a journal it cannot write is only a debug line (``events`` says what is wrong with it)."""
    from lanco.errors import LancoError

    try:
        journal_end(task, settle=False)
    except (OSError, LancoError) as exc:
        messages.debug(messages.command(), f"task {task.name}: cannot journal its end: {exc}")


def _run_ended_event(task: Task, spec: dict[str, Any], line: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "run_ended", "task": task.name, "run_id": spec.get("run_id"), "run": line["run"],
            "time_epoch_s": time.time(),
            "record": {"state": line.get("result"), "exit_code": line.get("exit_code"),
                       "signal": line.get("signal"), "oom_kills": line.get("oom_kills"),
                       "started_epoch_s": line.get("started_epoch_s"), "ended_epoch_s": line.get("ended_epoch_s"),
                       "labels": _labels(spec), "description": _description(spec)}}


def _ended_event(task: Task, spec: dict[str, Any], fields: dict[str, str], ended: float) -> dict[str, Any]:
    from lanco.views.render import record_data

    record = TaskRecord(task.namespace.name, task.name, "unknown")
    apply_spec(record, spec)
    apply_result(record, fields, ended)
    data = record_data(record)
    for live_only in ("processes", "process_count", "memory_current_bytes", "limits_in_force", "pressure"):
        data.pop(live_only, None)
    data["restarts"] = record.restarts
    data["labels"] = _labels(spec)
    data["description"] = _description(spec)
    kind = "lost" if record.state == "lost" else "ended"
    return {"kind": kind, "task": task.name, "run_id": spec.get("run_id"), "run": (record.restarts or 0) + 1,
            "time_epoch_s": time.time(), "record": data}
