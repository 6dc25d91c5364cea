"""Stopping and pausing a task through its cgroups: kill every process (``cgroup.kill`` where v2 has it, signals
and a fork brake where not), freeze and thaw (v2's ``cgroup.freeze``, the v1 freezer), and wait until it is empty.
"""

from __future__ import annotations

import os
import time

from lanco.cgroups import cgroupfs
from lanco.cgroups.tree import CgroupTree
from lanco.errors import CgroupError, LimitUnavailable, PermissionDenied


class TaskControl(CgroupTree):
    """Kill, freeze, thaw and the wait for an empty task, on a :class:`CgroupTree`."""

    def kill(self, ns: str, task: str) -> None:
        """SIGKILL every process of the task, including those forked while killing."""
        kill_file = self.kill_file(ns, task)
        if kill_file is not None:
            try:
                cgroupfs.write(kill_file, "1")
            except FileNotFoundError:
                pass
            if not self.all_hierarchies[1:]:
                return
            # A process may have left the tracker's cgroup and stayed in the task's others: killed one by one below.
        from lanco import signums

        self._brake_forks(ns, task)
        for _ in range(1000):
            if not self.pids(ns, task):
                return
            frozen = self._set_frozen(ns, task, True)
            for pid in self.pids(ns, task):
                try:
                    os.kill(pid, signums.SIGKILL)
                except ProcessLookupError:
                    pass
                except PermissionError:
                    if frozen:
                        self._set_frozen(ns, task, False)
                    raise PermissionDenied(f"cannot kill process {pid} of task {task}: it runs as another user") \
                        from None
            if frozen:
                # A v1 frozen process receives its SIGKILL only when thawed.
                self._set_frozen(ns, task, False)
            time.sleep(0.002)

    def _brake_forks(self, ns: str, task: str) -> None:
        pids_dir = self.controller_dir("pids", ns, task)
        if pids_dir is None:
            return
        try:
            cgroupfs.write(f"{pids_dir}/pids.max", "0")
        except OSError:
            pass

    def freezable(self, ns: str, task: str) -> bool:
        """Whether the mode can freeze this task (v2 cgroup.freeze, or a v1 freezer hierarchy)."""
        return self.tracking.freeze_control(ns, task) is not None

    def frozen(self, ns: str, task: str) -> bool:
        """True while the task is frozen (or freezing)."""
        return self.tracking.frozen(ns, task)

    def set_frozen(self, ns: str, task: str, frozen: bool, settle_timeout: float = 5.0) -> None:
        """Freeze or thaw the whole task and wait until the kernel reports it done (a freeze completes once every
        process has stopped); raises LimitUnavailable where the mode has no freezer."""
        if not self.freezable(ns, task):
            raise LimitUnavailable(f"freezing needs the freezer controller, which cgroup mode {self.mode} "
                                   f"does not provide for namespace {ns}")
        if not self._set_frozen(ns, task, frozen):
            raise CgroupError(f"cannot {'freeze' if frozen else 'thaw'} task {task}")
        deadline = time.monotonic() + settle_timeout
        delay = 0.001
        while self.tracking.freeze_state(ns, task) != ("frozen" if frozen else "thawed"):
            if not self.task_exists(ns, task):
                return  # the task ended meanwhile (a thaw lets a stop signal act) and its cgroup is gone
            if time.monotonic() >= deadline:
                raise CgroupError(f"task {task} is still {'freezing' if frozen else 'thawing'} after "
                                  f"{settle_timeout:g}s (a process in uninterruptible sleep?)")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def freeze_control(self, ns: str, task: str) -> tuple[str, str, str] | None:
        """The file that freezes the task, with the values that freeze and thaw it; None without a freezer."""
        return self.tracking.freeze_control(ns, task)

    def kill_file(self, ns: str, task: str) -> str | None:
        """The task's ``cgroup.kill`` (v2, 5.14+), or None where killing needs a signal per process."""
        return self.tracking.kill_file(ns, task)

    def _set_frozen(self, ns: str, task: str, frozen: bool) -> bool:
        control = self.freeze_control(ns, task)
        if control is None:
            return False
        path, freeze, thaw = control
        try:
            cgroupfs.write(path, freeze if frozen else thaw)
        except OSError:
            return False
        if frozen:
            self.tracking.settle_freeze(path)
        return True

    def wait_empty(self, ns: str, task: str, timeout: float) -> bool:
        """Block until the task's cgroup holds no process (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        events = self.events_file(ns, task)
        if events is not None:
            if not cgroupfs.wait_unpopulated(events, deadline):
                return False
            if not self.all_hierarchies[1:]:
                return True
        delay = 0.005
        while self.pids(ns, task):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.25)
        return True
