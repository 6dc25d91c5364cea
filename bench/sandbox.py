"""The benchmark's own namespace: a unique cgroup base, state and log roots under a temp folder, and a cleanup
that leaves nothing behind (tasks stopped, namespace released, cgroups removed) even after a failure."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lanco.namespace import Namespace


def read_pids(procs_file: str) -> list[int]:
    try:
        with open(procs_file, encoding="ascii") as f:
            return [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return []


def remove_cgroup(directory: str, attempts: int, pause: float) -> None:
    """rmdir, again while the kernel still counts a process that has just left (EBUSY); gone already is done."""
    for _ in range(attempts):
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(pause)


class Sandbox:
    """Owns one namespace; every process it ever stops is found through that namespace's cgroups."""

    def __init__(self) -> None:
        token = uuid.uuid4().hex[:10]
        self.token = token
        self.root = tempfile.mkdtemp(prefix=f"lanco-bench-{token}-")
        os.chmod(self.root, 0o755)
        self.base = f"/lanco-bench-{token}"
        self.ns_name = f"bench{token[:6]}"
        self.env = {"LANCO_CGROUP_BASE": self.base, "LANCO_STATE_DIR": os.path.join(self.root, "state"),
                    "LANCO_LOG_DIR": os.path.join(self.root, "log")}
        self._saved_env = {k: os.environ.get(k) for k in (*self.env, "LANCO_CGROUP_MODE")}
        os.environ.update(self.env)
        os.environ.pop("LANCO_CGROUP_MODE", None)  # this machine's default mode, whatever the caller's shell says
        self._ns: Namespace | None = None

    # -- the namespace -------------------------------------------------------------------------------------

    def init(self) -> Namespace:
        from lanco.namespace import Namespace

        self._ns = Namespace.init(self.ns_name)
        return self._ns

    @property
    def ns(self) -> Namespace:
        if self._ns is None:
            raise RuntimeError("the sandbox's namespace is not initialised")
        return self._ns

    def monitors_dir(self) -> str:
        """The tracker hierarchy's ``.monitors`` cgroup: every lanco process of this namespace lives there."""
        return os.path.dirname(self.ns.backend.monitor_join_files(self.ns_name)[0])

    def monitor_pids(self) -> list[int]:
        return read_pids(os.path.join(self.monitors_dir(), "cgroup.procs"))

    def running_names(self) -> list[str]:
        backend = self.ns.backend
        return [n for n in backend.task_names(self.ns_name) if backend.populated(self.ns_name, n)]

    def wait_monitors(self, count: int, timeout: float) -> bool:
        """Wait until at most ``count`` monitors remain (finished runs' monitors remove their cgroups and exit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.monitor_pids()) <= count:
                return True
            time.sleep(0.02)
        return len(self.monitor_pids()) <= count

    def kill_all(self, timeout: float = 60.0) -> None:
        """Kill every task of the namespace (the last stage of ``stop``) and wait for their monitors to finish."""
        if self._ns is None:
            return
        backend = self.ns.backend
        for name in backend.task_names(self.ns_name):
            with contextlib.suppress(Exception):
                backend.kill(self.ns_name, name)
        self.wait_monitors(0, timeout)

    # -- cleanup -------------------------------------------------------------------------------------------

    def cleanup(self) -> list[str]:
        """Stop everything, release the namespace, remove what is left; returns what had to be forced."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave a mess
        forced: list[str] = []
        try:
            if self._ns is not None:
                try:
                    self.kill_all()
                    self.ns.release()
                except Exception as exc:
                    forced.append(f"release failed: {exc}")
            forced.extend(self._force_clean())
            shutil.rmtree(self.root, ignore_errors=True)
        finally:
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            signal.signal(signal.SIGINT, previous)
        return forced

    def _hierarchy_tops(self) -> list[str]:
        from lanco.cgroups.detect import read_mounts

        tops = []
        for mount in read_mounts():
            if mount.root != "/":
                continue
            path = os.path.join(mount.path, self.base.lstrip("/"))
            if os.path.isdir(path):
                tops.append(path)
        return tops

    def _force_clean(self) -> list[str]:
        """Kill whatever is still in this sandbox's cgroups (only ours: the base is unique) and remove them."""
        forced: list[str] = []
        for top in self._hierarchy_tops():
            walk = sorted((d for d, _, _ in os.walk(top)), key=lambda d: -d.count("/"))
            for directory in walk:
                pids = read_pids(os.path.join(directory, "cgroup.procs"))
                if pids:
                    forced.append(f"{directory}: killed {len(pids)} processes")
                    kill = os.path.join(directory, "cgroup.kill")
                    if os.path.exists(kill):
                        with contextlib.suppress(OSError), open(kill, "w", encoding="ascii") as f:
                            f.write("1")
                    for pid in pids:
                        with contextlib.suppress(OSError):
                            os.kill(pid, signal.SIGKILL)
            for directory in walk:
                remove_cgroup(directory, attempts=100, pause=0.05)
            if os.path.isdir(top):
                forced.append(f"{top}: could not be removed")
            else:
                forced.append(f"{top}: removed by force")
        return forced
