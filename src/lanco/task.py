"""A task, as a caller names it: the one class of the API for a task's life, and the answers to "is it running,
what is it, what became of it".

Its steps live in modules of their own, one per step, each loaded only by the commands that take it (``check``
loads none of them): lanco.taskstart (start), lanco.taskstop (stop), lanco.waiting (wait; lanco.waiting_async for
asyncio), lanco.taskcontrol (freeze, thaw, limits, signals), lanco.tasklog (logs), lanco.taskrecovery (lost runs,
release), over lanco.state.recorddir (the record directory and its locks) and lanco.state.record (what the record
says). The methods here are the public face: each maps OS errors to lanco's and switches to the owner's ids where
root acts for them, then hands over.
"""

from __future__ import annotations

import os

from lanco.errors import StateError, maps_os_errors
from lanco.names import check_task_name
from lanco.privileges import with_owner_ids
from lanco.state.record import (
    TaskRecord,
    apply_result,
    apply_spec,
    completed_runs,
    monitor_alive,
    read_int_file,
    read_result,
    read_spec,
    restart_pending,
    run_oom_kills,
    stray_first_process,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Coroutine
    from contextlib import AbstractContextManager
    from typing import Any, BinaryIO, Unpack

    from lanco.cgroups.backend import Backend
    from lanco.errors import LancoError
    from lanco.namespace import Namespace
    from lanco.options.limits import Limits
    from lanco.options.limittable import LimitOptions
    from lanco.options.runopts import RunOptions, RunPlan
    from lanco.state.logrotation import Rotation

LOST_EXIT_CODE = 255
"""What ``wait`` and ``run -f`` return for a run whose end nobody saw (its monitor died)."""


_as_owner = with_owner_ids
"""Methods of a task that open its files run with the namespace owner's ids when root works in someone else's
namespace (see lanco.privileges): the owner's files are then handled with no more than the owner's rights."""


class Task:
    """One named task of a namespace; every method re-reads the kernel and the record, nothing is cached."""

    stopped_cgroup: int | None
    """The tracker cgroup's inode of the run this task's last stop began on (lanco.taskstop): its second half
    kills only that run, never a new run of the name started meanwhile."""

    def __init__(self, namespace: Namespace, name: str) -> None:
        self.namespace = namespace
        self.name = check_task_name(name)
        self.stopped_cgroup = None

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
        on outside it (see :func:`lanco.state.record.stray_first_process`)."""
        backend = self._backend
        if not backend.task_exists(self._ns, self.name):
            return False
        return backend.populated(self._ns, self.name) or stray_first_process(self.state_dir, []) is not None

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
            return os.path.exists(os.path.join(self.state_dir, "restarting")) and monitor_alive(self.state_dir, None)
        return restart_pending(self.state_dir, spec)

    def record_gone(self) -> bool:
        """True when the record of this run (its spec) is missing: a running task is then known from its cgroup
        only. Only a look for the file, as root too (it reads nothing), so that check stays cheap."""
        return not os.path.exists(os.path.join(self.state_dir, "spec.json"))

    @maps_os_errors
    def pids(self) -> list[int]:
        found = self._backend.pids(self._ns, self.name)
        stray = stray_first_process(self.state_dir, found)
        return found if stray is None else [*found, stray]

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
            stray = stray_first_process(self.state_dir, figures.pids, record.main_pid)
            if stray is not None:
                record.pids = [*figures.pids, stray]
            if record.pids:
                if spec is None:
                    from lanco.taskrecovery import live_spec

                    live_spec(self)  # its warning, and the record directory made again
                record.state = "frozen" if backend.frozen(self._ns, self.name) else "running"
                # Only a monitor told to restart keeps runs.jsonl: ls and dump spare the others a failed open.
                record.restarts = completed_runs(self.state_dir) if _may_restart(spec) else 0
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
        if monitor_alive(self.state_dir, spec):
            if exists and restart_pending(self.state_dir, spec):
                record.state = "restarting"
                record.restarts = max(0, completed_runs(self.state_dir) - 1)
            else:
                record.state = "finishing" if exists else "starting"
            return record
        # The monitor is gone without a result: lost, unless a start holds the lock (its monitor is not known yet).
        from lanco import taskrecovery
        from lanco.state import recorddir

        with recorddir.try_lock(self) as locked:
            if not locked:
                record.state = "starting"
                return record
            taskrecovery.settle_locked(self)
        return self.record() if read_result(self.state_dir) is not None else record

    # -- the steps -----------------------------------------------------------------------------------------

    @maps_os_errors
    @_as_owner
    def show_log(self, out: BinaryIO, *, lines: int | None = None, follow: bool = False) -> None:
        """Copy the task's log (its last ``lines`` lines) to ``out``; with ``follow``, go on as ``tail -F``
        across rotations and new runs until interrupted. The log is the one the record names, opened with the
        owner's ids when root reads a user's namespace."""
        from lanco import tasklog

        tasklog.show_log(self, out, lines, follow)

    @maps_os_errors
    @_as_owner
    def rotate_log(self) -> Rotation | None:
        """Rotate the task's log if it is over the size its run was given (``--log-max-size``): copied to ``.1``
        (older copies shifted, ``--log-keep`` of them kept), then truncated, with the task frozen for the last
        moment of the copy and the truncate so that nothing it writes is lost (lanco.state.logrotation). None when the
        run has no bound or the log is within it. The task goes on as it was; a task frozen by its user stays
        frozen."""
        from lanco import tasklog

        return tasklog.rotate_log(self)

    @maps_os_errors
    def start(self, argv: list[str], **options: Unpack[RunOptions]) -> None:
        """Start ``argv`` under this name; returns once its first process is inside the task's cgroup.

        The options are those of ``lanco.options.runopts.RunOptions`` (limits, timeout, restart, environment, ...).
        All of them are parsed, and the limits checked against the namespace's cgroup mode, before anything is
        created: a bad value raises UsageError, a limit the mode cannot enforce LimitUnavailable.
        ``foreground`` keeps the caller's standard input and output (unless ``log`` is given) for
        ``run -f``; the task still gets a monitor, a record and a cgroup of its own.
        """
        from lanco.options.runopts import RunPlan

        self.launch(argv, RunPlan.build(options))

    @maps_os_errors
    @_as_owner
    def launch(self, argv: list[str], plan: RunPlan) -> None:
        """:meth:`start` with options parsed already (the command line parses them before it opens the
        namespace, so that a bad value is a usage error whatever else is wrong)."""
        from lanco import taskstart

        taskstart.launch(self, argv, plan)

    @maps_os_errors
    @_as_owner
    def stop(self, timeout: float | None = None, stop_signal: int | None = None) -> TaskRecord:
        """Signal every process, wait up to ``timeout`` seconds, then kill the whole cgroup.

        ``stop_signal`` and ``timeout`` default to the task's own (``run --stop-signal``, ``--stop-timeout``),
        else SIGTERM and 10 s. A frozen task is thawed to act on the signal; a task waiting to restart is not
        started again. Stops of one task take turns: of concurrent callers one stops it and the others, once
        it has ended, are told it is not running.
        """
        from lanco import taskstop

        return taskstop.stop(self, timeout, stop_signal)

    @maps_os_errors
    @_as_owner
    def wait(self, timeout: float | None = None) -> TaskRecord:
        """Block until the task has ended (its monitor recorded the result, or it was recorded lost) and return its
        final record; after ``timeout`` seconds, the record as it stands (still running). NotRunning for a task
        that is not known. See lanco.waiting."""
        from lanco import waiting

        return waiting.wait(self, timeout)

    @maps_os_errors
    def wait_async(self, timeout: float | None = None) -> Coroutine[Any, Any, TaskRecord]:
        """:meth:`wait` for asyncio: ``await task.wait_async()``, on a pidfd read by the running loop (no thread);
        cancelling it closes its descriptor. See lanco.waiting_async."""
        from lanco import waiting_async

        return waiting_async.wait_async(self, timeout)

    @maps_os_errors
    @_as_owner
    def freeze(self) -> None:
        """Stop every process of the task where it stands (v2 cgroup.freeze, v1 freezer) until :meth:`thaw`."""
        from lanco import taskcontrol

        taskcontrol.set_frozen(self, True)

    @maps_os_errors
    @_as_owner
    def thaw(self) -> None:
        from lanco import taskcontrol

        taskcontrol.set_frozen(self, False)

    @maps_os_errors
    def set_limits(self, **limits: Unpack[LimitOptions]) -> TaskRecord:
        """Change limits of the running task (``"max"`` lifts one); its record keeps the limits in force."""
        from lanco.options.limits import Limits

        return self.apply_limits(Limits.build(limits))

    @maps_os_errors
    @_as_owner
    def apply_limits(self, wanted: Limits) -> TaskRecord:
        """:meth:`set_limits` with the limits parsed already."""
        from lanco import taskcontrol

        return taskcontrol.apply_limits(self, wanted)

    @maps_os_errors
    @_as_owner
    def signal(self, signum: int, *, resume: bool = False) -> int:
        """Send ``signum`` to every process of the task; returns how many got it. With ``resume`` (as ``stop``
        does) SIGCONT follows, so that a stopped process acts on the signal.

        New processes forked while signalling get it too: passes repeat until one finds nobody new.
        """
        from lanco import taskcontrol

        return taskcontrol.signal(self, signum, resume)

    @maps_os_errors
    @_as_owner
    def release(self, *, dry_run: bool = False) -> list[str]:
        """Forget a finished task: its leftover cgroups and its record (its logs stay)."""
        from lanco import taskrecovery

        return taskrecovery.release(self, dry_run=dry_run)

    @maps_os_errors
    @_as_owner
    def settle(self) -> bool:
        """Record a run whose monitor died (every run a boot ended) as ``lost``, remove its cgroups and run its
        hook, exactly once; True when this call recorded it."""
        from lanco import taskrecovery

        return taskrecovery.settle(self)


def stop_together(tasks: list[Task], timeout: float | None = None,
                  stop_signal: int | None = None) -> dict[str, TaskRecord | LancoError]:
    """Stop several tasks of one namespace at once: every one gets its stop signal first, then all are awaited
    together, so that N tasks take about as long as the slowest one rather than the sum. Each task goes through
    exactly what :meth:`Task.stop` does (its lock, marker, grace and kill). Returns, per name and in the order of
    ``tasks`` (a name given twice is stopped once), the final record or the error that task met (NotRunning,
    PermissionDenied, CgroupError, StateError; any other failure as :func:`lanco.errors.as_lanco_error` names it):
    one task's failure, whatever it is, never keeps the others from their stop."""
    from lanco import taskstop

    return taskstop.stop_together(tasks, timeout, stop_signal)


def _may_restart(spec: dict[str, Any] | None) -> bool:
    """False only for a run recorded with the restart policy ``no`` (read raw: runopts is dear to import)."""
    lifetime = (spec or {}).get("lifetime")
    return not (isinstance(lifetime, dict) and lifetime.get("restart", "no") == "no")
