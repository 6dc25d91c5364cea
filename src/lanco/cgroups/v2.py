"""The unified (v2) tracker: the task's cgroup in the unified tree says whether it runs (``cgroup.events``), kills
it whole (``cgroup.kill``, 5.14+), freezes it (``cgroup.freeze``), counts its CPU time (``cpu.stat``, in every
cgroup) and its pressure (PSI)."""

from __future__ import annotations

import os

from lanco.cgroups import cgroupfs
from lanco.cgroups.tracking import Tracker


class UnifiedTracker(Tracker):
    version = 2

    def events_file(self, ns: str, task: str) -> str | None:
        return f"{self.tree.task_dir(ns, task)}/cgroup.events"

    def kill_file(self, ns: str, task: str) -> str | None:
        path = f"{self.tree.task_dir(ns, task)}/cgroup.kill"
        return path if os.path.exists(path) else None

    def freeze_control(self, ns: str, task: str) -> tuple[str, str, str] | None:
        path = f"{self.tree.task_dir(ns, task)}/cgroup.freeze"
        return (path, "1", "0") if os.path.exists(path) else None

    def frozen(self, ns: str, task: str) -> bool:
        directory = self.tree.task_dir(ns, task)
        return cgroupfs.keyed(f"{directory}/cgroup.events", "frozen") == 1 or \
            cgroupfs.single(f"{directory}/cgroup.freeze") == 1

    def freeze_state(self, ns: str, task: str) -> str:
        directory = self.tree.task_dir(ns, task)
        events = cgroupfs.keyed(f"{directory}/cgroup.events", "frozen")
        wanted = cgroupfs.single(f"{directory}/cgroup.freeze")
        if events == 1 and wanted == 1:
            return "frozen"
        return "thawed" if wanted == 0 else "changing"

    def cpu_source(self, ns: str, task: str) -> tuple[str, str, str] | None:
        return "cpu_usec", f"{self.tree.task_dir(ns, task)}/cpu.stat", "usage_usec"

    def cpu_usage_usec(self, ns: str, task: str) -> int | None:
        directory = self.tree.task_dir(ns, task) if task else self.tree.ns_dir(ns)
        return cgroupfs.keyed(f"{directory}/cpu.stat", "usage_usec")

    def pressure_dir(self, ns: str, task: str) -> str | None:
        return self.tree.task_dir(ns, task) if task else self.tree.ns_dir(ns)
