"""The exception tree: every failure lanco reports, to the command line and to API callers alike.

Each exception carries the one-line message the command line prints and the exit code it exits with::

    LancoError (1)                   a refusal or failure, its message one line
    ├── UsageError (2)               the call itself is malformed: option, value, name
    │   ├── InvalidName (2)          a namespace or task name lanco does not accept
    │   └── UnknownCursor (2)        an events cursor that is garbled, or names no event of the journal
    ├── NamespaceMissing (1)         no namespace of that name (or its configuration is lost)
    ├── NamespaceExists (1)          init of a namespace that exists otherwise
    ├── AlreadyRunning (1)           run of a task that runs
    ├── NotRunning (1)               an operation on a running task met none
    ├── StillRunning (1)             an operation on a finished task (or an empty namespace) met a running one
    ├── PermissionDenied (1)         the caller may not do this (or the kernel said EACCES/EPERM)
    ├── LimitUnavailable (1)         a limit whose controller or file this host lacks: refused, never ignored
    ├── CommandNotFound (127)        the task's command does not exist
    │   └── CommandNotExecutable (126)  it exists but cannot be executed
    ├── CgroupError (1)              the kernel refused a cgroup operation lanco needed
    │   └── CgroupsMissing (1)       the namespace's cgroups are gone (a reboot): ``lanco restore``
    ├── StateError (1)               a state file is missing, unreadable or damaged
    ├── StaleCursor (3)              an events cursor older than the events kept: some were missed
    │   └── UnlinkedCursor (4)       an events cursor of a journal since replaced (the namespace made again)
    ├── SystemFailure (1)            any other refusal of the operating system (``errno`` kept)
    ├── HostUnreachable (255)        ``-H``/``host=``: ssh could not reach the host or lost the connection
    └── InternalError (70)           a fault of lanco's own (a bug)

OS errors become this tree in one place, :func:`as_lanco_error`: the command line applies it to whatever a
command raises, and every public method of ``Namespace`` and ``Task`` is wrapped by :func:`maps_os_errors`, so an
API caller meets no raw ``OSError``.
"""

from __future__ import annotations

import errno

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import ParamSpec, TypeVar

    _Params = ParamSpec("_Params")
    _Result = TypeVar("_Result")


class LancoError(Exception):
    """Base of every error lanco reports to a user; ``exit_code`` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(LancoError):
    """The call itself is malformed: bad option, bad name, bad value."""

    exit_code = 2


class InvalidName(UsageError):
    """A namespace or task name lanco does not accept (its rules are in :mod:`lanco.names`)."""


class UnknownCursor(UsageError):
    """An events cursor that is not ``JOURNAL-ID:SEQ``, or names no event the journal ever had."""


class NamespaceMissing(LancoError):
    """No namespace of that name: never initialised, released, or its configuration lost (then said so)."""


class NamespaceExists(LancoError):
    """``init`` of a namespace that exists already for another owner, mode or base."""


class AlreadyRunning(LancoError):
    """``run`` of a task that is running (or between two runs of ``--restart``): the name is taken."""


class NotRunning(LancoError):
    """An operation that needs a running task (``kill``, ``freeze``, ``set``) found it not running."""


class StillRunning(LancoError):
    """An operation that needs a finished task (or an empty namespace) met a running one."""


class PermissionDenied(LancoError):
    """The caller may not do this: not the namespace's owner, member or root, or the kernel said EACCES or EPERM."""


class LimitUnavailable(LancoError):
    """A limit was asked for in a mode where its controller is missing: refused, never ignored."""


class CommandNotFound(LancoError):
    """Like a shell: 127 when the command does not exist, 126 when it cannot be executed."""

    exit_code = 127


class CommandNotExecutable(CommandNotFound):
    """The command exists but cannot be executed (no permission, not a program): 126, as a shell says."""

    exit_code = 126


class CgroupError(LancoError):
    """The kernel refused a cgroup operation lanco needed (with the path and errno in the message)."""


class CgroupsMissing(CgroupError):
    """The namespace's configuration remains but its cgroups are gone, as every boot leaves them (cgroupfs starts
    empty): root's ``lanco restore`` makes them again."""

    def __init__(self, namespace: str) -> None:
        super().__init__(f"cgroups of namespace {namespace} are missing (a reboot?): run lanco restore as root")
        self.namespace = namespace


class StateError(LancoError):
    """A state file is missing, unreadable or damaged (named in the message)."""


class StaleCursor(LancoError):
    """An events cursor older than what the journal keeps: the consumer missed events and must resync."""

    exit_code = 3


class UnlinkedCursor(StaleCursor):
    """An events cursor of another journal: the namespace was released and made again since."""

    exit_code = 4


class SystemFailure(LancoError):
    """The operating system refused something no other error here names; ``errno`` is its code (or None)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.errno = code


class HostUnreachable(LancoError):
    """ssh itself failed (its exit 255, told apart from the remote lanco's own codes): the host was not reached, or
    the connection dropped before the remote lanco ended."""

    exit_code = 255


class InternalError(LancoError):
    """A fault of lanco's own that no other error names (a bug): still one line, exit 70 (EX_SOFTWARE)."""

    exit_code = 70


def as_lanco_error(exc: Exception) -> LancoError:
    """``exc`` as an error of this tree: itself for a LancoError; an OSError as its text and file, a
    PermissionDenied for EACCES and EPERM, a SystemFailure for the rest (exit 1); anything else as an
    InternalError (exit 70)."""
    if isinstance(exc, LancoError):
        return exc
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        where += f" -> {exc.filename2}" if exc.filename2 else ""  # a rename's target
        message = f"{exc.strerror or exc}{where}"
        if exc.errno in _DENIALS:
            return PermissionDenied(message)
        return SystemFailure(message, exc.errno)
    return InternalError(f"internal error: {type(exc).__name__}: {exc} (lanco -dd shows where)")


_DENIALS = (errno.EACCES, errno.EPERM)


def maps_os_errors(method: Callable[_Params, _Result]) -> Callable[_Params, _Result]:
    """Wrap a public API method so that an OSError it meets reaches its caller as :func:`as_lanco_error` names
    it (the original chained as ``__cause__``); lanco's own errors and bugs pass through unchanged, and so does
    a broken pipe, which is the caller's own stream closing (``show_log`` into a pipe that ``head`` closed)."""

    def mapped(*args: _Params.args, **kwargs: _Params.kwargs) -> _Result:
        try:
            return method(*args, **kwargs)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise as_lanco_error(exc) from exc

    from lanco.contexts import copy_identity

    copy_identity(method, mapped)
    mapped.maps_os_errors = True  # type: ignore[attr-defined]
    return mapped
