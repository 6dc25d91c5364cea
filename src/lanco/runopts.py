"""How a task is run, besides its cgroup limits: its lifetime (timeout, stop signal and grace, restarts) and its
process settings (environment, working directory, umask, niceness, account).

``run`` on the command line and ``Task.start``/``Namespace.run`` in the API take the same keyword options
(``RunOptions``); both go through the parsers here, so a value means the same thing wherever it comes from.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lanco.errors import PermissionDenied, UsageError
from lanco.limits import LimitOptions, Limits
from lanco.units import parse_duration

DEFAULT_STOP_TIMEOUT = 10.0
DEFAULT_RESTART_DELAY = 0.1
"""As systemd's RestartSec: long enough that a command failing at once does not spin a CPU."""
RESTART_POLICIES = ("no", "on-failure", "always")
MONITOR_VARIABLE_PREFIX = "LANCO_MON_"


class RunOptions(LimitOptions, total=False):
    """Keyword options of ``Task.start`` and ``Namespace.run``; strings are parsed as on the command line."""

    log: str | None
    """Log file (default: the namespace's ``task-NAME.log``)."""
    keep_log: bool
    """Append to an existing log rather than rotating it."""
    exit_command: str | None
    """Shell command run by the monitor after the task ends, as the namespace's owner."""
    foreground: bool
    """Keep the caller's stdin (and stdout/stderr unless ``log``) for ``run -f``."""
    env: Mapping[str, str] | None
    """The task's whole environment (default: the caller's)."""
    extra_env: Mapping[str, str] | Iterable[str] | None
    """Variables added to the environment, as a mapping or ``K=V`` strings; they win over ``env_file``."""
    env_file: str | None
    """File of ``K=V`` lines (``#`` comments, blank lines) added to the environment."""
    cwd: str | None
    """Working directory (default: the caller's)."""
    umask: int | str | None
    """File mode creation mask, e.g. ``0o027`` or ``"027"``."""
    nice: int | str | None
    """Niceness, -20 to 19 (below the current one needs root)."""
    user: str | int | None
    """Account to run the task as (root only); the exit hook still runs as the namespace's owner."""
    group: str | int | None
    """Group to run the task as (root only); default: the account's own."""
    timeout: float | str | None
    """Stop the task (stop signal, grace, kill) this long after it started; its result is ``timeout``."""
    stop_signal: int | str | None
    """Signal ``stop`` sends first (default SIGTERM)."""
    stop_timeout: float | str | None
    """Grace between the stop signal and the kill (default 10 s); ``stop -t`` overrides it."""
    restart: str | None
    """``no`` (default), ``on-failure`` (non-zero exit, signal, OOM, timeout) or ``always``."""
    restart_max: int | str | None
    """Restart at most this many times (default: no bound)."""
    restart_delay: float | str | None
    """Pause before each restart (default 100 ms)."""


@dataclass(frozen=True)
class RunPlan:
    """Every option of one ``run``, parsed and validated; nothing is created until it is."""

    limits: Limits
    lifetime: Lifetime
    process: ProcessSettings
    log: str | None = None
    keep_log: bool = False
    exit_command: str | None = None
    foreground: bool = False
    env: Mapping[str, str] | None = None

    @classmethod
    def build(cls, options: Mapping[str, Any]) -> RunPlan:
        unknown = set(options) - RunOptions.__optional_keys__
        if unknown:
            raise UsageError(f"unknown run option {sorted(unknown)[0]!r}")
        return cls(Limits.build(options), Lifetime.build(options), ProcessSettings.build(options),
                   options.get("log"), bool(options.get("keep_log", False)), options.get("exit_command"),
                   bool(options.get("foreground", False)), options.get("env"))


# -- signals ----------------------------------------------------------------------------------------------------

def parse_signal(raw: int | str, what: str = "signal") -> int:
    """A signal number from ``TERM``, ``SIGTERM``, ``sigterm``, ``15`` or ``RTMIN+2``; 0 is refused."""
    if isinstance(raw, bool):
        raise UsageError(f"invalid {what} {raw!r}")
    text = str(raw).strip()
    number: int | None = None
    if re.fullmatch(r"[0-9]+", text, re.ASCII):
        number = int(text)
    else:
        name = text.upper().removeprefix("SIG")
        realtime = re.fullmatch(r"RTM(IN|AX)([+-][0-9]+)?", name, re.ASCII)
        if realtime:
            base = signal.SIGRTMIN if realtime.group(1) == "IN" else signal.SIGRTMAX
            number = int(base) + int(realtime.group(2) or 0)
            if not signal.SIGRTMIN <= number <= signal.SIGRTMAX:
                number = None
        else:
            member = getattr(signal.Signals, f"SIG{name}", None)
            number = None if member is None or name.startswith("_") else int(member)
    if number is None or number not in valid_signals():
        raise UsageError(f"invalid {what} {raw!r}: expected a signal name (TERM, SIGINT, RTMIN+1) or number")
    return number


def valid_signals() -> set[int]:
    return {int(s) for s in signal.valid_signals()}


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIGRTMIN+{number - signal.SIGRTMIN}" if number >= signal.SIGRTMIN else str(number)


# -- lifetime ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Lifetime:
    """When the monitor stops and restarts the task, and how ``stop`` ends it."""

    timeout: float | None = None
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    restart: str = "no"
    restart_max: int | None = None
    restart_delay: float = DEFAULT_RESTART_DELAY

    @classmethod
    def build(cls, options: Mapping[str, Any]) -> Lifetime:
        values: dict[str, Any] = {}
        if options.get("timeout") is not None:
            values["timeout"] = _duration(options["timeout"], "timeout")
        if options.get("stop_signal") is not None:
            values["stop_signal"] = parse_signal(options["stop_signal"], "stop signal")
        if options.get("stop_timeout") is not None:
            values["stop_timeout"] = _duration(options["stop_timeout"], "stop timeout")
        restart = options.get("restart")
        if restart is not None:
            if restart not in RESTART_POLICIES:
                raise UsageError(f"invalid restart policy {restart!r}: expected {', '.join(RESTART_POLICIES)}")
            values["restart"] = restart
        for key in ("restart_max", "restart_delay"):
            if options.get(key) is not None and values.get("restart", "no") == "no":
                raise UsageError(f"--{key.replace('_', '-')} needs --restart on-failure or always")
        if options.get("restart_max") is not None:
            values["restart_max"] = _whole(options["restart_max"], "restart count", 1, 1_000_000)
        if options.get("restart_delay") is not None:
            values["restart_delay"] = _duration(options["restart_delay"], "restart delay", allow_zero=True)
        return cls(**values)

    def as_record(self) -> dict[str, Any]:
        return {"timeout_s": self.timeout, "stop_signal": self.stop_signal, "stop_timeout_s": self.stop_timeout,
                "restart": self.restart, "restart_max": self.restart_max, "restart_delay_s": self.restart_delay}

    @classmethod
    def from_record(cls, record: Any) -> Lifetime:
        """The lifetime a record holds; a record without one (or a damaged one) gets the defaults."""
        if not isinstance(record, Mapping):
            return cls()
        try:
            timeout = record.get("timeout_s")
            restart_max = record.get("restart_max")
            return cls(timeout=None if timeout is None else float(timeout),
                       stop_signal=int(record.get("stop_signal", signal.SIGTERM)),
                       stop_timeout=float(record.get("stop_timeout_s", DEFAULT_STOP_TIMEOUT)),
                       restart=str(record.get("restart", "no")),
                       restart_max=None if restart_max is None else int(restart_max),
                       restart_delay=float(record.get("restart_delay_s", DEFAULT_RESTART_DELAY)))
        except (TypeError, ValueError):
            return cls()


def _duration(raw: float | str, what: str, *, allow_zero: bool = False) -> float:
    if isinstance(raw, bool):
        raise UsageError(f"invalid {what} {raw!r}")
    if isinstance(raw, int | float):
        raw = repr(float(raw)) if raw >= 0 else str(raw)
    return parse_duration(str(raw), what=what, allow_zero=allow_zero)


def _whole(raw: int | str, what: str, low: int, high: int) -> int:
    if isinstance(raw, bool) or not re.fullmatch(r"-?[0-9]+", str(raw).strip(), re.ASCII):
        raise UsageError(f"invalid {what} {raw!r}: expected a whole number")
    value = int(str(raw).strip())
    if not low <= value <= high:
        raise UsageError(f"invalid {what} {raw!r}: must be from {low} to {high}")
    return value


# -- process settings -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Account:
    uid: int | None
    gid: int | None
    name: str | None
    home: str | None


@dataclass(frozen=True)
class ProcessSettings:
    """What the task's process gets besides its argv: environment additions, cwd, umask, niceness, account."""

    extra_env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    umask: int | None = None
    nice: int | None = None
    account: Account | None = None

    @classmethod
    def build(cls, options: Mapping[str, Any]) -> ProcessSettings:
        extra_env: dict[str, str] = {}
        if options.get("env_file") is not None:
            extra_env.update(read_env_file(str(options["env_file"])))
        extra = options.get("extra_env")
        if extra is not None:
            items = extra.items() if isinstance(extra, Mapping) else (_assignment(a) for a in
                                                                       ([extra] if isinstance(extra, str) else extra))
            for key, value in items:
                extra_env[_env_key(str(key), f"{key}={value}")] = str(value)
        cwd = options.get("cwd")
        if cwd is not None and not os.path.isdir(cwd):
            raise UsageError(f"working directory {cwd} does not exist")
        umask = None if options.get("umask") is None else _umask(options["umask"])
        nice = None if options.get("nice") is None else _whole(options["nice"], "niceness", -20, 19)
        account = _account(options.get("user"), options.get("group"))
        return cls(extra_env, None if cwd is None else os.path.abspath(cwd), umask, nice, account)

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """The task's environment: ``base``, the account's HOME, USER and LOGNAME, then the additions."""
        env = dict(base)
        if self.account is not None and self.account.name is not None:
            env.update({"USER": self.account.name, "LOGNAME": self.account.name})
            if self.account.home:
                env["HOME"] = self.account.home
        env.update(self.extra_env)
        return env

    def exec_prefix(self) -> list[str]:
        """The argv put before the command in the monitor: niceness first (while still privileged), then the
        switch of account. Empty when neither is asked for."""
        prefix: list[str] = []
        if self.nice is not None:
            current = os.getpriority(os.PRIO_PROCESS, 0)
            if self.nice < current and os.geteuid() != 0:
                raise PermissionDenied(f"--nice {self.nice} is below the current niceness {current}: only root "
                                       "may lower it")
            if self.nice != current:
                prefix += [_tool("nice", "--nice"), "-n", str(self.nice - current), "--"]
        if self.account is not None:
            prefix += _account_switch(self.account)
        return prefix

    def as_record(self) -> dict[str, Any]:
        """For the task's record: what was asked, without the environment's values (they may be secrets)."""
        account = self.account
        return {"env_keys": sorted(self.extra_env), "umask": None if self.umask is None else f"{self.umask:04o}",
                "nice": self.nice, "uid": None if account is None else account.uid,
                "gid": None if account is None else account.gid}


def read_env_file(path: str) -> dict[str, str]:
    """``K=V`` lines; blank lines and lines starting with ``#`` are skipped, values are taken as they are (no
    quotes removed, nothing expanded)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read environment file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"cannot read environment file {path}: not UTF-8 text") from None
    found: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep:
            raise UsageError(f"invalid line {number} of environment file {path}: expected KEY=VALUE")
        found[_env_key(key, f"line {number} of environment file {path}")] = value
    return found


def _assignment(text: str) -> tuple[str, str]:
    key, sep, value = str(text).partition("=")
    if not sep:
        raise UsageError(f"invalid environment assignment {text!r}: expected KEY=VALUE")
    return key, value


def _env_key(key: str, where: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key, re.ASCII):
        raise UsageError(f"invalid environment variable name {key!r} in {where!r}")
    if key.startswith(MONITOR_VARIABLE_PREFIX):
        raise UsageError(f"invalid environment variable {key}: names starting {MONITOR_VARIABLE_PREFIX} are lanco's")
    return key


def _umask(raw: int | str) -> int:
    if isinstance(raw, bool):
        raise UsageError(f"invalid umask {raw!r}")
    if isinstance(raw, int):
        value = raw
    elif re.fullmatch(r"(0o)?[0-7]{1,4}", str(raw).strip(), re.ASCII):
        value = int(str(raw).strip().removeprefix("0o"), 8)
    else:
        raise UsageError(f"invalid umask {raw!r}: expected an octal mode such as 022 or 0027")
    if not 0 <= value <= 0o777:
        raise UsageError(f"invalid umask {raw!r}: must be from 000 to 777 (octal)")
    return value


def _account(user: str | int | None, group: str | int | None) -> Account | None:
    if user is None and group is None:
        return None
    uid = name = home = None
    gid: int | None = None
    if user is not None:
        entry = _lookup(pwd.getpwnam, pwd.getpwuid, user, "user")
        uid, gid, name, home = entry.pw_uid, entry.pw_gid, entry.pw_name, entry.pw_dir
    if group is not None:
        text = str(group)
        try:
            gid = grp.getgrnam(text).gr_gid
        except KeyError:
            if not text.isdigit():
                raise UsageError(f"unknown group {text!r}") from None
            gid = int(text)
    if os.geteuid() != 0 and (uid not in (None, os.geteuid()) or gid not in (None, os.getegid())):
        raise PermissionDenied("--user and --group need root")
    return Account(uid, gid, name, home)


def _lookup(by_name: Any, by_id: Any, value: str | int, kind: str) -> Any:
    text = str(value)
    try:
        return by_name(text)
    except KeyError:
        pass
    if text.isdigit():
        try:
            return by_id(int(text))
        except KeyError:
            pass
    raise UsageError(f"unknown {kind} {text!r}")


def _account_switch(account: Account) -> list[str]:
    """setpriv (util-linux) when present: no PAM, no session, nothing but the ids; else runuser."""
    if account.uid == os.geteuid() and account.gid in (None, os.getegid()):
        return []
    setpriv = shutil.which("setpriv")
    if setpriv:
        argv = [setpriv]
        if account.uid is not None:
            argv += [f"--reuid={account.uid}", f"--regid={account.gid}", "--init-groups"]
        else:
            argv += [f"--regid={account.gid}", "--clear-groups"]
        return [*argv, "--inh-caps=-all", "--"]
    runuser = _tool("runuser", "--user")
    name = account.name if account.uid is not None else pwd.getpwuid(os.geteuid()).pw_name
    argv = [runuser, "-u", name or str(account.uid)]
    if account.gid is not None:
        argv += ["-g", str(account.gid)]
    return [*argv, "--"]


def _tool(name: str, option: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise UsageError(f"{option} needs the {name} command, which is not installed")
    return found
