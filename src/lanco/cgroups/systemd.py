"""Placement through systemd: the ``systemd`` tracker kind of pure cgroup v2 hosts whose PID 1 is systemd.

cgroup v2 lets an unprivileged process move a process only between cgroups whose common ancestor it may write.
A user's login session (``session-N.scope``, under the root-owned ``user-UID.slice``) therefore cannot move
anything into a cgroup root created for them, however it is chowned. systemd's user manager can: it runs in
``user@UID.service``, which is delegated to the user, and asks PID 1 to move the user's own processes across
the root-owned part. So a namespace of this kind places each run, when the caller cannot move it directly, in
a transient scope of its own that lanco asks the user manager for over D-Bus (lanco.cgroups.dbus), one call per
run: the monitor is started first and waits on a pipe; ``StartTransientUnit`` puts it in the new scope
(``PIDs``, ``Delegate=yes``); once the job is done the launcher splits the scope and lets the monitor go on:

    /user.slice/user-UID.slice/user@UID.service/lanco.slice/lanco-NS.slice/lanco-NS-TASK-RUN.scope/
        monitor/    the monitor (and, when the task has ended, its exit hook)
        task/       the task's processes; its limits are written here before the task joins

``NS`` and ``TASK`` are escaped as systemd escapes unit names (``-`` is ``\\x2d``), so that the slice nesting
and the split between namespace, task and run stay unambiguous; ``RUN`` is the run's id (16 hex digits). A
scope per run, not per name: a name run again at once never waits for systemd to collect the previous run's
scope (which lives on while the previous monitor records the result and runs its hook), and the name's lock
stays lanco's own (its record's lock, and the task/ cgroup: a scope whose task/ is gone holds no task).
``UID`` is the user who started the task: the owner, or a member of the namespace's group (``init -g``), each
through their own user manager; tasks are found by name among the scopes of those users only.

The caller moves directly when the kernel permits it (root, or a process already inside the namespace's
delegated cgroup ``<base>/NS``): such tasks live at ``<base>/NS/TASK`` as in the ``unified`` kind, and are found
there first. With neither, the error names the cgroup, the rule and the remedies. ``check``, ``status`` and
``ls`` read cgroupfs only; ``stop`` kills through ``cgroup.kill``; D-Bus is spoken by ``run`` and ``release``.
"""

from __future__ import annotations

import grp
import os
import pwd
import time

from lanco import contexts
from lanco.cgroups import cgroupfs
from lanco.cgroups.backend import Backend, open_backend
from lanco.cgroups.detect import CgroupMount
from lanco.errors import CgroupError, LimitUnavailable, UsageError
from lanco.privileges import user_name
from lanco.procfs import unified_cgroup

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from lanco.cgroups.dbus import Connection

TRACKER_KIND = "systemd"
TOP_SLICE = "lanco.slice"
SCOPE_MONITOR = "monitor"
SCOPE_TASK = "task"
# Controllers a scope's children get when systemd delegated them (all of them by default on user@.service:
# cpu memory pids; an administrator may add io and cpuset).
_WANTED_CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")
_MANAGER_TIMEOUT = 30.0
"""Seconds lanco waits for a user manager's answer (``LANCO_SYSTEMD_TIMEOUT`` overrides): its jobs queue behind
whatever else it is doing, a boot or a reload among them."""
_GO_FD = 5
"""The descriptor on which a monitor placed through systemd waits for the word to go on (monitor.sh)."""
_UNIT_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_.")


def escape_unit_part(text: str) -> str:
    """``text`` as ``systemd-escape`` writes it into a unit name: ``-``, ``\\`` and anything unusual as ``\\xNN``."""
    out = []
    for index, char in enumerate(text):
        if char in _UNIT_SAFE and not (index == 0 and char == "."):
            out.append(char)
        else:
            out.extend(f"\\x{byte:02x}" for byte in char.encode())
    return "".join(out)


def unescape_unit_part(text: str) -> str:
    raw = bytearray()
    index = 0
    while index < len(text):
        if text.startswith("\\x", index) and index + 4 <= len(text):
            raw.append(int(text[index + 2:index + 4], 16))
            index += 4
        else:
            raw.extend(text[index].encode())
            index += 1
    return raw.decode(errors="replace")


def namespace_slice(ns: str) -> str:
    return f"lanco-{escape_unit_part(ns)}.slice"


def task_scope(ns: str, task: str, run_id: str) -> str:
    """The unit of one run of ``task``: ``lanco-NS-TASK-RUN.scope``."""
    return f"{_scope_prefix(ns, task)}{escape_unit_part(run_id)}.scope"


def _scope_prefix(ns: str, task: str) -> str:
    return f"lanco-{escape_unit_part(ns)}-{escape_unit_part(task)}-"


def scope_task_name(ns: str, unit: str) -> str | None:
    """The task whose run ``unit`` (a name in the namespace's slice) is, or None for anything else there."""
    prefix = f"lanco-{escape_unit_part(ns)}-"
    if not (unit.startswith(prefix) and unit.endswith(".scope")):
        return None
    parts = unit[len(prefix):-len(".scope")].split("-")
    # Escaped names hold no "-": TASK-RUN is a run's scope (anything else, e.g. an older lanco's hook scope, is not).
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return unescape_unit_part(parts[0])


UNIT_NAME_MAX = 255
"""The longest unit name systemd accepts (its UNIT_NAME_MAX is 256 with the terminating NUL)."""
_RUN_ID_CHARS = 16


def unit_name_problem(ns: str, task: str) -> str | None:
    """Why ``task`` cannot have systemd units of its own, or None: escaping makes each ``-`` (and any unusual
    character) four characters long, so a name within lanco's 64 may still be too long for systemd."""
    longest = len(task_scope(ns, task, "0" * _RUN_ID_CHARS))
    if longest <= UNIT_NAME_MAX:
        return None
    return (f"task {task} of namespace {ns} needs systemd unit names of up to {longest} characters, over "
            f"systemd's {UNIT_NAME_MAX} (escaping makes every '-' or unusual character 4): use a shorter name")


def user_manager_cgroup(uid: int) -> str:
    """Where systemd runs the manager of user ``uid`` (``user@.service`` below the user's slice)."""
    return f"/user.slice/user-{uid}.slice/user@{uid}.service"


def systemd_is_init() -> bool:
    """True when PID 1 is systemd (``sd_booted()``: it creates /run/systemd/system at boot)."""
    return os.path.isdir("/run/systemd/system")


def runtime_dir(uid: int) -> str:
    """The runtime directory of user ``uid``: XDG_RUNTIME_DIR when it is theirs, else systemd's default (lanco
    may run under runuser, sudo or cron, which leave it unset or set to the invoker's)."""
    given = os.environ.get("XDG_RUNTIME_DIR")
    if given:
        try:
            if os.stat(given).st_uid == uid:
                return given
        except OSError:
            pass
    return f"/run/user/{uid}"


def user_manager_endpoint(uid: int) -> str | None:
    """The socket on which the user manager of ``uid`` answers (its private socket, or the user bus), or None."""
    base = runtime_dir(uid)
    for candidate in (os.path.join(base, "systemd", "private"), os.path.join(base, "bus")):
        if os.path.exists(candidate):
            return candidate
    return None


class SystemdBackend(Backend):
    """The unified tree, with tasks found (and placed) in the users' systemd scopes as well as at ``<base>/NS``."""

    def __init__(self, mode: str, base: str, tracker: CgroupMount, *, owner_uid: int, owner_gid: int,
                 group_access: bool) -> None:
        super().__init__(mode, base, tracker, {})
        self.owner_uid = owner_uid
        self.owner_gid = owner_gid
        self.group_access = group_access
        # The scope directory of a run this process is starting, from create_task until its monitor is placed.
        self._pending: dict[tuple[str, str], str] = {}
        self._routes: dict[str, str | None] = {}
        self._members: tuple[float, list[int]] | None = None

    # -- where things are ----------------------------------------------------------------------------------

    def _cgroup_path(self, relative: str) -> str:
        return os.path.join(self.tracker.path, os.path.relpath(relative, self.tracker.root))

    def slice_dir(self, uid: int, ns: str) -> str:
        """The namespace's slice in the manager of ``uid``."""
        return self._cgroup_path(f"{user_manager_cgroup(uid)}/{TOP_SLICE}/{namespace_slice(ns)}")

    def scope_dir(self, uid: int, ns: str, task: str, run_id: str) -> str:
        return os.path.join(self.slice_dir(uid, ns), task_scope(ns, task, run_id))

    def _direct_task_dir(self, ns: str, task: str) -> str:
        return super()._dir(self.tracker, ns, task)

    def _dir(self, mount: CgroupMount, *parts: str) -> str:
        if len(parts) == 2 and not parts[1].startswith("."):
            return self._task_location(*parts)
        return super()._dir(mount, *parts)

    def _task_location(self, ns: str, task: str) -> str:
        """The task's cgroup where it exists (directly below the base first), else where this caller makes it."""
        direct = self._direct_task_dir(ns, task)
        if os.path.isdir(direct):
            return direct
        for scope in self._existing_scopes(ns, task):
            return os.path.join(scope, SCOPE_TASK)
        pending = self._pending.get((ns, task))
        return direct if pending is None else os.path.join(pending, SCOPE_TASK)

    def _user_allowed(self, uid: int) -> bool:
        """Whether tasks started by ``uid`` belong to the namespace: its owner, and with ``init -g`` its group."""
        if uid == self.owner_uid:
            return True
        if not self.group_access:
            return False
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            return False
        if entry.pw_gid == self.owner_gid:
            return True
        try:
            return entry.pw_name in grp.getgrgid(self.owner_gid).gr_mem
        except KeyError:
            return False

    def _candidate_users(self) -> list[int]:
        """Users whose managers may hold tasks of the namespace, the likeliest first."""
        users = [u for u in (os.geteuid(), self.owner_uid) if u != 0 and self._user_allowed(u)]
        if self.group_access:
            users.extend(self._members_with_lanco_slices())
        return list(dict.fromkeys(users))

    def _members_with_lanco_slices(self) -> list[int]:
        """Group members whose managers have a ``lanco.slice``; looked up at most every second (a view of many
        tasks asks once per task)."""
        now = time.monotonic()
        if self._members is None or now - self._members[0] > 1.0:
            import glob  # only namespaces with group access look here

            found = []
            for path in glob.glob(self._cgroup_path(f"/user.slice/user-*.slice/user@*.service/{TOP_SLICE}")):
                uid_text = path.split("/user@", 1)[1].split(".service", 1)[0]
                if uid_text.isdigit() and self._user_allowed(int(uid_text)):
                    found.append(int(uid_text))
            self._members = (now, found)
        return self._members[1]

    def _existing_scopes(self, ns: str, task: str) -> list[str]:
        """The scopes of the runs of ``task`` that hold a task (their ``task/`` is there), of any candidate user."""
        return [scope for _, scope in self._run_scopes(ns, task)]

    def _run_scopes(self, ns: str, only: str | None = None) -> Iterator[tuple[str, str]]:
        """(task, scope directory) of every run's scope in the namespace's slices that holds a task, or of the
        runs of task ``only``: a look at each slice's listing, and at ``task/`` of the scopes that qualify."""
        prefix = f"lanco-{escape_unit_part(ns)}-" if only is None else _scope_prefix(ns, only)
        for uid in self._candidate_users():
            slice_dir = self.slice_dir(uid, ns)
            try:
                entries = os.listdir(slice_dir)
            except OSError:
                continue
            for entry in entries:
                if not entry.startswith(prefix):
                    continue
                name = scope_task_name(ns, entry)
                if name is not None and (only is None or name == only) and \
                        os.path.isdir(f"{slice_dir}/{entry}/{SCOPE_TASK}"):
                    yield name, f"{slice_dir}/{entry}"

    def slice_dirs(self, ns: str) -> list[str]:
        """The namespace's slices in the user managers that hold its tasks."""
        slices = (self.slice_dir(u, ns) for u in self._candidate_users())
        return [d for d in slices if os.path.isdir(d)]

    def remove_namespace(self, ns: str) -> list[str]:
        """Also stop the namespace's (empty) slice units, which systemd would otherwise keep loaded for good."""
        from lanco import messages
        from lanco.cgroups.dbus import BusError

        removed = super().remove_namespace(ns)
        for uid in self._candidate_users():
            slice_dir = self.slice_dir(uid, ns)
            if not os.path.isdir(slice_dir) or os.geteuid() not in (0, uid):
                continue
            try:
                with connect_manager(uid) as manager:
                    stop_unit(manager, namespace_slice(ns))
                removed.append(slice_dir)
            except (BusError, CgroupError) as exc:
                messages.debug("release", f"namespace {ns}: the empty unit {namespace_slice(ns)} of user {uid} "
                                          f"stays loaded: {exc}")
        return removed

    def task_names(self, ns: str) -> list[str]:
        names = set(super().task_names(ns))
        names.update(name for name, _ in self._run_scopes(ns))
        return sorted(names)

    # -- how this caller places tasks ----------------------------------------------------------------------

    def _route(self, ns: str) -> str | None:
        """``direct`` when the kernel lets this process move tasks into ``<base>/NS``, ``scope`` when a user manager
        can make a delegated scope for it, None when neither."""
        if self._routes.get(ns) is None:
            # Not remembered while there is none: a long-lived caller may see the user manager start later.
            if os.geteuid() == 0:
                route: str | None = "direct"
            elif os.path.isdir(self.ns_dir(ns)) and super().placement_problem(ns) is None:
                route = "direct"
            elif user_manager_endpoint(os.geteuid()) is not None:
                route = "scope"
            else:
                route = None
            self._routes[ns] = route
        return self._routes[ns]

    def placement_problem(self, ns: str) -> str | None:
        if self._route(ns) is not None:
            return None
        uid = os.geteuid()
        user = user_name(uid)
        where = runtime_dir(uid)
        return (f"cannot place tasks of namespace {ns}: cgroup v2 lets an unprivileged user move a process only "
                f"between cgroups whose common ancestor it may write, and this process runs in "
                f"{unified_cgroup() or '?'}, so neither {self.ns_dir(ns)} nor a scope of its own is within reach; "
                f"no systemd user manager answers for {user} ({where}/systemd/private and {where}/bus are "
                f"missing) to create a delegated scope in {user_manager_cgroup(uid)}/{TOP_SLICE}. Remedies: "
                f"loginctl enable-linger {user} (a user manager without a login session), run lanco from a login "
                "session or under systemd-run --user --scope -p Delegate=yes, in a service with Delegate=yes, "
                "or as root")

    def delegated_controllers(self, uid: int | None = None) -> set[str]:
        """The controllers systemd delegates to the manager of ``uid``: what its scopes can give their tasks."""
        uid = os.geteuid() if uid is None else uid
        return self.v2_available_controllers(self._cgroup_path(user_manager_cgroup(uid)))

    def enabled_controllers(self, ns: str) -> set[str]:
        if self._route(ns) == "scope":
            return self.delegated_controllers()
        return super().enabled_controllers(ns)

    def check_limit(self, ns: str, key: str, option: str) -> None:
        if self._route(ns) != "scope":
            super().check_limit(ns, key, option)
            return
        from lanco.options.limittable import SPECS

        controller, files = SPECS[key].controller, SPECS[key].v2_files
        delegated = self.delegated_controllers()
        manager = self._cgroup_path(user_manager_cgroup(os.geteuid()))
        if controller not in delegated:
            raise LimitUnavailable(
                f"{option} needs the {controller} controller, which systemd does not delegate to user "
                f"{user_name(os.geteuid())} (delegated: {' '.join(sorted(delegated)) or 'none'}, in "
                f"{manager}/cgroup.controllers); an administrator can add it with a drop-in "
                "/etc/systemd/system/user@.service.d/delegate.conf: [Service] Delegate=cpu cpuset io memory pids")
        if not any(os.path.exists(os.path.join(manager, f)) for f in files):
            raise LimitUnavailable(f"{option} needs {' or '.join(files)}, which the {controller} controller does "
                                   f"not offer on this host (namespace {ns})")

    # -- tasks ---------------------------------------------------------------------------------------------

    def create_task(self, ns: str, task: str, owner: tuple[int, int] | None = None,
                    controllers: Iterable[str] = (), run_id: str = "") -> None:
        if self._route(ns) != "scope":
            super().create_task(ns, task, owner, controllers)
            return
        problem = unit_name_problem(ns, task)
        if problem is not None:
            raise UsageError(problem)
        if self._existing_scopes(ns, task):
            raise FileExistsError(task)
        # Nothing is made yet: the scope comes with the monitor it is made for (start_monitor).
        self._pending[(ns, task)] = self.scope_dir(os.geteuid(), ns, task, run_id or os.urandom(8).hex())

    def start_monitor(self, ns: str, task: str, argv: list[str], env: dict[str, str], fds: dict[int, int],
                      cwd: str | None, prepare: Callable[[], None] = lambda: None, *,
                      description: str | None = None) -> Callable[[], None]:
        """On the scope route: start the monitor waiting (on descriptor 5), ask the user manager for a delegated
        scope around it, split the scope into ``monitor/`` and ``task/`` with the controllers enabled, write the
        limits (``prepare``), then let the monitor go on. Any failure on the way ends the waiting monitor, and
        its scope with it: nothing is left half-made."""
        scope = self._pending.get((ns, task))
        if scope is None:
            return super().start_monitor(ns, task, argv, env, fds, cwd, prepare, description=description)
        from lanco.cgroups.dbus import BusError
        from lanco.launch.monitorcontract import waiting_for_go
        from lanco.launch.spawn import spawn_waiting

        unit = os.path.basename(scope)
        # The launcher moves the monitor into monitor/ itself, before the scope hands controllers down.
        env = waiting_for_go(env, _GO_FD)
        deadline = time.monotonic() + manager_timeout()
        try:
            manager = connect_manager(os.geteuid())
        except CgroupError as exc:
            raise CgroupError(f"cannot start task {task}: {exc}") from None
        with manager:
            monitor = spawn_waiting(argv, env, fds, cwd, _GO_FD)
            try:
                try:
                    job = manager.reply_to(start_scope(manager, unit, namespace_slice(ns), description or
                                                       f"lanco {ns} {task}", monitor.pid), deadline).body[0]
                    split = False

                    def split_once_placed() -> bool:
                        # systemd moves the monitor into the scope before it finishes the job: the split and the
                        # limits overlap the rest of the job, which takes as long again in the guest.
                        nonlocal split
                        if not (unified_cgroup(monitor.pid) or "").endswith("/" + unit):
                            return False
                        self._split_scope(scope, unit, task, monitor.pid)
                        prepare()
                        split = True
                        return True

                    result = await_job(manager, str(job), deadline, split_once_placed)
                except BusError as exc:
                    # The unit's name is the run's own: even UnitExists tells of a manager in trouble, not of a
                    # name taken (lanco's lock and the task/ cgroup hold the name).
                    raise CgroupError(f"cannot start task {task}: the systemd user manager of "
                                      f"{user_name(os.geteuid())} did not create scope {unit}: {exc}") from None
                if result != "done":
                    raise CgroupError(f"cannot start task {task}: the systemd user manager's job for scope {unit} "
                                      f"ended {result}")
                if not split:
                    self._split_scope(scope, unit, task, monitor.pid)
                    prepare()
                monitor.go()
            except BaseException:
                monitor.abandon()
                with contexts.suppress(OSError):
                    os.rmdir(os.path.join(scope, SCOPE_TASK))
                raise
            finally:
                self._pending.pop((ns, task), None)
        return _nothing_to_finish

    def _split_scope(self, scope: str, unit: str, task: str, monitor_pid: int) -> None:
        """Split the fresh scope into ``monitor/`` (the monitor) and ``task/``, with the controllers systemd
        delegated enabled for ``task/``."""
        own_path = unified_cgroup(monitor_pid)
        actual = self._cgroup_path(own_path) if own_path else "?"
        if os.path.normpath(actual) != os.path.normpath(scope):
            raise CgroupError(f"cannot start task {task}: systemd placed its scope at {actual}, not at {scope}")
        try:
            for name in (SCOPE_MONITOR, SCOPE_TASK):
                os.mkdir(f"{scope}/{name}")
            cgroupfs.join(f"{scope}/{SCOPE_MONITOR}", monitor_pid)
            enable = sorted(self.v2_available_controllers(scope) & set(_WANTED_CONTROLLERS))
            if enable:
                cgroupfs.enable_controllers(scope, enable)
        except OSError as exc:
            raise CgroupError(f"cannot prepare scope {unit} for task {task}: {cgroupfs.describe(exc)}") from exc

    def remove_task(self, ns: str, task: str, attempts: int = 40) -> None:
        self._pending.pop((ns, task), None)
        super().remove_task(ns, task, attempts)


_JOB_POLL_S = 0.001


def manager_timeout() -> float:
    try:
        return float(os.environ.get("LANCO_SYSTEMD_TIMEOUT") or _MANAGER_TIMEOUT)
    except ValueError:
        return _MANAGER_TIMEOUT


def connect_manager(uid: int) -> Connection:
    """A connection to the systemd manager of user ``uid``: its private socket, peer to peer, else the user bus
    (where the manager sends its job signals only to subscribers)."""
    from lanco.cgroups.dbus import MANAGER, MANAGER_PATH, SYSTEMD, BusError, Connection

    base = runtime_dir(uid)
    problems = []
    for path, bus in ((f"{base}/systemd/private", False), (f"{base}/bus", True)):
        if not os.path.exists(path):
            problems.append(f"{path} is missing")
            continue
        try:
            connection = Connection.open(path, bus=bus, timeout=manager_timeout())
        except BusError as exc:
            problems.append(str(exc))
            continue
        if bus:
            connection.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch",
                            "s", (f"type='signal',sender='{SYSTEMD}',interface='{MANAGER}',member='JobRemoved'",))
            connection.call(SYSTEMD, MANAGER_PATH, MANAGER, "Subscribe")
        return connection
    raise CgroupError(f"no systemd user manager answers for {user_name(uid)}: {'; '.join(problems)}")


def start_scope(manager: Connection, unit: str, slice_unit: str, description: str, pid: int) -> int:
    """Ask for a transient, delegated scope around process ``pid``; returns the call's serial (its reply is the
    job's path)."""
    from lanco.cgroups.dbus import MANAGER, MANAGER_PATH, SYSTEMD

    properties = [("Slice", ("s", slice_unit)), ("Description", ("s", description)), ("Delegate", ("b", True)),
                  ("CollectMode", ("s", "inactive-or-failed")), ("PIDs", ("au", [pid]))]
    return manager.call(SYSTEMD, MANAGER_PATH, MANAGER, "StartTransientUnit", "ssa(sv)a(sa(sv))",
                        (unit, "fail", properties, []))


def await_job(manager: Connection, job: str, deadline: float, meanwhile: Callable[[], bool] | None = None) -> str:
    """How job ``job`` ended (``done``, ``failed``, ``canceled``, ...): its JobRemoved signal says. ``meanwhile``
    is called between messages, and at least every millisecond, until it returns True (its work is done)."""
    from lanco.cgroups.dbus import SIGNAL, BusTimeout

    while True:
        if meanwhile is not None and meanwhile():
            meanwhile = None
        until = deadline if meanwhile is None else min(deadline, time.monotonic() + _JOB_POLL_S)
        try:
            message = manager.next_message(until)
        except BusTimeout:
            if until >= deadline:
                raise
            continue
        if message.kind == SIGNAL and message.member == "JobRemoved" and message.body[1] == job:
            return str(message.body[3])


def stop_unit(manager: Connection, unit: str) -> None:
    """Stop ``unit`` and wait for its job; a unit that is not loaded is stopped already."""
    from lanco.cgroups.dbus import MANAGER, MANAGER_PATH, SYSTEMD, BusError

    deadline = time.monotonic() + manager_timeout()
    try:
        job = manager.reply_to(manager.call(SYSTEMD, MANAGER_PATH, MANAGER, "StopUnit", "ss", (unit, "replace")),
                               deadline).body[0]
    except BusError as exc:
        if exc.name == "org.freedesktop.systemd1.NoSuchUnit":
            return
        raise
    result = await_job(manager, str(job), deadline)
    if result != "done":
        raise CgroupError(f"stopping {unit} ended {result}")


def open_systemd_backend(mode: str, base: str, *, owner_uid: int, owner_gid: int,
                         group_access: bool) -> SystemdBackend:
    """The backend of a namespace of the ``systemd`` kind (recorded at ``init``)."""
    tracker = open_backend(mode, base, "unified").tracker
    return SystemdBackend(mode, base, tracker, owner_uid=owner_uid, owner_gid=owner_gid, group_access=group_access)


def _nothing_to_finish() -> None:
    pass
