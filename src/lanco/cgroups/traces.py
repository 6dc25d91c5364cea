"""What is left of a namespace whose configuration is gone: its directories in each cgroup hierarchy, and the cgroup
mode they tell it was made in, so that ``init`` again finds its tasks rather than making a second namespace beside
them.
"""

from __future__ import annotations

import os

from lanco.cgroups.backend import Backend
from lanco.cgroups.detect import MODES, read_mounts
from lanco.errors import NamespaceExists


def cgroup_traces(name: str, base: str) -> dict[str, str]:
    """The directories the namespace has under ``base`` (where no configuration may name them any more), by kind:
    ``unified``, ``named`` (lanco's v1 hierarchy), ``v1`` (a v1 controller hierarchy, the first found)."""
    from lanco.cgroups.detect import controller_mounts, named_mount, unified_mount

    mounts = read_mounts()
    candidates = [("unified", unified_mount(mounts)), ("named", named_mount(mounts)),
                  *(("v1", m) for m in controller_mounts(mounts).values())]
    found: dict[str, str] = {}
    for kind, mount in candidates:
        if mount is None or kind in found:
            continue
        directory = Backend("v1", base, mount, {}).ns_dir(name)
        if os.path.isdir(directory):
            found[kind] = directory
    return found


def recovered_mode(name: str, base: str, uid: int, mode: str, *, forced: bool) -> str:
    """The cgroup mode for an init of a namespace without configuration: ``mode`` where it has no cgroups, else the
    mode whose cgroups it has (``mode`` first). A forced mode other than theirs is refused."""
    from lanco.cgroups import placement

    traces = cgroup_traces(name, base)
    if not traces:
        return mode
    mounts = read_mounts()

    def fits(candidate: str) -> bool:
        tracker = placement.tracker_kind(candidate, uid, mounts)
        tracked = "unified" if tracker in ("unified", "systemd") else "named"
        return tracked in traces and ("v1" in traces) == (candidate != "v2")

    def holds_tasks(candidate: str) -> bool:
        tracked = "unified" if placement.tracker_kind(candidate, uid, mounts) in ("unified", "systemd") else "named"
        with os.scandir(traces[tracked]) as entries:
            return any(e.is_dir() and not e.name.startswith(".") for e in entries)

    # Where both trackers have a directory (an init in another mode made the second), the one with tasks wins.
    fitting = sorted((m for m in dict.fromkeys((mode, *MODES)) if fits(m)), key=lambda m: not holds_tasks(m))
    if fitting and (fitting[0] == mode or not forced):
        return fitting[0]
    where = ", ".join(sorted(traces.values()))
    if fitting:
        raise NamespaceExists(f"namespace {name} has lost its configuration, and its cgroups ({where}) are those "
                              f"of cgroup mode {fitting[0]}, not {mode}: run init in that mode to recover its tasks")
    raise NamespaceExists(f"namespace {name} has lost its configuration, and its cgroups ({where}) fit no cgroup "
                          "mode for this owner: release them by hand or init with the owner they were made for")
