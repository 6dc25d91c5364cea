"""Namespaces: ``init``, ``release``, access checks and the list of a namespace's tasks."""

from __future__ import annotations

import grp
import os
import time

from lanco import contexts
from lanco.cgroups import open_namespace_backend
from lanco.cgroups.backend import Backend, open_backend
from lanco.cgroups.detect import MODES, natural_mode, read_mounts
from lanco.errors import (
    LancoError,
    NamespaceExists,
    NamespaceMissing,
    PermissionDenied,
    StateError,
    StillRunning,
    UsageError,
    maps_os_errors,
)
from lanco.names import check_namespace_name
from lanco.privileges import acting_as, resolve_owner, user_name, with_owner_ids
from lanco.state.config import (
    DEFAULT_CGROUP_BASE,
    NamespaceConfig,
    load_config,
    system_log_dir,
    system_state_dir,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
    from contextlib import AbstractContextManager
    from typing import Any, Unpack

    from lanco.eventlog.stream import Event
    from lanco.options.runopts import RunOptions
    from lanco.state.logrotation import Rotation
    from lanco.state.record import TaskRecord
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
    """A named group of tasks owned by one user; the entry point of the Python API (``host=``: on another host).

    >>> Namespace("testns").run("first-task", ["openssl", "speed", "aes"])"""

    def __new__(cls, name: str, *, host: str | None = None, cgroup_mode: str | None = None,
                cgroup_base: str | None = None) -> Namespace:
        """``host="[USER@]HOST[:PORT]"``: the namespace of that name on another host, over ssh (lanco.remote.api)."""
        if host is None:
            return super().__new__(cls)
        from lanco.remote.api import RemoteNamespace
        return RemoteNamespace(name, host=host, cgroup_mode=cgroup_mode, cgroup_base=cgroup_base)  # type: ignore[return-value]

    @maps_os_errors
    def __init__(self, name: str, *, cgroup_mode: str | None = None, cgroup_base: str | None = None,
                 host: str | None = None) -> None:
        self.name = check_namespace_name(name)
        try:
            self.config = load_config(name)
        except NamespaceMissing as exc:
            from lanco.cgroups.traces import cgroup_traces

            traces = cgroup_traces(name, _env_base(cgroup_base))
            if not traces:
                raise
            raise NamespaceMissing(f"namespace {name} has lost its configuration, but its cgroups remain "
                                   f"({', '.join(sorted(traces.values()))}): run init again, as root, for its "
                                   "owner, to recover its tasks") from exc
        # A mode or base given (option, argument or environment) must be the recorded one: a caller who means
        # another base is told so rather than shown, or given, the tasks of the recorded one.
        forced = _env_mode(cgroup_mode)
        if forced is not None and forced != self.config.mode:
            raise UsageError(f"namespace {name} was initialised in cgroup mode {self.config.mode}, "
                             f"not {forced}")
        given_base = cgroup_base or os.environ.get("LANCO_CGROUP_BASE") or None
        if given_base is not None and _env_base(given_base) != self.config.cgroup_base:
            raise UsageError(f"namespace {name} was initialised with cgroup base {self.config.cgroup_base}, "
                             f"not {_env_base(given_base)}")
        self._backend: Backend | None = None

    @property
    @maps_os_errors
    def backend(self) -> Backend:
        if self._backend is None:
            config = self.config
            self._backend = open_namespace_backend(config.mode, config.cgroup_base, config.tracker,
                                                   owner_uid=config.owner_uid, owner_gid=config.owner_gid,
                                                   group_access=config.group_access, mount_named=os.geteuid() == 0)
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

    def owner_ids(self) -> AbstractContextManager[None]:
        """The one way root touches the files of someone else's namespace (see lanco.privileges): the cgroup
        backend is opened (and a named hierarchy mounted) while still root, then the effective uid, gid and
        groups become the owner's until the block ends. Nothing changes for the owner, a member or root's own
        namespaces."""
        owner = self.acting_for_owner
        if owner is not None:
            _ = self.backend
        return acting_as(owner)

    # -- creation and removal ------------------------------------------------------------------------------

    @classmethod
    @maps_os_errors
    def init(cls, name: str, *, user: str | None = None, group: str | None = None,
             cgroup_mode: str | None = None, cgroup_base: str | None = None, take_over: bool = False) -> Namespace:
        """Create the namespace for ``user``/``group`` (root; a user's own where systemd delegates to them);
        idempotent for the same owner. ``take_over``: see :func:`lanco.cgroups.placement.prepare_base_parent`."""
        from lanco.cgroups import placement

        check_namespace_name(name)
        if os.geteuid() != 0:
            placement.init_own_namespace(name, user=user, group=group, mode=_env_mode(cgroup_mode),
                                         base=_env_base(cgroup_base))
            return cls(name)
        uid, gid, group_access = resolve_owner(user, group)
        mode = _env_mode(cgroup_mode) or natural_mode(read_mounts())
        base = _env_base(cgroup_base)
        try:
            existing: NamespaceConfig | None = load_config(name)
        except NamespaceMissing:
            existing = None
        if existing is not None and existing.state_dir != system_state_dir(name):
            # A user's own namespace, found through a HOME or XDG_STATE_HOME root inherited (su, sudo -E): its
            # configuration and paths are the user's to choose, and init would chown them as root.
            raise NamespaceExists(f"namespace {name} is a user's own namespace (state in {existing.state_dir}): "
                                  "init as root makes only namespaces with their state in "
                                  f"{system_state_dir(name)}")
        if existing is not None:
            if existing.owner_uid != uid:
                raise NamespaceExists(f"namespace {name} is already initialised for user "
                                      f"{user_name(existing.owner_uid)}")
            uid, gid, group_access = _same_group(existing, group, gid, group_access)
            if existing.mode != mode or existing.cgroup_base != base:
                raise NamespaceExists(f"namespace {name} is already initialised in cgroup mode "
                                      f"{existing.mode} with base {existing.cgroup_base}")
            config = existing
        else:
            # The state directory may be gone while the namespace's cgroups, and tasks in them, remain: init again
            # takes the mode they were made in, so that those tasks are found again.
            from lanco.cgroups.traces import recovered_mode

            mode = recovered_mode(name, base, uid, mode, forced=_env_mode(cgroup_mode) is not None)
            # An owner other than root starts processes outside the unified tree's delegated part, where the
            # kernel forbids the move: such a namespace tracks its tasks in lanco's named v1 hierarchy.
            tracker = placement.tracker_kind(mode, uid, read_mounts())
            config = NamespaceConfig(name=name, owner_uid=uid, owner_gid=gid, group_access=group_access,
                                     mode=mode, tracker=tracker, cgroup_base=base,
                                     state_dir=system_state_dir(name), log_dir=system_log_dir(name),
                                     created=time.time())
        _set_up(config, take_over=take_over, save=existing is None)
        return cls(name)

    @classmethod
    @maps_os_errors
    def restore(cls, name: str) -> list[str]:
        """Make again what a boot takes from a namespace root initialised, from its recorded configuration, by
        init's own steps: the mount of lanco's named hierarchy where the namespace tracks its tasks there, its
        cgroups handed to its owner, its state and log directories (root). Returns what it changed, in words;
        nothing where all was in place (a second restore)."""
        check_namespace_name(name)
        if os.geteuid() != 0:
            raise PermissionDenied(f"restore of namespace {name} needs root")
        config = load_config(name)
        if config.state_dir != system_state_dir(name):
            raise NamespaceMissing(f"namespace {name} is a user's own namespace (state in {config.state_dir}): "
                                   f"restore makes again only namespaces root initialised, in {system_state_dir(name)}")
        return _set_up(config, take_over=False, save=False)

    @maps_os_errors
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
            with contexts.suppress(StateError):  # a damaged record goes with the rest
                task.settle()
        backend.remove_namespace(self.name)
        from lanco.nsrelease import remove_state

        remove_state(self)
        return targets

    def _callers_own(self) -> bool:
        """A namespace the caller made unprivileged (state under their home), as opposed to one root made."""
        return self.config.owner_uid == os.geteuid() and self.config.state_dir != system_state_dir(self.name)

    # -- tasks ---------------------------------------------------------------------------------------------

    def task(self, name: str) -> Task:
        from lanco.task import Task

        self.authorize()
        return Task(self, name)

    @maps_os_errors
    @with_owner_ids
    def task_names(self) -> list[str]:
        """Every task with a cgroup or a record, running or finished. A record directory holding no record (only
        a lock, as a launcher killed before it wrote the spec leaves) is no task."""
        names = set(self.backend.task_names(self.name))
        try:
            entries = os.listdir(self.config.tasks_dir)
        except OSError:
            entries = []
        tasks_dir = self.config.tasks_dir
        names.update(e for e in entries if not e.startswith(".") and e not in names and any(
            os.path.lexists(os.path.join(tasks_dir, e, f)) for f in ("spec.json", "result")))
        return sorted(names)

    @maps_os_errors
    @with_owner_ids
    def settle_tasks(self) -> list[str]:
        """Record as ``lost`` every run whose monitor is gone without a result, as a boot leaves every run that was
        going, each with its exit hook run once (:meth:`lanco.task.Task.settle`); returns the tasks so recorded now.
        A damaged record is left as it is, for the commands that read it to name."""
        lost: list[str] = []
        for task in self.tasks():
            with contexts.suppress(StateError):
                if task.settle():
                    lost.append(task.name)
        return lost

    @maps_os_errors
    def tasks(self, *, labels: Mapping[str, str] | Iterable[str] | None = None) -> list[Task]:
        """Every task, running or finished; with ``labels``, those whose labels hold all of them (lanco.taskselect)."""
        from lanco.task import Task

        self.authorize()
        found = [Task(self, n) for n in self.task_names()]
        if labels is None:
            return found
        from lanco.taskselect import labelled

        return labelled(found, labels)

    @maps_os_errors
    def tracked_tasks(self) -> list[Task]:
        """Every task with a cgroup: running, frozen, or ending (a caller that reads the records tells them apart
        without a look at each cgroup first)."""
        from lanco.task import Task

        self.authorize()
        return [Task(self, n) for n in self.backend.task_names(self.name)]

    @maps_os_errors
    def running_tasks(self) -> list[Task]:
        from lanco.task import Task

        self.authorize()
        return [t for t in (Task(self, n) for n in self.backend.task_names(self.name)) if t.is_running()]

    @maps_os_errors
    @with_owner_ids
    def stop_tasks(self, names: Sequence[str] | None = None, *, timeout: float | None = None,
                   stop_signal: int | None = None) -> dict[str, TaskRecord | LancoError]:
        """Stop the tasks ``names`` (None: every active task) together, as :meth:`lanco.task.Task.stop` stops one:
        all get their stop signal before any is awaited. Returns each name's final record, or the error it met
        (NotRunning for a task that was not running)."""
        from lanco.task import Task, stop_together

        self.authorize()
        targets = [Task(self, n) for n in names] if names is not None else \
            [t for t in self.tasks() if _maybe_active(t)]
        return stop_together(targets, timeout, stop_signal)

    # Waiting for many tasks (lanco.waiting, lanco.waiting_async): tasks by handle or name; each returns, as
    # (Task, TaskRecord) pairs in the order they ended, the tasks that ended, [] when ``timeout`` passed first.

    @maps_os_errors
    @with_owner_ids
    def wait_any(self, tasks: Sequence[Task | str], timeout: float | None = None) -> list[tuple[Task, TaskRecord]]:
        """Block until one of ``tasks`` has ended; every one that has by then."""
        from lanco import waiting

        return waiting.wait_any(self._handles(tasks), timeout)

    @maps_os_errors
    @with_owner_ids
    def wait_all(self, tasks: Sequence[Task | str], timeout: float | None = None, *,
                 on_end: Callable[[list[tuple[Task, TaskRecord]]], object] | None = None
                 ) -> list[tuple[Task, TaskRecord]]:
        """Block until every one of ``tasks`` has ended (``on_end`` is called with each batch as it ends)."""
        from lanco import waiting

        return waiting.wait_all(self._handles(tasks), timeout, on_end)

    @maps_os_errors
    def wait_any_async(self, tasks: Sequence[Task | str],
                       timeout: float | None = None) -> Coroutine[Any, Any, list[tuple[Task, TaskRecord]]]:
        """:meth:`wait_any` for asyncio: ``await ns.wait_any_async(tasks)``, on the running loop's readers."""
        from lanco import waiting_async

        return waiting_async.wait_any_async(self._handles(tasks), timeout)

    @maps_os_errors
    def wait_all_async(self, tasks: Sequence[Task | str],
                       timeout: float | None = None) -> Coroutine[Any, Any, list[tuple[Task, TaskRecord]]]:
        """:meth:`wait_all` for asyncio."""
        from lanco import waiting_async

        return waiting_async.wait_all_async(self._handles(tasks), timeout)

    def _handles(self, tasks: Sequence[Task | str]) -> list[Task]:
        return [self.task(t) if isinstance(t, str) else t for t in tasks]

    @maps_os_errors
    def rotate_logs(self) -> list[tuple[str, Rotation | LancoError]]:
        """Rotate every log of the namespace that is over its task's ``--log-max-size`` (see
        :meth:`lanco.task.Task.rotate_log`). Returns, in the order of the task names, each log rotated and each
        failure; one task's failure keeps no other log from its rotation."""
        from lanco.errors import as_lanco_error
        from lanco.task import Task

        self.authorize()
        outcome: list[tuple[str, Rotation | LancoError]] = []
        for name in self.task_names():
            try:
                rotation = Task(self, name).rotate_log()
            except LancoError as exc:
                outcome.append((name, exc))
            except OSError as exc:
                outcome.append((name, as_lanco_error(exc)))
            else:
                if rotation is not None:
                    outcome.append((name, rotation))
        return outcome

    @maps_os_errors
    def events(self, since: str | None = None, *, follow: bool = False,
               labels: Mapping[str, str] | None = None) -> Iterator[Event]:
        """The namespace's task events after cursor ``since`` (see :mod:`lanco.eventlog.stream`)."""
        from lanco.eventlog.stream import iterate

        return iterate(self, since, follow, labels)

    @maps_os_errors
    def events_async(self, since: str | None = None, *,
                     labels: Mapping[str, str] | None = None) -> AsyncIterator[Event]:
        """:meth:`events` followed, for ``async for`` (the waits on the event loop's reader)."""
        from lanco.eventlog.stream import iterate_async

        return iterate_async(self, since, labels)

    @maps_os_errors
    def run(self, task: str, argv: Sequence[str], **options: Unpack[RunOptions]) -> Task:
        """Start ``argv`` as ``task``; the options (limits, timeout, restart, environment, ...) are those of
        :class:`lanco.options.runopts.RunOptions`, as for :meth:`lanco.task.Task.start`."""
        from lanco.task import Task

        self.authorize()
        handle = Task(self, task)
        handle.start(list(argv), **options)
        return handle


def _set_up(config: NamespaceConfig, *, take_over: bool, save: bool) -> list[str]:
    """What init does once the configuration is settled, and restore after a boot: lanco's named hierarchy mounted
    where the namespace tracks its tasks there, its cgroups made (or completed) and handed to its owner, its state
    and log directories made with their owner and mode, and ``save`` the configuration. Idempotent. Returns what
    it changed, in words; on failure, what it made is removed again."""
    from lanco.cgroups import placement
    from lanco.cgroups.detect import NAMED_HIERARCHY, named_mount

    def _cgroups(n: int) -> str:
        return f"{n} cgroup" if n == 1 else f"{n} cgroups"

    mounts = read_mounts()
    mounting = config.tracker == "named" and named_mount(mounts) is None
    backend = open_backend(config.mode, config.cgroup_base, config.tracker, mounts, mount_named=True)
    changes = [f"mounted name={NAMED_HIERARCHY} on {backend.tracker.path}"] if mounting else []
    placement.prepare_base_parent(backend, take_over)
    uid, gid, group_access = config.owner_uid, config.owner_gid, config.group_access
    made_dirs: list[str] = []
    made_cgroups: list[str] = []
    try:
        cgroups = backend.create_namespace(config.name, uid, gid, group_access)
        made_cgroups = cgroups.made
        if cgroups.made:
            changes.append(f"made {_cgroups(len(cgroups.made))}")
        if cgroups.adjusted:
            changes.append(f"set the owner, mode or controllers of {_cgroups(len(cgroups.adjusted))} right")
        dir_mode = 0o2770 if group_access else 0o700
        for directory, owner, mode_bits in ((config.state_dir, (0, 0), 0o755),
                                            (config.tasks_dir, (uid, gid), dir_mode),
                                            (config.log_dir, (uid, gid), dir_mode)):
            if not os.path.isdir(directory):
                os.makedirs(directory, exist_ok=True)
                made_dirs.append(directory)
                changes.append(f"made {directory}")
            st = os.lstat(directory)
            if os.path.islink(directory):
                raise PermissionDenied(f"refusing to use {directory}: it is a symbolic link")
            adjusted = False
            if (st.st_uid, st.st_gid) != owner:
                os.chown(directory, *owner)
                adjusted = True
            if st.st_mode & 0o7777 != mode_bits:
                os.chmod(directory, mode_bits)
                adjusted = True
            if adjusted and directory not in made_dirs:
                changes.append(f"set the owner or mode of {directory} right")
        if save:
            config.save()
    except BaseException:
        import shutil

        for directory in reversed(made_dirs):
            shutil.rmtree(directory, ignore_errors=True)
        backend.remove_dirs(reversed(made_cgroups))
        raise
    return changes


def _same_group(existing: NamespaceConfig, group: str | None, gid: int,
                group_access: bool) -> tuple[int, int, bool]:
    """The owner ids and group access of an ``init`` again: those recorded at the first init. Without ``-g`` the
    recorded group access is kept, said in a warning line where there is one (a second init, as after a reboot,
    must not lock a group's members out); a ``-g`` that differs is refused, like a differing owner."""
    from lanco import messages

    if group is None:
        if existing.group_access:
            messages.warn("init", f"namespace {existing.name} keeps its group access for group "
                                  f"{_group_name(existing.owner_gid)}: init without -g changes nothing (release the "
                                  "namespace and init it again to drop it)")
        return existing.owner_uid, existing.owner_gid, existing.group_access
    if (gid, group_access) != (existing.owner_gid, existing.group_access):
        held = f"for group {_group_name(existing.owner_gid)}" if existing.group_access else "without group access"
        raise NamespaceExists(f"namespace {existing.name} is already initialised {held}, not for group "
                              f"{_group_name(gid)} (release it and init it again to change that)")
    return existing.owner_uid, gid, group_access


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _maybe_active(task: Task) -> bool:
    """Whether ``stop --all`` must stop ``task``: active, or of a state that cannot be read (then its stop says
    what it meets, in a line of its own, rather than one unreadable task keeping every other from its stop)."""
    try:
        return task.is_active()
    except (LancoError, OSError):
        return True

