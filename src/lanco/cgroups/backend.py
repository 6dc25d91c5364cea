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
import select
import signal
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from lanco.cgroups.detect import (
    NAMED_HIERARCHY,
    CgroupMount,
    controller_mounts,
    named_mount,
    read_mounts,
    unified_mount,
)
from lanco.errors import CgroupError, LimitUnavailable, PermissionDenied

MONITORS = ".monitors"
TRACKERS = ("unified", "named")
# Files a delegatee must own to manage a subtree, when the kernel does not publish the list itself.
_V2_DELEGATE_FALLBACK = ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control")
_V1_DELEGATE = ("cgroup.procs", "tasks", "notify_on_release", "cgroup.clone_children")
_V2_WANTED_CONTROLLERS = ("cpu", "memory", "pids", "io")


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read()


def _keyed(path: str, key: str) -> int | None:
    """The value of ``key`` in a flat-keyed cgroup file (``key value`` lines), or None."""
    try:
        for line in _read(path).splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def _single(path: str) -> int | None:
    try:
        text = _read(path).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@dataclass
class TaskFigures:
    """Live figures of one task's cgroup; None where the mode has no source for a figure."""

    cpu_usec: int | None = None
    memory_bytes: int | None = None
    memory_peak_bytes: int | None = None
    oom_kills: int | None = None
    pids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class StatSource:
    """Where the monitor reads a final figure: ``field`` of a keyed file, or ``-`` for a one-value file."""

    key: str
    path: str
    field: str


class Backend:
    def __init__(self, mode: str, base: str, tracker: CgroupMount,
                 controllers: dict[str, CgroupMount]) -> None:
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

    # -- paths ---------------------------------------------------------------------------------------------

    def _dir(self, mount: CgroupMount, *parts: str) -> str:
        relative = self.base
        if mount.root != "/" and os.path.commonpath([relative, mount.root]) == mount.root:
            relative = os.path.relpath(relative, mount.root).removeprefix(".")
        return os.path.join(mount.path, relative.lstrip("/"), *parts)

    def base_dir(self, mount: CgroupMount) -> str:
        return self._dir(mount)

    def ns_dir(self, ns: str, mount: CgroupMount | None = None) -> str:
        return self._dir(mount or self.tracker, ns)

    def task_dir(self, ns: str, task: str, mount: CgroupMount | None = None) -> str:
        return self._dir(mount or self.tracker, ns, task)

    def controller_dir(self, controller: str, ns: str, task: str) -> str | None:
        mount = self.controllers.get(controller)
        return None if mount is None else self.task_dir(ns, task, mount)

    def join_files(self, ns: str, task: str) -> list[str]:
        """The ``cgroup.procs`` files a process writes ``0`` into to become part of the task."""
        return [os.path.join(self.task_dir(ns, task, m), "cgroup.procs") for m in self.hierarchies]

    def monitor_join_files(self, ns: str) -> list[str]:
        return [os.path.join(self._dir(m, ns, MONITORS), "cgroup.procs") for m in self.hierarchies]

    def task_dirs(self, ns: str, task: str) -> list[str]:
        """Every directory of the task, the tracker's last: it is the name's lock and goes last."""
        return [self.task_dir(ns, task, m) for m in self.hierarchies[1:]] + [self.task_dir(ns, task)]

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
        if os.geteuid() == 0 or self.tracker.version != 2:
            return None
        own = own_v2_cgroup()
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
        try:
            return set(_read(os.path.join(directory, "cgroup.controllers")).split())
        except OSError:
            return set()

    def enabled_controllers(self, ns: str) -> set[str]:
        """Controllers whose limits a task of ``ns`` can carry."""
        if self.tracker.version == 2 and self.mode == "v2":
            try:
                enabled = set(_read(os.path.join(self.ns_dir(ns), "cgroup.subtree_control")).split())
            except OSError:
                enabled = set()
        else:
            enabled = set()
        return enabled | set(self.controllers)

    def namespace_exists(self, ns: str) -> bool:
        return os.path.isdir(self.ns_dir(ns))

    def create_namespace(self, ns: str, uid: int, gid: int, group_access: bool) -> list[str]:
        """Create (or complete) the namespace's cgroups in every hierarchy; returns the directories made."""
        made: list[str] = []
        try:
            for mount in self.hierarchies:
                base = self.base_dir(mount)
                for directory in (base, self._dir(mount, ns), self._dir(mount, ns, MONITORS)):
                    try:
                        os.mkdir(directory, 0o755)
                        made.append(directory)
                    except FileExistsError:
                        pass
                if mount.version == 2 and self.mode == "v2":
                    self._enable_v2_controllers(base, self._dir(mount, ns))
                if mount.version == 1 and "cpuset" in mount.controllers:
                    continue
                self._delegate(mount, self._dir(mount, ns), uid, gid, group_access)
                self._delegate(mount, self._dir(mount, ns, MONITORS), uid, gid, group_access)
        except OSError as exc:
            self.remove_dirs(reversed(made))
            raise CgroupError(f"cannot create the cgroups of namespace {ns}: {_describe(exc)}") from exc
        return made

    def _enable_v2_controllers(self, base: str, ns_dir: str) -> None:
        for directory in (base, ns_dir):
            wanted = self.v2_available_controllers(directory) & set(_V2_WANTED_CONTROLLERS)
            if wanted:
                _write(os.path.join(directory, "cgroup.subtree_control"),
                       " ".join(f"+{c}" for c in sorted(wanted)))

    def _delegate(self, mount: CgroupMount, directory: str, uid: int, gid: int, group_access: bool) -> None:
        if mount.version == 2:
            try:
                names = tuple(_read("/sys/kernel/cgroup/delegate").split())
            except OSError:
                names = _V2_DELEGATE_FALLBACK
        else:
            names = _V1_DELEGATE
        mode_dir = 0o775 if group_access else 0o755
        os.chown(directory, uid, gid)
        os.chmod(directory, mode_dir)
        for name in names:
            path = os.path.join(directory, name)
            if os.path.exists(path):
                os.chown(path, uid, gid)
                if group_access:
                    os.chmod(path, os.stat(path).st_mode | 0o020)

    def remove_namespace(self, ns: str) -> list[str]:
        """Remove the namespace's cgroups (it must hold no task); returns what was removed."""
        removed: list[str] = []
        for mount in self.hierarchies:
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
            names = os.listdir(self.ns_dir(ns))
        except FileNotFoundError:
            return []
        return sorted(n for n in names if not n.startswith(".")
                      and os.path.isdir(os.path.join(self.ns_dir(ns), n)))

    def create_task(self, ns: str, task: str, owner: tuple[int, int] | None = None) -> None:
        """Create the task's cgroups, the tracker's first: FileExistsError there means the name is taken."""
        tracker_dir = self.task_dir(ns, task)
        os.mkdir(tracker_dir)
        made = [tracker_dir]
        try:
            for mount in self.hierarchies[1:]:
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
                    _chown_tree(directory, *owner)
        except OSError as exc:
            self.remove_dirs(reversed(made))
            raise CgroupError(f"cannot create the cgroups of task {task}: {_describe(exc)}") from exc

    def remove_task(self, ns: str, task: str, attempts: int = 40) -> None:
        for directory in self.task_dirs(ns, task):
            self._rmdir_tree(directory, attempts)

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
                    raise CgroupError(f"cannot remove cgroup {directory}: {_describe(exc)}") from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    # -- processes -----------------------------------------------------------------------------------------

    def pids(self, ns: str, task: str) -> list[int]:
        """Every process of the task, its sub-cgroups included (a task may create some in v1)."""
        found: list[int] = []
        for directory in _walk_dirs(self.task_dir(ns, task)):
            try:
                found.extend(int(p) for p in _read(os.path.join(directory, "cgroup.procs")).split())
            except (FileNotFoundError, ProcessLookupError):
                continue
        return found

    def populated(self, ns: str, task: str) -> bool:
        events = self.events_file(ns, task)
        if events is not None:
            populated = _keyed(events, "populated")
            return bool(populated)
        return bool(self.pids(ns, task))

    def kill(self, ns: str, task: str) -> None:
        """SIGKILL every process of the task, including those forked while killing."""
        kill_file = os.path.join(self.task_dir(ns, task), "cgroup.kill")
        if os.path.exists(kill_file):
            try:
                _write(kill_file, "1")
                return
            except FileNotFoundError:
                return
        self._brake_forks(ns, task)
        for _ in range(1000):
            if not self.pids(ns, task):
                return
            frozen = self._set_frozen(ns, task, True)
            for pid in self.pids(ns, task):
                try:
                    os.kill(pid, signal.SIGKILL)
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
            _write(os.path.join(pids_dir, "pids.max"), "0")
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
            return _keyed(os.path.join(self.task_dir(ns, task), "cgroup.events"), "frozen") == 1 or \
                _single(os.path.join(self.task_dir(ns, task), "cgroup.freeze")) == 1
        freezer = self.controller_dir("freezer", ns, task)
        if freezer is None:
            return False
        try:
            return _read(os.path.join(freezer, "freezer.state")).strip() in ("FROZEN", "FREEZING")
        except OSError:
            return False

    def set_frozen(self, ns: str, task: str, frozen: bool) -> None:
        """Freeze or thaw the whole task; raises CgroupError where the mode has no freezer."""
        if not self.freezable(ns, task):
            raise LimitUnavailable(f"freezing needs the freezer controller, which cgroup mode {self.mode} "
                                   f"does not provide for namespace {ns}")
        if not self._set_frozen(ns, task, frozen):
            raise CgroupError(f"cannot {'freeze' if frozen else 'thaw'} task {task}")

    def _set_frozen(self, ns: str, task: str, frozen: bool) -> bool:
        if self.tracker.version == 2:
            path = os.path.join(self.task_dir(ns, task), "cgroup.freeze")
            value = "1" if frozen else "0"
        else:
            freezer = self.controller_dir("freezer", ns, task)
            if freezer is None:
                return False
            path = os.path.join(freezer, "freezer.state")
            value = "FROZEN" if frozen else "THAWED"
        try:
            _write(path, value)
        except OSError:
            return False
        if frozen and self.tracker.version != 2:
            deadline = time.monotonic() + 0.2
            while time.monotonic() < deadline and _read(path).strip() != "FROZEN":
                time.sleep(0.001)
        return True

    def wait_empty(self, ns: str, task: str, timeout: float) -> bool:
        """Block until the task's cgroup holds no process (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        events = self.events_file(ns, task)
        if events is not None:
            return _poll_unpopulated(events, deadline)
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
            raise LimitUnavailable(
                f"{option} needs the {controller} controller, which cgroup mode {self.mode} does not provide "
                f"for namespace {ns} (available: {' '.join(sorted(self.enabled_controllers(ns))) or 'none'})")

    def set_memory_max(self, ns: str, task: str, limit: int) -> None:
        directory = self.controller_dir("memory", ns, task)
        if directory is None:
            directory = self.task_dir(ns, task)
        value = "max" if limit < 0 else str(limit)
        if self._is_v2_controller("memory"):
            _write(os.path.join(directory, "memory.max"), value)
            # So an OOM kill takes the whole task rather than one of its processes.
            _write(os.path.join(directory, "memory.oom.group"), "1")
        else:
            _write(os.path.join(directory, "memory.limit_in_bytes"), "-1" if limit < 0 else value)

    def _is_v2_controller(self, controller: str) -> bool:
        mount = self.controllers.get(controller, self.tracker)
        return mount.version == 2

    def stat_sources(self, ns: str, task: str) -> list[StatSource]:
        """Where the monitor reads the final figures before it removes the cgroup."""
        sources: list[StatSource] = []
        if self.tracker.version == 2:
            sources.append(StatSource("cpu_usec", os.path.join(self.task_dir(ns, task), "cpu.stat"),
                                      "usage_usec"))
        elif (cpuacct := self.controller_dir("cpuacct", ns, task)) is not None:
            sources.append(StatSource("cpu_nsec", os.path.join(cpuacct, "cpuacct.usage"), "-"))
        memory = self.controller_dir("memory", ns, task)
        if memory is None and self.mode == "v2" and "memory" in self.enabled_controllers(ns):
            memory = self.task_dir(ns, task)
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
        for source in self.stat_sources(ns, task):
            value = _single(source.path) if source.field == "-" else _keyed(source.path, source.field)
            if source.key == "cpu_usec":
                figures.cpu_usec = value
            elif source.key == "cpu_nsec":
                figures.cpu_usec = None if value is None else value // 1000
            elif source.key == "memory_peak_bytes":
                figures.memory_peak_bytes = value
            elif source.key == "oom_kills":
                figures.oom_kills = value
        memory = self.controller_dir("memory", ns, task)
        if memory is None and self.mode == "v2" and "memory" in self.enabled_controllers(ns):
            memory = self.task_dir(ns, task)
        if memory is not None:
            name = "memory.current" if self._is_v2_controller("memory") else "memory.usage_in_bytes"
            figures.memory_bytes = _single(os.path.join(memory, name))
        return figures


def own_v2_cgroup() -> str | None:
    """This process's cgroup in the unified hierarchy (the ``0::`` line of /proc/self/cgroup)."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        return None
    return None


def _walk_dirs(top: str) -> Iterator[str]:
    yield top
    try:
        entries = list(os.scandir(top))
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_dirs(entry.path)


def _chown_tree(directory: str, uid: int, gid: int) -> None:
    os.chown(directory, uid, gid)
    for entry in os.scandir(directory):
        if entry.is_file(follow_symlinks=False):
            try:
                os.chown(entry.path, uid, gid)
            except OSError:
                pass


def _poll_unpopulated(events: str, deadline: float) -> bool:
    try:
        fd = os.open(events, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLPRI | select.POLLERR)
        while True:
            os.lseek(fd, 0, os.SEEK_SET)
            text = os.read(fd, 4096).decode()
            if "populated 0" in text:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # kernfs raises POLLPRI when the file changes; the read above re-armed it.
            poller.poll(poll_ms(remaining))
    except OSError as exc:
        if exc.errno == errno.ENODEV or exc.errno == errno.ENOENT:
            return True
        raise
    finally:
        os.close(fd)


def poll_ms(seconds: float | None) -> int | None:
    """A poll() timeout: milliseconds, at least 1, capped at an hour (poll takes a C int)."""
    return None if seconds is None else max(1, min(int(seconds * 1000), 3_600_000))


def _describe(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "error")
    return f"{exc.strerror} ({name})" + (f": {exc.filename}" if exc.filename else "")


def ensure_named_mount(mounts: list[CgroupMount]) -> CgroupMount:
    """Mount lanco's named v1 hierarchy where missing (root only); it has no controllers of its own."""
    existing = named_mount(mounts)
    if existing is not None:
        return existing
    target = "/sys/fs/cgroup/lanco"
    if not _is_tmpfs_parent("/sys/fs/cgroup"):
        target = "/run/lanco/cgroup"
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
    v1 = controller_mounts(mounts)
    if tracker_kind == "unified":
        if unified is None:
            raise CgroupError("cgroup mode needs the unified (v2) hierarchy, which is not mounted")
        tracker = unified
    else:
        named = ensure_named_mount(mounts) if mount_named else named_mount(mounts)
        if named is None:
            raise CgroupError(f"the named cgroup hierarchy name={NAMED_HIERARCHY} is not mounted "
                              "(it is mounted by 'init' as root; after a reboot, run init again)")
        tracker = named
    if mode == "v2":
        return Backend(mode, base, tracker, {})
    if not v1:
        raise CgroupError(f"cgroup mode {mode} needs v1 controller hierarchies, and none is mounted")
    return Backend(mode, base, tracker, v1)
