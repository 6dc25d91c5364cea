"""The exceptions of a remote call, from the remote lanco's exit code and its one-line message: the same a local
call raises, told apart by exit code and the message's words (the command line's messages are stable: the tests
check them)::

    2                   UsageError (InvalidName for "invalid namespace name" / "invalid task name",
                        UnknownCursor for a message about a cursor)
    3, 4                StaleCursor, UnlinkedCursor (events)
    126, 127            CommandNotExecutable, CommandNotFound
    70                  InternalError
    255                 HostUnreachable (ssh itself failed; raised by lanco.remote.ssh)
    1, by the message   AlreadyRunning, NotRunning, StillRunning, NamespaceMissing, NamespaceExists,
                        CgroupsMissing, PermissionDenied, LimitUnavailable, StateError, CgroupError;
                        any other: SystemFailure (errno None)
"""

from __future__ import annotations

import re

from lanco import errors

MESSAGE = re.compile(r"^\S+ \[WARN/[^\]]*\] (.*)$")

_BY_MESSAGE: list[tuple[re.Pattern[str], type[errors.LancoError]]] = [
    (re.compile(p), e) for p, e in (
        (r"^task \S+ is already running", errors.AlreadyRunning),
        (r"^task \S+ is not (running|known)", errors.NotRunning),
        (r"^task \S+ is (still )?running|^namespace \S+ has running tasks", errors.StillRunning),
        (r"^namespace \S+ (should be created with init|has lost its configuration, but)", errors.NamespaceMissing),
        (r"^namespace \S+ (is already initialised|has lost its configuration, and|is a user's own)",
         errors.NamespaceExists),
        (r"belongs to user|needs root|^refusing to|^cannot (kill|signal) process|^cannot read log|"
         r"^a task in namespace|below the current niceness|[Pp]ermission denied|Operation not permitted",
         errors.PermissionDenied),
        (r"needs .*controller|needs -m/--memory-max|^freezing needs|was started without --cpuset",
         errors.LimitUnavailable),
        (r"^(the (configuration|record|result|state directory) .*(damaged|not to be trusted)|"
         r"cannot read the (configuration|record|result))", errors.StateError),
        (r"^cannot (create|enable|mount|move|prepare|remove|set|start|freeze|thaw) |cgroup mode|"
         r"still has processes|no usable cgroup|^stopping \S+ ended|processes keep appearing|"
         r"no systemd user manager|^mounted name=|^task \S+ is still (freezing|thawing)", errors.CgroupError),
    )
]


def remote_error(code: int, line: str) -> errors.LancoError:
    """The exception a local call would have raised, from the remote command's exit code and message line."""
    match = MESSAGE.match(line)
    message = match.group(1) if match else (line or f"the remote lanco exited {code}")
    if code == 2:
        if message.startswith(("invalid namespace name", "invalid task name")):
            return errors.InvalidName(message)
        if " cursor " in f" {message} ":
            return errors.UnknownCursor(message)
        return errors.UsageError(message)
    if code in (3, 4):
        return (errors.StaleCursor if code == 3 else errors.UnlinkedCursor)(message)
    if code in (126, 127):
        return (errors.CommandNotExecutable if code == 126 else errors.CommandNotFound)(message)
    if code == 70:
        return errors.InternalError(message)
    if message.startswith("cgroups of namespace ") and " are missing" in message:
        failure = errors.CgroupsMissing(message.split()[3])
        failure.message = message
        return failure
    for pattern, kind in _BY_MESSAGE:
        if pattern.search(message):
            return kind(message)
    return errors.SystemFailure(message)
