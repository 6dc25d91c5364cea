"""What a caller does to a running task between its start and its stop: freeze and thaw it, change its limits,
send it a signal.

Each acts on the task's cgroups as they are now, and refuses a task that is not running; where its record is
gone, the cgroup is acted on all the same (the kernel's tree is the truth) and nothing is recorded.
"""

from __future__ import annotations

import os

from lanco import signums
from lanco.errors import LimitUnavailable, NotRunning, PermissionDenied, UsageError
from lanco.state import recorddir
from lanco.state.record import TaskRecord, write_spec
from lanco.taskrecovery import live_spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lanco.options.limits import Limits
    from lanco.task import Task


def set_frozen(task: Task, frozen: bool) -> None:
    """:meth:`lanco.task.Task.freeze` and :meth:`lanco.task.Task.thaw`."""
    _require_running(task)
    with recorddir.lock(task):  # a log rotation's own freeze and thaw (rotate_log) must not undo this one
        task.namespace.backend.set_frozen(task.namespace.name, task.name, frozen)


def apply_limits(task: Task, wanted: Limits) -> TaskRecord:
    """:meth:`lanco.task.Task.apply_limits`."""
    from lanco.options.limits import Limits

    if not wanted:
        raise UsageError("no limit given")
    ns, backend = task.namespace.name, task.namespace.backend
    wanted.check(backend, ns, running=True)
    if "cpuset" in backend.controllers_for(k for k, _ in wanted.items()):
        # v1 takes a process into a cpuset cgroup only when it joins: a task started without one has none.
        cpuset_dir = backend.controller_dir("cpuset", ns, task.name)
        if cpuset_dir is not None and not os.path.isdir(cpuset_dir):
            raise LimitUnavailable(f"task {task.name} was started without --cpuset, which cgroup mode "
                                   f"{backend.mode} can only give a task when it starts")
    with recorddir.lock(task):
        _require_running(task)
        wanted.apply(backend, ns, task.name)
        spec = live_spec(task)
        if spec is None:
            return task.record()  # no record to keep the limits in: the cgroup holds them
        spec["limits"] = Limits.from_record(spec.get("limits", {})).merged(wanted).as_record()
        write_spec(task.state_dir, spec)
        if (owner := task.namespace.acting_for_owner) is not None:
            recorddir.chown_record(task.state_dir, owner)
    return task.record()


def _require_running(task: Task) -> None:
    if not task.is_running():
        raise NotRunning(f"task {task.name} is not running")
    live_spec(task)


def signal(task: Task, signum: int, resume: bool) -> int:
    """:meth:`lanco.task.Task.signal`."""
    seen = set[int]()
    if task.is_running():
        live_spec(task)
    for _ in range(50):
        fresh = [p for p in task.pids() if p not in seen]
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
                raise PermissionDenied(f"cannot signal process {pid} of task {task.name}: "
                                       "it runs as another user") from None
        seen.update(fresh)
    return len(seen)
