"""A task's record: what is known about one run, live (cgroup) or finished (result file).

The record directory of a task holds ``spec.json`` (written by ``run`` before the monitor starts), ``monitor``
(the monitor's pid and start time), ``pid`` (the first process), ``result`` (written once, atomically, by the
monitor, or by whichever lanco command finds the run lost), the markers ``stop`` and ``timeout``, and for a task
run with ``--restart`` the monitor's ``runs.jsonl`` (one line per run), ``restarting`` (while it pauses) and
``oom_base`` (the cgroup's OOM kill counter at the current run's start, once it is above 0).
"""

from __future__ import annotations

import os

from lanco import procfs
from lanco.errors import StateError
from lanco.procfs import read_bytes
from lanco.state import jsonread
from lanco.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FINISHED_STATES = ("exited", "killed", "stopped", "oom", "timeout", "lost")


class TaskRecord(Value):
    """What is known about one run of a task (docs/api.md lists the fields); ``as_dict()`` gives them all."""

    _fields = ("namespace", "name", "state", "run_id", "argv", "pids", "main_pid", "started", "ended", "exit_code",
               "signal", "oom_kills", "cpu_usec", "memory_bytes", "memory_peak_bytes", "log", "exit_command",
               "limits", "restarts", "labels", "description")
    __slots__ = _fields
    namespace: str
    name: str
    state: str
    run_id: str | None
    argv: list[str]
    pids: list[int]
    main_pid: int | None
    started: float | None
    ended: float | None
    exit_code: int | None
    signal: int | None
    oom_kills: int | None
    cpu_usec: int | None
    memory_bytes: int | None
    memory_peak_bytes: int | None
    log: str | None
    exit_command: str | None
    limits: dict[str, Any]
    restarts: int | None
    """Times the monitor started the command again (``run --restart``)."""
    labels: dict[str, str]
    """``run --label`` KEY=VALUE pairs; {} when none (or the record's are damaged)."""
    description: str | None
    """``run --description``; None when none (or the record's is damaged)."""

    def __init__(self, namespace: str, name: str, state: str, run_id: str | None = None,
                 argv: list[str] | None = None, pids: list[int] | None = None, main_pid: int | None = None,
                 started: float | None = None, ended: float | None = None, exit_code: int | None = None,
                 signal: int | None = None, oom_kills: int | None = None, cpu_usec: int | None = None,
                 memory_bytes: int | None = None, memory_peak_bytes: int | None = None, log: str | None = None,
                 exit_command: str | None = None, limits: dict[str, Any] | None = None,
                 restarts: int | None = None, labels: dict[str, str] | None = None,
                 description: str | None = None) -> None:
        self.namespace = namespace
        self.name = name
        self.state = state
        self.run_id = run_id
        self.argv = [] if argv is None else argv
        self.pids = [] if pids is None else pids
        self.main_pid = main_pid
        self.started = started
        self.ended = ended
        self.exit_code = exit_code
        self.signal = signal
        self.oom_kills = oom_kills
        self.cpu_usec = cpu_usec
        self.memory_bytes = memory_bytes
        self.memory_peak_bytes = memory_peak_bytes
        self.log = log
        self.exit_command = exit_command
        self.limits = {} if limits is None else limits
        self.restarts = restarts
        self.labels = {} if labels is None else labels
        self.description = description

    @property
    def running(self) -> bool:
        """The task has processes (a frozen one too), or is about to."""
        return self.state in ("running", "starting", "frozen")


def read_spec(state_dir: str) -> dict[str, Any] | None:
    path = os.path.join(state_dir, "spec.json")
    try:
        # read_bytes rather than a text file object: ls and dump read the spec of every task.
        data = jsonread.loads(read_bytes(path).decode("utf-8"))
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        # A link planted towards a file the reader may not read (root reads a user's records as the user).
        raise StateError(f"cannot read the record of task {os.path.basename(state_dir)}: {path}: permission "
                         "denied") from exc
    except (OSError, ValueError) as exc:
        raise StateError(f"the record of task {os.path.basename(state_dir)} is damaged: {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise StateError(f"the record of task {os.path.basename(state_dir)} is damaged: {path}: not an object")
    if problem := _shape_problem(data):
        raise StateError(f"the record of task {os.path.basename(state_dir)} is damaged: {path}: {problem}")
    return data


_SPEC_SHAPE: dict[str, tuple[type, ...]] = {
    "run_id": (str,), "log": (str,), "exit_command": (str,), "boot_id": (str,), "cwd": (str,),
    "started": (int, float), "uid": (int,), "limits": (dict,), "lifetime": (dict,), "process": (dict,),
    "log_bounds": (dict,)}
"""The type of each field of spec.json that lanco reads (each may also be null), argv aside."""


def _shape_problem(spec: dict[str, Any]) -> str:
    """What is wrong with the fields of a spec that parsed: a hand-edited or foreign file is refused whole, never
    half used."""
    argv = spec.get("argv", [])
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        return "argv is not a list of strings"
    for key, types in _SPEC_SHAPE.items():
        value = spec.get(key)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            return f"{key} is not {'a number' if int in types else 'an object' if dict in types else 'a string'}"
    return ""


def write_spec(state_dir: str, spec: dict[str, Any]) -> None:
    tmp = os.path.join(state_dir, f"spec.json.{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(compact_json(spec))
    os.replace(tmp, os.path.join(state_dir, "spec.json"))


def compact_json(value: Any) -> str:
    """``json.dumps(value, sort_keys=True)``, by the C encoder under it without the json package, which loads re
    and enum: every run writes a spec, and in an emulated guest that import costs it some 100 ms."""
    import _json

    encode = _json.make_encoder(None, _unencodable, _json.encode_basestring_ascii, None,
                                ": ", ", ", True, False, True)
    return "".join(encode(value, 0))


def _unencodable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def read_result(state_dir: str) -> tuple[dict[str, str], float] | None:
    """The result's fields and the time it was written (the run's end), or None while there is none."""
    path = os.path.join(state_dir, "result")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
            ended = os.fstat(f.fileno()).st_mtime
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        raise StateError(f"cannot read the result of task {os.path.basename(state_dir)}: {path}: permission "
                         "denied") from exc
    except OSError as exc:
        raise StateError(f"cannot read the result of task {os.path.basename(state_dir)}: {path}: {exc}") \
            from exc
    except UnicodeDecodeError as exc:
        raise StateError(f"the result of task {os.path.basename(state_dir)} is damaged: {path}") from exc
    # Here, not at the top: check reads no result, and is spared the contract's import.
    from lanco.launch.monitorcontract import parse_result

    fields = parse_result(text)
    if fields is None:
        raise StateError(f"the result of task {os.path.basename(state_dir)} is damaged: {path}")
    return fields, ended


def write_result(state_dir: str, fields: dict[str, str]) -> bool:
    """Write a result unless one exists; True when this call wrote it (the lost path can race the monitor)."""
    from lanco.launch.monitorcontract import format_result

    tmp = os.path.join(state_dir, f"result.tmp.{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(format_result(fields))
    try:
        os.link(tmp, os.path.join(state_dir, "result"))
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def read_int_file(path: str) -> list[int]:
    try:
        return [int(x) for x in read_bytes(path).decode("ascii").split()]
    except (OSError, ValueError):
        return []


def run_oom_kills(count: int | None, state_dir: str) -> int | None:
    """A live cgroup's OOM kill counter as this run's count: a restart keeps the cgroup and its counter, so the
    monitor writes the counter it found at the run's start to ``oom_base`` (only when above 0: a fresh cgroup
    starts at 0, and most counters stay there, which spares views the read)."""
    if not count:
        return count
    base = read_int_file(os.path.join(state_dir, "oom_base"))
    return max(0, count - base[0]) if base else count


def _int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return None


def apply_result(record: TaskRecord, fields: dict[str, str], ended: float) -> None:
    record.state = fields.get("result", "exited")
    record.exit_code = _int(fields.get("exit_code"))
    record.signal = _int(fields.get("signal"))
    record.oom_kills = _int(fields.get("oom_kills"))
    record.restarts = _int(fields.get("restarts"))
    record.ended = ended
    cpu_usec = _int(fields.get("cpu_usec"))
    cpu_nsec = _int(fields.get("cpu_nsec"))
    record.cpu_usec = cpu_usec if cpu_usec is not None else (None if cpu_nsec is None else cpu_nsec // 1000)
    record.memory_peak_bytes = _int(fields.get("memory_peak_bytes"))


def apply_spec(record: TaskRecord, spec: dict[str, Any]) -> None:
    record.run_id = spec.get("run_id")
    record.argv = list(spec.get("argv", []))
    record.started = spec.get("started")
    record.log = spec.get("log")
    record.exit_command = spec.get("exit_command")
    record.limits = dict(spec.get("limits", {}))
    if "labels" in spec or "description" in spec:  # a spec written before labels existed has neither
        from lanco.options.labels import spec_description, spec_labels

        record.labels, record.description = spec_labels(spec), spec_description(spec)


# -- what the monitor's files tell ------------------------------------------------------------------------------

def monitor_pid(state_dir: str) -> int | None:
    """The monitor's pid while it lives: the process the ``monitor`` file names, started when it says (a pid
    reused since is not it)."""
    monitor = read_int_file(os.path.join(state_dir, "monitor"))
    return monitor[0] if len(monitor) == 2 and procfs.is_same_process(monitor[0], monitor[1]) else None


def monitor_alive(state_dir: str, spec: dict[str, object] | None) -> bool:
    """The run's monitor still runs, in this boot (a record from before a reboot names a pid of another)."""
    if spec is not None and spec.get("boot_id") and spec.get("boot_id") != procfs.boot_id():
        return False
    return monitor_pid(state_dir) is not None


def restart_pending(state_dir: str, spec: dict[str, Any] | None) -> bool:
    """True while the monitor pauses between a run's end and the next run."""
    if spec is None:
        return False
    try:
        pending = read_bytes(os.path.join(state_dir, "restarting")).decode("ascii").strip() == spec.get("run_id")
    except (OSError, UnicodeDecodeError):
        return False
    return pending and monitor_alive(state_dir, spec)


def completed_runs(state_dir: str) -> int:
    """How many runs of this start have ended (the monitor appends one line to runs.jsonl per run)."""
    try:
        # read_bytes: most tasks have no such file, and a failed open() costs more than a failed os.open.
        lines = read_bytes(os.path.join(state_dir, "runs.jsonl")).decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return 0
    for line in reversed(lines):
        try:
            return int(jsonread.loads(line).get("run", 0))
        except (ValueError, TypeError, AttributeError):
            continue
    return 0


def stray_first_process(state_dir: str, known: list[int], main: int | None = None) -> int | None:
    """The task's first process (``main``, else the one the record names) where it moved itself out of every
    cgroup of the task, into ``.monitors`` or another task's (an owner may write those in v1): its monitor
    waits for it all the same, so it stays this task's, shown and stopped as such, until it ends."""
    if main is None:
        recorded = read_int_file(os.path.join(state_dir, "pid"))
        main = recorded[0] if recorded else None
    if main is None or main in known:
        return None
    monitor = monitor_pid(state_dir)
    return main if monitor is not None and procfs.parent(main) == monitor else None
