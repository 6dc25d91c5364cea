"""The cpuset controller: a new v1 cpuset cgroup has no CPUs and no memory nodes, and takes no process until it
has some; v2 inherits its parent's.
"""

from __future__ import annotations

import os

from lanco.cgroups import cgroupfs
from lanco.errors import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from lanco.cgroups.controllers import LimitTarget


def apply(target: LimitTarget, wanted: dict[str, Any]) -> dict[str, Any]:
    if "cpuset" in wanted:
        target.write("cpuset.cpus", wanted["cpuset"])
        if not target.v2:
            # Its parent's clone_children gave it the memory nodes already, unless the namespace predates that.
            inherit(target.directory, "cpuset.mems")
    return {k: v for k, v in wanted.items() if k != "cpuset"}


def make_usable(directory: str) -> None:
    """Copy a new v1 cpuset cgroup's CPUs and memory nodes from its parent, and have its own children start with
    a copy of its values (cgroup.clone_children)."""
    for name in ("cpuset.cpus", "cpuset.mems"):
        inherit(directory, name)
    try:
        cgroupfs.write(os.path.join(directory, "cgroup.clone_children"), "1")
    except OSError:
        pass  # the copies above are what matters; this only spares the next level the same work


def inherit(directory: str, name: str) -> None:
    """Copy the parent's value of ``name`` into a v1 cpuset cgroup where it is still empty."""
    path = os.path.join(directory, name)
    try:
        if not cgroupfs.read(path).strip():
            cgroupfs.write(path, cgroupfs.read(os.path.join(os.path.dirname(directory.rstrip("/")), name)).strip())
    except OSError as exc:
        raise CgroupError(f"cannot prepare cpuset cgroup {directory}: {cgroupfs.describe(exc)}") from exc
