"""Live figures of a namespace's tasks, for status, dump and top.

Every figure comes from the task's own cgroup files through the backend (the only place that knows the
cgroup mode), plus /proc for command lines: a fixed handful of reads per task, no process started, so a
view of 500 tasks costs 500 times the view of one.
"""

from __future__ import annotations

import os
import time

from lanco import procfs
from lanco.errors import StateError
from lanco.options.labels import spec_description, spec_labels
from lanco.state.record import read_spec, run_oom_kills
from lanco.views.render import LiveDetail

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from lanco.cgroups.backend import Backend
    from lanco.namespace import Namespace
    from lanco.views.top import Sample, TaskSample


def online_cpus() -> int:
    """What the original's ``nbcpus`` counted: the processors online (sysconf _SC_NPROCESSORS_ONLN)."""
    try:
        count = os.sysconf("SC_NPROCESSORS_ONLN")
    except (ValueError, OSError):
        count = os.cpu_count() or 1
    return max(1, count)


def host_memory_bytes(meminfo: str = "/proc/meminfo") -> int | None:
    try:
        with open(meminfo, encoding="utf-8") as f:  # loaded at start-up; "ascii" would import its codec
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def live_state(backend: Backend, ns: str, task: str) -> str:
    return "frozen" if backend.frozen(ns, task) else "running"


def live_detail(backend: Backend, ns: str, task: str) -> LiveDetail:
    """Limits in force, pressure and the memory limit of a running task, for status and dump."""
    limits = backend.limits_in_force(ns, task)
    # The hard memory limit is among the limits in force (read from the same file): not read a second time.
    return LiveDetail(limits_in_force=limits, pressure=backend.pressure(ns, task),
                      memory_max_bytes=limits.get("memory_max_bytes"))


def _command(pids: list[int], cmdline: Callable[[int], str]) -> str:
    """The command of the task's oldest process (lowest pid; a kernel thread or zombie has none: skip it)."""
    for pid in sorted(pids)[:3]:
        text = cmdline(pid)
        if text:
            return text
    return ""


def _add_labels(namespace: Namespace, tasks: list[TaskSample]) -> None:
    """Each task's labels and description, from its record (read with the owner's ids, as every view reads one);
    a record gone or damaged gives none, the figures are shown all the same."""
    with namespace.owner_ids():
        for task in tasks:
            try:
                spec = read_spec(namespace.config.task_state_dir(task.name))
            except StateError:
                spec = None
            task.labels, task.description = spec_labels(spec), spec_description(spec)


def sample_namespace(namespace: Namespace, *, cmdline: Callable[[int], str] | None = None,
                     nbcpus: int | None = None, memory_total: int | None = None, labels: bool = False) -> Sample:
    """One reading of every running task of ``namespace`` for top. A task that ends while it is read is
    left out rather than shown half-read. ``labels``: read each task's labels and description from its record
    too (for the JSON frames: the text frames leave them out, and a record read is a third of a task's cost)."""
    # Here, not above: top's frame types are no part of what status and dump import.
    from lanco.views.top import Sample, TaskSample

    backend, ns = namespace.backend, namespace.name
    cmdline = cmdline or procfs.cmdline
    tasks: list[TaskSample] = []
    for name in backend.task_names(ns):
        pids = backend.pids(ns, name)
        if not pids:
            continue
        tasks.append(TaskSample(
            name=name,
            state=live_state(backend, ns, name),
            process_count=len(pids),
            command=_command(pids, cmdline),
            cpu_usage_usec=backend.cpu_usage_usec(ns, name),
            memory_current_bytes=backend.memory_current_bytes(ns, name),
            memory_max_bytes=backend.memory_limit_bytes(ns, name),
            oom_kills=run_oom_kills(backend.oom_kills(ns, name), namespace.config.task_state_dir(name)),
            pressure=backend.pressure(ns, name),
        ))
    if labels:
        _add_labels(namespace, tasks)
    return Sample(namespace=ns, monotonic_s=time.monotonic(), epoch_s=time.time(),
                  nbcpus=online_cpus() if nbcpus is None else nbcpus,
                  memory_total_bytes=host_memory_bytes() if memory_total is None else memory_total,
                  tasks=tuple(tasks))
