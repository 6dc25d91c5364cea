"""Holds a systemd scope for a task's monitor until the launcher hands the monitor over:
``systemd-run --user --scope ... -- python3 -I -S scopehandoff.py FD``.

``systemd-run --scope`` places its own process in the new scope and then execs its command, so this is the
process the scope was made for. The launcher needs that scope to exist before it can create the task's
cgroup and write its limits, and only afterwards knows the monitor's argv, environment and descriptors; this
helper bridges the two. On the unix socket FD it says ``ready PID``, then receives (in one message, with
SCM_RIGHTS) the descriptors the monitor gets, followed by a JSON payload ``{"argv", "env", "cwd",
"targets"}``, and execs the monitor in its place. If the launcher goes away first (EOF), it exits and the
empty scope is collected by systemd. Standard library only, no lanco import (it runs with ``-I -S``).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import struct
import sys

# A run waits for this helper to start: typing would add several milliseconds to it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_HEADER = struct.Struct("!I")
_MAX_FDS = 16


def _receive(sock: socket.socket) -> tuple[Any, list[int]]:
    header, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, _MAX_FDS)
    if len(header) < _HEADER.size:
        raise EOFError("launcher gone")
    (length,) = _HEADER.unpack(header)
    payload = b""
    while len(payload) < length:
        chunk = sock.recv(length - len(payload))
        if not chunk:
            raise EOFError("launcher gone")
        payload += chunk
    return json.loads(payload.decode("utf-8", "surrogateescape")), fds


def main(fd: int) -> int:
    sock = socket.socket(fileno=fd)
    try:
        sock.sendall(f"ready {os.getpid()}\n".encode())
        message, fds = _receive(sock)
    except (OSError, EOFError, ValueError):
        return 125
    sock.close()
    argv = [str(a) for a in message["argv"]]
    env = {str(k): str(v) for k, v in message["env"].items()}
    targets = [int(t) for t in message["targets"]]
    cwd = message.get("cwd")
    # Park every received descriptor above the targets first, so that mapping one cannot clobber another.
    parked = [fcntl.fcntl(f, fcntl.F_DUPFD, 1000) for f in fds]
    for target, high in zip(targets, parked, strict=True):
        os.dup2(high, target, inheritable=True)
    os.closerange(max(targets) + 1 if targets else 0, 65536)
    if cwd:
        os.chdir(str(cwd))
    # CPython ignores these two at start-up; the monitor and its task must get the defaults.
    for signum in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    try:
        os.execve(argv[0], argv, env)
    except OSError:
        return 127
    return 127  # pragma: no cover - execve does not return


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
