"""favordynmods, measured: what the cgroup mount option saves a launch and what it costs every fork (issue 13).

Every ``cgroup.procs`` write by pid write-locks ``cgroup_threadgroup_rwsem``, one percpu rwsem for all
hierarchies (kernel/cgroup/cgroup.c). Its writer first waits for an RCU grace period unless another writer came
shortly before (rcu_sync), so the first launch after an idle moment blocks for milliseconds. favordynmods keeps that
rcu_sync entered: writers never wait, and every fork and exit takes the rwsem's slower reader path.

The flag lives on one hierarchy's root, its effect is global. This phase never touches the host's hierarchies: a
cgroup2 mount anywhere shares the one v2 root and resets its flags (apply_cgroup_root_flags: nsdelegate,
memory_recursiveprot, ...), so the "on" state comes from a new v1 named hierarchy of its own, mounted with
favordynmods on a temp folder (cgroup1_parse_param accepts the option; cgroup1_root_to_use calls
cgroup_favor_dynmods for a new root) and unmounted again (cgroup_destroy_root undoes it).

Since Linux 6.18 (0568f89d4fb8, "replace global percpu_rwsem with per threadgroup rwsem when writing to
cgroup.procs") the first favordynmods mount also sets cgroup_enable_per_threadgroup_rwsem, which nothing clears
until reboot: cgroup.procs writes by pid then lock a per-process rwsem only, on every hierarchy, whatever is
mounted. Such a kernel can be measured with favordynmods once and never again without it, and the host keeps the
change: the phase measures only the "off" state there unless LANCO_BENCH_FAVORDYNMODS=latch says the machine may
keep it (a throw-away guest, or a host about to reboot); it then measures off, on, and off again (latched) in
that order instead of alternating.

Figures per state: the cold write (a fresh child of this process moved into a cgroup of this phase's own after
COLD_GAP_S of quiet, then into a second hierarchy at once), the back-to-back write (the same child moved to and fro),
a posix_spawn of /bin/true and an os.fork() + _exit, each waited for, and a cold API ``Namespace.run``. None has a
target: the figures inform the administrator (docs/favordynmods.md).
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from bench.cold import COLD_GAP_S, SETTLE_S
from bench.phases import SLEEP, Settings, _finish, _ms, log
from bench.sandbox import Sandbox, read_pids, remove_cgroup
from bench.stats import Figure, median, percentile

OPT_IN_ENV = "LANCO_BENCH_FAVORDYNMODS"
OPT_IN_LATCH = "latch"
FIRST_RELEASE = (6, 0)
"""6a010a49b63a added the favordynmods mount option (cgroup1 and cgroup2) in Linux 6.0."""
ONE_WAY_RELEASE = (6, 18)
"""0568f89d4fb8 (Linux 6.18) made the first favordynmods a one-way switch for the whole machine."""
WARM_WRITES = 20
FORKS = 20
STATES = ("off", "on", "after")
LABELS = {"off": "favordynmods off", "on": "favordynmods on",
          "after": "off again, per-threadgroup rwsem latched"}


# -- what the kernel allows -----------------------------------------------------------------------------------

def kernel_version(release: str) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", release)
    return (int(match.group(1)), int(match.group(2))) if match else None


def favordynmods_mounts(mountinfo: str) -> list[str]:
    """Mount points of cgroup hierarchies whose superblock options carry favordynmods (already on for the host)."""
    found = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if sep and len(fields) >= 5 and len(rfields) >= 3 and rfields[0] in ("cgroup", "cgroup2") \
                and "favordynmods" in rfields[2].split(","):
            found.append(fields[4])
    return found


@dataclass
class Plan:
    """Which states to measure, in what order, and why any is left out."""

    order: list[str]
    """One entry per round: the state that round measures."""
    missing: dict[str, str] = field(default_factory=dict)
    """State -> why it is not measured, short enough for the table."""
    detail: str = ""
    """The reason at length, for the log."""


def plan(rounds: int, *, release: str, mountinfo: str, filesystems: str, euid: int, opt_in: str) -> Plan:
    """The rounds to run: alternating off/on where unmounting undoes favordynmods, in blocks where it cannot."""
    version = kernel_version(release)
    already = favordynmods_mounts(mountinfo)
    if already:
        # The host runs with favordynmods already: there is no "off" to compare with.
        return Plan(["on"] * rounds, {"off": f"favordynmods is on already ({', '.join(already)})",
                                      "after": "favordynmods is on already"})
    why_not = None
    if euid != 0:
        why_not = "mounting a scratch hierarchy needs root"
    elif not re.search(r"^\S*\s+cgroup$", filesystems, re.MULTILINE):
        why_not = "no cgroup v1 in this kernel: a scratch cgroup2 mount would reset the host's v2 root flags"
    elif version is None or version < FIRST_RELEASE:
        why_not = f"kernel {release} predates favordynmods (Linux 6.0)"
    elif version >= ONE_WAY_RELEASE and opt_in != OPT_IN_LATCH:
        return Plan(["off"] * rounds, {"on": f"one-way on this kernel: {OPT_IN_ENV}={OPT_IN_LATCH} to measure",
                                       "after": "not measured"},
                    f"on Linux {version[0]}.{version[1]} the first favordynmods mount switches every cgroup.procs "
                    f"write to a per-threadgroup rwsem until reboot, whatever is unmounted; {OPT_IN_ENV}="
                    f"{OPT_IN_LATCH} measures it where the machine may keep that (a throw-away guest, a host "
                    "about to reboot)")
    if why_not is not None:
        return Plan(["off"] * rounds, {"on": why_not, "after": why_not})
    if version is not None and version >= ONE_WAY_RELEASE:
        return Plan(["off"] * rounds + ["on"] * rounds + ["after"] * rounds)
    # Unmounting undoes it: alternate, so that a busy moment of the machine falls on both states.
    return Plan([("off", "on")[index % 2] for index in range(2 * rounds)], {"after": "unmounting undoes it here"})


# -- the scratch hierarchy ------------------------------------------------------------------------------------

def _mountinfo() -> str:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return f.read()


def _in_own_cgroups(name: str) -> bool:
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        return any(line.split(":")[1] == f"name={name}" for line in f.read().splitlines() if line.count(":") >= 2)


class Scratch:
    """A v1 named hierarchy with no controllers, mounted with favordynmods on a temp folder of its own.

    No cgroup is ever made in it, so unmounting destroys its root (cgroup_kill_sb kills a root without children),
    and with it the flag. Every process stays in its root, which is no move at all.
    """

    def __init__(self, token: str) -> None:
        self.name = f"lanco_fdm_{token}"
        self.path: str | None = None
        self.mounted = False

    def mount(self) -> None:
        if self.path is None:
            self.path = tempfile.mkdtemp(prefix=f"lanco-fdm-{self.name[10:]}-")
        result = subprocess.run(["mount", "-t", "cgroup", "-o", f"none,name={self.name},favordynmods", "cgroup",
                                 self.path], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"the kernel refused the scratch hierarchy: {result.stderr.strip()}")
        self.mounted = True
        if self.path not in favordynmods_mounts(_mountinfo()):
            raise RuntimeError(f"{self.path} is mounted without favordynmods: the kernel ignored the option")

    def unmount(self) -> None:
        if self.mounted and self.path is not None:
            result = subprocess.run(["umount", self.path], capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"umount {self.path}: {result.stderr.strip()}")
            self.mounted = False
        deadline = time.monotonic() + 5.0
        while _in_own_cgroups(self.name) and time.monotonic() < deadline:
            time.sleep(0.01)  # the root dies once its last reference (this superblock's) is dropped
        if _in_own_cgroups(self.name):
            raise RuntimeError(f"hierarchy name={self.name} outlived its unmount (see /proc/self/cgroup)")

    def remove(self) -> None:
        """Unmount if need be, then remove the mount point; safe to call twice."""
        try:
            self.unmount()
        finally:
            if self.path is not None and not self.mounted:
                with contextlib.suppress(FileNotFoundError):
                    os.rmdir(self.path)
                self.path = None


# -- cgroups of the phase's own, and its children ------------------------------------------------------------

class Probe:
    """Two sibling cgroups (a, b) under a unique base in each of up to two hierarchies, and the children moved
    there. Only processes this phase forked are ever signalled, and every directory is removed at the end."""

    def __init__(self, token: str) -> None:
        from lanco.cgroups.detect import controller_mounts, read_mounts, unified_mount

        mounts = read_mounts()
        chosen = [m.path for m in [unified_mount(mounts), controller_mounts(mounts).get("pids")]
                  if m is not None and m.root == "/"]
        if not chosen:
            raise RuntimeError("no cgroup hierarchy to move processes in")
        self.bases = [os.path.join(path, f"lanco-fdm-{token}") for path in chosen]
        self.children: set[int] = set()
        self.made: list[str] = []

    def make(self) -> None:
        for base in self.bases:
            for directory in (base, os.path.join(base, "a"), os.path.join(base, "b")):
                os.mkdir(directory)
                self.made.append(directory)

    def procs(self, hierarchy: int, side: str) -> str:
        return os.path.join(self.bases[hierarchy], side, "cgroup.procs")

    def spawn(self) -> int:
        pid = os.posix_spawn("/bin/sleep", ["sleep", "600"], {})
        self.children.add(pid)
        return pid

    def reap(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        self.children.discard(pid)

    def cleanup(self) -> list[str]:
        problems = []
        for pid in list(self.children):
            self.reap(pid)
        for directory in reversed(self.made):
            left = read_pids(os.path.join(directory, "cgroup.procs"))
            if left:
                problems.append(f"{directory} still holds {left}")  # not ours: never signalled
            remove_cgroup(directory, attempts=200, pause=0.005)
            if os.path.isdir(directory):
                problems.append(f"{directory} could not be removed")
        self.made.clear()
        return problems


def timed_write(procs: str, pid: int) -> float:
    """Milliseconds the kernel takes over one cgroup.procs write (the open and close are left out)."""
    fd = os.open(procs, os.O_WRONLY)
    try:
        start = time.perf_counter()
        os.write(fd, str(pid).encode())
        return _ms(start)
    finally:
        os.close(fd)


def spawn_true() -> float:
    start = time.perf_counter()
    pid = os.posix_spawn("/bin/true", ["true"], {})
    os.waitpid(pid, 0)
    return _ms(start)


def fork_exit() -> float:
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return _ms(start)


# -- the phase ------------------------------------------------------------------------------------------------

@dataclass
class Cells:
    cold: Figure
    follow: Figure
    warm: Figure
    spawn: Figure
    fork: Figure
    api: Figure

    def all(self) -> list[Figure]:
        return [self.cold, self.follow, self.warm, self.spawn, self.fork, self.api]


def _cells(state: str, hierarchies: int) -> Cells:
    label = LABELS[state]
    return Cells(
        Figure(f"fdm.{state}.cold_write", f"{label}: cold cgroup.procs write ({COLD_GAP_S:g} s of quiet)", "ms"),
        Figure(f"fdm.{state}.next_write", f"{label}: the write into a second hierarchy right after", "ms",
               available=hierarchies > 1, note="" if hierarchies > 1 else "one hierarchy only"),
        Figure(f"fdm.{state}.warm_write", f"{label}: back-to-back cgroup.procs writes", "ms"),
        Figure(f"fdm.{state}.spawn", f"{label}: posix_spawn /bin/true + wait", "ms"),
        Figure(f"fdm.{state}.fork", f"{label}: os.fork + _exit + wait", "ms"),
        Figure(f"fdm.{state}.cold_api", f"{label}: cold API Namespace.run ({COLD_GAP_S:g} s of quiet)", "ms"),
    )


def quartiles(values: list[float]) -> str:
    return (f"n {len(values)}, q1 {percentile(values, 25):.3f}, median {median(values):.3f}, "
            f"q3 {percentile(values, 75):.3f}")


def _round(state: str, index: int, cells: Cells, probe: Probe, sandbox: Sandbox) -> None:
    for _ in range(2):  # two cold writes a round: the cold figure is the one this phase exists for
        pid = probe.spawn()
        try:
            time.sleep(COLD_GAP_S)
            cells.cold.samples.append(timed_write(probe.procs(0, "a"), pid))
            if len(probe.bases) > 1:
                cells.follow.samples.append(timed_write(probe.procs(1, "a"), pid))
        finally:
            probe.reap(pid)
    pid = probe.spawn()
    try:
        for write in range(WARM_WRITES):
            cells.warm.samples.append(timed_write(probe.procs(0, "ab"[write % 2]), pid))
    finally:
        probe.reap(pid)
    cells.spawn.samples.extend(spawn_true() for _ in range(FORKS))
    cells.fork.samples.extend(fork_exit() for _ in range(FORKS))
    time.sleep(COLD_GAP_S)
    start = time.perf_counter()
    sandbox.ns.run(f"fdm{state}{index}", SLEEP)
    cells.api.samples.append(_ms(start))
    _finish(sandbox)


def favordynmods(settings: Settings, sandbox: Sandbox) -> list[Figure]:
    rounds = 2 if settings.quick else 16
    with open("/proc/filesystems", encoding="ascii") as f:
        filesystems = f.read()
    chosen = plan(rounds, release=platform.release(), mountinfo=_mountinfo(), filesystems=filesystems,
                  euid=os.geteuid(), opt_in=os.environ.get(OPT_IN_ENV, ""))
    for state, why in chosen.missing.items():
        if state != "after":
            log(f"favordynmods: not measured, {LABELS[state]}: {chosen.detail or why}")
    probe = Probe(sandbox.token)
    scratch = Scratch(sandbox.token)
    cells = {state: _cells(state, len(probe.bases)) for state in STATES}
    log(f"favordynmods: {len(chosen.order)} rounds ({', '.join(sorted(set(chosen.order)))}), writes into "
        f"{', '.join(probe.bases)}, {COLD_GAP_S} s of quiet before each cold write and launch")
    problems: list[str] = []
    try:
        probe.make()
        previous = None
        for index, state in enumerate(chosen.order):
            if state != previous:
                if state == "on":
                    scratch.mount()
                elif scratch.mounted:
                    scratch.unmount()
                time.sleep(SETTLE_S)  # let the rcu_sync of the switch settle before a cold sample
            previous = state
            _round(state, index, cells[state], probe, sandbox)
    finally:
        _finish(sandbox)
        problems.extend(probe.cleanup())
        try:
            scratch.remove()
        except Exception as exc:
            problems.append(str(exc))
    if problems:
        raise RuntimeError("favordynmods left things behind: " + "; ".join(problems))
    figures: list[Figure] = []
    for state in STATES:
        if state in chosen.missing:
            if state != "after":  # only a one-way kernel has an "off again" state at all
                figures.append(Figure(f"fdm.{state}", f"{LABELS[state]}: every figure", "ms", available=False,
                                      note=chosen.missing[state]))
            continue
        for figure in cells[state].all():
            if figure.samples:
                figure.note = quartiles(figure.samples)
                log(f"favordynmods: {figure.label}: {figure.note} ms")
        figures.extend(cells[state].all())
    off, on = cells["off"], cells["on"]
    if "on" not in chosen.missing and "off" not in chosen.missing:
        figures += [Figure("fdm.ratio.cold_write", "cold cgroup.procs write, on / off", "ratio",
                           samples=[on.cold.median / off.cold.median]),
                    Figure("fdm.ratio.spawn", "posix_spawn + wait, on / off", "ratio",
                           samples=[on.spawn.median / off.spawn.median]),
                    Figure("fdm.ratio.fork", "fork + _exit + wait, on / off", "ratio",
                           samples=[on.fork.median / off.fork.median]),
                    Figure("fdm.ratio.cold_api", "cold API Namespace.run, on / off", "ratio",
                           samples=[on.api.median / off.api.median])]
    return figures
