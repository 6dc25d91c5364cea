"""The monitor's contract, written once on lanco's side: the ``LANCO_MON_*`` environment monitor.sh reads, the
``result`` file it writes, and the ``LANCO_*`` environment an exit hook is given.

monitor.sh is the other party, in shell: its header comment lists the same variables, its last lines write the
same result, its ``run_hook`` sets the same hook variables (tests/unit/test_monitorcontract.py holds the two
sides to each other). Everything a Python module tells the monitor or reads back from it goes through here, so
that a variable renamed or a field added is one change on each side, not a hunt through the launcher.

Lists are one item per line; an empty value means "none" wherever a variable is optional.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lanco.cgroups.backend import Backend
    from lanco.options.lifetime import Lifetime

# -- the monitor's environment ----------------------------------------------------------------------------------

PREFIX = "LANCO_MON_"
"""Every variable of the contract starts with it; a task's own environment may not (lanco.options.runopts)."""
STATE = "LANCO_MON_STATE"
"""The task's record directory: the monitor writes ``monitor``, ``pid``, the markers and ``result`` there."""
RUN_ID = "LANCO_MON_RUN_ID"
"""This run's id, as in spec.json: the result and the markers name the run they belong to."""
MONITORS = "LANCO_MON_MONITORS"
"""The ``cgroup.procs`` files of the namespace's ``.monitors`` cgroups, which the monitor joins first; empty
where the launcher places the monitor itself (:func:`waiting_for_go`)."""
JOIN = "LANCO_MON_JOIN"
"""The task's ``cgroup.procs`` files, one per hierarchy in use: the task's first process joins them."""
TRACKER = "LANCO_MON_TRACKER"
"""The task's tracking cgroup, whose processes are the task's."""
DIRS = "LANCO_MON_DIRS"
"""Every cgroup directory of the task, the tracker last (the order the monitor removes them in)."""
EVENTS = "LANCO_MON_EVENTS"
"""The tracker's v2 ``cgroup.events``, or empty (v1: the monitor reads ``cgroup.procs``)."""
WAITER = "LANCO_MON_WAITER"
"""The argv of the helper that waits, without a busy loop, until ``cgroup.events`` says the task is empty."""
STATS = "LANCO_MON_STATS"
"""``key path field`` per line: the figures the monitor copies into the result at the end."""
HOOK = "LANCO_MON_HOOK"
"""The exit command (``run -c``) for ``/bin/sh -c``, or empty."""
HOOK_AS = "LANCO_MON_HOOK_AS"
"""The argv prefix that runs the hook as the namespace's owner, or empty."""
NS = "LANCO_MON_NS"
"""The namespace's name, for the hook's ``LANCO_NAMESPACE``."""
TASK = "LANCO_MON_TASK"
"""The task's name, for the hook's ``LANCO_TASK`` and the monitor's own messages."""
LOG = "LANCO_MON_LOG"
"""The task's log, for the hook's ``LANCO_LOG``; empty for ``run -f`` without ``-l``."""
EXEC = "LANCO_MON_EXEC"
"""The argv put before the command (nice, setpriv), or empty."""
PATH = "LANCO_MON_PATH"
"""``=`` and the task's PATH, or empty when the task has none: the monitor itself runs with the launcher's PATH,
so that its own sleep, mv and rmdir never depend on what the task was given."""
UMASK = "LANCO_MON_UMASK"
"""The task's umask in octal, or empty."""
TIMEOUT = "LANCO_MON_TIMEOUT"
"""Seconds a run may last (``--timeout``), or empty."""
STOP_SIGNAL = "LANCO_MON_STOP_SIGNAL"
"""The signal number a timeout sends first."""
STOP_GRACE_MS = "LANCO_MON_STOP_GRACE_MS"
"""Milliseconds between that signal and the kill."""
KILL = "LANCO_MON_KILL"
"""The task's ``cgroup.kill``, or empty (then every process gets SIGKILL)."""
FREEZER = "LANCO_MON_FREEZER"
"""``file thawed-value`` that thaws the task before a kill, or empty where the mode has no freezer."""
RESTART = "LANCO_MON_RESTART"
"""The restart policy: ``no``, ``on-failure`` or ``always``."""
RESTART_MAX = "LANCO_MON_RESTART_MAX"
"""The most restarts, or empty: no bound."""
RESTART_DELAY = "LANCO_MON_RESTART_DELAY"
"""Seconds between a run's end and the next run."""
GO = "LANCO_MON_GO"
"""Set (to the descriptor's number) when the monitor must wait for ``go`` on descriptor 5 before anything: the
launcher moves it into its cgroup itself (systemd scopes)."""
CWD = "LANCO_MON_CWD"
"""The absolute directory the monitor and the task run in, or empty: the launcher's."""

VARIABLES = (STATE, RUN_ID, MONITORS, JOIN, TRACKER, DIRS, EVENTS, WAITER, STATS, HOOK, HOOK_AS, NS, TASK, LOG,
             EXEC, PATH, UMASK, TIMEOUT, STOP_SIGNAL, STOP_GRACE_MS, KILL, FREEZER, RESTART, RESTART_MAX,
             RESTART_DELAY, GO, CWD)
"""Every variable of the monitor's; it unsets them all before the task starts."""


def monitor_environment(backend: Backend, ns: str, task: str, *, state_dir: str, run_id: str, lifetime: Lifetime,
                        umask: int | None, exec_prefix: list[str], task_path: str | None, waiter: list[str],
                        hook: str | None, hook_as: list[str], log: str | None, cwd: str | None) -> dict[str, str]:
    """Every variable the monitor of one run reads (all but :data:`GO`), from the backend's view of the task's
    cgroups and the run's settings; the task's own environment is added to them. ``PATH`` is the launcher's (see
    :data:`PATH`), and ``task_path`` the task's, None when it has none."""
    import os

    freezer = backend.freeze_control(ns, task)
    restart_max = lifetime.restart_max
    return {
        "PATH": os.pathsep.join(filter(None, [os.environ.get("PATH"), os.defpath])),
        STATE: state_dir,
        RUN_ID: run_id,
        MONITORS: "\n".join(backend.monitor_join_files(ns)),
        JOIN: "\n".join(backend.join_files(ns, task)),
        TRACKER: backend.task_dir(ns, task),
        DIRS: "\n".join(backend.task_dirs(ns, task)),
        EVENTS: backend.events_file(ns, task) or "",
        WAITER: "\n".join(waiter),
        STATS: "\n".join(f"{s.key} {s.path} {s.field}" for s in backend.stat_sources(ns, task)),
        HOOK: hook or "",
        HOOK_AS: "\n".join(hook_as),
        NS: ns,
        TASK: task,
        LOG: log or "",
        EXEC: "\n".join(exec_prefix),
        PATH: "" if task_path is None else "=" + task_path,
        UMASK: "" if umask is None else f"{umask:04o}",
        TIMEOUT: "" if lifetime.timeout is None else _seconds(lifetime.timeout),
        STOP_SIGNAL: str(lifetime.stop_signal),
        STOP_GRACE_MS: str(round(lifetime.stop_timeout * 1000)),
        KILL: backend.kill_file(ns, task) or "",
        FREEZER: "" if freezer is None else f"{freezer[0]} {freezer[2]}",
        RESTART: lifetime.restart,
        RESTART_MAX: "" if restart_max is None else str(restart_max),
        RESTART_DELAY: _seconds(lifetime.restart_delay),
        CWD: cwd or "",
    }


def waiting_for_go(env: dict[str, str], go_fd: int) -> dict[str, str]:
    """``env`` for a monitor that the launcher moves into its cgroup itself: it joins no ``.monitors`` cgroup and
    waits for ``go`` on ``go_fd`` before anything."""
    return {**env, MONITORS: "", GO: str(go_fd)}


def _seconds(value: float) -> str:
    """A duration as sleep(1) takes it: no exponent, at most millisecond digits."""
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


# -- the result file --------------------------------------------------------------------------------------------
#
# ``key=value`` lines, written once per run (through a temporary file and a rename, or a link where lanco records
# a lost run, so that a reader never sees half of one):
#   run_id             the run the result is of (LANCO_MON_RUN_ID)
#   result             exited, killed, stopped, oom, timeout, or lost (lanco's own: the monitor died)
#   exit_code, signal  Docker-style: 128+N for signal N, whose number is then in signal; empty where unknown
#   restarts           how many times the monitor started the command again
#   and one line per LANCO_MON_STATS key the cgroup could tell: oom_kills (of the last run), cpu_usec or
#   cpu_nsec, memory_peak_bytes.

RESULT = "result"
"""The field every result has: a file without it is damaged."""


def parse_result(text: str) -> dict[str, str] | None:
    """The fields of a result file's text; None when it is damaged (it has no :data:`RESULT`)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields if RESULT in fields else None


def format_result(fields: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in fields.items())


def lost_result(run_id: str) -> dict[str, str]:
    """The result lanco records for a run whose monitor died before it wrote one."""
    return {"run_id": run_id, RESULT: "lost", "exit_code": "", "signal": ""}


# -- the exit hook's environment ----------------------------------------------------------------------------------

HOOK_VARIABLES = ("LANCO_NAMESPACE", "LANCO_TASK", "LANCO_RESULT", "LANCO_EXIT_CODE", "LANCO_SIGNAL",
                  "LANCO_OOM_KILLS", "LANCO_RESTARTS", "LANCO_LOG")
"""What an exit hook is told, by the monitor or, for a lost run, by the lanco command that recorded it."""


def hook_environment(ns: str, task: str, result: dict[str, str], log: str | None) -> dict[str, str]:
    """The hook's variables, in the order of :data:`HOOK_VARIABLES`, for a run that ended with ``result``."""
    values = (ns, task, result.get(RESULT, "lost"), result.get("exit_code", ""), result.get("signal", ""),
              result.get("oom_kills", ""), result.get("restarts", ""), log or "")
    return dict(zip(HOOK_VARIABLES, values, strict=True))
