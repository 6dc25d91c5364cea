"""A task's start: everything checked before anything is made, then the name claimed (its cgroups), the record
written, and the monitor started and awaited until it reports the task's first process inside its cgroup.

Truth under faults is this module's first concern: whatever fails on the way, nothing of the run stays behind (no
cgroup, no record, no hook), and a run that never started its command is never reported.
"""

from __future__ import annotations

import os
import sys
import time

from lanco import contexts, messages, procfs
from lanco.errors import (
    AlreadyRunning,
    CgroupError,
    CommandNotExecutable,
    CommandNotFound,
    LancoError,
    PermissionDenied,
    UsageError,
)
from lanco.eventlog.claims import journal_end, journal_started
from lanco.launch import monitorcontract
from lanco.launch.spawn import MONITOR_SCRIPT, WAITER_SCRIPT, hook_runner, monitor_shell, package_file, read_line, which
from lanco.state import logfile, recorddir
from lanco.state.record import monitor_alive, read_spec, restart_pending, write_spec
from lanco.taskrecovery import settle_locked

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from lanco.options.runopts import RunPlan
    from lanco.task import Task

_START_REPORT_TIMEOUT = 30.0


def launch(task: Task, argv: list[str], plan: RunPlan) -> None:
    """:meth:`lanco.task.Task.launch`."""
    if not argv:
        raise UsageError("no command given")
    ns, backend = task.namespace.name, task.namespace.backend
    limits, lifetime, process = plan.limits, plan.lifetime, plan.process
    environment = process.environment(os.environ if plan.env is None else plan.env)
    cwd = process.cwd
    log, keep_log, exit_command, foreground = plan.log, plan.keep_log, plan.exit_command, plan.foreground
    if foreground and log is None and plan.log_bounds.max_size is not None:
        raise UsageError("--log-max-size needs a log: run -f writes to the terminal unless -l names one")
    resolve_command(argv[0], environment.get("PATH", os.defpath), cwd)
    from lanco.options.runopts import check_exec_size

    check_exec_size(argv, environment)
    limits.check(backend, ns)
    if process.account is not None and os.getuid() == 0 and os.geteuid() not in (0, process.account.uid):
        from lanco.privileges import user_name

        raise PermissionDenied(f"a task in namespace {ns} runs as its owner "
                               f"{user_name(os.geteuid())}: --user and --group are for root's own namespaces")
    exec_prefix = process.exec_prefix()
    problem = backend.placement_problem(ns)
    if problem is not None:
        raise PermissionDenied(problem)
    owner = task.namespace.acting_for_owner
    run_id = os.urandom(8).hex()
    with recorddir.lock(task) as lock_fd:  # the record directory is made with its lock file
        try:
            _claim_name(task, owner, backend.controllers_for(key for key, _ in limits.items()), run_id)
        except BaseException:
            _drop_unrecorded_dir(task)  # a refused or failed run leaves no record directory
            raise
        messages.debug("run", f"task {task.name}: cgroups created: {' '.join(backend.task_dirs(ns, task.name))}")
        log_fd = -1
        try:
            _journal_previous_end(task)
            recorddir.clear_run_files(task)
            log_path = log if log is not None else (None if foreground else
                                                    task.namespace.config.default_log(task.name))
            if log_path is not None:
                log_path = os.path.abspath(log_path)
                logfile.require_space(log_path)
                if not keep_log:
                    logfile.rotate(log_path, plan.log_bounds.keep)
                log_fd = logfile.open_append(log_path, owner)
            spec: dict[str, Any] = {
                "run_id": run_id, "namespace": ns, "name": task.name, "argv": argv,
                "log": log_path, "log_bounds": plan.log_bounds.as_record(),
                "exit_command": exit_command, "limits": limits.as_record(),
                "started": time.time(), "boot_id": procfs.boot_id(), "uid": os.geteuid(),
                "cwd": cwd or os.getcwd(), "lifetime": lifetime.as_record(), "process": process.as_record(),
                "labels": plan.labels, "description": plan.description,
            }
            write_spec(task.state_dir, spec)
            if owner is not None:
                recorddir.chown_record(task.state_dir, owner)
            config = task.namespace.config
            environment.update(monitorcontract.monitor_environment(
                backend, ns, task.name, state_dir=task.state_dir, run_id=run_id, lifetime=lifetime,
                umask=process.umask, exec_prefix=exec_prefix, task_path=environment.get("PATH"),
                waiter=[sys.executable, "-I", "-S", package_file(WAITER_SCRIPT)], hook=exit_command,
                hook_as=hook_runner(config.owner_uid, config.owner_gid), log=log_path, cwd=cwd))
            _spawn_monitor(task, argv, environment, log_fd, lock_fd, foreground,
                           lambda: limits.apply(backend, ns, task.name), plan.description)
        except BaseException:
            _abort_start(task)
            raise
        finally:
            if log_fd >= 0:
                os.close(log_fd)
        # Under the start lock: the run is tracked, its end not yet journaled (lanco.eventlog.claims).
        journal_started(task, spec)


def _spawn_monitor(task: Task, argv: list[str], env: dict[str, str], log_fd: int, lock_fd: int, foreground: bool,
                   write_limits: Callable[[], None], description: str | None = None) -> None:
    """Start the monitor with ``env`` (its contract and the task's environment) and wait for its report."""
    report_r, report_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        stdin = 0 if foreground else devnull
        out, err = (log_fd, log_fd) if log_fd >= 0 else (1, 2)
        finish_start = task.namespace.backend.start_monitor(
            task.namespace.name, task.name, [monitor_shell(), package_file(MONITOR_SCRIPT), *argv], env,
            {0: stdin, 1: out, 2: devnull, 3: report_w, 4: err, 6: lock_fd}, None, write_limits,
            description=description)
    except BaseException:
        os.close(report_r)
        raise
    finally:
        os.close(report_w)
        os.close(devnull)
    messages.debug("run", f"task {task.name}: monitor started, waiting for its report")
    try:
        report = read_line(report_r, _START_REPORT_TIMEOUT)
    finally:
        os.close(report_r)
        finish_start()
    messages.debug("run", f"task {task.name}: monitor reported {report!r}")
    if report is None:
        raise CgroupError(f"cannot start task {task.name}: no report from the monitor")
    if not report.startswith("started "):
        detail = report.partition(" ")[2] if report.startswith("error ") else "the monitor exited early"
        raise CgroupError(f"cannot start task {task.name}: {detail}")


def _claim_name(task: Task, owner: tuple[int, int] | None, controllers: set[str], run_id: str) -> None:
    """Create the task's cgroups; a leftover of a finished or lost run is cleared first."""
    ns, backend = task.namespace.name, task.namespace.backend
    for _ in range(3):
        try:
            backend.create_task(ns, task.name, owner, controllers, run_id)
            return
        except FileExistsError:
            pass
        if task.is_running():
            break
        spec = read_spec(task.state_dir)
        if monitor_alive(task.state_dir, spec) and restart_pending(task.state_dir, spec):
            raise AlreadyRunning(f"task {task.name} is already running (it is waiting to restart)")
        if monitor_alive(task.state_dir, spec):
            # The run ended and its monitor is removing the cgroups: that takes milliseconds.
            deadline = time.monotonic() + 3.0
            while backend.task_exists(ns, task.name) and time.monotonic() < deadline:
                if task.is_running():
                    raise AlreadyRunning(f"task {task.name} is already running")
                time.sleep(0.005)
        else:
            settle_locked(task)
    raise AlreadyRunning(f"task {task.name} is already running")


def _abort_start(task: Task) -> None:
    """Undo a start that failed half-way: nothing of it may stay behind."""
    ns, backend = task.namespace.name, task.namespace.backend
    with contexts.suppress(LancoError, OSError):
        if backend.task_exists(ns, task.name):
            backend.kill(ns, task.name)
            backend.wait_empty(ns, task.name, 5.0)
            backend.remove_task(ns, task.name)
    recorddir.clear_run_files(task)
    _drop_unrecorded_dir(task)


def _journal_previous_end(task: Task) -> None:
    """The end of the name's previous run into the event journal, if nobody has journaled it yet: the new run
    clears its result, and with it the only trace an events consumer that is down would have found."""
    if not os.path.exists(os.path.join(task.state_dir, "spec.json")):
        return
    try:
        journal_end(task, settle=False)
    except (OSError, LancoError) as exc:
        messages.warn(messages.command(), f"task {task.name}: cannot journal the end of its previous run: "
                      f"{getattr(exc, 'message', None) or getattr(exc, 'strerror', None) or exc}")


def _drop_unrecorded_dir(task: Task) -> None:
    """Remove the record directory when it holds no record, only locks: views list no such directory, and a
    failed or refused run must leave nothing. Called with the start lock held; a launcher waiting for that
    lock finds its file unlinked and starts over (see :func:`lanco.state.recorddir.acquire`)."""
    try:
        entries = os.listdir(task.state_dir)
    except OSError:
        return
    if any(entry not in ("lock", "stop.lock") for entry in entries):
        return
    for entry in entries:
        with contexts.suppress(OSError):
            os.unlink(os.path.join(task.state_dir, entry))
    with contexts.suppress(OSError):
        os.rmdir(task.state_dir)


def resolve_command(command: str, path: str, cwd: str | None) -> str:
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
