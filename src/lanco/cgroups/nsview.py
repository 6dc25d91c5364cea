"""The unified hierarchy as seen from inside a cgroup namespace whose cgroupfs was mounted outside it.

``unshare --cgroup`` (or a container runtime that keeps the host's mount) leaves ``/sys/fs/cgroup`` showing the
host's whole tree, while ``/proc/self/cgroup`` gives paths relative to the namespace's root, and mountinfo shows
the mount's root as ``/..`` components (the mount's root lies that many levels above the namespace's root). Every
path lanco computes is relative to the namespace's root, so the mount is re-rooted at the directory that *is* that
root: the one, that many levels below the mount point, where this process's own cgroup lists this process.
"""

from __future__ import annotations

import os

from lanco.cgroups import cgroupfs
from lanco.cgroups.detect import CgroupMount
from lanco.procfs import unified_cgroup

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator


def _dirs_at_depth(top: str, depth: int) -> Iterator[str]:
    if depth == 0:
        yield top
        return
    try:
        entries = [e.path for e in os.scandir(top) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for entry in entries:
        yield from _dirs_at_depth(entry, depth - 1)


def namespace_view(mount: CgroupMount) -> CgroupMount:
    """``mount`` re-rooted at this process's cgroup-namespace root when it was mounted outside the namespace;
    unchanged otherwise (or when that root cannot be found, and the kernel will refuse what lies outside)."""
    if mount.version != 2 or not mount.root.startswith("/.."):
        return mount
    parts = mount.root.strip("/").split("/")
    own = unified_cgroup()
    if own is None or any(p != ".." for p in parts):
        return mount
    pid = os.getpid()
    for candidate in _dirs_at_depth(mount.path, len(parts)):
        if pid in cgroupfs.pids(os.path.join(candidate, own.lstrip("/"))):
            return CgroupMount(candidate, "/", 2, mount.controllers, mount.name)
    return mount
