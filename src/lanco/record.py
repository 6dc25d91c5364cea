"""A task's record: what is known about one run, live (cgroup) or finished (result file).

The record directory of a task holds ``spec.json`` (written by ``run`` before the monitor starts), ``monitor``
(the monitor's pid and start time), ``pid`` (the first process), ``result`` (written once, atomically, by the
monitor, or by whichever lanco command finds the run lost), the markers ``stop`` and ``timeout``, and for a task
run with ``--restart`` the monitor's ``runs.jsonl`` (one line per run) and ``restarting`` (while it pauses).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from lanco.errors import StateError
from lanco.procfs import read_bytes

FINISHED_STATES = ("exited", "killed", "stopped", "oom", "timeout", "lost")


@dataclass
class TaskRecord:
    namespace: str
    name: str
    state: str
    run_id: str | None = None
    argv: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    main_pid: int | None = None
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    oom_kills: int | None = None
    cpu_usec: int | None = None
    memory_bytes: int | None = None
    memory_peak_bytes: int | None = None
    log: str | None = None
    exit_command: str | None = None
    limits: dict[str, Any] = field(default_factory=dict)
    restarts: int | None = None
    """Times the monitor started the command again (``run --restart``)."""

    @property
    def running(self) -> bool:
        """The task has processes (a frozen one too), or is about to."""
        return self.state in ("running", "starting", "frozen")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_spec(state_dir: str) -> dict[str, Any] | None:
    path = os.path.join(state_dir, "spec.json")
    try:
        # read_bytes rather than a text file object: ls and dump read the spec of every task.
        data = json.loads(read_bytes(path).decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StateError(f"the record of task {os.path.basename(state_dir)} is damaged: {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise StateError(f"the record of task {os.path.basename(state_dir)} is damaged: {path}: not an object")
    return data


def write_spec(state_dir: str, spec: dict[str, Any]) -> None:
    tmp = os.path.join(state_dir, f"spec.json.{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(spec, f, sort_keys=True)
    os.replace(tmp, os.path.join(state_dir, "spec.json"))


def read_result(state_dir: str) -> tuple[dict[str, str], float] | None:
    """The result's fields and the time it was written (the run's end), or None while there is none."""
    path = os.path.join(state_dir, "result")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
            ended = os.fstat(f.fileno()).st_mtime
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read the result of task {os.path.basename(state_dir)}: {path}: {exc}") \
            from exc
    except UnicodeDecodeError as exc:
        raise StateError(f"the result of task {os.path.basename(state_dir)} is damaged: {path}") from exc
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    if "result" not in fields:
        raise StateError(f"the result of task {os.path.basename(state_dir)} is damaged: {path}")
    return fields, ended


def write_result(state_dir: str, fields: dict[str, str]) -> bool:
    """Write a result unless one exists; True when this call wrote it (the lost path can race the monitor)."""
    tmp = os.path.join(state_dir, f"result.tmp.{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(f"{k}={v}\n" for k, v in fields.items()))
    try:
        os.link(tmp, os.path.join(state_dir, "result"))
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def read_int_file(path: str) -> list[int]:
    try:
        return [int(x) for x in read_bytes(path).decode("ascii").split()]
    except (OSError, ValueError):
        return []


def _int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return None


def apply_result(record: TaskRecord, fields: dict[str, str], ended: float) -> None:
    record.state = fields.get("result", "exited")
    record.exit_code = _int(fields.get("exit_code"))
    record.signal = _int(fields.get("signal"))
    record.oom_kills = _int(fields.get("oom_kills"))
    record.restarts = _int(fields.get("restarts"))
    record.ended = ended
    cpu_usec = _int(fields.get("cpu_usec"))
    cpu_nsec = _int(fields.get("cpu_nsec"))
    record.cpu_usec = cpu_usec if cpu_usec is not None else (None if cpu_nsec is None else cpu_nsec // 1000)
    record.memory_peak_bytes = _int(fields.get("memory_peak_bytes"))


def apply_spec(record: TaskRecord, spec: dict[str, Any]) -> None:
    record.run_id = spec.get("run_id")
    record.argv = list(spec.get("argv", []))
    record.started = spec.get("started")
    record.log = spec.get("log")
    record.exit_command = spec.get("exit_command")
    record.limits = dict(spec.get("limits", {}))
