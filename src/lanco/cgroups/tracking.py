"""The tracker's interface: what the hierarchy that tracks a task (its cgroup is the name's lock and its
``cgroup.procs`` the task's processes) can do for it, which depends on that hierarchy's cgroup version alone.

One manager per version, as runc's ``fs`` and ``fs2``: :class:`lanco.cgroups.v2.UnifiedTracker` (the unified
tree: ``cgroup.events``, ``cgroup.kill``, ``cgroup.freeze``, ``cpu.stat``, PSI) and
:class:`lanco.cgroups.v1.NamedTracker` (lanco's named v1 hierarchy, with the v1 freezer and cpuacct controllers
beside it). A mode is a choice of tracker and controller hierarchies: v2 and hybrid track in the unified tree
(hybrid with v1 controllers), v1 in the named hierarchy; the controllers' own versions are the business of
:mod:`lanco.cgroups.controllers`.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lanco.cgroups.tree import CgroupTree


class Tracker:
    """The interface; each method takes a task of the tree it was made for."""

    version = 0

    def __init__(self, tree: CgroupTree) -> None:
        self.tree = tree

    def events_file(self, ns: str, task: str) -> str | None:
        """A file whose ``populated`` can be polled for the task's end, or None where there is none."""
        raise NotImplementedError

    def kill_file(self, ns: str, task: str) -> str | None:
        """A file that kills the whole task in one write, or None where killing takes a signal per process."""
        raise NotImplementedError

    def freeze_control(self, ns: str, task: str) -> tuple[str, str, str] | None:
        """The file that freezes the task, with the values that freeze and thaw it; None without a freezer."""
        raise NotImplementedError

    def frozen(self, ns: str, task: str) -> bool:
        """True while the task is frozen (or freezing)."""
        raise NotImplementedError

    def freeze_state(self, ns: str, task: str) -> str:
        """``frozen``, ``thawed`` or ``changing``, as the kernel reports it."""
        raise NotImplementedError

    def settle_freeze(self, path: str) -> None:
        """After a freeze was written to ``path``: what the version needs before a signal reaches the task."""

    def cpu_source(self, ns: str, task: str) -> tuple[str, str, str] | None:
        """Where the task's CPU time is read: (figure key, file, keyed field or ``-``), or None."""
        raise NotImplementedError

    def cpu_usage_usec(self, ns: str, task: str) -> int | None:
        """The CPU time used so far by the task (``task`` ""): the namespace, finished tasks included)."""
        raise NotImplementedError

    def pressure_dir(self, ns: str, task: str) -> str | None:
        """The directory with the task's PSI files, or None where the version has none."""
        raise NotImplementedError
