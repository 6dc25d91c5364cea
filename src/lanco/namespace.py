"""Namespaces: ``init``, ``release``, access checks and the list of a namespace's tasks."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import time

from lanco.cgroups.backend import Backend, open_backend
from lanco.cgroups.detect import MODES, natural_mode, read_mounts
from lanco.config import (
    DEFAULT_CGROUP_BASE,
    NamespaceConfig,
    load_config,
    system_log_dir,
    system_state_dir,
)
from lanco.errors import (
    LancoError,
    NamespaceExists,
    NamespaceMissing,
    PermissionDenied,
    StateError,
    StillRunning,
    UsageError,
)
from lanco.names import check_namespace_name
from lanco.privileges import user_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Unpack

    from lanco.record import TaskRecord
    from lanco.runopts import RunOptions
    from lanco.task import Task


def _env_mode(mode: str | None) -> str | None:
    mode = mode or os.environ.get("LANCO_CGROUP_MODE") or None
    if mode is not None and mode not in MODES:
        raise UsageError(f"invalid cgroup mode {mode!r}: expected one of {', '.join(MODES)}")
    return mode


def _env_base(base: str | None) -> str:
    base = base or os.environ.get("LANCO_CGROUP_BASE") or DEFAULT_CGROUP_BASE
    parts = [p for p in base.split("/") if p]
    if not parts or any(p in (".", "..") or p.startswith(".") for p in parts) or any(c.isspace() for c in base):
        raise UsageError(f"invalid cgroup base {base!r}: an absolute path of plain names")
    return "/" + "/".join(parts)


class Namespace:
    """A named group of tasks owned by one user; the entry point of the Python API.

    >>> ns = Namespace("testns")
    >>> ns.run("first-task", ["openssl", "speed", "aes"])
    """

    def __init__(self, name: str, *, cgroup_mode: str | None = None) -> None:
        self.name = check_namespace_name(name)
        self.config = load_config(name)
        forced = _env_mode(cgroup_mode)
        if forced is not None and forced != self.config.mode:
            raise UsageError(f"namespace {name} was initialised in cgroup mode {self.config.mode}, "
                             f"not {forced}")
        self._backend: Backend | None = None

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            if self.config.tracker == "systemd":
                from lanco.cgroups.systemd import open_systemd_backend

                self._backend = open_systemd_backend(self.config.mode, self.config.cgroup_base,
                                                     owner_uid=self.config.owner_uid,
                                                     owner_gid=self.config.owner_gid,
                                                     group_access=self.config.group_access)
            else:
                self._backend = open_backend(self.config.mode, self.config.cgroup_base, self.config.tracker,
                                             mount_named=os.geteuid() == 0)
        return self._backend

    # -- access --------------------------------------------------------------------------------------------

    def authorize(self) -> None:
        """Refuse a caller who is neither root, the owner, nor (with ``init -g``) in the namespace's group."""
        euid = os.geteuid()
        if euid in (0, self.config.owner_uid):
            return
        if self.config.group_access and (self.config.owner_gid == os.getegid()
                                         or self.config.owner_gid in os.getgroups()):
            return
        raise PermissionDenied(f"namespace {self.name} belongs to user {user_name(self.config.owner_uid)}")

    @property
    def acting_for_owner(self) -> tuple[int, int] | None:
        """Owner ids to hand files and cgroups to when root acts in someone else's namespace."""
        if os.geteuid() == 0 and self.config.owner_uid != 0:
            return (self.config.owner_uid, self.config.owner_gid)
        return None

    # -- creation and removal ------------------------------------------------------------------------------

    @classmethod
    def init(cls, name: str, *, user: str | None = None, group: str | None = None,
             cgroup_mode: str | None = None, cgroup_base: str | None = None, take_over: bool = False) -> Namespace:
        """Create the namespace for ``user``/``group`` (root; a user's own where systemd delegates to them);
        idempotent for the same owner. ``take_over``: see :func:`lanco.placement.prepare_base_parent`."""
        from lanco import placement

        check_namespace_name(name)
        if os.geteuid() != 0:
            placement.init_own_namespace(name, user=user, group=group, mode=_env_mode(cgroup_mode),
                                         base=_env_base(cgroup_base))
            return cls(name)
        uid, gid, group_access = _resolve_owner(user, group)
        mode = _env_mode(cgroup_mode) or natural_mode(read_mounts())
        base = _env_base(cgroup_base)
        try:
            existing: NamespaceConfig | None = load_config(name)
        except NamespaceMissing:
            existing = None
        if existing is not None:
            if (existing.owner_uid, existing.owner_gid) != (uid, gid):
                raise NamespaceExists(f"namespace {name} is already initialised for user "
                                      f"{user_name(existing.owner_uid)}")
            if existing.mode != mode or existing.cgroup_base != base:
                raise NamespaceExists(f"namespace {name} is already initialised in cgroup mode "
                                      f"{existing.mode} with base {existing.cgroup_base}")
            config = existing
        else:
            # An owner other than root starts processes outside the unified tree's delegated part, where the
            # kernel forbids the move: such a namespace tracks its tasks in lanco's named v1 hierarchy.
            tracker = placement.tracker_kind(mode, uid, read_mounts())
            config = NamespaceConfig(name=name, owner_uid=uid, owner_gid=gid, group_access=group_access,
                                     mode=mode, tracker=tracker, cgroup_base=base,
                                     state_dir=system_state_dir(name), log_dir=system_log_dir(name),
                                     created=time.time())
        backend = open_backend(config.mode, config.cgroup_base, config.tracker, mount_named=True)
        placement.prepare_base_parent(backend, take_over)
        made_dirs: list[str] = []
        made_cgroups: list[str] = []
        try:
            made_cgroups = backend.create_namespace(name, uid, gid, group_access)
            dir_mode = 0o2770 if group_access else 0o700
            for directory, owner, mode_bits in ((config.state_dir, (0, 0), 0o755),
                                                (config.tasks_dir, (uid, gid), dir_mode),
                                                (config.log_dir, (uid, gid), dir_mode)):
                if not os.path.isdir(directory):
                    os.makedirs(directory, exist_ok=True)
                    made_dirs.append(directory)
                st = os.lstat(directory)
                if os.path.islink(directory):
                    raise PermissionDenied(f"refusing to use {directory}: it is a symbolic link")
                if (st.st_uid, st.st_gid) != owner:
                    os.chown(directory, *owner)
                os.chmod(directory, mode_bits)
            if existing is None:
                config.save()
        except BaseException:
            import shutil

            for directory in reversed(made_dirs):
                shutil.rmtree(directory, ignore_errors=True)
            backend.remove_dirs(reversed(made_cgroups))
            raise
        return cls(name)

    def release(self, *, dry_run: bool = False) -> list[str]:
        """Destroy the namespace (cgroups, records, configuration; logs stay). It must have no running task.
        Root releases any namespace; a user, the namespace of their own that they made with ``init``."""
        self.authorize()
        running = [t.name for t in self.tasks() if t.is_active()]
        if running:
            raise StillRunning(f"namespace {self.name} has running tasks: {', '.join(running)}")
        if os.geteuid() != 0 and not self._callers_own():
            raise PermissionDenied(f"release of namespace {self.name} needs root")
        backend = self.backend
        targets = [backend.ns_dir(self.name, m) for m in backend.all_hierarchies
                   if os.path.isdir(backend.ns_dir(self.name, m))]
        targets.extend(backend.slice_dirs(self.name))
        targets.append(self.config.state_dir)
        if dry_run:
            return targets
        for task in self.tasks():
            with contextlib.suppress(StateError):  # a damaged record goes with the rest
                task.settle()
        backend.remove_namespace(self.name)
        self._remove_state()
        return targets

    def _callers_own(self) -> bool:
        """A namespace the caller made unprivileged (state under their home), as opposed to one root made."""
        return self.config.owner_uid == os.geteuid() and self.config.state_dir != system_state_dir(self.name)

    def _remove_state(self) -> None:
        """Records and configuration go; the logs stay, also where they live inside the state directory."""
        import shutil

        state, logs = self.config.state_dir, os.path.normpath(self.config.log_dir)
        if os.path.dirname(logs) != os.path.normpath(state):
            shutil.rmtree(state)
            return
        for entry in os.listdir(state):
            path = os.path.join(state, entry)
            if os.path.normpath(path) == logs:
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)

    # -- tasks ---------------------------------------------------------------------------------------------

    def task(self, name: str) -> Task:
        from lanco.task import Task

        self.authorize()
        return Task(self, name)

    def task_names(self) -> list[str]:
        """Every task with a cgroup or a record, running or finished."""
        names = set(self.backend.task_names(self.name))
        try:
            names.update(e for e in os.listdir(self.config.tasks_dir) if not e.startswith("."))
        except OSError:
            pass
        return sorted(names)

    def tasks(self) -> list[Task]:
        from lanco.task import Task

        self.authorize()
        return [Task(self, n) for n in self.task_names()]

    def tracked_tasks(self) -> list[Task]:
        """Every task with a cgroup: running, frozen, or ending (a caller that reads the records tells them apart
        without a look at each cgroup first)."""
        from lanco.task import Task

        self.authorize()
        return [Task(self, n) for n in self.backend.task_names(self.name)]

    def running_tasks(self) -> list[Task]:
        from lanco.task import Task

        self.authorize()
        backend = self.backend
        return [Task(self, n) for n in backend.task_names(self.name) if backend.populated(self.name, n)]

    def stop_tasks(self, names: Sequence[str] | None = None, *, timeout: float | None = None,
                   stop_signal: int | None = None) -> dict[str, TaskRecord | LancoError]:
        """Stop the tasks ``names`` (None: every active task) together, as :meth:`lanco.task.Task.stop` stops one:
        all get their stop signal before any is awaited. Returns each name's final record, or the error it met
        (NotRunning for a task that was not running)."""
        from lanco.privileges import acting_as
        from lanco.task import Task, stop_together

        self.authorize()
        targets = [Task(self, n) for n in names] if names is not None else \
            [t for t in self.tasks() if _maybe_active(t)]
        owner = self.acting_for_owner
        if owner is None:
            return stop_together(targets, timeout, stop_signal)
        _ = self.backend  # opened, and a named hierarchy mounted, while still root
        with acting_as(owner):
            return stop_together(targets, timeout, stop_signal)

    def run(self, task: str, argv: Sequence[str], **options: Unpack[RunOptions]) -> Task:
        """Start ``argv`` as ``task``; the options (limits, timeout, restart, environment, ...) are those of
        :class:`lanco.runopts.RunOptions`, as for :meth:`lanco.task.Task.start`."""
        from lanco.task import Task

        self.authorize()
        handle = Task(self, task)
        handle.start(list(argv), **options)
        return handle


def _maybe_active(task: Task) -> bool:
    """Whether ``stop --all`` must stop ``task``: active, or of a state that cannot be read (then its stop says
    what it meets, in a line of its own, rather than one unreadable task keeping every other from its stop)."""
    try:
        return task.is_active()
    except (LancoError, OSError):
        return True


def _resolve_owner(user: str | None, group: str | None) -> tuple[int, int, bool]:
    try:
        entry = pwd.getpwnam(user) if user is not None else pwd.getpwuid(os.getuid())
    except KeyError:
        if user is not None and user.isdigit():
            return int(user), _resolve_group(group, int(user)), group is not None
        raise UsageError(f"unknown user {user!r}") from None
    return entry.pw_uid, _resolve_group(group, entry.pw_gid), group is not None


def _resolve_group(group: str | None, default: int) -> int:
    if group is None:
        return default
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if group.isdigit():
            return int(group)
        raise UsageError(f"unknown group {group!r}") from None
