"""A task's life: start, check, stop, wait, its record, and the recovery of runs whose monitor is gone."""

from __future__ import annotations

import fcntl
import os
import select
import sys
import time

from lanco import contexts, logfile, messages, monitorcontract, procfs, signums
from lanco.cgroups.cgroupfs import poll_ms
from lanco.errors import (
    AlreadyRunning,
    CgroupError,
    CommandNotExecutable,
    CommandNotFound,
    LancoError,
    LimitUnavailable,
    NotRunning,
    PermissionDenied,
    StateError,
    StillRunning,
    UsageError,
    as_lanco_error,
    maps_os_errors,
)
from lanco.names import check_task_name
from lanco.privileges import with_owner_ids
from lanco.record import (
    FINISHED_STATES,
    TaskRecord,
    apply_result,
    apply_spec,
    read_int_file,
    read_result,
    read_spec,
    run_oom_kills,
    write_result,
    write_spec,
)
from lanco.spawn import (
    MONITOR_SCRIPT,
    WAITER_SCRIPT,
    hook_runner,
    monitor_shell,
    package_file,
    read_line,
    run_hook_detached,
    which,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager
    from typing import Any, BinaryIO, Unpack

    from lanco.cgroups.backend import Backend
    from lanco.limits import LimitOptions, Limits
    from lanco.logrotation import Rotation
    from lanco.namespace import Namespace
    from lanco.runopts import Lifetime, RunOptions, RunPlan

LOST_EXIT_CODE = 255
"""What ``wait`` and ``run -f`` return for a run whose end nobody saw (its monitor died)."""
_REPORTED_LOSSES: set[tuple[str, str, int]] = set()
"""Runs (namespace, task, cgroup inode) whose lost record this process has warned of (a command reads a record more
than once)."""
_RUN_FILES = ("spec.json", "monitor", "pid", "result", "stop", "timeout", "restarting", "runs.jsonl", "oom_base")
_START_REPORT_TIMEOUT = 30.0
ROTATION_FREEZE_TIMEOUT = 2.0
"""How long a log rotation waits for its task to freeze (a process in uninterruptible sleep holds it up)
before it gives up, thaws the task and leaves the log for the next rotation."""


_as_owner = with_owner_ids
"""Methods of a task that open its files run with the namespace owner's ids when root works in someone else's
namespace (see lanco.privileges): the owner's files are then handled with no more than the owner's rights."""


class Task:
    """One named task of a namespace; every method re-reads the kernel and the record, nothing is cached."""

    def __init__(self, namespace: Namespace, name: str) -> None:
        self.namespace = namespace
        self.name = check_task_name(name)
        self._stopped_cgroup: int | None = None

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

    def owner_ids(self) -> AbstractContextManager[None]:
        return self.namespace.owner_ids()

    # -- queries -------------------------------------------------------------------------------------------

    @maps_os_errors
    def is_running(self) -> bool:
        """True while the task's cgroup (in any hierarchy) holds at least one process, or its first process lives
        on outside it (see :meth:`_stray_first_process`)."""
        backend = self._backend
        if not backend.task_exists(self._ns, self.name):
            return False
        return backend.populated(self._ns, self.name) or self._stray_first_process([]) is not None

    @maps_os_errors
    @_as_owner
    def is_active(self) -> bool:
        """Running, or between two runs of ``run --restart`` (no process, but its monitor will start one).

        A damaged spec does not make the answer unknown: its run's marker cannot be matched, so the task is active
        while a monitor pauses before a restart at all."""
        if self.is_running():
            return True
        try:
            spec = read_spec(self.state_dir)
        except StateError:
            return os.path.exists(os.path.join(self.state_dir, "restarting")) and self._monitor_alive(None)
        return self._restart_pending(spec)

    def record_gone(self) -> bool:
        """True when the record of this run (its spec) is missing: a running task is then known from its cgroup
        only. Only a look for the file, as root too (it reads nothing), so that check stays cheap."""
        return not os.path.exists(os.path.join(self.state_dir, "spec.json"))

    def _live_spec(self) -> dict[str, Any] | None:
        """The spec of a task whose cgroup holds processes. Where it is gone or damaged, None, after one warning
        that says what was lost (the kernel's cgroup tree is the truth: the task is still checked, stopped and
        killed from it), and the record directory is made again, so that the locks and the monitor's result have
        a place."""
        try:
            spec = read_spec(self.state_dir)
        except StateError as exc:
            self._known_from_cgroup_only(f"{exc.message}; the task is known from its cgroup only")
            return None
        if spec is None:
            self._known_from_cgroup_only(f"task {self.name}: its record is gone; known from its cgroup only")
        return spec

    def _known_from_cgroup_only(self, text: str) -> None:
        try:
            # Once per run: a new run of the name has a new cgroup.
            key = (self._ns, self.name, os.stat(self._backend.task_dir(self._ns, self.name)).st_ino)
        except OSError:
            key = (self._ns, self.name, 0)
        if key not in _REPORTED_LOSSES:
            _REPORTED_LOSSES.add(key)
            messages.warn(messages.command(), text)
        with contexts.suppress(OSError, LancoError):
            self._ensure_state_dir(self.namespace.acting_for_owner)
            if not self._monitor_alive(None):
                self._recover_monitor()

    def _recover_monitor(self) -> None:
        """Write the ``monitor`` and ``pid`` files again from what the kernel shows: the monitor is the parent of
        the task's first process (a shell running lanco's monitor script). Without them, a command finding the run
        ended before its monitor wrote the result would take the run for lost and clear its stop marker."""
        script = package_file(MONITOR_SCRIPT)
        for pid in self.pids():
            monitor = procfs.parent(pid)
            if monitor is None or procfs.argv(monitor)[1:2] != [script]:
                continue
            started = procfs.start_time(monitor)
            if started is not None:
                self._write_marker("pid", str(pid))
                self._write_marker("monitor", f"{monitor} {started}")
            return

    @maps_os_errors
    def pids(self) -> list[int]:
        found = self._backend.pids(self._ns, self.name)
        stray = self._stray_first_process(found)
        return found if stray is None else [*found, stray]

    def _stray_first_process(self, known: list[int], main: int | None = None) -> int | None:
        """The task's first process (``main``, else the one the record names) where it moved itself out of every
        cgroup of the task, into ``.monitors`` or another task's (an owner may write those in v1): its monitor
        waits for it all the same, so it stays this task's, shown and stopped as such, until it ends."""
        if main is None:
            recorded = read_int_file(os.path.join(self.state_dir, "pid"))
            main = recorded[0] if recorded else None
        if main is None or main in known:
            return None
        monitor = read_int_file(os.path.join(self.state_dir, "monitor"))
        if len(monitor) != 2 or procfs.parent(main) != monitor[0] or not procfs.is_same_process(*monitor):
            return None
        return main

    @maps_os_errors
    @_as_owner
    def record(self) -> TaskRecord:
        record = TaskRecord(self._ns, self.name, "unknown")
        backend = self._backend
        exists = backend.task_exists(self._ns, self.name)
        damage: StateError | None = None
        try:
            spec = read_spec(self.state_dir)
        except StateError as exc:
            if not exists:
                raise
            spec, damage = None, exc  # the cgroup may still tell what runs
        if spec is not None:
            apply_spec(record, spec)
        if exists:
            figures = backend.figures(self._ns, self.name)
            record.pids = figures.pids
            record.cpu_usec = figures.cpu_usec
            record.memory_bytes = figures.memory_bytes
            record.memory_peak_bytes = figures.memory_peak_bytes
            record.oom_kills = run_oom_kills(figures.oom_kills, self.state_dir)
            main = read_int_file(os.path.join(self.state_dir, "pid"))
            record.main_pid = main[0] if main else None
            stray = self._stray_first_process(figures.pids, record.main_pid)
            if stray is not None:
                record.pids = [*figures.pids, stray]
            if record.pids:
                if spec is None:
                    self._live_spec()
                record.state = "frozen" if backend.frozen(self._ns, self.name) else "running"
                # Only a monitor told to restart keeps runs.jsonl: ls and dump spare the others a failed open.
                record.restarts = self._completed_runs() if _may_restart(spec) else 0
                return record
        if damage is not None:
            raise damage
        result = read_result(self.state_dir)
        if result is not None and (spec is None or result[0].get("run_id") == record.run_id):
            apply_result(record, *result)
            record.pids = []
            return record
        if spec is None and not exists:
            return record
        if self._monitor_alive(spec):
            if exists and self._restart_pending(spec):
                record.state = "restarting"
                record.restarts = max(0, self._completed_runs() - 1)
            else:
                record.state = "finishing" if exists else "starting"
            return record
        with self._try_lock() as locked:
            if not locked:
                record.state = "starting"
                return record
            self._settle_locked()
        return self.record() if read_result(self.state_dir) is not None else record

    # -- log -----------------------------------------------------------------------------------------------

    def _log_path(self) -> str:
        log = (read_spec(self.state_dir) or {}).get("log")
        return str(log) if log else self.namespace.config.default_log(self.name)

    @maps_os_errors
    @_as_owner
    def show_log(self, out: BinaryIO, *, lines: int | None = None, follow: bool = False) -> None:
        """Copy the task's log (its last ``lines`` lines) to ``out``; with ``follow``, go on as ``tail -F``
        across rotations and new runs until interrupted. The log is the one the record names, opened with the
        owner's ids when root reads a user's namespace."""
        path = self._log_path()
        f = logfile.open_read(path)
        if f is None and not follow:
            if self.record().state == "unknown":
                raise LancoError(f"task {self.name} is not known")
            raise LancoError(f"task {self.name} has no log: {path} does not exist")
        if f is not None:
            if lines is not None:
                f.seek(logfile.tail_start(f, lines))
            logfile.copy(f, out)
            if not follow:
                f.close()
                return
        logfile.follow(path, f, out, os.path.join(self.state_dir, "spec.json"), self._log_path)

    @maps_os_errors
    @_as_owner
    def rotate_log(self) -> Rotation | None:
        """Rotate the task's log if it is over the size its run was given (``--log-max-size``): copied to ``.1``
        (older copies shifted, ``--log-keep`` of them kept), then truncated, with the task frozen for the last
        moment of the copy and the truncate so that nothing it writes is lost (lanco.logrotation). None when the
        run has no bound or the log is within it. The task goes on as it was; a task frozen by its user stays
        frozen."""
        from lanco import logrotation
        from lanco.runopts import LogBounds

        # The stop lock, then the start lock (the order stop takes them in): a stop thaws the task it signals, a
        # new run rotates the log as it starts, and a freeze or thaw must not land in the pause.
        rotation = None
        with self._lock("stop.lock"), self._lock():
            spec = read_spec(self.state_dir)
            try:
                bounds = LogBounds.from_record((spec or {}).get("log_bounds"))
            except StateError as exc:
                raise StateError(f"the record of task {self.name} is damaged: "
                                 f"{os.path.join(self.state_dir, 'spec.json')}: {exc.message}") from None
            if spec is not None and spec.get("log") and bounds.max_size is not None:
                rotation = logrotation.rotate_over(str(spec["log"]), bounds.max_size, bounds.keep,
                                                   self._writers_paused)
        return rotation

    @contexts.contextmanager
    def _writers_paused(self) -> Iterator[bool]:
        """Freeze the running task for the rotation's last moment; yields whether its writes are held back (True
        too for a task that is not running or frozen already: nothing of it writes)."""
        backend, ns = self._backend, self._ns
        if not self.is_running() or backend.frozen(ns, self.name):
            yield True
            return
        if not backend.freezable(ns, self.name):
            messages.debug("logs", f"task {self.name}: no freezer in cgroup mode {backend.mode}, its log is "
                                   "truncated right after the last copy without a pause")
            yield False
            return
        try:
            backend.set_frozen(ns, self.name, True, settle_timeout=ROTATION_FREEZE_TIMEOUT)
        except LancoError as exc:
            with contexts.suppress(LancoError, OSError):
                backend.set_frozen(ns, self.name, False)
            raise LancoError(f"cannot pause task {self.name} to rotate its log: {exc.message}; the log is left as "
                             "it was") from None
        try:
            yield True
        finally:
            try:
                backend.set_frozen(ns, self.name, False)
            except LancoError:
                if backend.task_exists(ns, self.name):
                    raise  # still there, and frozen: never hidden

    # -- start ---------------------------------------------------------------------------------------------

    @maps_os_errors
    def start(self, argv: list[str], **options: Unpack[RunOptions]) -> None:
        """Start ``argv`` under this name; returns once its first process is inside the task's cgroup.

        The options are those of ``lanco.runopts.RunOptions`` (limits, timeout, restart, environment, ...).
        All of them are parsed, and the limits checked against the namespace's cgroup mode, before anything is
        created: a bad value raises UsageError, a limit the mode cannot enforce LimitUnavailable.
        ``foreground`` keeps the caller's standard input and output (unless ``log`` is given) for
        ``run -f``; the task still gets a monitor, a record and a cgroup of its own.
        """
        from lanco.runopts import RunPlan

        self.launch(argv, RunPlan.build(options))

    @maps_os_errors
    @_as_owner
    def launch(self, argv: list[str], plan: RunPlan) -> None:
        """:meth:`start` with options parsed already (the command line parses them before it opens the
        namespace, so that a bad value is a usage error whatever else is wrong)."""
        if not argv:
            raise UsageError("no command given")
        limits, lifetime, process = plan.limits, plan.lifetime, plan.process
        environment = process.environment(os.environ if plan.env is None else plan.env)
        cwd = process.cwd
        log, keep_log, exit_command, foreground = plan.log, plan.keep_log, plan.exit_command, plan.foreground
        if foreground and log is None and plan.log_bounds.max_size is not None:
            raise UsageError("--log-max-size needs a log: run -f writes to the terminal unless -l names one")
        _resolve_command(argv[0], environment.get("PATH", os.defpath), cwd)
        from lanco.runopts import check_exec_size

        check_exec_size(argv, environment)
        backend = self._backend
        limits.check(backend, self._ns)
        if process.account is not None and os.getuid() == 0 and os.geteuid() not in (0, process.account.uid):
            from lanco.privileges import user_name

            raise PermissionDenied(f"a task in namespace {self._ns} runs as its owner "
                                   f"{user_name(os.geteuid())}: --user and --group are for root's own namespaces")
        exec_prefix = process.exec_prefix()
        problem = backend.placement_problem(self._ns)
        if problem is not None:
            raise PermissionDenied(problem)
        owner = self.namespace.acting_for_owner
        run_id = os.urandom(8).hex()
        with self._lock() as lock_fd:  # the record directory is made with its lock file
            try:
                self._claim_name(owner, backend.controllers_for(key for key, _ in limits.items()), run_id)
            except BaseException:
                self._drop_unrecorded_dir()  # a refused or failed run leaves no record directory
                raise
            messages.debug("run", f"task {self.name}: cgroups created: "
                                  f"{' '.join(backend.task_dirs(self._ns, self.name))}")
            log_fd = -1
            try:
                self._clear_run_files()
                log_path = log if log is not None else (None if foreground else
                                                        self.namespace.config.default_log(self.name))
                if log_path is not None:
                    log_path = os.path.abspath(log_path)
                    logfile.require_space(log_path)
                    if not keep_log:
                        logfile.rotate(log_path, plan.log_bounds.keep)
                    log_fd = logfile.open_append(log_path, owner)
                write_spec(self.state_dir, {
                    "run_id": run_id, "namespace": self._ns, "name": self.name, "argv": argv,
                    "log": log_path, "log_bounds": plan.log_bounds.as_record(),
                    "exit_command": exit_command, "limits": limits.as_record(),
                    "started": time.time(), "boot_id": procfs.boot_id(), "uid": os.geteuid(),
                    "cwd": cwd or os.getcwd(), "lifetime": lifetime.as_record(), "process": process.as_record(),
                })
                if owner is not None:
                    _chown_record(self.state_dir, owner)
                config = self.namespace.config
                environment.update(monitorcontract.monitor_environment(
                    backend, self._ns, self.name, state_dir=self.state_dir, run_id=run_id, lifetime=lifetime,
                    umask=process.umask, exec_prefix=exec_prefix, task_path=environment.get("PATH"),
                    waiter=[sys.executable, "-I", "-S", package_file(WAITER_SCRIPT)], hook=exit_command,
                    hook_as=hook_runner(config.owner_uid, config.owner_gid), log=log_path, cwd=cwd))
                self._spawn_monitor(argv, environment, log_fd, lock_fd, foreground,
                                    lambda: limits.apply(backend, self._ns, self.name))
            except BaseException:
                self._abort_start()
                raise
            finally:
                if log_fd >= 0:
                    os.close(log_fd)

    def _spawn_monitor(self, argv: list[str], env: dict[str, str], log_fd: int, lock_fd: int, foreground: bool,
                       write_limits: Callable[[], None]) -> None:
        """Start the monitor with ``env`` (its contract and the task's environment) and wait for its report."""
        backend, ns = self._backend, self._ns
        report_r, report_w = os.pipe()
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            stdin = 0 if foreground else devnull
            out, err = (log_fd, log_fd) if log_fd >= 0 else (1, 2)
            finish_start = backend.start_monitor(ns, self.name,
                                                 [monitor_shell(), package_file(MONITOR_SCRIPT), *argv], env,
                                                 {0: stdin, 1: out, 2: devnull, 3: report_w, 4: err,
                                                  6: lock_fd}, None, write_limits)
        except BaseException:
            os.close(report_r)
            raise
        finally:
            os.close(report_w)
            os.close(devnull)
        messages.debug("run", f"task {self.name}: monitor started, waiting for its report")
        try:
            report = read_line(report_r, _START_REPORT_TIMEOUT)
        finally:
            os.close(report_r)
            finish_start()
        messages.debug("run", f"task {self.name}: monitor reported {report!r}")
        if report is None:
            raise CgroupError(f"cannot start task {self.name}: no report from the monitor")
        if not report.startswith("started "):
            detail = report.partition(" ")[2] if report.startswith("error ") else "the monitor exited early"
            raise CgroupError(f"cannot start task {self.name}: {detail}")

    def _claim_name(self, owner: tuple[int, int] | None, controllers: set[str], run_id: str) -> None:
        """Create the task's cgroups; a leftover of a finished or lost run is cleared first."""
        backend = self._backend
        for _ in range(3):
            try:
                backend.create_task(self._ns, self.name, owner, controllers, run_id)
                return
            except FileExistsError:
                pass
            if self.is_running():
                break
            spec = read_spec(self.state_dir)
            if self._monitor_alive(spec) and self._restart_pending(spec):
                raise AlreadyRunning(f"task {self.name} is already running (it is waiting to restart)")
            if self._monitor_alive(spec):
                # The run ended and its monitor is removing the cgroups: that takes milliseconds.
                deadline = time.monotonic() + 3.0
                while backend.task_exists(self._ns, self.name) and time.monotonic() < deadline:
                    if self.is_running():
                        raise AlreadyRunning(f"task {self.name} is already running")
                    time.sleep(0.005)
            else:
                self._settle_locked()
        raise AlreadyRunning(f"task {self.name} is already running")

    def _abort_start(self) -> None:
        """Undo a start that failed half-way: nothing of it may stay behind."""
        backend = self._backend
        with contexts.suppress(LancoError, OSError):
            if backend.task_exists(self._ns, self.name):
                backend.kill(self._ns, self.name)
                backend.wait_empty(self._ns, self.name, 5.0)
                backend.remove_task(self._ns, self.name)
        self._clear_run_files()
        self._drop_unrecorded_dir()

    def _drop_unrecorded_dir(self) -> None:
        """Remove the record directory when it holds no record, only locks: views list no such directory, and a
        failed or refused run must leave nothing. Called with the start lock held; a launcher waiting for that
        lock finds its file unlinked and starts over (see :meth:`_acquire`)."""
        try:
            entries = os.listdir(self.state_dir)
        except OSError:
            return
        if any(entry not in ("lock", "stop.lock") for entry in entries):
            return
        for entry in entries:
            with contexts.suppress(OSError):
                os.unlink(os.path.join(self.state_dir, entry))
        with contexts.suppress(OSError):
            os.rmdir(self.state_dir)

    # -- stop, wait ----------------------------------------------------------------------------------------

    @maps_os_errors
    @_as_owner
    def stop(self, timeout: float | None = None, stop_signal: int | None = None) -> TaskRecord:
        """Signal every process, wait up to ``timeout`` seconds, then kill the whole cgroup.

        ``stop_signal`` and ``timeout`` default to the task's own (``run --stop-signal``, ``--stop-timeout``),
        else SIGTERM and 10 s. A frozen task is thawed to act on the signal; a task waiting to restart is not
        started again. Stops of one task take turns: of concurrent callers one stops it and the others, once
        it has ended, are told it is not running.
        """
        with contexts.ExitStack() as locks:
            self._take_stop_turn(locks)
            return self._stop_exclusively(timeout, stop_signal)

    def _take_stop_turn(self, locks: contexts.ExitStack) -> None:
        """Hold this task's stop lock in ``locks``; NotRunning when the task is not running, before the lock or
        once it is ours (a concurrent stop has ended it)."""
        if not self.is_active():
            raise NotRunning(f"task {self.name} is not running")
        locks.enter_context(self._lock("stop.lock"))
        if not self.is_active():
            raise NotRunning(f"task {self.name} is not running")

    def _stop_exclusively(self, timeout: float | None, stop_signal: int | None) -> TaskRecord:
        deadline, restart_delay = self._begin_stop(timeout, stop_signal)
        return self._finish_stop(deadline, restart_delay)

    def _begin_stop(self, timeout: float | None, stop_signal: int | None) -> tuple[float, float]:
        """The first half of a stop: marker, stop signal, thaw. Returns the monotonic time after which the task
        gets killed and its restart delay (how long a monitor pausing before a restart may take to end)."""
        backend = self._backend
        self._stopped_cgroup = self._cgroup_id()
        spec = self._live_spec() or {}
        lifetime = _lifetime(spec)
        timeout = lifetime.stop_timeout if timeout is None else timeout
        stop_signal = lifetime.stop_signal if stop_signal is None else stop_signal
        # The marker names the run it stops; "*" any run of the monitor, where the record of which is lost.
        self._write_marker("stop", str(spec.get("run_id", "")) or "*")
        if self._restart_pending(spec):
            self._wake_monitor()
        try:
            signalled = self.signal(stop_signal, resume=True)
            messages.debug("stop", f"task {self.name}: signal {stop_signal} sent to {signalled} processes, "
                                   f"waiting up to {timeout}s")
        except PermissionDenied:
            with contexts.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.state_dir, "stop"))
            raise
        if backend.frozen(self._ns, self.name):
            # Thawed once signalled, so that it acts on the signal before running anything else (a frozen
            # process takes only a fatal signal, and v1 delivers even that on thaw).
            with contexts.suppress(LancoError):
                backend.set_frozen(self._ns, self.name, False)
        return time.monotonic() + timeout, lifetime.restart_delay

    def _finish_stop(self, deadline: float, restart_delay: float) -> TaskRecord:
        """The second half: wait for the task to end until ``deadline``, kill what is left, await its result."""
        backend = self._backend
        if not self._wait_gone(deadline):
            if self._cgroup_id() != self._stopped_cgroup:
                # The run stopped ended, and a new run of the name (run does not wait for stops) has a new cgroup:
                # it is not this stop's to kill.
                return self._ended_record()
            messages.debug("stop", f"task {self.name}: still running after its stop timeout, killing it")
            for _ in range(10):
                backend.kill(self._ns, self.name)
                self._kill_stray()
                if self._wait_gone(time.monotonic() + 1.0):
                    break
            else:
                raise CgroupError(f"task {self.name} still has processes after SIGKILL: "
                                  f"{' '.join(map(str, self.pids()))}")
        # A monitor pausing before a restart that could not be woken ends when its pause does.
        return self._await_end(5.0 + restart_delay)

    def _cgroup_id(self) -> int | None:
        """The tracker cgroup's inode: each run has a cgroup of its own (restarts of one run keep theirs)."""
        try:
            return os.stat(self._backend.task_dir(self._ns, self.name)).st_ino
        except OSError:
            return None

    def _wait_gone(self, deadline: float) -> bool:
        """Wait until the task's cgroups are empty and no first process of it lives outside them."""
        if not self._backend.wait_empty(self._ns, self.name, max(0.0, deadline - time.monotonic())):
            return False
        delay = 0.005
        while self._stray_first_process([]) is not None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        return True

    def _kill_stray(self) -> None:

        stray = self._stray_first_process([])
        if stray is None:
            return
        try:
            os.kill(stray, signums.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:
            raise PermissionDenied(f"cannot kill process {stray} of task {self.name}: it runs as another user") \
                from None

    def _wake_monitor(self) -> None:
        """Cut short a monitor's pause before a restart (it checks the stop marker when woken)."""
        monitor = read_int_file(os.path.join(self.state_dir, "monitor"))
        if len(monitor) == 2 and procfs.is_same_process(monitor[0], monitor[1]):

            with contexts.suppress(OSError):
                os.kill(monitor[0], signums.SIGUSR1)

    def _restart_pending(self, spec: dict[str, Any] | None) -> bool:
        """True while the monitor pauses between a run's end and the next run."""
        if spec is None:
            return False
        try:
            with open(os.path.join(self.state_dir, "restarting"), encoding="ascii") as f:
                pending = f.read().strip() == spec.get("run_id")
        except (OSError, UnicodeDecodeError):
            return False
        return pending and self._monitor_alive(spec)

    def _completed_runs(self) -> int:
        """How many runs of this start have ended (the monitor appends one line to runs.jsonl per run)."""
        from lanco import jsonread

        try:
            # read_bytes: most tasks have no such file, and a failed open() costs more than a failed os.open.
            lines = procfs.read_bytes(os.path.join(self.state_dir, "runs.jsonl")).decode("utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return 0
        for line in reversed(lines):
            with contexts.suppress(ValueError, TypeError, AttributeError):
                return int(jsonread.loads(line).get("run", 0))
        return 0

    # -- control of a running task ---------------------------------------------------------------------------

    @maps_os_errors
    @_as_owner
    def freeze(self) -> None:
        """Stop every process of the task where it stands (v2 cgroup.freeze, v1 freezer) until :meth:`thaw`."""
        self._require_running()
        with self._lock():  # a log rotation's own freeze and thaw (rotate_log) must not undo this one
            self._backend.set_frozen(self._ns, self.name, True)

    @maps_os_errors
    @_as_owner
    def thaw(self) -> None:
        self._require_running()
        with self._lock():
            self._backend.set_frozen(self._ns, self.name, False)

    @maps_os_errors
    def set_limits(self, **limits: Unpack[LimitOptions]) -> TaskRecord:
        """Change limits of the running task (``"max"`` lifts one); its record keeps the limits in force."""
        from lanco.limits import Limits

        return self.apply_limits(Limits.build(limits))

    @maps_os_errors
    @_as_owner
    def apply_limits(self, wanted: Limits) -> TaskRecord:
        """:meth:`set_limits` with the limits parsed already."""
        from lanco.limits import Limits

        if not wanted:
            raise UsageError("no limit given")
        backend = self._backend
        wanted.check(backend, self._ns, running=True)
        if "cpuset" in backend.controllers_for(k for k, _ in wanted.items()):
            # v1 takes a process into a cpuset cgroup only when it joins: a task started without one has none.
            cpuset_dir = backend.controller_dir("cpuset", self._ns, self.name)
            if cpuset_dir is not None and not os.path.isdir(cpuset_dir):
                raise LimitUnavailable(f"task {self.name} was started without --cpuset, which cgroup mode "
                                       f"{backend.mode} can only give a task when it starts")
        with self._lock():
            self._require_running()
            wanted.apply(backend, self._ns, self.name)
            spec = self._live_spec()
            if spec is None:
                return self.record()  # no record to keep the limits in: the cgroup holds them
            spec["limits"] = Limits.from_record(spec.get("limits", {})).merged(wanted).as_record()
            write_spec(self.state_dir, spec)
            if (owner := self.namespace.acting_for_owner) is not None:
                _chown_record(self.state_dir, owner)
        return self.record()

    def _require_running(self) -> None:
        if not self.is_running():
            raise NotRunning(f"task {self.name} is not running")
        self._live_spec()

    @maps_os_errors
    @_as_owner
    def signal(self, signum: int, *, resume: bool = False) -> int:
        """Send ``signum`` to every process of the task; returns how many got it. With ``resume`` (as ``stop``
        does) SIGCONT follows, so that a stopped process acts on the signal.

        New processes forked while signalling get it too: passes repeat until one finds nobody new.
        """

        seen = set[int]()
        if self.is_running():
            self._live_spec()
        for _ in range(50):
            fresh = [p for p in self.pids() if p not in seen]
            if not fresh:
                break
            for pid in fresh:
                try:
                    os.kill(pid, signum)
                    if resume and signum not in (signums.SIGKILL, signums.SIGCONT):
                        os.kill(pid, signums.SIGCONT)
                except ProcessLookupError:
                    pass
                except PermissionError:
                    raise PermissionDenied(f"cannot signal process {pid} of task {self.name}: "
                                           "it runs as another user") from None
            seen.update(fresh)
        return len(seen)

    @maps_os_errors
    @_as_owner
    def wait(self, timeout: float | None = None) -> TaskRecord:
        """Block until the task has ended (its monitor recorded the result) and return its record."""
        deadline = None if timeout is None else time.monotonic() + timeout
        record = self.record()
        if record.state == "unknown":
            raise NotRunning(f"task {self.name} is not running")
        while record.state not in FINISHED_STATES:
            messages.debug("wait", f"task {self.name} is {record.state}, waiting")
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return record
            self._wait_for_monitor(remaining)
            ended = self.record()
            if ended.state == "unknown":
                # The run ended, and neither its monitor nor anyone else could record how (its record directory
                # was removed again): waiting longer would be forever.
                messages.warn(messages.command(), f"task {self.name}: ended with no record of its result")
                record.state, record.pids = "lost", []
                return record
            record = ended
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
        record = self._ended_record()
        # Looks 2 ms apart at first, then further apart (up to 25 ms): the monitor's last steps (its figures, the
        # result's rename, the cgroup's removal) take longer where processes start slowly, and a stop reading the
        # record all the while takes CPU from the very monitor it waits for.
        pause = 0.002
        while record.state not in FINISHED_STATES and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 1.5, 0.025)
            record = self._ended_record()
        return record

    def _ended_record(self) -> TaskRecord:
        """:meth:`record`, or where the spec is damaged (named in a warning already), what the result says: a stop
        of a task known from its cgroup only does not fail once the task has ended."""
        try:
            return self.record()
        except StateError:
            record = TaskRecord(self._ns, self.name, "unknown")
            with contexts.suppress(StateError):
                if (result := read_result(self.state_dir)) is not None:
                    apply_result(record, *result)
            return record

    # -- release and recovery ------------------------------------------------------------------------------

    @maps_os_errors
    @_as_owner
    def release(self, *, dry_run: bool = False) -> list[str]:
        """Forget a finished task: its leftover cgroups and its record (its logs stay)."""
        backend = self._backend
        if self.is_active():
            raise StillRunning(f"task {self.name} is running")
        exists = backend.task_exists(self._ns, self.name)
        if not exists and not os.path.isdir(self.state_dir):
            raise NotRunning(f"task {self.name} is not known")
        targets = [d for d in backend.task_dirs(self._ns, self.name) if os.path.isdir(d)]
        targets.append(self.state_dir)
        if dry_run:
            return targets
        with self._lock():
            if self.is_active():
                raise StillRunning(f"task {self.name} is running")
            # A damaged record is what release is for: forgotten with the rest, its result unrecorded.
            with contexts.suppress(StateError):
                self._settle_locked()
            self._await_cgroup_removal()
            backend.remove_task(self._ns, self.name)
            import shutil

            shutil.rmtree(self.state_dir, ignore_errors=True)
        return targets

    def _await_cgroup_removal(self, timeout: float = 5.0) -> None:
        """Wait while a monitor whose run has ended removes the run's cgroups (the name's tracker last). Its result
        is written first, so wait and stop are done with the run before it is: a release that took the cgroups
        and the record (the monitor's file with it) meanwhile would let the next run of the name make cgroups that
        the late monitor, removing by path, takes from it."""
        backend = self._backend
        deadline = time.monotonic() + timeout
        while (backend.task_exists(self._ns, self.name) and self._monitor_alive(None)
               and time.monotonic() < deadline):
            time.sleep(0.005)

    @maps_os_errors
    @_as_owner
    def settle(self) -> bool:
        """Record a run whose monitor died (every run a boot ended) as ``lost``, remove its cgroups and run its
        hook, exactly once; True when this call recorded it."""
        if not os.path.isdir(self.state_dir):
            return False
        with self._lock():
            recorded = self._settle_locked()
        return recorded

    def _settle_locked(self) -> bool:
        backend = self._backend
        exists = backend.task_exists(self._ns, self.name)
        if exists and backend.populated(self._ns, self.name):
            return False
        spec = read_spec(self.state_dir)
        if self._monitor_alive(spec):
            return False
        if spec is None and not exists:
            return False
        run_id = str((spec or {}).get("run_id", ""))
        result = read_result(self.state_dir)
        if result is None and not read_int_file(os.path.join(self.state_dir, "pid")):
            # The launcher died before the task started: nothing of this run ever ran, so nothing stays.
            if exists:
                backend.remove_task(self._ns, self.name)
            if spec is not None:
                # Without a spec there is nothing of a run to clear: a record removed by hand leaves only what
                # the lanco commands since made again, and a monitor no one knows may still write its result.
                self._clear_run_files()
            return False
        recorded = False
        if spec is not None and (result is None or result[0].get("run_id") != run_id):
            with contexts.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.state_dir, "result"))
            recorded = write_result(self.state_dir, monitorcontract.lost_result(run_id))
        if exists:
            backend.remove_task(self._ns, self.name)
        if spec is not None and spec.get("exit_command"):
            try:
                os.mkdir(os.path.join(self.state_dir, "hook.claimed"))
            except FileExistsError:
                return recorded
            self._run_lost_hook(spec)
        return recorded

    def _run_lost_hook(self, spec: dict[str, object]) -> None:
        config = self.namespace.config
        fields = (read_result(self.state_dir) or ({}, 0.0))[0]
        log = str(spec.get("log") or "") or None
        env = {**os.environ, **monitorcontract.hook_environment(self._ns, self.name, fields, log)}
        run_hook_detached(str(spec["exit_command"]), env, hook_runner(config.owner_uid, config.owner_gid), log)

    def _monitor_alive(self, spec: dict[str, object] | None) -> bool:
        if spec is not None and spec.get("boot_id") and spec.get("boot_id") != procfs.boot_id():
            return False
        monitor = read_int_file(os.path.join(self.state_dir, "monitor"))
        return len(monitor) == 2 and procfs.is_same_process(monitor[0], monitor[1])

    # -- record directory ----------------------------------------------------------------------------------

    def _ensure_state_dir(self, owner: tuple[int, int] | None) -> None:
        mode = 0o2770 if self.namespace.config.group_access else 0o700
        try:
            os.mkdir(self.state_dir, mode)
        except FileExistsError:
            return
        except FileNotFoundError:
            raise StateError(f"the state directory of namespace {self._ns} is damaged: "
                             f"{self.namespace.config.tasks_dir} is gone (run init again to recreate it)") from None
        os.chmod(self.state_dir, mode)  # the umask took the group's write bit
        if owner is not None:
            os.chown(self.state_dir, *owner)

    def _clear_run_files(self) -> None:
        for name in _RUN_FILES:
            with contexts.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.state_dir, name))
        with contexts.suppress(FileNotFoundError, OSError):
            os.rmdir(os.path.join(self.state_dir, "hook.claimed"))

    def _write_marker(self, name: str, content: str) -> None:
        # A new file renamed over the old one: the old one may belong to another member of the group.
        path = os.path.join(self.state_dir, name)
        tmp = f"{path}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
        try:
            os.write(fd, content.encode() + b"\n")
            if (owner := self.namespace.acting_for_owner) is not None:
                os.fchown(fd, *owner)
        finally:
            os.close(fd)
        try:
            os.replace(tmp, path)
        except OSError:
            with contexts.suppress(OSError):
                os.unlink(tmp)
            raise

    @contexts.contextmanager
    def _lock(self, name: str = "lock") -> Iterator[int]:
        """Serialise the starts (``lock``) or the stops (``stop.lock``) of one name; yields the lock's descriptor
        (a start hands it on to the monitor, which holds the lock until it is known alive)."""
        fd = self._acquire(name, blocking=True)
        assert fd is not None
        try:
            yield fd
        finally:
            os.close(fd)

    @contexts.contextmanager
    def _try_lock(self) -> Iterator[bool]:
        try:
            fd = self._acquire("lock", blocking=False)
        except (OSError, LancoError):
            yield False
            return
        if fd is None:
            yield False
            return
        try:
            yield True
        finally:
            os.close(fd)

    def _acquire(self, name: str, *, blocking: bool) -> int | None:
        """A descriptor holding the exclusive flock of the record directory's ``name``; None when not ``blocking``
        and another holds it.

        release removes the record directory, its lock files with it, while it holds ``lock``: a caller that had
        opened the file and waited then holds a lock on an unlinked file, while the next caller creates a new
        file at the path and locks that. A lock on an unlinked file protects nothing (two runs of one name both
        started their command), so a lock counts only while the path still names the very file locked.
        """
        path = os.path.join(self.state_dir, name)
        while True:
            fd = self._open_lock(name)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                held = os.fstat(fd)
                try:
                    named = os.stat(path, follow_symlinks=False)
                except FileNotFoundError:
                    named = None
            except BlockingIOError:
                os.close(fd)
                return None
            except BaseException:
                os.close(fd)
                raise
            if named is not None and held.st_nlink > 0 and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
                return fd
            messages.debug("lock", f"task {self.name}: {name} was removed while waiting for it, locking anew")
            os.close(fd)

    def _open_lock(self, name: str = "lock") -> int:
        path = os.path.join(self.state_dir, name)
        # Read-only is enough for flock; readable by all, so that whoever of the owner and the group
        # members created it, the others can lock it too.
        flags = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        owner = self.namespace.acting_for_owner
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:
            # The record directory is gone (removed by release meanwhile, or by hand while the task runs): the
            # cgroup is the truth, and the locks need a directory again.
            self._ensure_state_dir(owner)
            fd = os.open(path, flags, 0o644)
        if owner is not None:
            with contexts.suppress(OSError):
                os.fchown(fd, *owner)
        return fd


_STOP_BATCH = 256
"""Tasks stopped together at most: each holds its stop lock, an open descriptor, until it has ended."""


def stop_together(tasks: list[Task], timeout: float | None = None,
                  stop_signal: int | None = None) -> dict[str, TaskRecord | LancoError]:
    """Stop several tasks of one namespace at once: every one gets its stop signal first, then all are awaited
    together, so that N tasks take about as long as the slowest one rather than the sum. Each task goes through
    exactly what :meth:`Task.stop` does (its lock, marker, grace and kill). Returns, per name and in the order of
    ``tasks`` (a name given twice is stopped once), the final record or the error that task met (NotRunning,
    PermissionDenied, CgroupError, StateError; any other failure as :func:`lanco.errors.as_lanco_error` names it):
    one task's failure, whatever it is, never keeps the others from their stop."""
    unique = list({task.name: task for task in tasks}.values())  # in the order of their first mention
    outcome: dict[str, TaskRecord | LancoError] = {}
    for first in range(0, len(unique), _STOP_BATCH):
        with contexts.ExitStack() as locks:
            begun: list[tuple[Task, float, float]] = []
            for task in unique[first:first + _STOP_BATCH]:
                try:
                    task._take_stop_turn(locks)
                    begun.append((task, *task._begin_stop(timeout, stop_signal)))
                except Exception as exc:
                    outcome[task.name] = _stop_failure(task, exc)
            for task, deadline, restart_delay in begun:
                try:
                    outcome[task.name] = task._finish_stop(deadline, restart_delay)
                except Exception as exc:
                    outcome[task.name] = _stop_failure(task, exc)
    return {task.name: outcome[task.name] for task in unique}


def _stop_failure(task: Task, exc: Exception) -> LancoError:
    """The error of one task's stop among several; one that does not name its task yet (an OSError, a bug) is
    told with the task's name, so that each of the lines stop prints says whose it is."""
    if isinstance(exc, LancoError):
        return exc
    failure = as_lanco_error(exc)
    failure.message = f"task {task.name}: {failure.message}"
    return failure


def _may_restart(spec: dict[str, Any] | None) -> bool:
    """False only for a run recorded with the restart policy ``no`` (read raw: runopts is dear to import)."""
    lifetime = (spec or {}).get("lifetime")
    return not (isinstance(lifetime, dict) and lifetime.get("restart", "no") == "no")


def _lifetime(spec: dict[str, Any]) -> Lifetime:
    from lanco.runopts import Lifetime

    return Lifetime.from_record(spec.get("lifetime"))


def _resolve_command(command: str, path: str, cwd: str | None) -> str:
    """Refuse a command that does not exist or cannot run, before anything is created."""
    if "/" in command:
        candidate = os.path.join(cwd or os.getcwd(), command)
        if not os.path.exists(candidate):
            raise CommandNotFound(f"command {command} not found")
        if os.path.isdir(candidate) or not os.access(candidate, os.X_OK):
            raise CommandNotExecutable(f"command {command} is not executable")
    else:
        found = which(command, path=path)
        if found is None:
            raise CommandNotFound(f"command {command} not found")
        candidate = found
    _check_interpreter(command, candidate, cwd)
    return candidate


def _check_interpreter(command: str, found: str, cwd: str | None) -> None:
    """A script whose ``#!`` interpreter is missing fails in execve with ENOENT, which a shell reports as the
    script itself not found: name the script and its interpreter instead (127, or 126 when the interpreter
    cannot be executed), as the kernel reads the line (its first 255 bytes, the first word after ``#!``)."""
    try:
        with open(found, "rb") as f:
            head = f.read(256)
    except OSError:
        return  # unreadable here: the task's execve says what it finds
    if not head.startswith(b"#!"):
        return
    words = head[2:].split(b"\n", 1)[0].split()
    if not words:
        return
    interpreter = os.fsdecode(words[0])
    target = os.path.join(cwd or os.getcwd(), interpreter)
    if not os.path.exists(target):
        raise CommandNotFound(f"command {command} cannot run: its interpreter {interpreter} (its #! line) is "
                              "not found")
    if os.path.isdir(target) or not os.access(target, os.X_OK):
        raise CommandNotExecutable(f"command {command} cannot run: its interpreter {interpreter} (its #! line) is "
                                   "not executable")


def _chown_record(directory: str, owner: tuple[int, int]) -> None:
    for entry in os.scandir(directory):
        with contexts.suppress(OSError):
            os.chown(entry.path, *owner, follow_symlinks=False)
