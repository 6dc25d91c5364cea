"""A namespace's cgroups as paths and processes: the directories of a namespace, its tasks and their monitors in
each hierarchy, the processes a task has, and how its directories go.

A namespace owns ``<base>/<ns>/`` in every hierarchy it uses; each task is a leaf ``<base>/<ns>/<task>/`` and
the monitors live in ``<base>/<ns>/.monitors/``. The *tracker* hierarchy decides whether a task exists and runs
(its directory is the name's lock, its ``cgroup.procs`` the task's processes); the controller hierarchies carry
limits and figures. In v2 mode both are the unified tree; in hybrid mode the tracker is the unified tree (or the
named hierarchy for an owner who may not migrate there) and the controllers are v1; in v1 mode the tracker is
the named hierarchy ``name=lanco``.
"""

from __future__ import annotations

import errno
import os
import time

from lanco.cgroups import cgroupfs
from lanco.errors import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from lanco.cgroups.detect import CgroupMount
    from lanco.cgroups.tracking import Tracker

MONITORS = ".monitors"
TRACKERS = ("unified", "named")


class CgroupTree:
    """The paths of one namespace base in the hierarchies of one cgroup mode, and what they hold."""

    def __init__(self, mode: str, base: str, tracker: CgroupMount,
                 controllers: dict[str, CgroupMount], on_demand: dict[str, CgroupMount] | None = None) -> None:
        self.mode = mode
        self.base = "/" + base.strip("/")
        self.tracker = tracker
        self.controllers = controllers
        seen = {tracker.path}
        self.hierarchies = [tracker]
        for mount in controllers.values():
            if mount.path not in seen:
                seen.add(mount.path)
                self.hierarchies.append(mount)
        # v1 hierarchies a task joins only when one of its limits needs them (cpuset: a child there takes no
        # process before its cpus and mems are set). Namespaces have a directory in them all the same.
        self.on_demand = {c: m for c, m in (on_demand or {}).items() if m.path not in seen}
        self._base_dirs: dict[str, str] = {}
        self.on_demand_hierarchies = list({m.path: m for m in self.on_demand.values()}.values())
        # What the tracker's cgroup version can do for a task: one manager per version (lanco.cgroups.tracking),
        # only that version's loaded (every command pays for each module it imports).
        self.tracking: Tracker
        if tracker.version == 2:
            from lanco.cgroups.v2 import UnifiedTracker

            self.tracking = UnifiedTracker(self)
        else:
            from lanco.cgroups.v1 import NamedTracker

            self.tracking = NamedTracker(self)

    @property
    def all_hierarchies(self) -> list[CgroupMount]:
        """The hierarchies every task joins, then the on-demand ones: where a namespace has its directories."""
        return self.hierarchies + self.on_demand_hierarchies

    # -- paths ---------------------------------------------------------------------------------------------

    def _dir(self, mount: CgroupMount, *parts: str) -> str:
        # Computed once per hierarchy: listings ask for a dozen paths of every task. The parts are names (checked
        # task and namespace names, fixed file names), so plain concatenation is os.path.join at a third of its
        # cost, which dump paid some 30 times a task.
        base_dir = self._base_dirs.get(mount.path)
        if base_dir is None:
            relative = self.base
            if mount.root != "/" and os.path.commonpath([relative, mount.root]) == mount.root:
                relative = os.path.relpath(relative, mount.root).removeprefix(".")
            base_dir = os.path.join(mount.path, relative.lstrip("/")).rstrip("/")
            self._base_dirs[mount.path] = base_dir
        return "/".join((base_dir, *parts)) if parts else base_dir

    def base_dir(self, mount: CgroupMount) -> str:
        return self._dir(mount)

    def ns_dir(self, ns: str, mount: CgroupMount | None = None) -> str:
        return self._dir(mount or self.tracker, ns)

    def task_dir(self, ns: str, task: str, mount: CgroupMount | None = None) -> str:
        return self._dir(mount or self.tracker, ns, task)

    def controller_dir(self, controller: str, ns: str, task: str) -> str | None:
        mount = self.controllers.get(controller) or self.on_demand.get(controller)
        return None if mount is None else self.task_dir(ns, task, mount)

    def join_files(self, ns: str, task: str) -> list[str]:
        """The ``cgroup.procs`` files a process writes ``0`` into to become part of the task: every hierarchy's,
        and those of the on-demand hierarchies the task was created in."""
        joined = self.hierarchies + [m for m in self.on_demand_hierarchies
                                     if os.path.isdir(self.task_dir(ns, task, m))]
        return [f"{self.task_dir(ns, task, m)}/cgroup.procs" for m in joined]

    def monitor_join_files(self, ns: str) -> list[str]:
        return [f"{self._dir(m, ns, MONITORS)}/cgroup.procs" for m in self.hierarchies]

    def task_dirs(self, ns: str, task: str) -> list[str]:
        """Every directory of the task, the tracker's last: it is the name's lock and goes last."""
        return [self.task_dir(ns, task, m) for m in self.all_hierarchies[1:]] + [self.task_dir(ns, task)]

    def events_file(self, ns: str, task: str) -> str | None:
        """The v2 ``cgroup.events`` whose ``populated`` can be polled, or None when tracking is v1."""
        return self.tracking.events_file(ns, task)

    # -- namespaces and tasks --------------------------------------------------------------------------------

    def namespace_exists(self, ns: str) -> bool:
        return os.path.isdir(self.ns_dir(ns))

    def _namespace_gone(self, ns: str, mount: CgroupMount) -> bool:
        """Whether the namespace's directory is missing in ``mount``: asked only once a file of it was not found,
        so that no command pays a look on its way (a boot leaves cgroupfs empty, see :class:`CgroupsMissing`)."""
        return not os.path.isdir(self._dir(mount, ns))

    def task_exists(self, ns: str, task: str) -> bool:
        return os.path.isdir(self.task_dir(ns, task))

    def task_names(self, ns: str) -> list[str]:
        try:
            # The entries' types come with the listing (cgroupfs fills d_type): no stat per task.
            with os.scandir(self.ns_dir(ns)) as entries:
                return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())
        except FileNotFoundError:
            return []

    def remove_dirs(self, directories: Iterable[str]) -> None:
        for directory in directories:
            try:
                self._rmdir_tree(directory, attempts=5)
            except CgroupError:
                pass

    def _rmdir_tree(self, directory: str, attempts: int = 40) -> None:
        """Remove a cgroup and its sub-cgroups, depth first, retrying while the kernel says EBUSY."""
        try:
            children = [e.path for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return
        for child in children:
            self._rmdir_tree(child, attempts)
        delay = 0.001
        for attempt in range(attempts):
            try:
                os.rmdir(directory)
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or attempt == attempts - 1:
                    raise CgroupError(f"cannot remove cgroup {directory}: {cgroupfs.describe(exc)}") from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    # -- processes -----------------------------------------------------------------------------------------

    def pids(self, ns: str, task: str) -> list[int]:
        """Every process of the task, its sub-cgroups included (a task may create some in v1), in every hierarchy
        the task has a cgroup in: a process that moved itself out of the tracker's cgroup (in v1 an owner may write
        another cgroup.procs of theirs) is still the task's where it stays in the task's cgroup of another."""
        found = cgroupfs.procs_under(self.task_dir(ns, task))
        for mount in self.all_hierarchies[1:]:
            found.extend(p for p in cgroupfs.procs_under(self.task_dir(ns, task, mount)) if p not in found)
        return found

    def populated(self, ns: str, task: str) -> bool:
        events = self.events_file(ns, task)
        if events is not None and cgroupfs.keyed(events, "populated"):
            return True
        if events is None and cgroupfs.procs_under(self.task_dir(ns, task)):
            return True
        # Empty in the tracker: the task's cgroups in the other hierarchies may still hold a process of it.
        return any(cgroupfs.procs_under(self.task_dir(ns, task, m)) for m in self.all_hierarchies[1:])

    def enabled_controllers(self, ns: str) -> set[str]:
        """Controllers whose limits a task of ``ns`` can carry."""
        v2 = self.tracker.version == 2 and self.mode == "v2"
        enabled = cgroupfs.enabled_controllers(self.ns_dir(ns)) if v2 else set()
        enabled |= {c for c, m in self.on_demand.items() if os.path.isdir(self.ns_dir(ns, m))}
        return enabled | set(self.controllers)

    def v2_available_controllers(self, directory: str) -> set[str]:
        return cgroupfs.words(f"{directory}/cgroup.controllers")
