"""Pure formatters: the ``ls`` tree, ``status`` text, the namespace list and every JSON document but top's.

They read nothing and write nothing, except that a process's command line is looked up in /proc when the
caller passes no ``cmdlines`` map. Every number in a JSON document carries its unit in its key
(``_bytes``, ``_usec``, ``_epoch_s``, ``_percent``); a plain count has none. docs/json.md is the reference.
"""

from __future__ import annotations

import _json
import time

from lanco import procfs
from lanco.messages import escape
from lanco.options.labels import format_labels
from lanco.options.units import format_size

# typing, collections.abc and dataclasses are a third of what ls and status would import (inspect, ast, re,
# enum come with them): annotations only, and plain classes.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from lanco.state.record import TaskRecord

SCHEMA_VERSION = 1
"""Version of every JSON document lanco prints; raised only when a key changes meaning or goes away."""
DUMP_SCHEMA_VERSION = 1
COMMAND_WIDTH = 50
LIVE_STATES = ("running", "frozen", "starting", "restarting", "finishing")
"""States of a run whose result is not known yet."""
PRESSURE_KEYS = ("cpu_some", "cpu_full", "memory_some", "memory_full", "io_some", "io_full")
# Limit keys recorded without their unit by earlier runs, and the unit each one has.
_LEGACY_LIMIT_KEYS = {"memory_max": "memory_max_bytes", "memory_high": "memory_high_bytes",
                      "memory_swap_max": "memory_swap_max_bytes"}


class LiveDetail:
    """What status and dump show beyond the record, read from the cgroup while the task runs."""

    __slots__ = ("limits_in_force", "memory_max_bytes", "pressure")

    def __init__(self, limits_in_force: dict[str, int] | None = None,
                 pressure: Mapping[str, float | None] | None = None, memory_max_bytes: int | None = None) -> None:
        self.limits_in_force: dict[str, int] = {} if limits_in_force is None else limits_in_force
        self.pressure = pressure
        self.memory_max_bytes = memory_max_bytes


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(stamp))


def format_duration(seconds: float | None) -> str:
    """``42s``, ``5m07s``, ``3h02m``, ``2d04h``: the two leading units are all a reader needs."""
    if seconds is None or seconds < 0:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _cut(text: str, long: bool) -> str:
    return text if long or len(text) <= COMMAND_WIDTH else text[:COMMAND_WIDTH - 1] + "…"


def _cmdline(pid: int, cmdlines: Mapping[int, str] | None) -> str:
    return cmdlines.get(pid, "") if cmdlines is not None else procfs.cmdline(pid)


def tree(namespace: str, records: list[TaskRecord], *, long: bool = False,
         cmdlines: Mapping[int, str] | None = None) -> str:
    """The original lanĉo's tree: the namespace, then ``├ task`` and ``│  → pid command`` per process; ``long``
    (``ls -l``) keeps command lines whole and adds a task's OOM kills to its name."""
    lines = [namespace]
    for record in records:
        notes = [] if record.state in ("running", "starting") else [describe_result(record)]
        if long and record.oom_kills:
            # A v1 task may run on after the OOM killer took some of its processes: -l says how many.
            notes.append(f"{record.oom_kills} OOM kill{'s' if record.oom_kills != 1 else ''}")
        label = f"{record.name} ({', '.join(notes)})" if notes else record.name
        if long and record.labels:
            label += "  " + format_labels(record.labels)  # the last column: its width is the task's to choose
        # What a task or a state file chose (a command line, a result) is escaped: one line of the view each.
        lines.append(f" ├ {escape(label)}")
        for pid in record.pids:
            lines.append(f" │  → {pid} {_cut(escape(_cmdline(pid, cmdlines)), long)}".rstrip())
    return "\n".join(lines) + "\n"


def names(records: list[TaskRecord]) -> str:
    """``ls -q``: one task name a line, for scripts and shell completion."""
    return "".join(f"{escape(r.name)}\n" for r in records)


def describe_result(record: TaskRecord) -> str:
    if record.state in ("exited", "stopped", "timeout", "oom", "killed") and record.exit_code is not None:
        if record.signal:
            return f"{record.state}, signal {record.signal}"
        return f"{record.state}, code {record.exit_code}"
    return record.state


def limit_key(key: str) -> str:
    """The key a requested limit has in JSON: its unit appended where the record left it out."""
    return _LEGACY_LIMIT_KEYS.get(key, key)


def pressure_data(pressure: Mapping[str, float | None] | None) -> dict[str, float | None] | None:
    if pressure is None:
        return None
    return {f"{key}_avg10_percent": pressure.get(key) for key in PRESSURE_KEYS}


def record_data(record: TaskRecord, cmdlines: Mapping[int, str] | None = None,
                live: LiveDetail | None = None) -> dict[str, Any]:
    """A record as JSON-ready data; every number carries its unit in its key."""
    live = live or LiveDetail()
    return {
        "namespace": record.namespace,
        "name": record.name,
        "state": record.state,
        "run_id": record.run_id,
        "argv": record.argv,
        "main_pid": record.main_pid,
        "processes": [{"pid": pid, "cmdline": _cmdline(pid, cmdlines)} for pid in record.pids],
        "process_count": len(record.pids),
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
        "limits": {limit_key(k): v for k, v in sorted(record.limits.items())},
        "limits_in_force": dict(sorted(live.limits_in_force.items())),
        "pressure": pressure_data(live.pressure),
        "labels": dict(sorted(record.labels.items())),
        "description": record.description,
    }


def status_json(record: TaskRecord, live: LiveDetail | None = None,
                cmdlines: Mapping[int, str] | None = None) -> str:
    data = {"schema_version": SCHEMA_VERSION, **record_data(record, cmdlines, live)}
    return indented_json(data, 2) + "\n"


def records_json(namespace: str, records: list[TaskRecord], cmdlines: Mapping[int, str] | None = None) -> str:
    data = {"schema_version": SCHEMA_VERSION, "namespace": namespace,
            "tasks": [record_data(r, cmdlines) for r in records]}
    return indented_json(data, 2) + "\n"


def _limit_text(limits: Mapping[str, Any]) -> str:
    parts: list[str] = []
    quota, period = limits.get("cpu_quota_usec"), limits.get("cpu_period_usec")
    for key, value in sorted(limits.items()):
        key = limit_key(key)
        if key in ("cpu_quota_usec", "cpu_period_usec"):
            continue
        label = key
        for suffix in ("_bytes", "_percent", "_usec", "_bps", "_s"):
            label = label.removesuffix(suffix)
        label = label.replace("_", " ")
        if value == "max":
            parts.append(f"{label} unlimited")
        elif isinstance(value, dict):  # per device: {"8:0": bytes per second}
            rates = ", ".join(f"{device} {format_size(rate) if isinstance(rate, int) else rate}/s"
                              for device, rate in sorted(value.items()))
            parts.append(f"{label} {rates}")
        elif key.endswith("_bytes") and isinstance(value, int):
            parts.append(f"{label} {format_size(value)}")
        elif key.endswith("_percent"):
            parts.append(f"{label} {value}%")
        elif key.endswith("_s") and isinstance(value, int | float):
            parts.append(f"{label} {format_duration(value)}")
        else:
            parts.append(f"{label} {value}")
    if isinstance(quota, int) and isinstance(period, int) and period > 0:
        parts.append(f"cpu {quota * 100 / period:g}%")
    return ", ".join(parts) or "none"


def _pressure_text(pressure: Mapping[str, float | None] | None) -> str | None:
    if pressure is None:
        return None
    shown = [f"{resource} {value:.2f}%" for resource in ("cpu", "memory", "io")
             if (value := pressure.get(f"{resource}_some")) is not None]
    return f"{', '.join(shown)} (some, avg10)" if shown else None


def status_text(record: TaskRecord, live: LiveDetail | None = None, *, now: float | None = None,
                cmdlines: Mapping[int, str] | None = None) -> str:
    """``systemctl status``-like: one aligned ``key: value`` row per fact, processes under their count."""
    live = live or LiveDetail()
    running = record.state in LIVE_STATES
    rows: list[tuple[str, str]] = [
        ("task", f"{record.namespace}/{record.name}"),
        ("state", record.state if running else describe_result(record)),
        ("command", " ".join(record.argv) or "-"),
        *((("description", record.description),) if record.description is not None else ()),
        *((("labels", format_labels(record.labels)),) if record.labels else ()),
        ("started", _when(record.started)),
    ]
    if not running:
        rows.append(("ended", _when(record.ended)))
        rows.append(("exit code", "-" if record.exit_code is None else str(record.exit_code)))
        rows.append(("signal", "-" if record.signal is None else str(record.signal)))
    end = record.ended if not running else now
    if record.started is not None and end is not None:
        rows.append(("run time", format_duration(end - record.started)))
    rows.append(("processes", str(len(record.pids))))
    for pid in record.pids:
        rows.append(("", f"{pid} {_cmdline(pid, cmdlines)}".rstrip()))
    cpu = "-" if record.cpu_usec is None else f"{record.cpu_usec / 1e6:.3f}s"
    memory = format_size(record.memory_bytes)
    if live.memory_max_bytes is not None and record.memory_bytes is not None:
        memory += f" of {format_size(live.memory_max_bytes)}"
    rows.extend([
        ("cpu", cpu),
        ("memory", memory),
        ("memory peak", format_size(record.memory_peak_bytes)),
        ("oom kills", "-" if record.oom_kills is None else str(record.oom_kills)),
    ])
    if (pressure := _pressure_text(live.pressure)) is not None:
        rows.append(("pressure", pressure))
    rows.extend([
        ("log", record.log or "-"),
        ("exit command", record.exit_command or "-"),
    ])
    if running and live.limits_in_force:
        rows.append(("limits", _limit_text(live.limits_in_force)))
    elif record.limits:
        rows.append(("limits", _limit_text(record.limits) + ("" if running else " (as requested)")))
    width = max(len(k) for k, _ in rows)
    # Every value may come from the task or its files (argv, command lines, paths, limits): escaped, one row each.
    return "".join(f"{k.rjust(width)}: {escape(v)}\n" if k else f"{'':>{width}}  {escape(v)}\n" for k, v in rows)


# -- dump ----------------------------------------------------------------------------------------------------


def dump_task(record: TaskRecord, live: LiveDetail | None = None,
              cmdlines: Mapping[int, str] | None = None) -> dict[str, Any]:
    """One task of ``dump``: the original's keys first (``cpu`` in nanoseconds, ``memory`` in bytes, both left
    out where the kernel gives no figure, as the original did), then the record's, with their units."""
    data = record_data(record, cmdlines, live)
    original: dict[str, Any] = {"count": len(record.pids), "processes": data["processes"]}
    if record.cpu_usec is not None:
        original["cpu"] = record.cpu_usec * 1000
    if record.memory_bytes is not None:
        original["memory"] = record.memory_bytes
    live = live or LiveDetail()
    return {**original, **data, "memory_max_bytes": live.memory_max_bytes}


def dump_json(namespace: str, tasks: Mapping[str, dict[str, Any]], *, namespace_cpu_usec: int | None,
              nbcpus: int, monotonic_ms: int, epoch_s: float) -> str:
    """The original's document (``timestamp`` is CLOCK_MONOTONIC in milliseconds, ``cpu`` nanoseconds)."""
    data: dict[str, Any] = {
        "schema_version": DUMP_SCHEMA_VERSION,
        "namespace": namespace,
        "count": len(tasks),
    }
    if namespace_cpu_usec is not None:
        data["cpu"] = namespace_cpu_usec * 1000
    data.update({
        "nbcpus": nbcpus,
        "timestamp": monotonic_ms,
        "timestamp_epoch_s": epoch_s,
        "cpu_usage_usec": namespace_cpu_usec,
        "tasks": dict(tasks),
    })
    return indented_json(data, 1) + "\n"


# -- namespaces ----------------------------------------------------------------------------------------------


class NamespaceInfo:
    """One namespace as ``lanco ls`` shows it."""

    __slots__ = ("cgroup_mode", "created", "group", "group_access", "log_dir", "name", "owner", "owner_gid",
                 "owner_uid", "state_dir")

    def __init__(self, name: str, owner: str, owner_uid: int, group: str, owner_gid: int, group_access: bool,
                 cgroup_mode: str, state_dir: str, log_dir: str, created: float) -> None:
        self.name, self.owner, self.owner_uid, self.group = name, owner, owner_uid, group
        self.owner_gid, self.group_access, self.cgroup_mode = owner_gid, group_access, cgroup_mode
        self.state_dir, self.log_dir, self.created = state_dir, log_dir, created


def namespaces_text(infos: list[NamespaceInfo]) -> str:
    return "".join(f"{escape(info.name)}\n" for info in infos)


def namespaces_json(infos: list[NamespaceInfo]) -> str:
    data = {"schema_version": SCHEMA_VERSION, "namespaces": [{
        "name": i.name, "owner": i.owner, "owner_uid": i.owner_uid, "group": i.group, "owner_gid": i.owner_gid,
        "group_access": i.group_access, "cgroup_mode": i.cgroup_mode, "state_dir": i.state_dir,
        "log_dir": i.log_dir, "created_epoch_s": i.created} for i in infos]}
    return indented_json(data, 2) + "\n"


# -- JSON text -----------------------------------------------------------------------------------------------
# json.dumps with indent falls back to the pure-Python encoder (before Python 3.14), which was a fifth of ls --json
# at 1000 tasks. The C encoder writes any container without nested ones in one call when its item separator
# carries the line break and the indentation of its depth; this module nests those pieces itself. The text is the
# same as json.dumps(value, indent=N) would give, byte for byte.

_CONTAINERS = (dict, list, tuple)
# From _json itself (as jsonread reads): the json package's __init__ loads its decoder, and with it re and enum,
# a third of what ls would import.
_C_MAKE_ENCODER: Any = getattr(_json, "make_encoder", None)
"""The accelerator's encoder factory (undocumented, so untyped); None on an interpreter without it."""


class _NotPlainJSON(Exception):
    """A value the C encoder would hand to ``default``: json.dumps itself says what to do with it."""


def _refuse(value: object) -> object:
    raise _NotPlainJSON


class _IndentedWriter:
    def __init__(self, indent: int) -> None:
        self.unit = " " * indent
        self.levels: list[tuple[Any, str]] = []
        """Per depth: a C encoder whose item separator starts a line indented to that depth, and the separator."""

    def level(self, depth: int) -> tuple[Any, str]:
        while len(self.levels) <= depth:
            separator = ",\n" + self.unit * len(self.levels)
            encoder = _C_MAKE_ENCODER(
                None, _refuse, _json.encode_basestring_ascii, None, ": ", separator, False, False, True)
            self.levels.append((encoder, separator))
        return self.levels[depth]

    def container(self, value: dict[Any, Any] | list[Any] | tuple[Any, ...], depth: int) -> str:
        """A non-empty container at ``depth``: its items one a line, one level deeper."""
        encode, separator = self.level(depth + 1)
        # A non-empty container among the items is written on its own below: here it stands as null.
        flat: dict[Any, Any] | list[Any] | tuple[Any, ...]
        if isinstance(value, dict):
            nested = [(i, v) for i, v in enumerate(value.values()) if isinstance(v, _CONTAINERS) and v]
            if nested:
                flat = dict(value)
                keys = list(value)
                for i, _ in nested:
                    flat[keys[i]] = None
            else:
                flat = value
            opening, closing = "{", "}"
        else:
            nested = [(i, v) for i, v in enumerate(value) if isinstance(v, _CONTAINERS) and v]
            if len(nested) == len(value):  # ls's tasks, a task's processes: nothing for the encoder to do
                return "[" + separator[1:] + separator.join([self.container(v, depth + 1) for _, v in nested]) + \
                    self.levels[depth][1][1:] + "]"
            if nested:
                flat = list(value)
                for i, _ in nested:
                    flat[i] = None
            else:
                flat = value
            opening, closing = "[", "]"
        body = "".join(encode(flat, 0))[1:-1]
        if nested:
            # The encoder escapes line breaks in strings: every one left in its text begins an item.
            items = body.split(separator)
            for i, v in nested:
                items[i] = items[i][:-len("null")] + self.container(v, depth + 1)
            body = separator.join(items)
        return opening + separator[1:] + body + self.levels[depth][1][1:] + closing


def compact_json(value: object) -> str:
    """``json.dumps(value, separators=(",", ":"))``, written by the C encoder."""
    if _C_MAKE_ENCODER is not None:
        try:
            encode = _C_MAKE_ENCODER(None, _refuse, _json.encode_basestring_ascii, None, ":", ",", False, False, True)
            return "".join(encode(value, 0))
        except (_NotPlainJSON, TypeError, ValueError, RecursionError):
            pass  # whatever json.dumps does with it, it does the same
    import json

    return json.dumps(value, separators=(",", ":"))


def indented_json(value: object, indent: int) -> str:
    """``json.dumps(value, indent=indent)``, written by the C encoder."""
    if _C_MAKE_ENCODER is not None:
        writer = _IndentedWriter(indent)
        try:
            if isinstance(value, _CONTAINERS) and value:
                return writer.container(value, 0)
            return "".join(writer.level(0)[0](value, 0))
        except (_NotPlainJSON, TypeError, ValueError, RecursionError):
            pass  # whatever json.dumps does with it (a type it cannot encode, a circular reference), it does the same
    import json

    return json.dumps(value, indent=indent)

