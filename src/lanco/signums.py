"""Signal numbers and the few calls lanco makes with them, from ``_signal``, the C module under ``signal``.

``signal`` wraps every number in an enum (it loads enum, and with it functools and collections): about 1 ms of a
native ``stop`` or ``run`` and some 25 ms in the project's emulated guest, for constants. Names of signals, which
need the enum, are looked up in ``lanco.options.runopts`` where an option names one.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # typeshed has no stub for it

SIGKILL: int = _signal.SIGKILL
SIGTERM: int = _signal.SIGTERM
SIGCONT: int = _signal.SIGCONT
SIGUSR1: int = _signal.SIGUSR1


def valid_signals() -> set[int]:
    return {int(number) for number in _signal.valid_signals()}


def reset_dispositions() -> None:
    """Every ignored signal back to its default, and none blocked: an ignored signal stays ignored across execve.
    CPython ignores SIGPIPE and SIGXFSZ at start-up, a launcher started as a shell's ``&`` job ignores SIGINT and
    SIGQUIT, one under nohup SIGHUP: a task gets the defaults a service manager would give it."""
    for number in _signal.valid_signals():
        if _signal.getsignal(number) == _signal.SIG_IGN:
            _signal.signal(number, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, ())
