"""What lanco does when a task's monitor or its record is gone: a run whose monitor died is recorded ``lost`` and
its hook run exactly once, a record removed or damaged while the task runs is told once and its directory made
again, and a finished task is released (its cgroups and record forgotten).

This is the task's step after its end, taken by whichever command finds the run so (or ``restore`` at boot), never
by a daemon: the kernel's cgroup tree is the truth, and every step here reads it again under the start lock.
"""

from __future__ import annotations

import os
import time

from lanco import contexts, messages, procfs
from lanco.errors import LancoError, NotRunning, StateError, StillRunning
from lanco.state import recorddir
from lanco.state.record import monitor_alive, read_int_file, read_result, read_spec, write_result

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from lanco.task import Task

_REPORTED_LOSSES: set[tuple[str, str, int]] = set()
"""Runs (namespace, task, cgroup inode) whose lost record this process has warned of (a command reads a record more
than once)."""


def live_spec(task: Task) -> dict[str, Any] | None:
    """The spec of a task whose cgroup holds processes. Where it is gone or damaged, None, after one warning
    that says what was lost (the kernel's cgroup tree is the truth: the task is still checked, stopped and
    killed from it), and the record directory is made again, so that the locks and the monitor's result have
    a place."""
    try:
        spec = read_spec(task.state_dir)
    except StateError as exc:
        _known_from_cgroup_only(task, f"{exc.message}; the task is known from its cgroup only")
        return None
    if spec is None:
        _known_from_cgroup_only(task, f"task {task.name}: its record is gone; known from its cgroup only")
    return spec


def _known_from_cgroup_only(task: Task, text: str) -> None:
    ns, backend = task.namespace.name, task.namespace.backend
    try:
        # Once per run: a new run of the name has a new cgroup.
        key = (ns, task.name, os.stat(backend.task_dir(ns, task.name)).st_ino)
    except OSError:
        key = (ns, task.name, 0)
    if key not in _REPORTED_LOSSES:
        _REPORTED_LOSSES.add(key)
        messages.warn(messages.command(), text)
    with contexts.suppress(OSError, LancoError):
        recorddir.ensure(task, task.namespace.acting_for_owner)
        if not monitor_alive(task.state_dir, None):
            _recover_monitor(task)


def _recover_monitor(task: Task) -> None:
    """Write the ``monitor`` and ``pid`` files again from what the kernel shows: the monitor is the parent of
    the task's first process (a shell running lanco's monitor script). Without them, a command finding the run
    ended before its monitor wrote the result would take the run for lost and clear its stop marker."""
    from lanco.launch.spawn import MONITOR_SCRIPT, package_file  # here: stop and wait meet a lost monitor rarely

    script = package_file(MONITOR_SCRIPT)
    for pid in task.pids():
        monitor = procfs.parent(pid)
        if monitor is None or procfs.argv(monitor)[1:2] != [script]:
            continue
        started = procfs.start_time(monitor)
        if started is not None:
            recorddir.write_marker(task, "pid", str(pid))
            recorddir.write_marker(task, "monitor", f"{monitor} {started}")
        return


def settle(task: Task) -> bool:
    """:meth:`lanco.task.Task.settle`: under the start lock, where there is a record directory."""
    if not os.path.isdir(task.state_dir):
        return False
    with recorddir.lock(task):
        recorded = settle_locked(task)
    return recorded


def settle_locked(task: Task) -> bool:
    """Record the run ``lost`` if its monitor is gone without a result, remove its cgroups and claim and run its
    hook; True when this call recorded it. The caller holds the start lock."""
    ns, backend = task.namespace.name, task.namespace.backend
    exists = backend.task_exists(ns, task.name)
    if exists and backend.populated(ns, task.name):
        return False
    spec = read_spec(task.state_dir)
    if monitor_alive(task.state_dir, spec):
        return False
    if spec is None and not exists:
        return False
    run_id = str((spec or {}).get("run_id", ""))
    result = read_result(task.state_dir)
    if result is None and not read_int_file(os.path.join(task.state_dir, "pid")):
        # The launcher died before the task started: nothing of this run ever ran, so nothing stays.
        if exists:
            backend.remove_task(ns, task.name)
        if spec is not None:
            # Without a spec there is nothing of a run to clear: a record removed by hand leaves only what
            # the lanco commands since made again, and a monitor no one knows may still write its result.
            recorddir.clear_run_files(task)
        return False
    recorded = False
    if spec is not None and (result is None or result[0].get("run_id") != run_id):
        with contexts.suppress(FileNotFoundError):
            os.unlink(os.path.join(task.state_dir, "result"))
        from lanco.launch import monitorcontract  # here: only a lost run needs the monitor's formats

        recorded = write_result(task.state_dir, monitorcontract.lost_result(run_id))
        if recorded:
            from lanco.eventlog.claims import journal_end  # here: a lost run is rare

            with contexts.suppress(OSError, LancoError):
                journal_end(task, settle=False)
    if exists:
        backend.remove_task(ns, task.name)
    if spec is not None and spec.get("exit_command"):
        try:
            os.mkdir(os.path.join(task.state_dir, "hook.claimed"))
        except FileExistsError:
            return recorded
        _run_lost_hook(task, spec)
    return recorded


def _run_lost_hook(task: Task, spec: dict[str, object]) -> None:
    from lanco.launch import monitorcontract
    from lanco.launch.spawn import hook_runner, run_hook_detached

    config = task.namespace.config
    fields = (read_result(task.state_dir) or ({}, 0.0))[0]
    log = str(spec.get("log") or "") or None
    env = {**os.environ, **monitorcontract.hook_environment(task.namespace.name, task.name, fields, log)}
    run_hook_detached(str(spec["exit_command"]), env, hook_runner(config.owner_uid, config.owner_gid), log)


def release(task: Task, *, dry_run: bool) -> list[str]:
    """:meth:`lanco.task.Task.release`."""
    ns, backend = task.namespace.name, task.namespace.backend
    if task.is_active():
        raise StillRunning(f"task {task.name} is running")
    exists = backend.task_exists(ns, task.name)
    if not exists and not os.path.isdir(task.state_dir):
        raise NotRunning(f"task {task.name} is not known")
    targets = [d for d in backend.task_dirs(ns, task.name) if os.path.isdir(d)]
    targets.append(task.state_dir)
    if dry_run:
        return targets
    with recorddir.lock(task):
        if task.is_active():
            raise StillRunning(f"task {task.name} is running")
        # A damaged record is what release is for: forgotten with the rest, its result unrecorded.
        with contexts.suppress(StateError):
            settle_locked(task)
        _await_cgroup_removal(task)
        backend.remove_task(ns, task.name)
        import shutil

        shutil.rmtree(task.state_dir, ignore_errors=True)
    return targets


def _await_cgroup_removal(task: Task, timeout: float = 5.0) -> None:
    """Wait while a monitor whose run has ended removes the run's cgroups (the name's tracker last). Its result
    is written first, so wait and stop are done with the run before it is: a release that took the cgroups
    and the record (the monitor's file with it) meanwhile would let the next run of the name make cgroups that
    the late monitor, removing by path, takes from it."""
    ns, backend = task.namespace.name, task.namespace.backend
    deadline = time.monotonic() + timeout
    while (backend.task_exists(ns, task.name) and monitor_alive(task.state_dir, None)
           and time.monotonic() < deadline):
        time.sleep(0.005)
