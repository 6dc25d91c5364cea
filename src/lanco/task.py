"""A task's life: start, check, stop, wait, its record, and the recovery of runs whose monitor is gone."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from lanco import logfile, procfs
from lanco.cgroups.backend import poll_ms
from lanco.errors import (
    AlreadyRunning,
    CgroupError,
    CommandNotExecutable,
    CommandNotFound,
    LancoError,
    NotRunning,
    PermissionDenied,
    StillRunning,
    UsageError,
)
from lanco.names import check_task_name
from lanco.record import (
    FINISHED_STATES,
    TaskRecord,
    apply_result,
    apply_spec,
    read_int_file,
    read_result,
    read_spec,
    write_result,
    write_spec,
)
from lanco.spawn import (
    MONITOR_SCRIPT,
    WAITER_SCRIPT,
    hook_runner,
    monitor_shell,
    package_file,
    run_hook_detached,
    start_detached,
)

if TYPE_CHECKING:
    from lanco.cgroups.backend import Backend
    from lanco.namespace import Namespace

DEFAULT_STOP_TIMEOUT = 10.0
LOST_EXIT_CODE = 255
"""What ``wait`` and ``run -f`` return for a run whose end nobody saw (its monitor died)."""
_RUN_FILES = ("spec.json", "monitor", "pid", "result", "stop", "timeout")
_START_REPORT_TIMEOUT = 30.0


class Task:
    """One named task of a namespace; every method re-reads the kernel and the record, nothing is cached."""

    def __init__(self, namespace: Namespace, name: str) -> None:
        self.namespace = namespace
        self.name = check_task_name(name)

    def __repr__(self) -> str:
        return f"Task({self.namespace.name!r}, {self.name!r})"

    @property
    def _ns(self) -> str:
        return self.namespace.name

    @property
    def _backend(self) -> Backend:
        return self.namespace.backend

    @property
    def state_dir(self) -> str:
        return self.namespace.config.task_state_dir(self.name)

    # -- queries -------------------------------------------------------------------------------------------

    def is_running(self) -> bool:
        """True while the task's cgroup holds at least one process."""
        backend = self._backend
        return backend.task_exists(self._ns, self.name) and backend.populated(self._ns, self.name)

    def pids(self) -> list[int]:
        return self._backend.pids(self._ns, self.name)

    def record(self) -> TaskRecord:
        record = TaskRecord(self._ns, self.name, "unknown")
        spec = read_spec(self.state_dir)
        if spec is not None:
            apply_spec(record, spec)
        backend = self._backend
        exists = backend.task_exists(self._ns, self.name)
        if exists:
            figures = backend.figures(self._ns, self.name)
            record.pids = figures.pids
            record.cpu_usec = figures.cpu_usec
            record.memory_bytes = figures.memory_bytes
            record.memory_peak_bytes = figures.memory_peak_bytes
            record.oom_kills = figures.oom_kills
            main = read_int_file(os.path.join(self.state_dir, "pid"))
            record.main_pid = main[0] if main else None
            if figures.pids:
                record.state = "running"
                return record
        result = read_result(self.state_dir)
        if result is not None and (spec is None or result[0].get("run_id") == record.run_id):
            apply_result(record, *result)
            record.pids = []
            return record
        if spec is None and not exists:
            return record
        if self._monitor_alive(spec):
            record.state = "finishing" if exists else "starting"
            return record
        with self._try_lock() as locked:
            if not locked:
                record.state = "starting"
                return record
            self._settle_locked()
        return self.record() if read_result(self.state_dir) is not None else record

    # -- start ---------------------------------------------------------------------------------------------

    def start(self, argv: list[str], *, log: str | None = None, keep_log: bool = False,
              exit_command: str | None = None, memory_max: int | None = None, foreground: bool = False,
              env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        """Start ``argv`` under this name; returns once its first process is inside the task's cgroup.

        ``foreground`` keeps the caller's standard input and output (unless ``log`` is given) for
        ``run -f``; the task still gets a monitor, a record and a cgroup of its own.
        """
        if not argv:
            raise UsageError("no command given")
        environment = dict(os.environ if env is None else env)
        if cwd is not None and not os.path.isdir(cwd):
            raise UsageError(f"working directory {cwd} does not exist")
        _resolve_command(argv[0], environment.get("PATH", os.defpath), cwd)
        backend = self._backend
        limits: dict[str, int] = {}
        if memory_max is not None:
            backend.require(self._ns, "memory", "-m/--memory-max")
            limits["memory_max"] = memory_max
        problem = backend.placement_problem(self._ns)
        if problem is not None:
            raise PermissionDenied(problem)
        owner = self.namespace.acting_for_owner
        self._ensure_state_dir(owner)
        with self._lock():
            self._claim_name(owner)
            log_fd = -1
            try:
                self._clear_run_files()
                if memory_max is not None:
                    backend.set_memory_max(self._ns, self.name, memory_max)
                log_path = log if log is not None else (None if foreground else
                                                        self.namespace.config.default_log(self.name))
                if log_path is not None:
                    log_path = os.path.abspath(log_path)
                    if not keep_log:
                        logfile.rotate(log_path)
                    log_fd = logfile.open_append(log_path, owner)
                run_id = os.urandom(8).hex()
                write_spec(self.state_dir, {
                    "run_id": run_id, "namespace": self._ns, "name": self.name, "argv": argv,
                    "log": log_path, "exit_command": exit_command, "limits": limits,
                    "started": time.time(), "boot_id": procfs.boot_id(), "uid": os.geteuid(),
                    "cwd": cwd or os.getcwd(),
                })
                if owner is not None:
                    _chown_record(self.state_dir, owner)
                self._spawn_monitor(argv, environment, run_id, log_path, log_fd, exit_command,
                                    foreground, cwd)
            except BaseException:
                self._abort_start()
                raise
            finally:
                if log_fd >= 0:
                    os.close(log_fd)

    def _spawn_monitor(self, argv: list[str], env: dict[str, str], run_id: str, log_path: str | None,
                       log_fd: int, exit_command: str | None, foreground: bool, cwd: str | None) -> None:
        backend, ns, config = self._backend, self._ns, self.namespace.config
        stats = backend.stat_sources(ns, self.name)
        env.update({
            "LANCO_MON_STATE": self.state_dir,
            "LANCO_MON_RUN_ID": run_id,
            "LANCO_MON_MONITORS": "\n".join(backend.monitor_join_files(ns)),
            "LANCO_MON_JOIN": "\n".join(backend.join_files(ns, self.name)),
            "LANCO_MON_TRACKER": backend.task_dir(ns, self.name),
            "LANCO_MON_DIRS": "\n".join(backend.task_dirs(ns, self.name)),
            "LANCO_MON_EVENTS": backend.events_file(ns, self.name) or "",
            "LANCO_MON_WAITER": "\n".join([sys.executable, "-I", "-S", package_file(WAITER_SCRIPT)]),
            "LANCO_MON_STATS": "\n".join(f"{s.key} {s.path} {s.field}" for s in stats),
            "LANCO_MON_HOOK": exit_command or "",
            "LANCO_MON_HOOK_AS": "\n".join(hook_runner(config.owner_uid, config.owner_gid)),
            "LANCO_MON_NS": ns,
            "LANCO_MON_TASK": self.name,
            "LANCO_MON_LOG": log_path or "",
        })
        report_r, report_w = os.pipe()
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            stdin = 0 if foreground else devnull
            out, err = (log_fd, log_fd) if log_fd >= 0 else (1, 2)
            start_detached([monitor_shell(), package_file(MONITOR_SCRIPT), *argv], env,
                           {0: stdin, 1: out, 2: devnull, 3: report_w, 4: err}, cwd, subreaper=True)
        finally:
            os.close(report_w)
            os.close(devnull)
        try:
            report = _read_report(report_r, _START_REPORT_TIMEOUT)
        finally:
            os.close(report_r)
        if not report.startswith("started "):
            detail = report.partition(" ")[2] if report.startswith("error ") else "the monitor exited early"
            raise CgroupError(f"cannot start task {self.name}: {detail}")

    def _claim_name(self, owner: tuple[int, int] | None) -> None:
        """Create the task's cgroups; a leftover of a finished or lost run is cleared first."""
        backend = self._backend
        for _ in range(3):
            try:
                backend.create_task(self._ns, self.name, owner)
                return
            except FileExistsError:
                pass
            if backend.populated(self._ns, self.name):
                break
            spec = read_spec(self.state_dir)
            if self._monitor_alive(spec):
                # The run ended and its monitor is removing the cgroups: that takes milliseconds.
                deadline = time.monotonic() + 3.0
                while backend.task_exists(self._ns, self.name) and time.monotonic() < deadline:
                    if backend.populated(self._ns, self.name):
                        raise AlreadyRunning(f"task {self.name} is already running")
                    time.sleep(0.005)
            else:
                self._settle_locked()
        raise AlreadyRunning(f"task {self.name} is already running")

    def _abort_start(self) -> None:
        """Undo a start that failed half-way: nothing of it may stay behind."""
        backend = self._backend
        with contextlib.suppress(LancoError, OSError):
            if backend.task_exists(self._ns, self.name):
                backend.kill(self._ns, self.name)
                backend.wait_empty(self._ns, self.name, 5.0)
                backend.remove_task(self._ns, self.name)
        self._clear_run_files()

    # -- stop, wait ----------------------------------------------------------------------------------------

    def stop(self, timeout: float | None = None, stop_signal: int = signal.SIGTERM) -> TaskRecord:
        """Signal every process, wait up to ``timeout`` seconds, then kill the whole cgroup."""
        backend = self._backend
        if not self.is_running():
            raise NotRunning(f"task {self.name} is not running")
        timeout = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
        spec = read_spec(self.state_dir) or {}
        self._write_marker("stop", str(spec.get("run_id", "")))
        try:
            self.signal(stop_signal)
        except PermissionDenied:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.state_dir, "stop"))
            raise
        if not backend.wait_empty(self._ns, self.name, timeout):
            for _ in range(10):
                backend.kill(self._ns, self.name)
                if backend.wait_empty(self._ns, self.name, 1.0):
                    break
            else:
                raise CgroupError(f"task {self.name} still has processes after SIGKILL: "
                                  f"{' '.join(map(str, self.pids()))}")
        return self._await_end(5.0)

    def signal(self, signum: int) -> int:
        """Send ``signum`` (and SIGCONT, so a stopped process acts on it) to every process of the task.

        New processes forked while signalling get it too: passes repeat until one finds nobody new.
        """
        backend, seen = self._backend, set[int]()
        for _ in range(50):
            fresh = [p for p in backend.pids(self._ns, self.name) if p not in seen]
            if not fresh:
                break
            for pid in fresh:
                try:
                    os.kill(pid, signum)
                    if signum not in (signal.SIGKILL, signal.SIGCONT):
                        os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                except PermissionError:
                    raise PermissionDenied(f"cannot signal process {pid} of task {self.name}: "
                                           "it runs as another user") from None
            seen.update(fresh)
        return len(seen)

    def wait(self, timeout: float | None = None) -> TaskRecord:
        """Block until the task has ended (its monitor recorded the result) and return its record."""
        deadline = None if timeout is None else time.monotonic() + timeout
        record = self.record()
        if record.state == "unknown":
            raise NotRunning(f"task {self.name} is not running")
        while record.state not in FINISHED_STATES:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return record
            self._wait_for_monitor(remaining)
            record = self.record()
        return record

    def _wait_for_monitor(self, timeout: float | None) -> None:
        """Sleep until the monitor exits (a pidfd becomes readable), or briefly when there is none yet."""
        monitor = read_int_file(os.path.join(self.state_dir, "monitor"))
        if len(monitor) == 2 and procfs.is_same_process(monitor[0], monitor[1]):
            try:
                fd = os.pidfd_open(monitor[0])
            except OSError:
                fd = -1
            if fd >= 0:
                try:
                    poller = select.poll()
                    poller.register(fd, select.POLLIN)
                    poller.poll(poll_ms(timeout))
                finally:
                    os.close(fd)
                return
        if self.is_running():
            # The monitor is gone but the task runs on: wait for its cgroup to empty.
            self._backend.wait_empty(self._ns, self.name, 1.0 if timeout is None else min(timeout, 1.0))
        else:
            time.sleep(0.01)

    def _await_end(self, timeout: float) -> TaskRecord:
        deadline = time.monotonic() + timeout
        record = self.record()
        while record.state not in FINISHED_STATES and time.monotonic() < deadline:
            time.sleep(0.002)
            record = self.record()
        return record

    # -- release and recovery ------------------------------------------------------------------------------

    def release(self, *, dry_run: bool = False) -> list[str]:
        """Forget a finished task: its leftover cgroups and its record (its logs stay)."""
        backend = self._backend
        if self.is_running():
            raise StillRunning(f"task {self.name} is running")
        exists = backend.task_exists(self._ns, self.name)
        if not exists and not os.path.isdir(self.state_dir):
            raise NotRunning(f"task {self.name} is not known")
        targets = [d for d in backend.task_dirs(self._ns, self.name) if os.path.isdir(d)]
        targets.append(self.state_dir)
        if dry_run:
            return targets
        with self._lock():
            if self.is_running():
                raise StillRunning(f"task {self.name} is running")
            self._settle_locked()
            backend.remove_task(self._ns, self.name)
            shutil.rmtree(self.state_dir, ignore_errors=True)
        return targets

    def settle(self) -> None:
        """Record a run whose monitor died as ``lost``, remove its cgroups and run its hook, exactly once."""
        if not os.path.isdir(self.state_dir):
            return
        with self._lock():
            self._settle_locked()

    def _settle_locked(self) -> None:
        backend = self._backend
        exists = backend.task_exists(self._ns, self.name)
        if exists and backend.populated(self._ns, self.name):
            return
        spec = read_spec(self.state_dir)
        if self._monitor_alive(spec):
            return
        if spec is None and not exists:
            return
        run_id = str((spec or {}).get("run_id", ""))
        result = read_result(self.state_dir)
        if spec is not None and (result is None or result[0].get("run_id") != run_id):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.state_dir, "result"))
            write_result(self.state_dir, {"run_id": run_id, "result": "lost", "exit_code": "",
                                          "signal": ""})
        if exists:
            backend.remove_task(self._ns, self.name)
        if spec is not None and spec.get("exit_command"):
            try:
                os.mkdir(os.path.join(self.state_dir, "hook.claimed"))
            except FileExistsError:
                return
            self._run_lost_hook(spec)

    def _run_lost_hook(self, spec: dict[str, object]) -> None:
        config = self.namespace.config
        fields = (read_result(self.state_dir) or ({}, 0.0))[0]
        env = dict(os.environ)
        env.update({
            "LANCO_NAMESPACE": self._ns, "LANCO_TASK": self.name,
            "LANCO_RESULT": fields.get("result", "lost"), "LANCO_EXIT_CODE": fields.get("exit_code", ""),
            "LANCO_SIGNAL": fields.get("signal", ""), "LANCO_OOM_KILLS": fields.get("oom_kills", ""),
            "LANCO_LOG": str(spec.get("log") or ""),
        })
        run_hook_detached(str(spec["exit_command"]), env, hook_runner(config.owner_uid, config.owner_gid),
                          str(spec.get("log") or "") or None)

    def _monitor_alive(self, spec: dict[str, object] | None) -> bool:
        if spec is not None and spec.get("boot_id") and spec.get("boot_id") != procfs.boot_id():
            return False
        monitor = read_int_file(os.path.join(self.state_dir, "monitor"))
        return len(monitor) == 2 and procfs.is_same_process(monitor[0], monitor[1])

    # -- record directory ----------------------------------------------------------------------------------

    def _ensure_state_dir(self, owner: tuple[int, int] | None) -> None:
        try:
            os.mkdir(self.state_dir, 0o2770 if self.namespace.config.group_access else 0o700)
        except FileExistsError:
            return
        if owner is not None:
            os.chown(self.state_dir, *owner)

    def _clear_run_files(self) -> None:
        for name in _RUN_FILES:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.state_dir, name))
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rmdir(os.path.join(self.state_dir, "hook.claimed"))

    def _write_marker(self, name: str, content: str) -> None:
        path = os.path.join(self.state_dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
        try:
            os.write(fd, content.encode() + b"\n")
            if (owner := self.namespace.acting_for_owner) is not None:
                os.fchown(fd, *owner)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise the starts of one name; held only for the few milliseconds a start takes."""
        fd = self._open_lock()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _try_lock(self) -> Iterator[bool]:
        try:
            fd = self._open_lock()
        except OSError:
            yield False
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def _open_lock(self) -> int:
        path = os.path.join(self.state_dir, "lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o660)
        if (owner := self.namespace.acting_for_owner) is not None:
            with contextlib.suppress(OSError):
                os.fchown(fd, *owner)
        return fd


def _resolve_command(command: str, path: str, cwd: str | None) -> str:
    """Refuse a command that does not exist or cannot run, before anything is created."""
    if "/" in command:
        candidate = os.path.join(cwd or os.getcwd(), command)
        if not os.path.exists(candidate):
            raise CommandNotFound(f"command {command} not found")
        if os.path.isdir(candidate) or not os.access(candidate, os.X_OK):
            raise CommandNotExecutable(f"command {command} is not executable")
        return candidate
    found = shutil.which(command, path=path)
    if found is None:
        raise CommandNotFound(f"command {command} not found")
    return found


def _read_report(fd: int, timeout: float) -> str:
    """The monitor's first report line: ``started PID`` or ``error ...``; empty when it closed the pipe."""
    deadline = time.monotonic() + timeout
    buffer = b""
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "error no report from the monitor"
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 512)
        if not chunk:
            break
        buffer += chunk
    return buffer.split(b"\n", 1)[0].decode(errors="replace")


def _chown_record(directory: str, owner: tuple[int, int]) -> None:
    for entry in os.scandir(directory):
        with contextlib.suppress(OSError):
            os.chown(entry.path, *owner, follow_symlinks=False)
