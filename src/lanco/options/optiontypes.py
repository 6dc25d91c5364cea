"""The keyword options of ``Namespace.run`` and ``Task.start`` as a TypedDict, ``RunOptions``: the limits'
(``lanco.options.limittable.LimitOptions``, made from the limits table) and those of the run itself.

It exists for type checkers and for readers. Defining it imports typing, which costs every command several
milliseconds, so no command imports this module: ``lanco.options.runopts.RunOptions`` loads it on first use, and
runopts lists the keys itself (``PLAN_OPTION_KEYS`` and the limits table's; a unit test keeps them equal).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lanco.options.limittable import LimitOptions


class RunOptions(LimitOptions, total=False):
    """Keyword options of ``Task.start`` and ``Namespace.run``; strings are parsed as on the command line."""

    log: str | None
    """Log file (default: the namespace's ``task-NAME.log``)."""
    keep_log: bool
    """Append to an existing log rather than rotating it."""
    log_max_size: int | str | None
    """Bytes (or ``"5M"``) past which ``logs --rotate`` rotates the log while the task runs; default: no bound."""
    log_keep: int | str | None
    """Rotated copies of the log kept (``.1`` ... ``.N``), at a start and by ``logs --rotate``; default 5."""
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
    labels: Mapping[str, str] | Iterable[str] | None
    """Labels of the task, as a mapping or ``KEY=VALUE`` strings (see lanco.options.labels for the rules); kept in
    its record, shown by every view and matched by ``Namespace.tasks(labels=...)``."""
    description: str | None
    """One line about the task (at most 256 characters), kept in its record; on systemd, its scope's Description."""
