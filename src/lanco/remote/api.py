"""``lanco.Namespace(name, host="alice@web1")``: the Python API over ssh, driving the remote lanco's command line.

The remote host needs nothing but lanco and sshd: each call is one ``lanco -H`` command (:mod:`lanco.remote.ssh`),
its answer the command's ``--json`` document, its exit code and its one-line message. Errors come back as the
same exceptions a local call raises, told apart by exit code and the message's words (the command line's
messages are stable: the tests check them), so no second channel was added to the CLI (the table:
:mod:`lanco.remote.errormap`).

What a local call returns, this returns too (TaskRecord from ``status --json``); what only makes sense on the
host itself (the cgroup backend, acting as the owner, rotating logs) is not offered.
"""

from __future__ import annotations

import json
import subprocess

from lanco import errors
from lanco.names import check_namespace_name, check_task_name
from lanco.remote.errormap import MESSAGE, remote_error
from lanco.remote.ssh import Session, Target
from lanco.state.record import FINISHED_STATES, TaskRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
    from typing import Any, BinaryIO

    from lanco.eventlog.stream import Event

class RemoteNamespace:
    """A namespace on another host, behind the methods of :class:`lanco.namespace.Namespace` that make sense from
    afar. ``host`` is ``[USER@]HOST[:PORT]``, as ``lanco -H``; LANCO_SSH and LANCO_REMOTE_LANCO apply."""

    def __init__(self, name: str, *, host: str, cgroup_mode: str | None = None,
                 cgroup_base: str | None = None, _checked: bool = False) -> None:
        self.name = check_namespace_name(name)
        self.target = Target(host)
        self.host = host
        self.globals = [*(["--cgroup-mode", cgroup_mode] if cgroup_mode else []),
                        *(["--cgroup-base", cgroup_base] if cgroup_base else [])]
        if not _checked:
            self.task_names()  # NamespaceMissing now, as a local Namespace(name) raises it

    def __repr__(self) -> str:
        return f"RemoteNamespace({self.name!r}, host={self.host!r})"

    def call(self, *words: str, ok: Iterable[int] = (0,)) -> tuple[int, str]:
        """Run ``lanco -H HOST [globals] NS WORDS...``; its exit code and stdout. An exit code not in ``ok``, or
        any with a message, is raised as the error it names."""
        return call(self.target, [*self.globals, self.name, *words], ok=ok)

    @classmethod
    def init(cls, name: str, *, host: str, user: str | None = None, group: str | None = None,
             cgroup_mode: str | None = None, cgroup_base: str | None = None,
             take_over: bool = False) -> RemoteNamespace:
        ns = cls(name, host=host, cgroup_mode=cgroup_mode, cgroup_base=cgroup_base, _checked=True)
        ns.call("init", *(["-u", user] if user else []), *(["-g", group] if group else []),
                *(["--take-over"] if take_over else []))
        return ns

    def task(self, name: str) -> RemoteTask:
        return RemoteTask(self, check_task_name(name))

    def listing(self, *, every: bool = True, labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """``ls --json [--all] [--label KEY=VALUE...]``'s task objects."""
        from lanco.remote.streams import label_words

        _, out = self.call("ls", "--json", *(["--all"] if every else []), *label_words(labels))
        tasks: list[dict[str, Any]] = json.loads(out)["tasks"]
        return tasks

    def task_names(self) -> list[str]:
        return [t["name"] for t in self.listing()]

    def tasks(self, labels: Mapping[str, str] | None = None) -> list[RemoteTask]:
        """The known tasks; with ``labels``, those that carry every one (as :meth:`Namespace.tasks`)."""
        return [RemoteTask(self, t["name"]) for t in self.listing(labels=labels)]

    def events(self, since: str | None = None, *, follow: bool = False,
               labels: Mapping[str, str] | None = None) -> Iterator[Event]:
        """The host's ``events --json`` as :class:`lanco.eventlog.stream.Event` objects (one ssh session)."""
        from lanco.remote import streams

        return streams.events(self, since, follow, labels)

    def events_async(self, since: str | None = None, *,
                     labels: Mapping[str, str] | None = None) -> AsyncIterator[Event]:
        from lanco.remote import streams

        return streams.events_async(self, since, labels)

    def wait_any(self, tasks: Sequence[RemoteTask | str],
                 timeout: float | None = None) -> list[tuple[RemoteTask, TaskRecord]]:
        """Until one of ``tasks`` has ended (the host's ``wait --any``); every one that has, with its record."""
        from lanco.remote import streams

        return streams.wait_many(self, tasks, "any", timeout)

    def wait_all(self, tasks: Sequence[RemoteTask | str], timeout: float | None = None, *,
                 on_end: Callable[[list[tuple[RemoteTask, TaskRecord]]], object] | None = None
                 ) -> list[tuple[RemoteTask, TaskRecord]]:
        """Until every one of ``tasks`` has ended (``wait --all``), ``on_end`` called as each does."""
        from lanco.remote import streams

        return streams.wait_many(self, tasks, "all", timeout, on_end)

    async def wait_any_async(self, tasks: Sequence[RemoteTask | str],
                             timeout: float | None = None) -> list[tuple[RemoteTask, TaskRecord]]:
        from lanco.remote import streams

        return await streams.wait_many_async(self, tasks, "any", timeout)

    async def wait_all_async(self, tasks: Sequence[RemoteTask | str],
                             timeout: float | None = None) -> list[tuple[RemoteTask, TaskRecord]]:
        from lanco.remote import streams

        return await streams.wait_many_async(self, tasks, "all", timeout)

    def running_tasks(self) -> list[RemoteTask]:
        return [RemoteTask(self, t["name"]) for t in self.listing(every=False)]

    def records(self) -> list[TaskRecord]:
        """Every known task's record in one call (``ls --json --all``; figures as ``ls`` gives them)."""
        return [record_of(t) for t in self.listing()]

    def run(self, task: str, argv: Sequence[str], **options: Any) -> RemoteTask:
        """``run`` with the options of :class:`lanco.options.runopts.RunOptions` that mean the same on another
        host (``env`` and ``foreground`` do not: the caller's environment and stdin are not the remote's)."""
        handle = self.task(task)
        self.call("run", *run_options(options), "--", handle.name, *argv)
        return handle

    def stop_tasks(self, names: Sequence[str] | None = None, *,
                   timeout: float | None = None) -> dict[str, TaskRecord | errors.LancoError]:
        """Stop ``names`` together (None: every running task); each one's record, or the error of the remote
        ``stop`` when it failed (its last line, given to every task of the call: the lines are not told apart)."""
        targets = list(names) if names is not None else [t.name for t in self.running_tasks()]
        if not targets:
            return {}
        outcome: dict[str, TaskRecord | errors.LancoError] = {}
        try:
            self.call("stop", *(["-t", str(timeout)] if timeout is not None else []), *targets)
        except errors.LancoError as failure:
            outcome = {name: failure for name in targets}
        for name in targets:
            if name not in outcome:
                outcome[name] = self.task(name).record()
        return outcome

    def release(self, *, dry_run: bool = False) -> list[str]:
        """Destroy the namespace (no task may run); with ``dry_run``, what would go."""
        _, out = self.call("release", *(["-n"] if dry_run else []))
        return [line.removeprefix("would remove ") for line in out.splitlines()]


class RemoteTask:
    """A task of a :class:`RemoteNamespace`, behind the methods of :class:`lanco.task.Task`."""

    def __init__(self, namespace: RemoteNamespace, name: str) -> None:
        self.namespace = namespace
        self.name = name

    def __repr__(self) -> str:
        return f"RemoteTask({self.namespace.name!r}, {self.name!r}, host={self.namespace.host!r})"

    def is_running(self) -> bool:
        code, _ = self.namespace.call("check", self.name, ok=(0, 1))
        return code == 0

    def is_active(self) -> bool:
        """Running, or between two runs of ``run --restart``, as :meth:`lanco.task.Task.is_active`."""
        try:
            state = self.record().state
        except errors.NotRunning:  # not known: never run, or released
            return False
        return state != "unknown" and state not in FINISHED_STATES

    def start(self, argv: Sequence[str], **options: Any) -> None:
        self.namespace.run(self.name, argv, **options)

    def record(self) -> TaskRecord:
        _, out = self.namespace.call("status", "--json", self.name)
        return record_of(json.loads(out))

    def pids(self) -> list[int]:
        return self.record().pids

    def stop(self, timeout: float | None = None) -> TaskRecord:
        self.namespace.call("stop", *(["-t", str(timeout)] if timeout is not None else []), self.name)
        return self.record()

    def wait(self, timeout: float | None = None) -> TaskRecord:
        """Until the run ended (the task's exit code is the command's: any code passes); with ``timeout``, the
        running record once it has passed, as a local wait returns."""
        try:
            self.namespace.call("wait", *(["-t", str(timeout)] if timeout is not None else []), self.name,
                                ok=range(256))
        except errors.LancoError as failure:
            if f"task {self.name} is still running after" not in failure.message:
                raise
        return self.record()

    async def wait_async(self, timeout: float | None = None) -> TaskRecord:
        from lanco.remote import streams

        return await streams.wait_async(self, timeout)

    def freeze(self) -> None:
        self.namespace.call("freeze", self.name)

    def thaw(self) -> None:
        self.namespace.call("thaw", self.name)

    def signal(self, signum: int) -> int:
        """Send ``signum`` to every process; how many there were (as the record said just after)."""
        self.namespace.call("kill", "-s", str(int(signum)), self.name)
        return len(self.record().pids)

    def set_limits(self, **limits: Any) -> TaskRecord:
        self.namespace.call("set", *run_options(limits), self.name)
        return self.record()

    def release(self, *, dry_run: bool = False) -> list[str]:
        _, out = self.namespace.call("release", *(["-n"] if dry_run else []), self.name)
        return [line.removeprefix("would remove ") for line in out.splitlines()]

    def show_log(self, out: BinaryIO, *, lines: int | None = None, follow: bool = False) -> None:
        """The log's bytes into ``out``, streamed as they come (``follow``: until the task's name is released or
        the connection drops, which raises HostUnreachable)."""
        words = [*self.namespace.globals, self.namespace.name, "logs", *(["-f"] if follow else []),
                 *(["-n", str(lines)] if lines is not None else []), self.name]
        session = Session(self.namespace.target, words, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        code = session.run(relay=False, sink=out)
        if code != 0:
            raise remote_error(code, session.passed[-1] if session.passed else "")


def call(target: Target, words: Sequence[str], *, ok: Iterable[int] = (0,)) -> tuple[int, str]:
    session = Session(target, words, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    code = session.run(relay=False, sink=None)
    said = [line for line in session.passed if MESSAGE.match(line)]
    # A refusal says a line; a task's own exit code (wait) or a check's 1 says none; a warning with 0 is no error.
    if code not in ok or (said and code != 0):
        raise remote_error(code, said[-1] if said else (session.passed[-1] if session.passed else ""))
    return code, session.output.decode(errors="replace")


def record_of(task: Mapping[str, Any]) -> TaskRecord:
    """A TaskRecord from a task object of docs/json.md."""
    return TaskRecord(task["namespace"], task["name"], task["state"], run_id=task.get("run_id"),
                      argv=list(task.get("argv") or []), pids=[p["pid"] for p in task.get("processes") or []],
                      main_pid=task.get("main_pid"), started=task.get("started_epoch_s"),
                      ended=task.get("ended_epoch_s"), exit_code=task.get("exit_code"), signal=task.get("signal"),
                      oom_kills=task.get("oom_kills"), cpu_usec=task.get("cpu_usage_usec"),
                      memory_bytes=task.get("memory_current_bytes"),
                      memory_peak_bytes=task.get("memory_peak_bytes"), log=task.get("log"),
                      exit_command=task.get("exit_command"), limits=dict(task.get("limits") or {}),
                      restarts=task.get("restarts"), labels=dict(task.get("labels") or {}),
                      description=task.get("description"))


_FLAGS = {"log": "-l", "log_max_size": "--log-max-size", "log_keep": "--log-keep", "exit_command": "-c",
          "env_file": "--env-file", "cwd": "--cwd", "umask": "--umask", "nice": "--nice", "user": "--user",
          "group": "--group", "timeout": "--timeout", "stop_signal": "--stop-signal",
          "stop_timeout": "--stop-timeout", "restart": "--restart", "restart_max": "--restart-max",
          "restart_delay": "--restart-delay", "description": "--description"}
_LIMIT_FLAGS = ("memory_max", "memory_high", "memory_low", "memory_swap_max", "cpu_quota", "cpu_weight", "cpuset",
                "pids_max", "io_weight")


def run_options(options: Mapping[str, Any]) -> list[str]:
    """The API's keyword options as the command line's, for ``run`` and ``set``."""
    words: list[str] = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        if key == "keep_log":
            words.append("-L")
        elif key == "extra_env":
            pairs = value.items() if hasattr(value, "items") else (v.partition("=")[::2] for v in value)
            for name, setting in pairs:
                words += ["-e", f"{name}={setting}"]
        elif key in ("io_read_bps", "io_write_bps"):
            rates = value.items() if hasattr(value, "items") else value
            for device, rate in rates:
                words += [f"--{key.replace('_', '-')}", f"{device}={rate}"]
        elif key == "labels":
            pairs = value.items() if hasattr(value, "items") else (v.partition("=")[::2] for v in value)
            for name, setting in pairs:
                words += ["--label", f"{name}={setting}"]
        elif key in _FLAGS:
            words += [_FLAGS[key], str(value)]
        elif key in _LIMIT_FLAGS:
            words += [f"--{key.replace('_', '-')}", str(value)]
        else:
            raise errors.UsageError(f"option {key} cannot be given to a task on another host")
    return words
