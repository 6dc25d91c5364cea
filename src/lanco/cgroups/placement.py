"""Where a new namespace puts its tasks, and what ``init`` must do for that beyond creating directories.

- ``tracker_kind``: how a namespace of this owner, on this host, tracks and places its tasks (recorded at init).
- ``init_own_namespace``: an unprivileged user's own namespace, where systemd delegates cgroups to them.
- ``prepare_base_parent``: inside a container-like delegated cgroup whose root holds processes, move them into
  a leaf first (``init --take-over``; automatic when lanco is alone there), so that the root may hand
  controllers down to lanco's cgroups.
"""

from __future__ import annotations

import errno
import os
import time

from lanco import messages
from lanco.cgroups import cgroupfs
from lanco.cgroups.backend import Backend
from lanco.cgroups.detect import CgroupMount, natural_mode, read_mounts
from lanco.cgroups.systemd import TRACKER_KIND as SYSTEMD_KIND
from lanco.cgroups.systemd import runtime_dir, systemd_is_init, user_manager_endpoint
from lanco.errors import CgroupError, NamespaceExists, NamespaceMissing, PermissionDenied
from lanco.privileges import user_name
from lanco.state.config import NamespaceConfig, load_config, user_state_root

TAKE_OVER_LEAF = "init"
"""Where ``--take-over`` moves the processes of the delegated root (the name dind and runc's scripts use)."""
_WANTED_CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")


def systemd_delegates(mounts: list[CgroupMount]) -> bool:
    """True on a pure cgroup v2 host run by systemd, whose user managers can make delegated scopes."""
    return systemd_is_init() and natural_mode(mounts) == "v2"


def tracker_kind(mode: str, owner_uid: int, mounts: list[CgroupMount]) -> str:
    """``unified``, ``named`` or ``systemd``: see docs/design.md, "Which hierarchy tracks a task"."""
    if mode == "v2":
        # An owner other than root starts processes outside any cgroup root could delegate to them; systemd's
        # user manager can place them (lanco.cgroups.systemd).
        return SYSTEMD_KIND if owner_uid != 0 and systemd_delegates(mounts) else "unified"
    # In hybrid mode such an owner tracks in lanco's named v1 hierarchy, where the v1 rule lets them move.
    return "unified" if mode == "hybrid" and owner_uid == 0 else "named"


def own_namespace_refusal(name: str, mode: str, mounts: list[CgroupMount]) -> str | None:
    """Why this unprivileged user cannot create a namespace of their own here, or None if they can."""
    if mode == "v2" and systemd_delegates(mounts) and user_manager_endpoint(os.geteuid()) is not None:
        return None
    return f"init of namespace {name} needs root"


def own_namespace_config(name: str, mode: str, base: str, user: str | None, group: str | None) -> NamespaceConfig:
    """The configuration of an unprivileged user's own namespace: state and logs under $XDG_STATE_HOME/lanco."""
    uid = os.geteuid()
    if user not in (None, user_name(uid), str(uid)) or group is not None:
        raise PermissionDenied(f"init of namespace {name} for another user or a group needs root")
    state_dir = os.path.join(user_state_root(), name)
    return NamespaceConfig(name=name, owner_uid=uid, owner_gid=os.getegid(), group_access=False, mode=mode,
                           tracker=SYSTEMD_KIND, cgroup_base=base, state_dir=state_dir,
                           log_dir=os.path.join(state_dir, "log"), created=time.time())


def create_own_namespace(config: NamespaceConfig) -> None:
    """Create the state of an unprivileged user's own namespace; its cgroups come from the user manager."""
    for directory in (config.state_dir, config.tasks_dir, config.log_dir):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if os.path.islink(directory):
            raise PermissionDenied(f"refusing to use {directory}: it is a symbolic link")
    config.save()
    messages.debug("init", f"namespace {config.name}: tasks go to systemd scopes of the user manager of "
                           f"{user_name(config.owner_uid)} (runtime directory {runtime_dir(config.owner_uid)})")


def init_own_namespace(name: str, *, user: str | None, group: str | None, mode: str | None, base: str) -> None:
    """``init`` by an unprivileged user: their own namespace, where systemd delegates cgroups to them."""
    mounts = read_mounts()
    mode = mode or natural_mode(mounts)
    refusal = own_namespace_refusal(name, mode, mounts)
    if refusal is not None:
        raise PermissionDenied(refusal)
    config = own_namespace_config(name, mode, base, user, group)
    try:
        existing = load_config(name)
    except NamespaceMissing:
        create_own_namespace(config)
        return
    if existing.owner_uid != config.owner_uid:
        raise NamespaceExists(f"namespace {name} is already initialised for user {user_name(existing.owner_uid)}")
    if existing.mode != mode or existing.cgroup_base != base:
        raise NamespaceExists(f"namespace {name} is already initialised in cgroup mode {existing.mode} with base "
                              f"{existing.cgroup_base}")


# -- container-like delegated cgroups ------------------------------------------------------------------------

def prepare_base_parent(backend: Backend, take_over: bool) -> None:
    """Let the cgroup above the namespace base hand controllers down, on v2.

    cgroup v2 allows no process in a cgroup that enables controllers for its children (the real root cgroup
    excepted). Inside a delegated cgroup that holds processes, typically the root of a container's cgroup
    namespace, lanco's cgroups would get no controller and tasks no limits. With ``take_over`` every process
    there moves into a leaf ``init`` first and the controllers are enabled; without it this happens only when
    lanco is the one process there, and otherwise ``init`` says what is missing and goes on without limits.
    """
    if backend.mode != "v2" or backend.tracker.version != 2:
        return
    parent = os.path.dirname(backend.base_dir(backend.tracker).rstrip("/"))
    if not os.path.exists(os.path.join(parent, "cgroup.events")):
        return  # the real root cgroup: exempt from the rule
    available = cgroupfs.words(os.path.join(parent, "cgroup.controllers")) & set(_WANTED_CONTROLLERS)
    missing = available - cgroupfs.enabled_controllers(parent)
    holders = cgroupfs.pids(parent)
    if not missing or not holders:
        return
    if not take_over and holders != [os.getpid()]:
        messages.warn("init", f"cgroup {parent} holds processes ({' '.join(map(str, holders[:8]))}"
                              f"{' ...' if len(holders) > 8 else ''}), so cgroup v2 lets it enable no controller "
                              f"for lanco's cgroups and tasks get no limits; init --take-over moves them into "
                              f"{parent}/{TAKE_OVER_LEAF} first")
        return
    take_over_cgroup(parent)
    try:
        cgroupfs.enable_controllers(parent, sorted(missing))
    except OSError as exc:
        raise CgroupError(f"cannot enable {' '.join(sorted(missing))} in {parent}: {exc.strerror}") from exc


def take_over_cgroup(directory: str) -> list[int]:
    """Move every process of ``directory`` (this one included) into its leaf ``init``; returns those moved."""
    leaf = os.path.join(directory, TAKE_OVER_LEAF)
    try:
        os.mkdir(leaf)
    except FileExistsError:
        pass
    except OSError as exc:
        raise CgroupError(f"cannot create {leaf}: {exc.strerror}") from exc
    moved: list[int] = []
    # Passes until none is left: a process may fork while the others move.
    for _ in range(100):
        holders = cgroupfs.pids(directory)
        if not holders:
            return moved
        for pid in holders:
            try:
                cgroupfs.join(leaf, pid)
                moved.append(pid)
            except OSError as exc:
                if exc.errno == errno.ESRCH:
                    continue
                raise CgroupError(f"cannot move process {pid} from {directory} into {leaf}: "
                                  f"{exc.strerror}") from exc
    raise CgroupError(f"processes keep appearing in {directory}; cannot take it over")

