"""What the lanco.lanco modules share: running the managed node's ``lanco`` command and reading its ``--json``
documents, the mapping of module options to ``lanco run`` options, and the comparison of a wanted task spec with
the record of the running task.

The modules drive the node's command line, never its Python package: the node may run another version of lanco
than the controller, and the CLI with its JSON documents (schema_version 1) is the stable interface. Nothing here
imports Ansible, so the logic is tested directly (tests/unit/test_ansible_modules.py); the modules pass their
AnsibleModule in as ``runner``.
"""

from __future__ import annotations

import json
import os
import re
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Runner(Protocol):
        """The part of AnsibleModule used here."""

        def run_command(self, args: list[str], check_rc: bool = ...) -> tuple[int, str, str]: ...


RUNNING_STATES = ("running", "frozen", "starting", "restarting", "finishing")
"""The task states of lanco's task object while the task is alive (docs/json.md)."""

# Each limit option of lanco_task: (the `lanco run` option, its key in the task's record, the kind of its value).
# The record keys and kinds are lanco's (src/lanco/options/limittable.py); a unit test keeps the two equal.
LIMITS: dict[str, tuple[str, str, str]] = {
    "memory_max": ("--memory-max", "memory_max_bytes", "bytes"),
    "memory_high": ("--memory-high", "memory_high_bytes", "bytes"),
    "memory_low": ("--memory-low", "memory_low_bytes", "bytes"),
    "memory_swap_max": ("--memory-swap-max", "memory_swap_max_bytes", "bytes_or_zero"),
    "cpu_quota": ("--cpu-quota", "cpu_quota_percent", "percent"),
    "cpu_weight": ("--cpu-weight", "cpu_weight", "weight"),
    "cpuset": ("--cpuset", "cpuset", "cpus"),
    "pids_max": ("--pids-max", "pids_max", "count"),
    "io_weight": ("--io-weight", "io_weight", "weight"),
    "io_read_bps": ("--io-read-bps", "io_read_bps", "rates"),
    "io_write_bps": ("--io-write-bps", "io_write_bps", "rates"),
}

# Options of lanco_task passed to `lanco run` as they are: they take effect when the task starts and are not in
# its record, so they are not compared with a running task (docs/ansible.md says so).
RUN_OPTIONS: dict[str, str] = {
    "description": "--description",
    "log": "--log",
    "log_max_size": "--log-max-size",
    "log_keep": "--log-keep",
    "exit_command": "--exit-command",
    "timeout": "--timeout",
    "stop_signal": "--stop-signal",
    "stop_timeout": "--stop-timeout",
    "restart": "--restart",
    "restart_max": "--restart-max",
    "restart_delay": "--restart-delay",
    "env_file": "--env-file",
    "cwd": "--cwd",
    "umask": "--umask",
    "nice": "--nice",
    "user": "--user",
    "group": "--group",
}

_SIZE = re.compile(r"([0-9]+)([KMGT]?)(i?B?)", re.IGNORECASE | re.ASCII)
_SIZE_FACTORS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_CPU_LIST = re.compile(r"[0-9]+(?:-[0-9]+)?(?:,[0-9]+(?:-[0-9]+)?)*", re.ASCII)


class LancoFailed(Exception):
    """lanco refused or failed: ``msg`` is its one-line message, ``rc`` its exit code."""

    def __init__(self, msg: str, rc: int, cmd: list[str]) -> None:
        super().__init__(msg)
        self.msg = msg
        self.rc = rc
        self.cmd = cmd


def one_line(stderr: str, rc: int) -> str:
    """lanco's message: the last line of its stderr (the one line of a failure; -d adds information lines before
    it)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"lanco exited with {rc} and said nothing"


class Lanco:
    """The node's lanco command, run through the module's runner."""

    def __init__(self, runner: Runner, executable: str) -> None:
        self.runner = runner
        self.executable = executable

    def run(self, *args: str) -> str:
        """lanco's stdout; LancoFailed with its message when it exits non-zero."""
        cmd = [self.executable, *args]
        rc, out, err = self.runner.run_command(cmd, check_rc=False)
        if rc != 0:
            raise LancoFailed(one_line(err, rc), rc, cmd)
        return out

    def json(self, *args: str) -> Any:
        out = self.run(*args)
        try:
            return json.loads(out)
        except ValueError:
            raise LancoFailed(f"lanco {' '.join(args)} printed no JSON document", 0, [self.executable, *args]) \
                from None

    def namespaces(self) -> list[dict[str, Any]]:
        """`lanco ls --json`: the namespaces the caller may use."""
        return list(self.json("ls", "--json")["namespaces"])

    def namespace(self, name: str) -> dict[str, Any] | None:
        return next((ns for ns in self.namespaces() if ns.get("name") == name), None)

    def tasks(self, namespace: str) -> list[dict[str, Any]]:
        """`lanco NS ls --json --all`: every known task of the namespace, finished ones included."""
        return list(self.json(namespace, "ls", "--json", "--all")["tasks"])

    def task(self, namespace: str, name: str) -> dict[str, Any] | None:
        return next((task for task in self.tasks(namespace) if task.get("name") == name), None)

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        """`lanco NS status --json NAME`: the task's record with its figures."""
        return dict(self.json(namespace, "status", "--json", name))


def find_executable(lanco_path: str | None, search: Any) -> str:
    """The lanco to run: ``lanco_path`` when given, else ``search("lanco")`` (AnsibleModule.get_bin_path)."""
    if lanco_path:
        return lanco_path
    found = search("lanco")
    if not found:
        raise LancoFailed("lanco was not found on the node's PATH; install it or give lanco_path", 127, ["lanco"])
    return str(found)


def is_running(task: dict[str, Any] | None) -> bool:
    return task is not None and task.get("state") in RUNNING_STATES


# -- lanco_task: options to argv -----------------------------------------------------------------------------

def rate_items(value: Any) -> list[str]:
    """``DEV=RATE`` items of an io_*_bps option, given as a mapping or as a list of ``DEV=RATE`` strings."""
    if isinstance(value, dict):
        return [f"{device}={rate}" for device, rate in value.items()]
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def limit_text(value: Any) -> str:
    """A limit's value as lanco's command line reads it (booleans are refused by lanco's own check)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def run_argv(params: dict[str, Any]) -> list[str]:
    """The arguments of `lanco NS run` for lanco_task's parameters: options, then TASK and the command."""
    argv = ["run"]
    for key, (option, _record_key, kind) in LIMITS.items():
        value = (params.get("limits") or {}).get(key)
        if value is None:
            continue
        if kind == "rates":
            for item in rate_items(value):
                argv += [option, item]
        else:
            argv += [option, limit_text(value)]
    for key, option in RUN_OPTIONS.items():
        value = params.get(key)
        if value is not None:
            argv += [option, str(value)]
    if params.get("keep_log"):
        argv.append("--keep-log")
    for key, value in sorted((params.get("env") or {}).items()):
        argv += ["--env", f"{key}={value}"]
    for key, value in (params.get("labels") or {}).items():
        argv += ["--label", f"{key}={value}"]
    return [*argv, params["name"], *(str(word) for word in params["command"])]


def unknown_limits(limits: dict[str, Any] | None) -> list[str]:
    return sorted(set(limits or {}) - set(LIMITS))


# -- lanco_task: the wanted spec in the record's form --------------------------------------------------------

class Unknown(Exception):
    """A wanted value this module cannot put in the record's form: lanco judges it when it runs."""


def _size(value: Any, allow_zero: bool) -> int | str:
    if isinstance(value, bool):
        raise Unknown(value)
    if isinstance(value, int):
        if value == -1:
            return "max"
        if value > 0 or (allow_zero and value == 0):
            return value
        raise Unknown(value)
    text = str(value).strip()
    if text.lower() in ("max", "infinity"):
        return "max"
    match = _SIZE.fullmatch(text)
    if not match:
        raise Unknown(value)
    size = int(match.group(1)) * _SIZE_FACTORS[match.group(2).upper()]
    if size == 0 and not allow_zero:
        raise Unknown(value)
    return size


def _percent(value: Any) -> float | str:
    if isinstance(value, bool):
        raise Unknown(value)
    text = str(value).strip()
    text = (text[:-1] if text.endswith("%") else text).strip()
    if text.lower() == "max" or text == "-1":
        return "max"
    try:
        return float(text)
    except ValueError:
        raise Unknown(value) from None


def _whole(value: Any) -> int | str:
    if isinstance(value, bool):
        raise Unknown(value)
    text = str(value).strip()
    if text.lower() == "max" or text == "-1":
        return "max"
    if not re.fullmatch(r"[0-9]+", text, re.ASCII):
        raise Unknown(value)
    return int(text)


def _cpus(value: Any) -> str:
    text = str(value).strip()
    if not _CPU_LIST.fullmatch(text):
        raise Unknown(value)
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    runs: list[tuple[int, int]] = []
    for cpu in sorted(cpus):
        if runs and runs[-1][1] == cpu - 1:
            runs[-1] = (runs[-1][0], cpu)
        else:
            runs.append((cpu, cpu))
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _device(text: str) -> str:
    if re.fullmatch(r"[0-9]+:[0-9]+", text, re.ASCII):
        return text
    try:
        st = os.stat(text)
    except OSError:
        raise Unknown(text) from None
    if not stat.S_ISBLK(st.st_mode):
        raise Unknown(text)
    return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


def _rates(value: Any) -> dict[str, int | str]:
    rates: dict[str, int | str] = {}
    for item in rate_items(value):
        device, sep, rate = item.rpartition("=")
        if not sep or not device:
            raise Unknown(item)
        rates[_device(device)] = _size(rate, allow_zero=False)
    return rates


def record_value(kind: str, value: Any) -> Any:
    """A wanted limit as lanco records it (``64M`` → 67108864, ``max`` → "max"); Unknown when it cannot tell."""
    if kind in ("bytes", "bytes_or_zero"):
        return _size(value, allow_zero=kind == "bytes_or_zero")
    if kind == "percent":
        return _percent(value)
    if kind in ("weight", "count"):
        return _whole(value)
    if kind == "cpus":
        return _cpus(value)
    if kind == "rates":
        return _rates(value)
    raise Unknown(kind)


def wanted_spec(params: dict[str, Any]) -> dict[str, Any]:
    """The parts of lanco_task's parameters a running task's record shows, in the record's form: argv, limits,
    labels. A limit whose value cannot be read here is kept as given (it then differs from any record, and lanco
    itself says what is wrong with it when the task starts)."""
    limits: dict[str, Any] = {}
    for key, (_option, record_key, kind) in LIMITS.items():
        value = (params.get("limits") or {}).get(key)
        if value is None:
            continue
        try:
            limits[record_key] = record_value(kind, value)
        except Unknown:
            limits[record_key] = value
    return {"argv": [str(word) for word in params["command"]], "limits": limits,
            "labels": {str(k): str(v) for k, v in (params.get("labels") or {}).items()}}


def recorded_spec(task: dict[str, Any] | None) -> dict[str, Any] | None:
    """The same parts of a task object of lanco's JSON (None for no task)."""
    if task is None:
        return None
    return {"argv": list(task.get("argv") or []), "limits": dict(task.get("limits") or {}),
            "labels": dict(task.get("labels") or {})}


def _same_number(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return float(a) == float(b)
    return bool(a == b)


def differences(wanted: dict[str, Any], recorded: dict[str, Any]) -> list[str]:
    """What differs between the wanted spec and the running task's: ``command``, ``limits``, ``labels``."""
    found = []
    if wanted["argv"] != recorded["argv"]:
        found.append("command")
    w_limits, r_limits = wanted["limits"], recorded["limits"]
    if set(w_limits) != set(r_limits) or not all(
            _same_number(w_limits[key], r_limits[key]) if not isinstance(w_limits[key], dict)
            else {d: float(r) if not isinstance(r, str) else r for d, r in w_limits[key].items()}
            == {d: float(r) if not isinstance(r, str) else r for d, r in dict(r_limits[key]).items()}
            for key in w_limits):
        found.append("limits")
    if wanted["labels"] != recorded["labels"]:
        found.append("labels")
    return found


def different_spec_message(name: str, diffs: list[str]) -> str:
    return f"task {name} is running with a different {'/'.join(diffs)}; use state=restarted to run it anew"


# -- lanco_task: from the task as it is to the wanted state ---------------------------------------------------

def stop_argv(params: dict[str, Any]) -> list[str]:
    """`lanco NS stop`: lanco's grace by default; stop_timeout (whole seconds or with a unit) when given."""
    argv = ["stop"]
    grace = params.get("stop_timeout")
    if grace:
        argv += ["-t", str(grace)]
    return [*argv, params["name"]]


def plan(state: str, current: dict[str, Any] | None, params: dict[str, Any]) -> list[list[str]]:
    """The lanco commands (after NS) that bring the task from ``current`` (its object in `ls --json --all`, or
    None) to ``state``; [] when it is there already. LancoFailed when a running task has another spec."""
    running = is_running(current)
    if state == "started":
        if running:
            diffs = differences(wanted_spec(params), recorded_spec(current) or {})
            if diffs:
                raise LancoFailed(different_spec_message(params["name"], diffs), 1, [])
            return []
        return [run_argv(params)]
    if state == "restarted":
        return [*([stop_argv(params)] if running else []), run_argv(params)]
    if state == "stopped":
        return [stop_argv(params)] if running else []
    # absent
    steps = [stop_argv(params)] if running else []
    return [*steps, ["release", params["name"]]] if current is not None else steps


def diff_view(task: dict[str, Any] | None) -> dict[str, Any]:
    spec = recorded_spec(task)
    if spec is None:
        return {"state": "absent"}
    return {"state": task.get("state") if task else "absent", **spec}


# -- lanco_namespace -----------------------------------------------------------------------------------------

def init_argv(params: dict[str, Any]) -> list[str]:
    """`lanco NS init` with the owner and group asked for."""
    argv = [params["name"], "init"]
    if params.get("user"):
        argv += ["-u", params["user"]]
    if params.get("group"):
        argv += ["-g", params["group"]]
    return argv


def namespace_mismatch(current: dict[str, Any], params: dict[str, Any]) -> str | None:
    """Why an existing namespace is not the one asked for (another owner, or no access for the group asked);
    None when it is."""
    name, user, group = params["name"], params.get("user"), params.get("group")
    if user and user not in (current.get("owner"), str(current.get("owner_uid"))):
        return f"namespace {name} exists with owner {current.get('owner')}, not {user}; release it first"
    if group and (not current.get("group_access")
                  or group not in (current.get("group"), str(current.get("owner_gid")))):
        have = f"group {current.get('group')}" if current.get("group_access") else "no group access"
        return f"namespace {name} exists with {have}, not group {group}; release it first"
    return None
