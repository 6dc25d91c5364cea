"""One interface over the three cgroup modes.

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
from lanco.cgroups.detect import (
    NAMED_HIERARCHY,
    CgroupMount,
    controller_mounts,
    named_mount,
    on_demand_mounts,
    read_mounts,
    unified_mount,
)
from lanco.errors import CgroupError, CgroupsMissing, LimitUnavailable, PermissionDenied
from lanco.procfs import unified_cgroup
from lanco.values import FrozenValue, Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from lanco.limits import Limits

MONITORS = ".monitors"
TRACKERS = ("unified", "named")
# Files a delegatee must own to manage a subtree, when the kernel does not publish the list itself.
_V2_DELEGATE_FALLBACK = ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control")
_V1_DELEGATE = ("cgroup.procs", "tasks", "notify_on_release", "cgroup.clone_children")
_V2_WANTED_CONTROLLERS = ("cpu", "cpuset", "memory", "pids", "io")


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


class Backend:
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
        return [os.path.join(self.task_dir(ns, task, m), "cgroup.procs") for m in joined]

    def monitor_join_files(self, ns: str) -> list[str]:
        return [os.path.join(self._dir(m, ns, MONITORS), "cgroup.procs") for m in self.hierarchies]

    def task_dirs(self, ns: str, task: str) -> list[str]:
        """Every directory of the task, the tracker's last: it is the name's lock and goes last."""
        return [self.task_dir(ns, task, m) for m in self.all_hierarchies[1:]] + [self.task_dir(ns, task)]

    def events_file(self, ns: str, task: str) -> str | None:
        """The v2 ``cgroup.events`` whose ``populated`` can be polled, or None when tracking is v1."""
        if self.tracker.version != 2:
            return None
        return os.path.join(self.task_dir(ns, task), "cgroup.events")

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

    def v2_available_controllers(self, directory: str) -> set[str]:
        return cgroupfs.words(os.path.join(directory, "cgroup.controllers"))

    def enabled_controllers(self, ns: str) -> set[str]:
        """Controllers whose limits a task of ``ns`` can carry."""
        v2 = self.tracker.version == 2 and self.mode == "v2"
        enabled = cgroupfs.enabled_controllers(self.ns_dir(ns)) if v2 else set()
        enabled |= {c for c, m in self.on_demand.items() if os.path.isdir(self.ns_dir(ns, m))}
        return enabled | set(self.controllers)

    def namespace_exists(self, ns: str) -> bool:
        return os.path.isdir(self.ns_dir(ns))

    def _namespace_gone(self, ns: str, mount: CgroupMount) -> bool:
        """Whether the namespace's directory is missing in ``mount``: asked only once a file of it was not found,
        so that no command pays a look on its way (a boot leaves cgroupfs empty, see :class:`CgroupsMissing`)."""
        return not os.path.isdir(self._dir(mount, ns))

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

    def task_exists(self, ns: str, task: str) -> bool:
        return os.path.isdir(self.task_dir(ns, task))

    def task_names(self, ns: str) -> list[str]:
        try:
            # The entries' types come with the listing (cgroupfs fills d_type): no stat per task.
            with os.scandir(self.ns_dir(ns)) as entries:
                return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())
        except FileNotFoundError:
            return []

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
                      cwd: str | None, prepare: Callable[[], None] = lambda: None) -> Callable[[], None]:
        """Write the task's limits (``prepare``), then start its monitor detached (it joins its cgroups itself);
        the systemd kind makes a scope around the monitor first. Returns what finishes the start once the monitor
        has reported (the detaching child is reaped then, so that waiting for it and for the report overlap)."""
        from lanco.spawn import begin_detached, reap_intermediate

        prepare()
        pid = begin_detached(argv, env, fds, cwd, subreaper=True, root_joins=self.monitor_join_files(ns))
        return lambda: reap_intermediate(pid, argv[0])

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
        found = self._procs_under(self.task_dir(ns, task))
        for mount in self.all_hierarchies[1:]:
            found.extend(p for p in self._procs_under(self.task_dir(ns, task, mount)) if p not in found)
        return found

    @staticmethod
    def _procs_under(top: str) -> list[int]:
        found: list[int] = []
        for directory in cgroupfs.walk_dirs(top):
            try:
                found.extend(int(p) for p in cgroupfs.read(os.path.join(directory, "cgroup.procs")).split())
            except (FileNotFoundError, ProcessLookupError):
                continue
            except OSError as exc:
                # ENODEV: the monitor removed the cgroup between our open and read; it had no process left.
                if exc.errno != errno.ENODEV:
                    raise
        return found

    def populated(self, ns: str, task: str) -> bool:
        events = self.events_file(ns, task)
        if events is not None and cgroupfs.keyed(events, "populated"):
            return True
        if events is None and self._procs_under(self.task_dir(ns, task)):
            return True
        # Empty in the tracker: the task's cgroups in the other hierarchies may still hold a process of it.
        return any(self._procs_under(self.task_dir(ns, task, m)) for m in self.all_hierarchies[1:])

    def kill(self, ns: str, task: str) -> None:
        """SIGKILL every process of the task, including those forked while killing."""
        kill_file = os.path.join(self.task_dir(ns, task), "cgroup.kill")
        if os.path.exists(kill_file):
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
            cgroupfs.write(os.path.join(pids_dir, "pids.max"), "0")
        except OSError:
            pass

    def freezable(self, ns: str, task: str) -> bool:
        """Whether the mode can freeze this task (v2 cgroup.freeze, or a v1 freezer hierarchy)."""
        if self.tracker.version == 2:
            return os.path.exists(os.path.join(self.task_dir(ns, task), "cgroup.freeze"))
        return self.controller_dir("freezer", ns, task) is not None

    def frozen(self, ns: str, task: str) -> bool:
        """True while the task is frozen (or freezing)."""
        if self.tracker.version == 2:
            return cgroupfs.keyed(os.path.join(self.task_dir(ns, task), "cgroup.events"), "frozen") == 1 or \
                cgroupfs.single(os.path.join(self.task_dir(ns, task), "cgroup.freeze")) == 1
        freezer = self.controller_dir("freezer", ns, task)
        if freezer is None:
            return False
        try:
            return cgroupfs.read_attribute(os.path.join(freezer, "freezer.state")).strip() in ("FROZEN", "FREEZING")
        except OSError:
            return False

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
        while self._freeze_state(ns, task) != ("frozen" if frozen else "thawed"):
            if not self.task_exists(ns, task):
                return  # the task ended meanwhile (a thaw lets a stop signal act) and its cgroup is gone
            if time.monotonic() >= deadline:
                raise CgroupError(f"task {task} is still {'freezing' if frozen else 'thawing'} after "
                                  f"{settle_timeout:g}s (a process in uninterruptible sleep?)")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _freeze_state(self, ns: str, task: str) -> str:
        """``frozen``, ``thawed`` or ``changing``, as the kernel reports it."""
        if self.tracker.version == 2:
            events = cgroupfs.keyed(os.path.join(self.task_dir(ns, task), "cgroup.events"), "frozen")
            wanted = cgroupfs.single(os.path.join(self.task_dir(ns, task), "cgroup.freeze"))
            if events == 1 and wanted == 1:
                return "frozen"
            return "thawed" if wanted == 0 else "changing"
        freezer = self.controller_dir("freezer", ns, task)
        try:
            state = cgroupfs.read(os.path.join(freezer, "freezer.state")).strip() if freezer else "THAWED"
        except OSError:
            state = "THAWED"
        return {"FROZEN": "frozen", "THAWED": "thawed"}.get(state, "changing")

    def freeze_control(self, ns: str, task: str) -> tuple[str, str, str] | None:
        """The file that freezes the task, with the values that freeze and thaw it; None without a freezer."""
        if self.tracker.version == 2:
            return os.path.join(self.task_dir(ns, task), "cgroup.freeze"), "1", "0"
        freezer = self.controller_dir("freezer", ns, task)
        if freezer is None:
            return None
        return os.path.join(freezer, "freezer.state"), "FROZEN", "THAWED"

    def kill_file(self, ns: str, task: str) -> str | None:
        """The task's ``cgroup.kill`` (v2, 5.14+), or None where killing needs a signal per process."""
        path = os.path.join(self.task_dir(ns, task), "cgroup.kill")
        return path if self.tracker.version == 2 and os.path.exists(path) else None

    def _set_frozen(self, ns: str, task: str, frozen: bool) -> bool:
        control = self.freeze_control(ns, task)
        if control is None:
            return False
        path, freeze, thaw = control
        try:
            cgroupfs.write(path, freeze if frozen else thaw)
        except OSError:
            return False
        if frozen and self.tracker.version != 2:
            deadline = time.monotonic() + 0.2
            while time.monotonic() < deadline and cgroupfs.read(path).strip() != "FROZEN":
                time.sleep(0.001)
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

    # -- limits and figures --------------------------------------------------------------------------------

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
        from lanco.limits import SPECS

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
        from lanco.limits import SPECS

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
        from lanco.limits import SPECS

        by_controller: dict[str, dict[str, Any]] = {}
        for key, value in limits.items():
            by_controller.setdefault(SPECS[key].controller, {})[key] = value
        for controller, wanted in by_controller.items():
            directory, v2 = self._limit_dir(controller, ns, task)
            controllers.apply(controllers.LimitTarget(directory, v2, task, self.mode), controller, wanted)

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
        if self.tracker.version == 2:
            sources.append(StatSource("cpu_usec", os.path.join(self.task_dir(ns, task), "cpu.stat"),
                                      "usage_usec"))
        elif (cpuacct := self.controller_dir("cpuacct", ns, task)) is not None:
            sources.append(StatSource("cpu_nsec", os.path.join(cpuacct, "cpuacct.usage"), "-"))
        if memory is not None:
            if self._is_v2_controller("memory"):
                sources.append(StatSource("memory_peak_bytes", os.path.join(memory, "memory.peak"), "-"))
                sources.append(StatSource("oom_kills", os.path.join(memory, "memory.events"), "oom_kill"))
            else:
                sources.append(StatSource("memory_peak_bytes",
                                          os.path.join(memory, "memory.max_usage_in_bytes"), "-"))
                sources.append(StatSource("oom_kills", os.path.join(memory, "memory.oom_control"),
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
            figures.memory_bytes = cgroupfs.single(os.path.join(memory, name))
        return figures

    # -- views ---------------------------------------------------------------------------------------------
    # Read-only figures for ls, status, dump and top. Each reads a fixed handful of the task's own files and
    # starts no process, so that a view of n tasks costs O(n) reads. A task of "" means the namespace itself.

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
        parts = (ns, task) if task else (ns,)
        if self.tracker.version == 2:
            return cgroupfs.keyed(os.path.join(self._dir(self.tracker, *parts), "cpu.stat"), "usage_usec")
        cpuacct = self._view_dir("cpuacct", ns, task)
        if cpuacct is None:
            return None
        nsec = cgroupfs.single(os.path.join(cpuacct[0], "cpuacct.usage"))
        return None if nsec is None else nsec // 1000

    def memory_current_bytes(self, ns: str, task: str) -> int | None:
        where = self._view_dir("memory", ns, task)
        if where is None:
            return None
        return cgroupfs.single(os.path.join(where[0], "memory.current" if where[1] else "memory.usage_in_bytes"))

    def oom_kills(self, ns: str, task: str) -> int | None:
        """Processes of the task the kernel's OOM killer took so far (``oom_kill`` of v2 ``memory.events``, of v1
        ``memory.oom_control``); None where the mode has no memory controller for the task."""
        where = self._view_dir("memory", ns, task)
        if where is None:
            return None
        return cgroupfs.keyed(os.path.join(where[0], "memory.events" if where[1] else "memory.oom_control"), "oom_kill")

    def memory_limit_bytes(self, ns: str, task: str) -> int | None:
        """The hard memory limit of the task, or None when it has none (or the mode cannot tell)."""
        where = self._view_dir("memory", ns, task)
        if where is None:
            return None
        return cgroupfs.limit_value(os.path.join(where[0], "memory.max" if where[1] else "memory.limit_in_bytes"))

    def pressure(self, ns: str, task: str) -> dict[str, float | None] | None:
        """PSI ``avg10`` of the task's cgroup, in percent, keyed ``cpu_some``, ``cpu_full``, ``memory_some``,
        ``memory_full``, ``io_some``, ``io_full``; None when the task is tracked in v1 (no PSI there)."""
        if self.tracker.version != 2:
            return None
        directory = self.task_dir(ns, task) if task else self.ns_dir(ns)
        found: dict[str, float | None] = {}
        for resource in ("cpu", "memory", "io"):
            lines = self._pressure_lines(os.path.join(directory, f"{resource}.pressure"))
            for kind in ("some", "full"):
                found[f"{resource}_{kind}"] = lines.get(kind)
        return found

    def limits_in_force(self, ns: str, task: str) -> dict[str, int]:
        """The limits the kernel enforces on the task now, read from its cgroup files; unlimited ones are left
        out. Keys carry their unit: memory_max_bytes, memory_high_bytes, memory_swap_max_bytes, pids_max,
        cpu_quota_usec with cpu_period_usec (those the limits table marks ``in_force``)."""
        from lanco.cgroups import controllers

        found: dict[str, int] = {}
        for controller in ("memory", "pids", "cpu"):
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


_V1_NAMES = {"io": "blkio"}
"""Controllers v1 calls otherwise (cgroup v2 names are lanco's own)."""
def ensure_named_mount(mounts: list[CgroupMount]) -> CgroupMount:
    """Mount lanco's named v1 hierarchy where missing (root only); it has no controllers of its own."""
    existing = named_mount(mounts)
    if existing is not None:
        return existing
    target = named_mount_point()
    os.makedirs(target, exist_ok=True)
    from lanco.spawn import mount_named_hierarchy

    failure = mount_named_hierarchy(NAMED_HIERARCHY, target)
    if failure:
        raise CgroupError(f"cannot mount the named cgroup hierarchy name={NAMED_HIERARCHY} on {target}: "
                          f"{failure}")
    mount = named_mount(read_mounts())
    if mount is None:
        raise CgroupError(f"mounted name={NAMED_HIERARCHY} on {target} but cannot find it in mountinfo")
    return mount


def named_mount_point() -> str:
    """Where lanco mounts its named hierarchy: beside the others where /sys/fs/cgroup is a tmpfs, else in /run."""
    return "/sys/fs/cgroup/lanco" if _is_tmpfs_parent("/sys/fs/cgroup") else "/run/lanco/cgroup"


def unmounted_named_hierarchy() -> CgroupMount:
    """lanco's named hierarchy as a boot leaves it, unmounted (only root mounts it: ``restore``, or any command of
    root's): a tracker in which every namespace's cgroups read as gone. Views then show the records, and a run
    meets ENOENT where it makes the task's cgroup and says the namespace's cgroups are missing, rather than every
    command failing on the missing mount."""
    return CgroupMount(named_mount_point(), "/", 1, frozenset(), NAMED_HIERARCHY)


def _is_tmpfs_parent(path: str) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4 and fields[4] == path:
                return " - tmpfs " in line
    return False


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
        named = ensure_named_mount(mounts) if mount_named else named_mount(mounts)
        tracker = unmounted_named_hierarchy() if named is None else named
    if mode == "v2":
        return Backend(mode, base, tracker, {})
    if not v1:
        raise CgroupError(f"cgroup mode {mode} needs v1 controller hierarchies, and none is mounted")
    return Backend(mode, base, tracker, v1, on_demand_mounts(mounts))
