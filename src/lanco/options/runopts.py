"""How a task is run, besides its cgroup limits: its lifetime (timeout, stop signal and grace, restarts) and its
process settings (environment, working directory, umask, niceness, account).

``run`` on the command line and ``Task.start``/``Namespace.run`` in the API take the same keyword options
(``RunOptions``, in lanco.options.optiontypes); both go through the parsers here, so a value means the same thing
wherever it comes from.
"""

from __future__ import annotations

import grp
import os
import pwd

# _collections_abc, not collections.abc: the package collections would load with it, for one name.
from _collections_abc import Mapping

from lanco.errors import PermissionDenied, UsageError
from lanco.launch.monitorcontract import PREFIX as MONITOR_VARIABLE_PREFIX
from lanco.options.lifetime import Lifetime
from lanco.options.units import MAX, parse_size, parse_whole
from lanco.values import FrozenValue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from lanco.options.limits import Limits
    from lanco.options.optiontypes import RunOptions as RunOptions

PLAN_OPTION_KEYS = frozenset((
    "log", "keep_log", "exit_command", "foreground", "env", "extra_env", "env_file", "cwd", "umask", "nice", "user",
    "group", "timeout", "stop_signal", "stop_timeout", "restart", "restart_max", "restart_delay", "log_max_size",
    "log_keep", "labels", "description"))
"""The keys of RunOptions beside the limits' (the keys of the limits table, lanco.options.limittable.SPECS)."""


if not TYPE_CHECKING:
    # Hidden from type checkers, which then still flag a misspelled attribute of this module; they read
    # RunOptions from the import above.
    def __getattr__(name: str) -> object:
        # RunOptions is a TypedDict, and typing too dear for run, stop and check: made on first use.
        if name == "RunOptions":
            from lanco.options import optiontypes

            return optiontypes.RunOptions
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class RunPlan(FrozenValue):
    """Every option of one ``run``, parsed and validated; nothing is created until it is."""

    _fields = ("limits", "lifetime", "process", "log", "keep_log", "exit_command", "foreground", "env",
               "log_bounds", "labels", "description")
    __slots__ = _fields
    limits: Limits
    lifetime: Lifetime
    process: ProcessSettings
    log: str | None
    keep_log: bool
    exit_command: str | None
    foreground: bool
    env: Mapping[str, str] | None
    log_bounds: LogBounds
    labels: dict[str, str]
    description: str | None

    def __init__(self, limits: Limits, lifetime: Lifetime, process: ProcessSettings, log: str | None = None,
                 keep_log: bool = False, exit_command: str | None = None, foreground: bool = False,
                 env: Mapping[str, str] | None = None, log_bounds: LogBounds | None = None,
                 labels: dict[str, str] | None = None, description: str | None = None) -> None:
        self._set_fields(limits, lifetime, process, log, keep_log, exit_command, foreground, env,
                         LogBounds() if log_bounds is None else log_bounds, {} if labels is None else labels,
                         description)

    @classmethod
    def build(cls, options: Mapping[str, Any]) -> RunPlan:
        from lanco.options.limits import Limits  # here: logs reads LogBounds from this module, no limits
        from lanco.options.limittable import SPECS

        unknown = set(options) - PLAN_OPTION_KEYS - SPECS.keys()
        if unknown:
            raise UsageError(f"unknown run option {sorted(unknown)[0]!r}")
        labels: dict[str, str] = {}
        description = None
        if options.get("labels") is not None or options.get("description") is not None:
            from lanco.options.labels import parse_description, parse_labels  # only a run that has them

            labels, description = parse_labels(options.get("labels")), parse_description(options.get("description"))
        return cls(Limits.build(options), Lifetime.build(options), ProcessSettings.build(options),
                   options.get("log"), bool(options.get("keep_log", False)), options.get("exit_command"),
                   bool(options.get("foreground", False)), options.get("env"), LogBounds.build(options), labels,
                   description)


# -- log bounds -------------------------------------------------------------------------------------------------

DEFAULT_LOG_KEEP = 5
"""Rotated copies kept of a log (``.1`` to ``.5``), as the original kept them."""
MAX_LOG_KEEP = 1000


class LogBounds(FrozenValue):
    """How big a task's log may grow before ``logs --rotate`` rotates it (None: no bound, the log is rotated only
    when the task starts again), and how many rotated copies are kept, at a start and by ``logs --rotate``."""

    _fields = ("max_size", "keep")
    __slots__ = _fields
    max_size: int | None
    keep: int

    def __init__(self, max_size: int | None = None, keep: int = DEFAULT_LOG_KEEP) -> None:
        self._set_fields(max_size, keep)

    @classmethod
    def build(cls, options: Mapping[str, Any]) -> LogBounds:
        raw_size, raw_keep = options.get("log_max_size"), options.get("log_keep")
        max_size = None if raw_size is None else _log_size(raw_size)
        keep = DEFAULT_LOG_KEEP if raw_keep is None else parse_whole(raw_keep, "number of kept logs", 1, MAX_LOG_KEEP)
        return cls(max_size, keep)

    def as_record(self) -> dict[str, Any]:
        return {"max_size_bytes": self.max_size, "keep": self.keep}

    @classmethod
    def from_record(cls, record: Any) -> LogBounds:
        """The bounds a spec holds; a spec without them (written before they existed) has none. A damaged entry is
        refused: guessing a bound would rotate, or keep growing, a log its owner bounded otherwise."""
        from lanco.errors import StateError

        if record is None:
            return cls()
        size = record.get("max_size_bytes") if isinstance(record, Mapping) else None
        keep = record.get("keep") if isinstance(record, Mapping) else None
        if not isinstance(record, Mapping) or (size is not None and (type(size) is not int or size <= 0)) or \
                type(keep) is not int or not 1 <= keep <= MAX_LOG_KEEP:
            raise StateError(f"log_bounds is damaged: {record!r}")
        return cls(size, keep)


def _log_size(raw: int | str) -> int | None:
    """Bytes from ``5M`` (as ``-m`` reads sizes) or a number of bytes; None for ``max`` (no bound)."""
    if isinstance(raw, bool):
        raise UsageError(f"invalid log size {raw!r}")
    if isinstance(raw, int):
        if raw <= 0:
            raise UsageError(f"invalid log size {raw!r}: must be greater than zero")
        return raw
    size = parse_size(str(raw), what="log size")
    return None if size == MAX else size


# -- process settings -------------------------------------------------------------------------------------------

class Account(FrozenValue):
    _fields = ("uid", "gid", "name", "home")
    __slots__ = _fields
    uid: int | None
    gid: int | None
    name: str | None
    home: str | None

    def __init__(self, uid: int | None, gid: int | None, name: str | None, home: str | None) -> None:
        self._set_fields(uid, gid, name, home)


class ProcessSettings(FrozenValue):
    """What the task's process gets besides its argv: environment additions, cwd, umask, niceness, account."""

    _fields = ("extra_env", "cwd", "umask", "nice", "account")
    __slots__ = _fields
    extra_env: dict[str, str]
    cwd: str | None
    umask: int | None
    nice: int | None
    account: Account | None

    def __init__(self, extra_env: dict[str, str] | None = None, cwd: str | None = None, umask: int | None = None,
                 nice: int | None = None, account: Account | None = None) -> None:
        self._set_fields({} if extra_env is None else extra_env, cwd, umask, nice, account)

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
        nice = None if options.get("nice") is None else parse_whole(options["nice"], "niceness", -20, 19)
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


MAX_ARG_STRLEN = 131072
"""The kernel's limit for one argument or one ``NAME=value`` string of an execve, its NUL included (32 pages)."""
ARG_MAX_FLOOR = 131072
ARG_MAX_CEILING = 6 << 20
"""The kernel lets the strings of an execve, with their pointers, take a quarter of the stack limit, at least
ARG_MAX_FLOOR and at most ARG_MAX_CEILING (three quarters of _STK_LIM)."""
MONITOR_RESERVE = 16384
"""Room kept for what lanco adds to the monitor's execve: its shell and script, its LANCO_MON_* variables."""


def exec_limit() -> int:
    """The total size the kernel allows an execve of this process's children (ARG_MAX as the kernel counts)."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
    quarter = ARG_MAX_CEILING if soft == resource.RLIM_INFINITY else min(ARG_MAX_CEILING, soft // 4)
    return max(ARG_MAX_FLOOR, quarter)


def check_exec_size(argv: list[str], env: Mapping[str, str]) -> None:
    """Refuse, before anything is created, a command or environment the kernel would refuse to execve (E2BIG):
    the monitor could only say that it exited early."""
    total = 0
    for index, arg in enumerate(argv):
        size = len(os.fsencode(arg)) + 1
        if size > MAX_ARG_STRLEN:
            what = "the command" if index == 0 else f"argument {index} of the command"
            raise UsageError(f"{what} is {size} bytes, over the kernel's limit of {MAX_ARG_STRLEN} for one string "
                             "(MAX_ARG_STRLEN): execve would fail with E2BIG")
        total += size
    for key, value in env.items():
        size = len(os.fsencode(key)) + len(os.fsencode(value)) + 2
        if size > MAX_ARG_STRLEN:
            raise UsageError(f"environment variable {key} is {size} bytes with its name, over the kernel's limit of "
                             f"{MAX_ARG_STRLEN} for one string (MAX_ARG_STRLEN): execve would fail with E2BIG")
        total += size
    total += 8 * (len(argv) + len(env) + 2)
    limit = exec_limit()
    if total + MONITOR_RESERVE > limit:
        raise UsageError(f"the command and its environment take {total} bytes, over the kernel's limit of {limit} "
                         f"for all of them (ARG_MAX: a quarter of the stack limit, at most {ARG_MAX_CEILING}) less "
                         f"the {MONITOR_RESERVE} the monitor needs: execve would fail with E2BIG")


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
    import re

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key, re.ASCII):
        raise UsageError(f"invalid environment variable name {key!r} in {where!r}")
    if key.startswith(MONITOR_VARIABLE_PREFIX):
        raise UsageError(f"invalid environment variable {key}: names starting {MONITOR_VARIABLE_PREFIX} are lanco's")
    return key


def _umask(raw: int | str) -> int:
    import re

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
    import shutil  # here: it imports bz2, lzma and fnmatch, and only run with --user needs it

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
    import shutil

    found = shutil.which(name)
    if found is None:
        raise UsageError(f"{option} needs the {name} command, which is not installed")
    return found
