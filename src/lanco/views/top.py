"""``lanco top``'s frame: built by pure functions from two samples of a namespace, with no I/O here.

A :class:`Sample` is what the kernel said at one instant (lanco.views.stats reads it); :func:`build_frame` turns the
previous and the current sample into a :class:`Frame` (CPU % from the usage delta, sorted rows, CPU history);
:func:`frame_text` and :func:`frame_json` print it. lanco.views.topscreen paints the same text with curses.
"""

from __future__ import annotations

import time

from lanco.messages import escape
from lanco.options.units import format_size
from lanco.views.render import compact_json, pressure_data

# Plain classes, not dataclasses: dataclasses (with inspect, ast and dis) and typing would be most of what a frame
# of top --json costs.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

SCHEMA_VERSION = 1
SORT_KEYS = {"c": "cpu", "m": "memory", "p": "pids", "n": "name"}
"""Key pressed in the curses view -> sort order; the same names are accepted by ``top -s``."""
HISTORY_LENGTH = 12
SPARKS = "▁▂▃▄▅▆▇█"
BAR_EIGHTHS = " ▏▎▍▌▋▊▉█"
NAME_WIDTH = (4, 24)


class TaskSample:
    """One running task at one instant; None where the cgroup mode has no source for a figure. ``oom_kills``:
    processes of this run the kernel's OOM killer took (a v1 task may run on after many)."""

    __slots__ = ("command", "cpu_usage_usec", "description", "labels", "memory_current_bytes", "memory_max_bytes",
                 "name", "oom_kills", "pressure", "process_count", "state")

    def __init__(self, name: str, state: str, process_count: int, command: str, cpu_usage_usec: int | None = None,
                 memory_current_bytes: int | None = None, memory_max_bytes: int | None = None,
                 pressure: Mapping[str, float | None] | None = None, oom_kills: int | None = None,
                 labels: Mapping[str, str] | None = None, description: str | None = None) -> None:
        self.name, self.state, self.process_count, self.command = name, state, process_count, command
        self.cpu_usage_usec, self.memory_current_bytes = cpu_usage_usec, memory_current_bytes
        self.memory_max_bytes, self.pressure, self.oom_kills = memory_max_bytes, pressure, oom_kills
        self.labels: Mapping[str, str] = {} if labels is None else labels
        self.description = description


class Sample:
    """What the kernel said of a namespace's running tasks at one instant."""

    __slots__ = ("epoch_s", "memory_total_bytes", "monotonic_s", "namespace", "nbcpus", "tasks")

    def __init__(self, namespace: str, monotonic_s: float, epoch_s: float, nbcpus: int,
                 memory_total_bytes: int | None, tasks: tuple[TaskSample, ...]) -> None:
        self.namespace, self.monotonic_s, self.epoch_s = namespace, monotonic_s, epoch_s
        self.nbcpus, self.memory_total_bytes, self.tasks = nbcpus, memory_total_bytes, tasks


class Row:
    """One task of a frame. ``cpu_percent``: share of one CPU over the interval, as top and systemd-cgtop count
    it (250.0 is two and a half CPUs); ``memory_percent``: of memory_max_bytes when the task has a limit, else of
    the host's memory."""

    __slots__ = ("command", "cpu_history", "cpu_percent", "cpu_usage_usec", "description", "labels",
                 "memory_current_bytes", "memory_max_bytes", "memory_percent", "name", "oom_kills", "pressure",
                 "process_count", "state")

    def __init__(self, name: str, state: str, process_count: int, command: str, cpu_percent: float | None,
                 cpu_usage_usec: int | None, cpu_history: tuple[float, ...], memory_current_bytes: int | None,
                 memory_max_bytes: int | None, memory_percent: float | None,
                 pressure: Mapping[str, float | None] | None, oom_kills: int | None = None,
                 labels: Mapping[str, str] | None = None, description: str | None = None) -> None:
        self.name, self.state, self.process_count, self.command = name, state, process_count, command
        self.cpu_percent, self.cpu_usage_usec, self.cpu_history = cpu_percent, cpu_usage_usec, cpu_history
        self.memory_current_bytes, self.memory_max_bytes = memory_current_bytes, memory_max_bytes
        self.memory_percent, self.pressure, self.oom_kills = memory_percent, pressure, oom_kills
        # In the JSON frames only: the text frame's last column is the command, and labels would crowd it out.
        self.labels: Mapping[str, str] = {} if labels is None else labels
        self.description = description


class Frame:
    """What top shows at one instant; ``history`` is the CPU history per task name, for the next build_frame."""

    __slots__ = ("epoch_s", "history", "interval_s", "namespace", "nbcpus", "rows", "sort")

    def __init__(self, namespace: str, epoch_s: float, interval_s: float | None, nbcpus: int, sort: str,
                 rows: tuple[Row, ...], history: Mapping[str, tuple[float, ...]] | None = None) -> None:
        self.namespace, self.epoch_s, self.interval_s, self.nbcpus = namespace, epoch_s, interval_s, nbcpus
        self.sort, self.rows = sort, rows
        self.history: Mapping[str, tuple[float, ...]] = {} if history is None else history

    @property
    def process_count(self) -> int:
        return sum(r.process_count for r in self.rows)

    @property
    def cpu_percent(self) -> float | None:
        known = [r.cpu_percent for r in self.rows if r.cpu_percent is not None]
        return sum(known) if known else None

    @property
    def memory_current_bytes(self) -> int | None:
        known = [r.memory_current_bytes for r in self.rows if r.memory_current_bytes is not None]
        return sum(known) if known else None


def _cpu_percent(before: TaskSample | None, after: TaskSample, seconds: float | None) -> float | None:
    if before is None or seconds is None or seconds <= 0:
        return None
    if before.cpu_usage_usec is None or after.cpu_usage_usec is None:
        return None
    used = after.cpu_usage_usec - before.cpu_usage_usec
    if used < 0:
        return None  # the name was run again between the samples: a new cgroup, a new count
    return used / (seconds * 1e6) * 100


def _sort_key(sort: str) -> Any:
    if sort == "name":
        return lambda r: (r.name,)
    if sort == "memory":
        return lambda r: (-(r.memory_current_bytes if r.memory_current_bytes is not None else -1), r.name)
    if sort == "pids":
        return lambda r: (-r.process_count, r.name)
    return lambda r: (-(r.cpu_percent if r.cpu_percent is not None else -1.0), r.name)


def build_frame(previous: Sample | None, current: Sample, *, sort: str = "cpu",
                history: Mapping[str, tuple[float, ...]] | None = None) -> Frame:
    """The frame for ``current``; ``previous`` (the sample before) gives the CPU deltas."""
    if sort not in SORT_KEYS.values():
        raise ValueError(f"unknown sort order {sort!r}")
    history = history or {}
    seconds = None if previous is None else current.monotonic_s - previous.monotonic_s
    before = {} if previous is None else {t.name: t for t in previous.tasks}
    rows: list[Row] = []
    new_history: dict[str, tuple[float, ...]] = {}
    for task in current.tasks:
        cpu = _cpu_percent(before.get(task.name), task, seconds)
        past = history.get(task.name, ())
        new_history[task.name] = past if cpu is None else (*past, cpu)[-HISTORY_LENGTH:]
        limit = task.memory_max_bytes
        scale = limit if limit is not None else current.memory_total_bytes
        memory_percent = None
        if task.memory_current_bytes is not None and scale:
            memory_percent = task.memory_current_bytes * 100 / scale
        rows.append(Row(task.name, task.state, task.process_count, task.command, cpu, task.cpu_usage_usec,
                        new_history[task.name], task.memory_current_bytes, limit, memory_percent, task.pressure,
                        task.oom_kills, task.labels, task.description))
    rows.sort(key=_sort_key(sort))
    return Frame(current.namespace, current.epoch_s, seconds, current.nbcpus, sort, tuple(rows), new_history)


# -- text ------------------------------------------------------------------------------------------------------


def sparkline(values: tuple[float, ...], width: int = HISTORY_LENGTH, full: float = 100.0) -> str:
    """The last ``width`` values as block characters, ``full`` and above as a full block; right-aligned."""
    marks = [SPARKS[min(len(SPARKS) - 1, max(0, round(v / full * (len(SPARKS) - 1))))] for v in values[-width:]]
    return "".join(marks).rjust(width)


def bar(percent: float | None, width: int) -> str:
    """A left-to-right bar in eighths of a cell, ``width`` cells for 100 %."""
    if percent is None:
        return " " * width
    eighths = round(max(0.0, min(percent, 100.0)) / 100 * width * 8)
    if percent > 0 and eighths == 0:
        eighths = 1  # a sliver: some use, unlike none
    full, part = divmod(eighths, 8)
    text = "█" * full + (BAR_EIGHTHS[part] if part else "")
    return text.ljust(width)


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pressure(row: Row, resource: str) -> str:
    if row.pressure is None:
        return "-"
    return _number(row.pressure.get(f"{resource}_some"))


class Column:
    """A column of the text frame; when the screen is too narrow, columns go in increasing ``drop_order`` (0 never
    goes). ``align`` is "<" or ">"."""

    __slots__ = ("align", "drop_order", "header", "width")

    def __init__(self, header: str, width: int, align: str, drop_order: int) -> None:
        self.header, self.width, self.align, self.drop_order = header, width, align, drop_order


_COLUMNS = {
    "state": Column("STATE", 7, "<", 5),
    "pids": Column("PIDS", 5, ">", 0),
    "cpu": Column("CPU%", 6, ">", 0),
    "history": Column("CPU HISTORY", HISTORY_LENGTH, "<", 2),
    "memory": Column("MEMORY", 7, ">", 0),
    "memory_percent": Column("MEM%", 5, ">", 4),
    "memory_bar": Column("", 6, "<", 3),
    "oom": Column("OOM", 4, ">", 2),
    "psi_cpu": Column("P.CPU", 5, ">", 1),
    "psi_memory": Column("P.MEM", 5, ">", 1),
    "psi_io": Column("P.IO", 5, ">", 1),
}


def _cells(row: Row) -> dict[str, str]:
    return {
        "state": row.state,
        "pids": str(row.process_count),
        "cpu": _number(row.cpu_percent),
        "history": sparkline(row.cpu_history),
        "memory": format_size(row.memory_current_bytes),
        "memory_bar": bar(row.memory_percent, _COLUMNS["memory_bar"].width),
        "memory_percent": _number(row.memory_percent),
        "oom": "-" if row.oom_kills is None else str(row.oom_kills),
        "psi_cpu": _pressure(row, "cpu"),
        "psi_memory": _pressure(row, "memory"),
        "psi_io": _pressure(row, "io"),
    }


def _fit(text: str, width: int, align: str = "<") -> str:
    if len(text) > width:
        return text[:max(0, width - 1)] + "…" if width > 0 else ""
    return text.ljust(width) if align == "<" else text.rjust(width)


class FrameText:
    """A frame's lines: the summary, the column headers, one line a task."""

    __slots__ = ("header", "rows", "summary")

    def __init__(self, summary: str, header: str, rows: tuple[str, ...]) -> None:
        self.summary, self.header, self.rows = summary, header, rows

    def __str__(self) -> str:
        return "\n".join((self.summary, self.header, *self.rows)) + "\n"


def _summary(frame: Frame) -> str:
    tasks = len(frame.rows)
    cpu = frame.cpu_percent
    parts = [
        f"{frame.namespace}",
        f"{tasks} task{'s' if tasks != 1 else ''}",
        f"{frame.process_count} process{'es' if frame.process_count != 1 else ''}",
        f"cpu {_number(cpu)}% of {frame.nbcpus * 100}%",
        f"memory {format_size(frame.memory_current_bytes)}",
        f"sort {frame.sort}",
        time.strftime("%H:%M:%S", time.localtime(frame.epoch_s)),
    ]
    return "  ".join(parts)


def frame_lines(frame: Frame, width: int | None = None) -> FrameText:
    """The frame as text; ``width`` cuts every line to a screen's width (None: nothing is cut).

    Columns that do not fit go first (pressure, history, bars), then the command is cut."""
    names = [escape(r.name) for r in frame.rows]
    name_width = min(NAME_WIDTH[1], max([NAME_WIDTH[0], *map(len, names)]))
    shown = list(_COLUMNS)
    if width is not None:
        def used(keys: list[str]) -> int:
            return name_width + sum(_COLUMNS[k].width + 1 for k in keys) + 1 + 8  # 8: a useful command

        for key in sorted((k for k in shown if _COLUMNS[k].drop_order), key=lambda k: _COLUMNS[k].drop_order):
            if used(shown) <= width:
                break
            shown.remove(key)

    def line(first: str, cells: dict[str, str], last: str) -> str:
        parts = [_fit(first, name_width)]
        parts += [_fit(cells[k], _COLUMNS[k].width, _COLUMNS[k].align) for k in shown]
        text = " ".join(parts) + " " + last
        text = text.rstrip()
        if width is not None and len(text) > width:
            text = _fit(text, width)
        return text

    header = line("TASK", {k: c.header for k, c in _COLUMNS.items()}, "COMMAND")
    # What a task chose (its command line) is escaped, so that it cannot paint lines or colours of its own.
    rows = tuple(line(escape(r.name), {k: escape(v) for k, v in _cells(r).items()}, escape(r.command))
                 for r in frame.rows)
    summary = _summary(frame)
    if width is not None:
        summary = _fit(summary, width).rstrip()
    return FrameText(summary, header, rows)


def frame_text(frame: Frame, width: int | None = None) -> str:
    return str(frame_lines(frame, width))


# -- JSON ------------------------------------------------------------------------------------------------------


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def frame_data(frame: Frame) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "namespace": frame.namespace,
        "timestamp_epoch_s": frame.epoch_s,
        "interval_s": _round(frame.interval_s, 3),
        "nbcpus": frame.nbcpus,
        "sort": frame.sort,
        "task_count": len(frame.rows),
        "process_count": frame.process_count,
        "cpu_percent": _round(frame.cpu_percent),
        "memory_current_bytes": frame.memory_current_bytes,
        "tasks": [{
            "name": r.name,
            "state": r.state,
            "process_count": r.process_count,
            "command": r.command,
            "cpu_percent": _round(r.cpu_percent),
            "cpu_history_percent": [_round(v) for v in r.cpu_history],
            "cpu_usage_usec": r.cpu_usage_usec,
            "memory_current_bytes": r.memory_current_bytes,
            "memory_max_bytes": r.memory_max_bytes,
            "memory_percent": _round(r.memory_percent),
            "oom_kills": r.oom_kills,
            "pressure": pressure_data(r.pressure),
            "labels": dict(sorted(r.labels.items())),
            "description": r.description,
        } for r in frame.rows],
    }


def frame_json(frame: Frame) -> str:
    """One frame as one line of JSON (JSON lines: one document a line, a frame a document)."""
    return compact_json(frame_data(frame)) + "\n"
