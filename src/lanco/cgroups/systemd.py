"""Placement through systemd: the ``systemd`` tracker kind of pure cgroup v2 hosts whose PID 1 is systemd.

cgroup v2 lets an unprivileged process move a process only between cgroups whose common ancestor it may write.
A user's login session (``session-N.scope``, under the root-owned ``user-UID.slice``) therefore cannot move
anything into a cgroup root created for them, however it is chowned. systemd's user manager can: it runs in
``user@UID.service``, which is delegated to the user, and asks PID 1 to move the user's own processes across
the root-owned part. So a namespace of this kind places each task, when the caller cannot move it directly,
through ``systemd-run --user --scope -p Delegate=yes`` into a scope of its own that the monitor then manages:

    /user.slice/user-UID.slice/user@UID.service/lanco.slice/lanco-NS.slice/lanco-NS-TASK.scope/
        monitor/    the monitor (and the exit hook)
        task/       the task's processes; its limits are written here before the task joins

``NS`` and ``TASK`` are escaped as systemd escapes unit names (``-`` is ``\\x2d``), so that the slice nesting
and the split between namespace and task stay unambiguous. The unit name is a second guard against two runs of
one name: systemd refuses a second ``lanco-NS-TASK.scope`` while the first exists. ``UID`` is the user who
started the task: the owner, or a member of the namespace's group (``init -g``), each through their own user
manager; tasks are found by name among the scopes of those users only.

The caller moves directly when the kernel permits it (root, or a process already inside the namespace's
delegated cgroup ``<base>/NS``): such tasks live at ``<base>/NS/TASK`` as in the ``unified`` kind, and are found
there first. With neither, the error names the cgroup, the rule and the remedies.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import sys
import time

from lanco.cgroups.backend import (
    _LIMIT_FILES,
    Backend,
    _describe,
    _write,
    open_backend,
    own_v2_cgroup,
)
from lanco.cgroups.detect import CgroupMount
from lanco.errors import CgroupError, LimitUnavailable, UsageError
from lanco.privileges import user_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Iterable

TRACKER_KIND = "systemd"
TOP_SLICE = "lanco.slice"
SCOPE_MONITOR = "monitor"
SCOPE_TASK = "task"
# Controllers a scope's children get when systemd delegated them (all of them by default on user@.service:
# cpu memory pids; an administrator may add io and cpuset).
_WANTED_CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")
_HANDOFF_SCRIPT = "scopehandoff.py"
_HANDOFF_HEADER_FORMAT = "!I"
_SCOPE_READY_TIMEOUT = 30.0
_SCOPE_GONE_TIMEOUT = 10.0
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


def task_scope(ns: str, task: str) -> str:
    return f"lanco-{escape_unit_part(ns)}-{escape_unit_part(task)}.scope"


def hook_scope(ns: str, task: str, run_id: str) -> str:
    return f"lanco-{escape_unit_part(ns)}-{escape_unit_part(task)}-hook-{escape_unit_part(run_id)}.scope"


UNIT_NAME_MAX = 255
"""The longest unit name systemd accepts (its UNIT_NAME_MAX is 256 with the terminating NUL)."""
_RUN_ID_CHARS = 16


def unit_name_problem(ns: str, task: str) -> str | None:
    """Why ``task`` cannot have systemd units of its own, or None: escaping makes each ``-`` (and any unusual
    character) four characters long, so a name within lanco's 64 may still be too long for systemd."""
    longest = len(hook_scope(ns, task, "0" * _RUN_ID_CHARS))
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


class _PendingScope:
    """A scope made for a start in progress: its holder waits on ``sock`` for the monitor's argv and fds."""

    __slots__ = ("pid", "scope", "sock", "unit")

    def __init__(self, scope: str, unit: str, sock: socket.socket, pid: int) -> None:
        self.scope = scope
        self.unit = unit
        self.sock = sock
        self.pid = pid


class SystemdBackend(Backend):
    """The unified tree, with tasks found (and placed) in the users' systemd scopes as well as at ``<base>/NS``."""

    def __init__(self, mode: str, base: str, tracker: CgroupMount, *, owner_uid: int, owner_gid: int,
                 group_access: bool) -> None:
        super().__init__(mode, base, tracker, {})
        self.owner_uid = owner_uid
        self.owner_gid = owner_gid
        self.group_access = group_access
        self._pending: dict[tuple[str, str], _PendingScope] = {}
        self._routes: dict[str, str | None] = {}
        self._members: tuple[float, list[int]] | None = None

    # -- where things are ----------------------------------------------------------------------------------

    def _cgroup_path(self, relative: str) -> str:
        return os.path.join(self.tracker.path, os.path.relpath(relative, self.tracker.root))

    def slice_dir(self, uid: int, ns: str) -> str:
        """The namespace's slice in the manager of ``uid``."""
        return self._cgroup_path(f"{user_manager_cgroup(uid)}/{TOP_SLICE}/{namespace_slice(ns)}")

    def scope_dir(self, uid: int, ns: str, task: str) -> str:
        return os.path.join(self.slice_dir(uid, ns), task_scope(ns, task))

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
            if os.path.isdir(os.path.join(scope, SCOPE_TASK)):
                return os.path.join(scope, SCOPE_TASK)
        if self._route(ns) == "scope":
            return os.path.join(self.scope_dir(os.geteuid(), ns, task), SCOPE_TASK)
        return direct

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
        return [d for d in (self.scope_dir(u, ns, task) for u in self._candidate_users()) if os.path.isdir(d)]

    def slice_dirs(self, ns: str) -> list[str]:
        """The namespace's slices in the user managers that hold its tasks."""
        slices = (self.slice_dir(u, ns) for u in self._candidate_users())
        return [d for d in slices if os.path.isdir(d)]

    def remove_namespace(self, ns: str) -> list[str]:
        """Also stop the namespace's (empty) slice units, which systemd would otherwise keep loaded for good."""
        import subprocess

        from lanco import messages
        from lanco.spawn import hook_runner

        removed = super().remove_namespace(ns)
        for uid in self._candidate_users():
            slice_dir = self.slice_dir(uid, ns)
            if not os.path.isdir(slice_dir) or os.geteuid() not in (0, uid):
                continue
            try:
                gid = pwd.getpwuid(uid).pw_gid
            except KeyError:
                gid = self.owner_gid
            command = [*hook_runner(uid, gid), "env", f"XDG_RUNTIME_DIR={runtime_dir(uid)}",
                       "systemctl", "--user", "stop", namespace_slice(ns)]
            try:
                result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
                complaint = result.stderr.strip() if result.returncode != 0 else ""
            except (OSError, subprocess.TimeoutExpired) as exc:
                complaint = str(exc)
            if complaint:
                messages.debug("release", f"namespace {ns}: the empty unit {namespace_slice(ns)} of user {uid} "
                                          f"stays loaded: {complaint}")
            else:
                removed.append(slice_dir)
        return removed

    def task_names(self, ns: str) -> list[str]:
        names = set(super().task_names(ns))
        prefix = f"lanco-{escape_unit_part(ns)}-"
        for uid in self._candidate_users():
            slice_dir = self.slice_dir(uid, ns)
            try:
                entries = os.listdir(slice_dir)
            except OSError:
                continue
            for entry in entries:
                middle = entry[len(prefix):-len(".scope")]
                # An escaped task name has no "-": anything else in the slice is not a task's scope.
                if (entry.startswith(prefix) and entry.endswith(".scope") and middle and "-" not in middle
                        and os.path.isdir(os.path.join(slice_dir, entry, SCOPE_TASK))):
                    names.add(unescape_unit_part(middle))
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
                f"{own_v2_cgroup() or '?'}, so neither {self.ns_dir(ns)} nor a scope of its own is within reach; "
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
        controller, files, _ = _LIMIT_FILES[key]
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
                    controllers: Iterable[str] = ()) -> None:
        if self._route(ns) != "scope":
            super().create_task(ns, task, owner, controllers)
            return
        problem = unit_name_problem(ns, task)
        if problem is not None:
            raise UsageError(problem)
        if any(os.path.isdir(os.path.join(s, SCOPE_TASK)) for s in self._existing_scopes(ns, task)):
            raise FileExistsError(task)
        scope = self.scope_dir(os.geteuid(), ns, task)
        # The previous run's scope goes once its monitor has exited and systemd has collected it.
        self._wait_scope_gone(scope, task)
        try:
            pending = self._start_scope(ns, task, scope)
        except FileExistsError:
            if os.path.isdir(os.path.join(scope, SCOPE_TASK)):
                raise
            self._wait_scope_gone(scope, task)
            pending = self._start_scope(ns, task, scope)
        try:
            self._prepare_scope(pending, task, set(controllers))
        except BaseException:
            pending.sock.close()
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(scope, SCOPE_TASK))
            raise
        self._pending[(ns, task)] = pending

    def _wait_scope_gone(self, scope: str, task: str) -> None:
        deadline = time.monotonic() + _SCOPE_GONE_TIMEOUT
        delay = 0.005
        while os.path.isdir(scope):
            if os.path.isdir(os.path.join(scope, SCOPE_TASK)):
                raise FileExistsError(task)
            if time.monotonic() >= deadline:
                raise CgroupError(f"task {task}: the scope of its previous run ({os.path.basename(scope)}) is "
                                  f"still there after {_SCOPE_GONE_TIMEOUT:g}s (its exit hook may still run)")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _start_scope(self, ns: str, task: str, scope: str) -> _PendingScope:
        """Have the user manager create the task's scope around a holder process, and wait until it is there."""
        import shutil
        import socket

        from lanco.spawn import package_file, read_line, start_detached

        unit = task_scope(ns, task)
        command = [shutil.which("systemd-run") or "/usr/bin/systemd-run", "--user", "--scope", "--quiet",
                   "--collect", f"--unit={unit}", f"--slice={namespace_slice(ns)}",
                   f"--description=lanco {ns} {task}", "-p", "Delegate=yes",
                   "--", sys.executable, "-I", "-S", package_file(_HANDOFF_SCRIPT), "3"]
        env = dict(os.environ)
        if env.get("XDG_RUNTIME_DIR") != runtime_dir(os.geteuid()):
            # Someone else's (or no) runtime directory: talk to our own user manager, not to theirs.
            env["XDG_RUNTIME_DIR"] = runtime_dir(os.geteuid())
            env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        err_r, err_w = os.pipe()
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            try:
                start_detached(command, env, {0: devnull, 1: devnull, 2: err_w, 3: theirs.fileno()}, "/",
                               subreaper=True)
            finally:
                theirs.close()
                os.close(err_w)
                os.close(devnull)
            line = read_line(ours.fileno(), _SCOPE_READY_TIMEOUT) or ""
            if not line.startswith("ready "):
                complaint = _drain(err_r).strip() or ("no answer within "
                                                      f"{_SCOPE_READY_TIMEOUT:g}s" if line == "" else line)
                if "already exists" in complaint:
                    raise FileExistsError(task)
                raise CgroupError(f"cannot start task {task}: systemd-run --user could not create scope {unit}: "
                                  f"{complaint}")
        except BaseException:
            ours.close()
            raise
        finally:
            os.close(err_r)
        return _PendingScope(scope, unit, ours, int(line.split()[1]))

    def _prepare_scope(self, pending: _PendingScope, task: str, wanted: set[str]) -> None:
        """Split the fresh scope into ``monitor/`` (its holder, later the monitor) and ``task/``, with the
        controllers enabled for ``task/``. Refuses, by name, a limit's controller systemd did not delegate."""
        scope = pending.scope
        own_path = _v2_path_of(pending.pid)
        actual = self._cgroup_path(own_path) if own_path else "?"
        if os.path.normpath(actual) != os.path.normpath(scope):
            raise CgroupError(f"cannot start task {task}: systemd placed its scope at {actual}, not at {scope}")
        try:
            for name in (SCOPE_MONITOR, SCOPE_TASK):
                os.mkdir(os.path.join(scope, name))
            _write(os.path.join(scope, SCOPE_MONITOR, "cgroup.procs"), str(pending.pid))
            available = self.v2_available_controllers(scope)
            missing = sorted(wanted - available)
            if missing:
                raise LimitUnavailable(
                    f"task {task} needs the {' and '.join(missing)} controller{'s' if len(missing) > 1 else ''}, "
                    f"which systemd did not delegate to {pending.unit} (cgroup.controllers: "
                    f"{' '.join(sorted(available)) or 'none'})")
            enable = sorted(available & set(_WANTED_CONTROLLERS))
            if enable:
                _write(os.path.join(scope, "cgroup.subtree_control"), " ".join(f"+{c}" for c in enable))
        except OSError as exc:
            raise CgroupError(f"cannot prepare scope {pending.unit} for task {task}: {_describe(exc)}") from exc

    def start_monitor(self, ns: str, task: str, argv: list[str], env: dict[str, str], fds: dict[int, int],
                      cwd: str | None) -> Callable[[], None]:
        pending = self._pending.pop((ns, task), None)
        if pending is None:
            return super().start_monitor(ns, task, argv, env, fds, cwd)
        import json
        import socket
        import struct

        env = {**env, "LANCO_MON_MONITORS": os.path.join(pending.scope, SCOPE_MONITOR, "cgroup.procs")}
        if env.get("LANCO_MON_HOOK"):
            env["LANCO_MON_HOOK_AS"] = "\n".join(self._hook_runner(ns, task, env.get("LANCO_MON_RUN_ID", "")))
        payload = json.dumps({"argv": argv, "env": env, "cwd": cwd, "targets": list(fds)}).encode()
        try:
            socket.send_fds(pending.sock, [struct.pack(_HANDOFF_HEADER_FORMAT, len(payload))], list(fds.values()))
            pending.sock.sendall(payload)
        except OSError as exc:
            raise CgroupError(f"cannot start task {task}: the holder of scope {pending.unit} is gone "
                              f"({_describe(exc)})") from exc
        finally:
            pending.sock.close()
        # The holder, started detached when the scope was made, execs the monitor: nothing is left to collect.
        return _nothing_to_finish

    def _hook_runner(self, ns: str, task: str, run_id: str) -> list[str]:
        """The argv prefix the monitor execs its exit hook with: a scope of its own, so that the task's scope ends
        with the run and a hook may start the same name again."""
        import shutil

        unit = hook_scope(ns, task, run_id)
        return ["env", f"XDG_RUNTIME_DIR={runtime_dir(os.geteuid())}",
                shutil.which("systemd-run") or "/usr/bin/systemd-run", "--user", "--scope", "--quiet", "--collect",
                f"--unit={unit}", f"--slice={namespace_slice(ns)}", f"--description=lanco {ns} {task} exit hook",
                "--"]

    def remove_task(self, ns: str, task: str, attempts: int = 40) -> None:
        pending = self._pending.pop((ns, task), None)
        if pending is not None:
            # The holder exits when its socket closes; systemd then collects the empty scope.
            pending.sock.close()
        super().remove_task(ns, task, attempts)


def _v2_path_of(pid: int) -> str | None:
    return own_v2_cgroup(pid)


def _drain(fd: int) -> str:
    """What systemd-run said on stderr (it has exited, or is about to: its pipe end closes then)."""
    import select

    chunks = []
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def open_systemd_backend(mode: str, base: str, *, owner_uid: int, owner_gid: int,
                         group_access: bool) -> SystemdBackend:
    """The backend of a namespace of the ``systemd`` kind (recorded at ``init``)."""
    tracker = open_backend(mode, base, "unified").tracker
    return SystemdBackend(mode, base, tracker, owner_uid=owner_uid, owner_gid=owner_gid, group_access=group_access)


def _nothing_to_finish() -> None:
    pass
