"""Reading the host's cgroup layout from ``/proc/self/mountinfo``; no kernel-version guessing."""

from __future__ import annotations

from lanco.values import FrozenValue

MODES = ("v2", "hybrid", "v1")
NAMED_HIERARCHY = "lanco"
"""lanco's own v1 named hierarchy (``name=lanco``), shared by every namespace."""

# The v1 controllers every task joins, for limits and figures. cpuset is left out on purpose: a v1 cpuset child
# accepts no process until cpuset.cpus and cpuset.mems are written, so a task joins it only for a cpuset limit
# (on_demand_mounts).
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "freezer", "blkio")
_V1_OPTION_CONTROLLERS = {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "blkio",
                          "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc"}


class CgroupMount(FrozenValue):
    """One mounted cgroup hierarchy as this process sees it."""

    _fields = ("path", "root", "version", "controllers", "name")
    __slots__ = _fields
    path: str
    root: str
    version: int
    controllers: frozenset[str]
    name: str | None

    def __init__(self, path: str, root: str, version: int, controllers: frozenset[str],
                 name: str | None = None) -> None:
        self._set_fields(path, root, version, controllers, name)

    @property
    def label(self) -> str:
        if self.version == 2:
            return "unified"
        if self.name:
            return f"name={self.name}"
        return ",".join(sorted(self.controllers))


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return (field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
            .replace("\\134", "\\"))


def parse_mountinfo(text: str) -> list[CgroupMount]:
    mounts: list[CgroupMount] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        rfields = right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        fstype = rfields[0]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        root, path = _unescape(fields[3]), _unescape(fields[4])
        if fstype == "cgroup2":
            mounts.append(CgroupMount(path, root, 2, frozenset()))
            continue
        options = rfields[2].split(",")
        name = next((o[5:] for o in options if o.startswith("name=")), None)
        controllers = frozenset(o for o in options if o in _V1_OPTION_CONTROLLERS)
        mounts.append(CgroupMount(path, root, 1, controllers, name))
    return mounts


def read_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[CgroupMount]:
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
        return parse_mountinfo(f.read())


def unified_mount(mounts: list[CgroupMount]) -> CgroupMount | None:
    return next((m for m in mounts if m.version == 2), None)


def named_mount(mounts: list[CgroupMount], name: str = NAMED_HIERARCHY) -> CgroupMount | None:
    return next((m for m in mounts if m.version == 1 and m.name == name), None)


def controller_mounts(mounts: list[CgroupMount]) -> dict[str, CgroupMount]:
    """The v1 mount serving each controller lanco uses (co-mounted ones such as ``cpu,cpuacct`` share one)."""
    found: dict[str, CgroupMount] = {}
    for mount in mounts:
        if mount.version != 1 or mount.root != "/":
            continue
        for controller in mount.controllers:
            if controller in V1_CONTROLLERS:
                found.setdefault(controller, mount)
    return found


def on_demand_mounts(mounts: list[CgroupMount]) -> dict[str, CgroupMount]:
    """The v1 hierarchies a task joins only when a limit needs them: cpuset, mounted on its own."""
    for mount in mounts:
        if mount.version == 1 and mount.root == "/" and "cpuset" in mount.controllers \
                and not mount.controllers & set(V1_CONTROLLERS):
            return {"cpuset": mount}
    return {}


def natural_mode(mounts: list[CgroupMount]) -> str:
    """``v2`` when only the unified tree exists, ``hybrid`` when it sits beside v1 controllers, else ``v1``."""
    has_v2 = unified_mount(mounts) is not None
    has_v1 = bool(controller_mounts(mounts))
    if has_v2 and not has_v1:
        return "v2"
    if has_v2:
        return "hybrid"
    if has_v1:
        return "v1"
    from lanco.errors import CgroupError

    raise CgroupError("no usable cgroup hierarchy is mounted (see /proc/self/mountinfo)")
