"""The exception tree. Each exception carries the exit code and message the command line prints."""

from __future__ import annotations


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
    pass


class NamespaceMissing(LancoError):
    pass


class NamespaceExists(LancoError):
    pass


class AlreadyRunning(LancoError):
    pass


class NotRunning(LancoError):
    pass


class StillRunning(LancoError):
    """An operation that needs a finished task (or an empty namespace) met a running one."""


class PermissionDenied(LancoError):
    pass


class LimitUnavailable(LancoError):
    """A limit was asked for in a mode where its controller is missing: refused, never ignored."""


class CommandNotFound(LancoError):
    """Like a shell: 127 when the command does not exist, 126 when it cannot be executed."""

    exit_code = 127


class CommandNotExecutable(CommandNotFound):
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


class InternalError(LancoError):
    """A fault of lanco's own that no other error names (a bug): still one line, exit 70 (EX_SOFTWARE)."""

    exit_code = 70


def as_lanco_error(exc: Exception) -> LancoError:
    """``exc`` as an error of this tree, as the CLI reports it: itself for a LancoError; an OSError no lanco error
    names yet as its text and file (exit 1); anything else as an InternalError (exit 70)."""
    if isinstance(exc, LancoError):
        return exc
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        where += f" -> {exc.filename2}" if exc.filename2 else ""  # a rename's target
        return LancoError(f"{exc.strerror or exc}{where}")
    return InternalError(f"internal error: {type(exc).__name__}: {exc} (lanco -dd shows where)")
