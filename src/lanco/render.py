"""Pure formatters: the ``ls`` tree, ``status`` text and JSON. They read nothing and write nothing."""

from __future__ import annotations

import json
import time
from typing import Any

from lanco import procfs
from lanco.record import TaskRecord
from lanco.units import format_size

SCHEMA_VERSION = 1
COMMAND_WIDTH = 50


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(stamp))


def _cut(text: str, long: bool) -> str:
    return text if long or len(text) <= COMMAND_WIDTH else text[:COMMAND_WIDTH - 1] + "…"


def tree(namespace: str, records: list[TaskRecord], *, long: bool = False,
         cmdlines: dict[int, str] | None = None) -> str:
    lines = [namespace]
    for record in records:
        label = record.name if record.running else f"{record.name} ({describe_result(record)})"
        lines.append(f" ├ {label}")
        for pid in record.pids:
            command = cmdlines.get(pid, "") if cmdlines is not None else procfs.cmdline(pid)
            lines.append(f" │  → {pid} {_cut(command, long)}".rstrip())
    return "\n".join(lines) + "\n"


def describe_result(record: TaskRecord) -> str:
    if record.state in ("exited", "stopped", "timeout", "oom", "killed") and record.exit_code is not None:
        if record.signal:
            return f"{record.state}, signal {record.signal}"
        return f"{record.state}, code {record.exit_code}"
    return record.state


def record_data(record: TaskRecord, cmdlines: dict[int, str] | None = None) -> dict[str, Any]:
    """A record as JSON-ready data; every number carries its unit in its key."""
    return {
        "namespace": record.namespace,
        "name": record.name,
        "state": record.state,
        "run_id": record.run_id,
        "argv": record.argv,
        "main_pid": record.main_pid,
        "processes": [{"pid": pid, "cmdline": cmdlines.get(pid, "") if cmdlines is not None
                       else procfs.cmdline(pid)} for pid in record.pids],
        "started_epoch_s": record.started,
        "ended_epoch_s": record.ended,
        "exit_code": record.exit_code,
        "signal": record.signal,
        "oom_kills": record.oom_kills,
        "cpu_usage_usec": record.cpu_usec,
        "memory_current_bytes": record.memory_bytes,
        "memory_peak_bytes": record.memory_peak_bytes,
        "log": record.log,
        "exit_command": record.exit_command,
        "limits": record.limits,
    }


def status_json(record: TaskRecord) -> str:
    data = {"schema_version": SCHEMA_VERSION, **record_data(record)}
    return json.dumps(data, indent=2) + "\n"


def records_json(namespace: str, records: list[TaskRecord]) -> str:
    data = {"schema_version": SCHEMA_VERSION, "namespace": namespace,
            "tasks": [record_data(r) for r in records]}
    return json.dumps(data, indent=2) + "\n"


def status_text(record: TaskRecord) -> str:
    rows: list[tuple[str, str]] = [
        ("task", f"{record.namespace}/{record.name}"),
        ("state", record.state if record.running else describe_result(record)),
        ("command", " ".join(record.argv) or "-"),
        ("started", _when(record.started)),
    ]
    if not record.running:
        rows.append(("ended", _when(record.ended)))
        rows.append(("exit code", "-" if record.exit_code is None else str(record.exit_code)))
        rows.append(("signal", "-" if record.signal is None else str(record.signal)))
    rows.append(("processes", str(len(record.pids))))
    for pid in record.pids:
        rows.append(("", f"{pid} {procfs.cmdline(pid)}"))
    cpu = "-" if record.cpu_usec is None else f"{record.cpu_usec / 1e6:.3f}s"
    rows.extend([
        ("cpu", cpu),
        ("memory", format_size(record.memory_bytes)),
        ("memory peak", format_size(record.memory_peak_bytes)),
        ("oom kills", "-" if record.oom_kills is None else str(record.oom_kills)),
        ("log", record.log or "-"),
        ("exit command", record.exit_command or "-"),
    ])
    for key, value in sorted(record.limits.items()):
        rows.append((f"limit {key.replace('_', ' ')}", format_size(value) if isinstance(value, int)
                     else str(value)))
    width = max(len(k) for k, _ in rows)
    return "".join(f"{k.rjust(width)}: {v}\n" if k else f"{'':>{width}}  {v}\n" for k, v in rows)
