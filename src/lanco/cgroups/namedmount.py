"""lanco's named v1 hierarchy (``name=lanco``): where it is mounted, mounting it (root only), and how it reads when
a boot left it unmounted. It tracks tasks where the unified tree cannot (v1 hosts, owners who may not migrate
there) and has no controller of its own.
"""

from __future__ import annotations

import os

from lanco.cgroups.detect import NAMED_HIERARCHY, CgroupMount, named_mount, read_mounts
from lanco.errors import CgroupError


def ensure_named_mount(mounts: list[CgroupMount]) -> CgroupMount:
    """Mount lanco's named v1 hierarchy where missing (root only); it has no controllers of its own."""
    existing = named_mount(mounts)
    if existing is not None:
        return existing
    target = named_mount_point()
    os.makedirs(target, exist_ok=True)
    from lanco.launch.spawn import mount_named_hierarchy

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
