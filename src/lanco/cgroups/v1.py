"""The named (v1) tracker: lanco's ``name=lanco`` hierarchy has no controller, so whether a task runs is read
from its ``cgroup.procs``, a kill is a signal per process, a freeze goes through the v1 freezer controller (whose
``FREEZING`` must settle before a signal reaches the task) and CPU time comes from cpuacct; v1 has no PSI."""

from __future__ import annotations

import time

from lanco.cgroups import cgroupfs
from lanco.cgroups.tracking import Tracker

_FREEZE_SETTLE = 0.2


class NamedTracker(Tracker):
    version = 1

    def events_file(self, ns: str, task: str) -> str | None:
        return None

    def kill_file(self, ns: str, task: str) -> str | None:
        return None

    def freeze_control(self, ns: str, task: str) -> tuple[str, str, str] | None:
        freezer = self.tree.controller_dir("freezer", ns, task)
        return None if freezer is None else (f"{freezer}/freezer.state", "FROZEN", "THAWED")

    def frozen(self, ns: str, task: str) -> bool:
        freezer = self.tree.controller_dir("freezer", ns, task)
        if freezer is None:
            return False
        try:
            return cgroupfs.read_attribute(f"{freezer}/freezer.state").strip() in ("FROZEN", "FREEZING")
        except OSError:
            return False

    def freeze_state(self, ns: str, task: str) -> str:
        freezer = self.tree.controller_dir("freezer", ns, task)
        try:
            state = cgroupfs.read(f"{freezer}/freezer.state").strip() if freezer else "THAWED"
        except OSError:
            state = "THAWED"
        return {"FROZEN": "frozen", "THAWED": "thawed"}.get(state, "changing")

    def settle_freeze(self, path: str) -> None:
        deadline = time.monotonic() + _FREEZE_SETTLE
        while time.monotonic() < deadline and cgroupfs.read(path).strip() != "FROZEN":
            time.sleep(0.001)

    def cpu_source(self, ns: str, task: str) -> tuple[str, str, str] | None:
        cpuacct = self.tree.controller_dir("cpuacct", ns, task)
        return None if cpuacct is None else ("cpu_nsec", f"{cpuacct}/cpuacct.usage", "-")

    def cpu_usage_usec(self, ns: str, task: str) -> int | None:
        mount = self.tree.controllers.get("cpuacct")
        if mount is None:
            return None
        directory = self.tree.task_dir(ns, task, mount) if task else self.tree.ns_dir(ns, mount)
        nsec = cgroupfs.single(f"{directory}/cpuacct.usage")
        return None if nsec is None else nsec // 1000

    def pressure_dir(self, ns: str, task: str) -> str | None:
        return None
