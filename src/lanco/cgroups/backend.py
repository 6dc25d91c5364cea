"""One interface over the three cgroup modes: the :class:`Backend` a namespace works through, and
:func:`open_backend`, which makes the one its recorded mode and tracker call for.

The layout of a namespace's cgroups is described in :mod:`lanco.cgroups.tree`; the systemd route is a subclass,
:class:`lanco.cgroups.systemd.SystemdBackend`.
"""

from __future__ import annotations

import errno
import os

from lanco.cgroups import cgroupfs
from lanco.cgroups.control import TaskControl
from lanco.cgroups.detect import (
    CgroupMount,
    controller_mounts,
    named_mount,
    on_demand_mounts,
    read_mounts,
    unified_mount,
)
from lanco.cgroups.figures import FigureReader
from lanco.cgroups.tree import MONITORS, TRACKERS
from lanco.errors import CgroupError, CgroupsMissing, LimitUnavailable
from lanco.procfs import unified_cgroup
from lanco.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from lanco.options.limits import Limits

__all__ = ["MONITORS", "TRACKERS", "Backend", "NamespaceSetup", "open_backend"]
# Files a delegatee must own to manage a subtree, when the kernel does not publish the list itself.
_V2_DELEGATE_FALLBACK = ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control")
_V1_DELEGATE = ("cgroup.procs", "tasks", "notify_on_release", "cgroup.clone_children")
_V2_WANTED_CONTROLLERS = ("cpu", "cpuset", "memory", "pids", "io")


class NamespaceSetup(Value):
    """What :meth:`Backend.create_namespace` did: the directories it made (an init that fails removes them again)
    and the existing ones it had to set right (owner, mode, controllers handed down). Both empty: all was in place."""

    _fields = ("made", "adjusted")
    __slots__ = _fields
    made: list[str]
    adjusted: list[str]

    def __init__(self, made: list[str], adjusted: list[str]) -> None:
        self.made = made
        self.adjusted = adjusted


class Backend(TaskControl, FigureReader):
    """One namespace base in one cgroup mode: its namespaces and tasks made and removed, monitors started, limits
    checked and written; paths and processes come from :class:`CgroupTree`, kill and freeze from
    :class:`TaskControl`, figures from :class:`FigureReader`."""

    def placement_problem(self, ns: str) -> str | None:
        """Why this process could not move a task into ``ns`` under cgroup v2's rule, or None if it can.

        An unprivileged writer needs write access to ``cgroup.procs`` of the common ancestor of the source
        and destination cgroups, so a namespace chowned by root is out of reach from a login session.
        """
        # A real uid of root (root acting as a namespace's owner) can take root back to place the monitor.
        if os.geteuid() == 0 or os.getuid() == 0 or self.tracker.version != 2:
            return None
        own = unified_cgroup()
        if own is None:
            return None
        target = f"{self.base}/{ns}"
        common = os.path.commonpath([own, target])
        common_dir = os.path.normpath(os.path.join(self.tracker.path, os.path.relpath(common, self.tracker.root)))
        if os.access(os.path.join(common_dir, "cgroup.procs"), os.W_OK):
            return None
        return (f"cannot place tasks into {self.ns_dir(ns)}: cgroup v2 lets an unprivileged user move a process "
                f"only between cgroups whose common ancestor it may write, and this process runs in {own} "
                f"(common ancestor {common_dir} is not yours). Run lanco inside a delegated cgroup "
                "(systemd-run --user --scope -p Delegate=yes lanco ..., a service with Delegate=yes, "
                "loginctl enable-linger for sessions without login), or as root")

    # -- namespaces ----------------------------------------------------------------------------------------

    def create_namespace(self, ns: str, uid: int, gid: int, group_access: bool) -> NamespaceSetup:
        """Create (or complete) the namespace's cgroups in every hierarchy, handed to their owner; says what it made
        and what it set right, so that a restore that finds everything in place can say it changed nothing."""
        made: list[str] = []
        adjusted: list[str] = []
        try:
            for mount in self.all_hierarchies:
                base = self.base_dir(mount)
                for directory in (base, self._dir(mount, ns), self._dir(mount, ns, MONITORS)):
                    try:
                        os.mkdir(directory, 0o755)
                        made.append(directory)
                    except FileExistsError:
                        pass
                    if mount.version == 1 and "cpuset" in mount.controllers:
                        from lanco.cgroups.controllers import cpuset

                        cpuset.make_usable(directory)
                if mount.version == 2 and self.mode == "v2":
                    adjusted.extend(self._enable_v2_controllers(base, self._dir(mount, ns)))
                # In v1 nothing of lanco's moves a process into the namespace cgroup itself: its cgroup.procs and
                # tasks stay root's, so that no task can put itself there (v2's rule needs them delegated).
                for directory, processes in ((self._dir(mount, ns), mount.version == 2),
                                             (self._dir(mount, ns, MONITORS), True)):
                    if self._delegate(mount, directory, uid, gid, group_access, processes) and directory not in made:
                        adjusted.append(directory)
        except OSError as exc:
            self.remove_dirs(reversed(made))
            raise CgroupError(f"cannot create the cgroups of namespace {ns}: {cgroupfs.describe(exc)}") from exc
        return NamespaceSetup(made, list(dict.fromkeys(adjusted)))

    def _enable_v2_controllers(self, base: str, ns_dir: str) -> list[str]:
        """Hand the wanted controllers down to the namespace's tasks; returns the directories that lacked some."""
        changed: list[str] = []
        for directory in (base, ns_dir):
            wanted = self.v2_available_controllers(directory) & set(_V2_WANTED_CONTROLLERS)
            missing = wanted - cgroupfs.enabled_controllers(directory)
            if missing:
                cgroupfs.enable_controllers(directory, sorted(missing))
                changed.append(directory)
        return changed

    def _delegate(self, mount: CgroupMount, directory: str, uid: int, gid: int, group_access: bool,
                  processes: bool = True) -> bool:
        """Give ``directory`` and the files a delegatee needs to the namespace's owner; True if any had to change."""
        if mount.version == 2:
            try:
                names = tuple(cgroupfs.read("/sys/kernel/cgroup/delegate").split())
            except OSError:
                names = _V2_DELEGATE_FALLBACK
        else:
            names = _V1_DELEGATE
        changed = cgroupfs.set_owner(directory, uid, gid, 0o775 if group_access else 0o755)
        for name in names:
            path = os.path.join(directory, name)
            if not os.path.exists(path):
                continue
            if not processes and name in ("cgroup.procs", "tasks"):
                # Taken back from an owner an earlier init gave them to.
                changed |= cgroupfs.set_owner(path, 0, 0, 0o644)
                continue
            changed |= cgroupfs.set_owner(path, uid, gid, None, 0o020 if group_access else 0)
        return changed

    def slice_dirs(self, ns: str) -> list[str]:
        """The namespace's systemd slices outside the base (none but for the systemd kind)."""
        return []

    def remove_namespace(self, ns: str) -> list[str]:
        """Remove the namespace's cgroups (it must hold no task); returns what was removed."""
        removed: list[str] = []
        for mount in self.all_hierarchies:
            ns_dir = self._dir(mount, ns)
            if not os.path.isdir(ns_dir):
                continue
            for name in sorted(os.listdir(ns_dir)):
                child = os.path.join(ns_dir, name)
                if os.path.isdir(child):
                    self._rmdir_tree(child)
            self._rmdir_tree(ns_dir)
            removed.append(ns_dir)
            try:
                os.rmdir(self.base_dir(mount))
            except OSError:
                pass  # other namespaces (or other users of the base) still live there
        return removed

    # -- tasks ---------------------------------------------------------------------------------------------

    def create_task(self, ns: str, task: str, owner: tuple[int, int] | None = None,
                    controllers: Iterable[str] = (), run_id: str = "") -> None:
        """Create the task's cgroups, the tracker's first: FileExistsError there means the name is taken.

        ``controllers`` names the on-demand hierarchies the task's limits need (``cpuset``); a leftover
        directory in one it does not need is removed, so that the task does not join it. ``run_id`` names the
        run (the systemd kind makes a scope per run).
        """
        tracker_dir = self.task_dir(ns, task)
        try:
            os.mkdir(tracker_dir)
        except FileNotFoundError:
            if self._namespace_gone(ns, self.tracker):
                raise CgroupsMissing(ns) from None
            raise
        made = [tracker_dir]
        wanted = [self.on_demand[c] for c in set(controllers) if c in self.on_demand]
        try:
            self.remove_dirs(self.task_dir(ns, task, m) for m in self.on_demand_hierarchies if m not in wanted)
            for mount in [*self.hierarchies[1:], *wanted]:
                directory = self.task_dir(ns, task, mount)
                try:
                    os.mkdir(directory)
                    made.append(directory)
                except FileExistsError:
                    # A leftover of a run whose monitor died before removing it: start from a clean one.
                    self._rmdir_tree(directory)
                    os.mkdir(directory)
                    made.append(directory)
            if owner is not None:
                for directory in made:
                    cgroupfs.chown_tree(directory, *owner)
        except OSError as exc:
            self.remove_dirs(reversed(made))
            if exc.errno == errno.ENOENT and any(self._namespace_gone(ns, m) for m in [*self.hierarchies, *wanted]):
                raise CgroupsMissing(ns) from exc
            raise CgroupError(f"cannot create the cgroups of task {task}: {cgroupfs.describe(exc)}") from exc

    def remove_task(self, ns: str, task: str, attempts: int = 40) -> None:
        for directory in self.task_dirs(ns, task):
            self._rmdir_tree(directory, attempts)

    def start_monitor(self, ns: str, task: str, argv: list[str], env: dict[str, str], fds: dict[int, int],
                      cwd: str | None, prepare: Callable[[], None] = lambda: None, *,
                      description: str | None = None) -> Callable[[], None]:
        """Write the task's limits (``prepare``), then start its monitor detached (it joins its cgroups itself);
        the systemd kind makes a scope around the monitor first, described by ``description`` (``run
        --description``). Returns what finishes the start once the monitor has reported (the detaching child is
        reaped then, so that waiting for it and for the report overlap)."""
        from lanco.launch.spawn import begin_detached, reap_intermediate

        prepare()
        pid = begin_detached(argv, env, fds, cwd, subreaper=True, root_joins=self.monitor_join_files(ns))
        return lambda: reap_intermediate(pid, argv[0])

    # -- limits -----------------------------------------------------------------------------------------

    def require(self, ns: str, controller: str, option: str) -> None:
        if controller not in self.enabled_controllers(ns):
            if self._namespace_gone(ns, self.tracker):
                raise CgroupsMissing(ns)
            raise LimitUnavailable(
                f"{option} needs the {controller} controller, which cgroup mode {self.mode} does not provide "
                f"for namespace {ns} (available: {' '.join(sorted(self.enabled_controllers(ns))) or 'none'})")

    def check_limit(self, ns: str, key: str, option: str) -> None:
        """Refuse limit ``key`` (a ``Limits`` field) where this mode lacks its controller or the kernel its file;
        reads only the namespace's own directories, so nothing needs to exist for the task yet."""
        from lanco.options.limittable import SPECS

        spec = SPECS[key]
        controller, v2_files, v1_files = spec.controller, spec.v2_files, spec.v1_files
        mount = self._limit_mount(controller)
        name = self._controller_name(controller)
        self.require(ns, name, option)
        files = v2_files if mount.version == 2 else v1_files
        if not files:
            raise LimitUnavailable(f"{option} needs {v2_files[0]}, which the v1 {name} controller does not have "
                                   f"(cgroup mode {self.mode}, namespace {ns})")
        directory = self.ns_dir(ns, mount)
        if not any(os.path.exists(os.path.join(directory, f)) for f in files):
            if self._namespace_gone(ns, mount):
                raise CgroupsMissing(ns)
            raise LimitUnavailable(f"{option} needs {' or '.join(files)}, which the {name} controller does not "
                                   f"offer on this host (cgroup mode {self.mode}, namespace {ns})")

    def check_swap_limit(self, ns: str, option: str, with_memory_max: bool) -> None:
        """v1 limits memory plus swap together, so a swap limit there is counted from a memory limit."""
        if self._limit_mount("memory").version == 1 and not with_memory_max:
            raise LimitUnavailable(f"{option} needs -m/--memory-max as well in cgroup mode {self.mode}: the v1 "
                                   "memory controller limits memory and swap together")

    def controllers_for(self, keys: Iterable[str]) -> set[str]:
        """The controllers (as cgroup v2 names them) that limits ``keys`` are written in."""
        from lanco.options.limittable import SPECS

        return {SPECS[key].controller for key in keys}

    def _controller_name(self, controller: str) -> str:
        return controller if self.mode == "v2" else _V1_NAMES.get(controller, controller)

    def _limit_mount(self, controller: str) -> CgroupMount:
        """The hierarchy holding ``controller``'s files: its v1 mount, or else the unified tree."""
        name = _V1_NAMES.get(controller, controller)
        return self.controllers.get(name) or self.on_demand.get(name) or self.tracker

    def _limit_dir(self, controller: str, ns: str, task: str) -> tuple[str, bool]:
        """The task's directory holding ``controller``'s files, and whether they are v2 files."""
        mount = self._limit_mount(controller)
        return self.task_dir(ns, task, mount), mount.version == 2

    def apply_limits(self, ns: str, task: str, limits: Limits) -> None:
        """Write ``limits`` into the task's cgroups, controller by controller in the limits table's order."""
        from lanco.cgroups import controllers
        from lanco.options.limittable import SPECS

        by_controller: dict[str, dict[str, Any]] = {}
        for key, value in limits.items():
            by_controller.setdefault(SPECS[key].controller, {})[key] = value
        for controller, wanted in by_controller.items():
            directory, v2 = self._limit_dir(controller, ns, task)
            controllers.apply(controllers.LimitTarget(directory, v2, task, self.mode), controller, wanted)











_V1_NAMES = {"io": "blkio"}
"""Controllers v1 calls otherwise (cgroup v2 names are lanco's own)."""
def open_backend(mode: str, base: str, tracker_kind: str, mounts: list[CgroupMount] | None = None,
                 *, mount_named: bool = False) -> Backend:
    """The backend for a namespace recorded with ``mode`` and ``tracker_kind`` (``unified`` or ``named``)."""
    mounts = read_mounts() if mounts is None else mounts
    unified = unified_mount(mounts)
    if unified is not None:
        from lanco.cgroups.nsview import namespace_view

        # Inside a cgroup namespace whose cgroupfs was mounted outside it, paths start at the namespace's root.
        unified = namespace_view(unified)
    v1 = controller_mounts(mounts)
    if tracker_kind in ("unified", "systemd"):
        if unified is None:
            raise CgroupError("cgroup mode needs the unified (v2) hierarchy, which is not mounted")
        tracker = unified
    else:
        from lanco.cgroups.namedmount import ensure_named_mount, unmounted_named_hierarchy

        named = ensure_named_mount(mounts) if mount_named else named_mount(mounts)
        tracker = unmounted_named_hierarchy() if named is None else named
    if mode == "v2":
        return Backend(mode, base, tracker, {})
    if not v1:
        raise CgroupError(f"cgroup mode {mode} needs v1 controller hierarchies, and none is mounted")
    return Backend(mode, base, tracker, v1, on_demand_mounts(mounts))
