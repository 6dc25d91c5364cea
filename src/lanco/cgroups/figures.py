"""What a task's cgroups say of it: the live figures (CPU, memory, OOM kills, pressure, the limits in force) that
ls, status, dump and top read, and where the monitor reads the final ones before it removes the cgroups.

Each view reads a fixed handful of the task's own files and starts no process, so that a view of n tasks costs
O(n) reads. A task of "" means the namespace itself.
"""

from __future__ import annotations

from lanco.cgroups import cgroupfs
from lanco.cgroups.tree import CgroupTree
from lanco.values import FrozenValue, Value


class TaskFigures(Value):
    """Live figures of one task's cgroup; None where the mode has no source for a figure."""

    _fields = ("cpu_usec", "memory_bytes", "memory_peak_bytes", "oom_kills", "pids")
    __slots__ = _fields
    cpu_usec: int | None
    memory_bytes: int | None
    memory_peak_bytes: int | None
    oom_kills: int | None
    pids: list[int]

    def __init__(self, cpu_usec: int | None = None, memory_bytes: int | None = None,
                 memory_peak_bytes: int | None = None, oom_kills: int | None = None,
                 pids: list[int] | None = None) -> None:
        self.cpu_usec = cpu_usec
        self.memory_bytes = memory_bytes
        self.memory_peak_bytes = memory_peak_bytes
        self.oom_kills = oom_kills
        self.pids = [] if pids is None else pids


class StatSource(FrozenValue):
    """Where the monitor reads a final figure: ``field`` of a keyed file, or ``-`` for a one-value file."""

    _fields = ("key", "path", "field")
    __slots__ = _fields
    key: str
    path: str
    field: str

    def __init__(self, key: str, path: str, field: str) -> None:
        self._set_fields(key, path, field)


class FigureReader(CgroupTree):
    """The figures of a task (or a namespace) on a :class:`CgroupTree`."""

    def _is_v2_controller(self, controller: str) -> bool:
        mount = self.controllers.get(controller, self.tracker)
        return mount.version == 2

    def stat_sources(self, ns: str, task: str) -> list[StatSource]:
        """Where the monitor reads the final figures before it removes the cgroup."""
        return self._stat_sources(ns, task, self._memory_figures_dir(ns, task))

    def _memory_figures_dir(self, ns: str, task: str) -> str | None:
        """The task's directory with the memory controller's files, or None where it has none."""
        memory = self.controller_dir("memory", ns, task)
        if memory is None and self.mode == "v2" and "memory" in self.enabled_controllers(ns):
            memory = self.task_dir(ns, task)
        return memory

    def _stat_sources(self, ns: str, task: str, memory: str | None) -> list[StatSource]:
        sources: list[StatSource] = []
        cpu = self.tracking.cpu_source(ns, task)
        if cpu is not None:
            sources.append(StatSource(*cpu))
        if memory is not None:
            if self._is_v2_controller("memory"):
                sources.append(StatSource("memory_peak_bytes", f"{memory}/memory.peak", "-"))
                sources.append(StatSource("oom_kills", f"{memory}/memory.events", "oom_kill"))
            else:
                sources.append(StatSource("memory_peak_bytes",
                                          f"{memory}/memory.max_usage_in_bytes", "-"))
                sources.append(StatSource("oom_kills", f"{memory}/memory.oom_control",
                                          "oom_kill"))
        return sources

    def figures(self, ns: str, task: str) -> TaskFigures:
        figures = TaskFigures(pids=self.pids(ns, task))
        # Looked up once: in v2 mode it reads the namespace's subtree_control, and listings ask for every task.
        memory = self._memory_figures_dir(ns, task)
        for source in self._stat_sources(ns, task, memory):
            value = cgroupfs.single(source.path) if source.field == "-" else cgroupfs.keyed(source.path, source.field)
            if source.key == "cpu_usec":
                figures.cpu_usec = value
            elif source.key == "cpu_nsec":
                figures.cpu_usec = None if value is None else value // 1000
            elif source.key == "memory_peak_bytes":
                figures.memory_peak_bytes = value
            elif source.key == "oom_kills":
                figures.oom_kills = value
        if memory is not None:
            name = "memory.current" if self._is_v2_controller("memory") else "memory.usage_in_bytes"
            figures.memory_bytes = cgroupfs.single(f"{memory}/{name}")
        return figures

    def _view_dir(self, controller: str, ns: str, task: str) -> tuple[str, bool] | None:
        """Where ``controller``'s files of the task are, and whether they are v2 files; None if nowhere."""
        parts = (ns, task) if task else (ns,)
        mount = self.controllers.get(controller)
        if mount is not None:
            return self._dir(mount, *parts), mount.version == 2
        if self.mode == "v2" and self.tracker.version == 2:
            # Controller files appear in a v2 cgroup only once the parent enables the controller: a missing
            # file reads as None, so no need to consult subtree_control here.
            return self._dir(self.tracker, *parts), True
        return None

    def cpu_usage_usec(self, ns: str, task: str) -> int | None:
        """CPU time used so far; for a namespace it includes its finished tasks, as the kernel keeps it."""
        return self.tracking.cpu_usage_usec(ns, task)

    def memory_current_bytes(self, ns: str, task: str) -> int | None:
        where = self._view_dir("memory", ns, task)
        if where is None:
            return None
        return cgroupfs.single(where[0] + ("/memory.current" if where[1] else "/memory.usage_in_bytes"))

    def oom_kills(self, ns: str, task: str) -> int | None:
        """Processes of the task the kernel's OOM killer took so far (``oom_kill`` of v2 ``memory.events``, of v1
        ``memory.oom_control``); None where the mode has no memory controller for the task."""
        where = self._view_dir("memory", ns, task)
        if where is None:
            return None
        return cgroupfs.keyed(where[0] + ("/memory.events" if where[1] else "/memory.oom_control"), "oom_kill")

    def memory_limit_bytes(self, ns: str, task: str) -> int | None:
        """The hard memory limit of the task, or None when it has none (or the mode cannot tell)."""
        where = self._view_dir("memory", ns, task)
        if where is None:
            return None
        return cgroupfs.limit_value(where[0] + ("/memory.max" if where[1] else "/memory.limit_in_bytes"))

    def pressure(self, ns: str, task: str) -> dict[str, float | None] | None:
        """PSI ``avg10`` of the task's cgroup, in percent, keyed ``cpu_some``, ``cpu_full``, ``memory_some``,
        ``memory_full``, ``io_some``, ``io_full``; None when the task is tracked in v1 (no PSI there)."""
        directory = self.tracking.pressure_dir(ns, task)
        if directory is None:
            return None
        found: dict[str, float | None] = {}
        for resource in ("cpu", "memory", "io"):
            lines = self._pressure_lines(f"{directory}/{resource}.pressure")
            for kind in ("some", "full"):
                found[f"{resource}_{kind}"] = lines.get(kind)
        return found

    def limits_in_force(self, ns: str, task: str) -> dict[str, int]:
        """The limits the kernel enforces on the task now, read from its cgroup files; unlimited ones are left
        out. Keys carry their unit: memory_max_bytes, memory_high_bytes, memory_swap_max_bytes, pids_max,
        cpu_quota_usec with cpu_period_usec (those the limits table marks ``in_force``)."""
        from lanco.cgroups import controllers

        found: dict[str, int] = {}
        for controller in controllers.reporting():
            where = self._view_dir(controller, ns, task)
            if where is not None:
                found.update(controllers.in_force(controllers.LimitTarget(*where, task, self.mode), controller))
        return found

    @staticmethod
    def _pressure_lines(path: str) -> dict[str, float]:
        """``avg10`` of each line of a PSI file (``some avg10=1.50 avg60=... total=...``)."""
        try:
            text = cgroupfs.read_attribute(path)
        except OSError:
            # A kernel booted with psi=0 lists the files but refuses to read them (EOPNOTSUPP).
            return {}
        found: dict[str, float] = {}
        for line in text.splitlines():
            kind, _, rest = line.partition(" ")
            for item in rest.split():
                key, _, value = item.partition("=")
                if key == "avg10":
                    try:
                        found[kind] = float(value)
                    except ValueError:
                        pass
        return found
