"""Task logs: rotation of the previous run's log and a safe append-only open."""

from __future__ import annotations

import os

from lanco.errors import LancoError, PermissionDenied

KEEP_ROTATED = 5


def rotate(path: str, keep: int = KEEP_ROTATED) -> None:
    """``log`` becomes ``log.1``, ``log.1`` becomes ``log.2``, ... and ``log.<keep>`` is dropped."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path):
        raise PermissionDenied(f"refusing to rotate log {path}: it is a symbolic link")
    for index in range(keep - 1, 0, -1):
        older = f"{path}.{index}"
        if os.path.lexists(older):
            os.replace(older, f"{path}.{index + 1}")
    os.replace(path, f"{path}.1")


def require_space(path: str) -> None:
    """Refuse a log whose file system is full: the task would run with its output silently lost."""
    try:
        free_blocks = os.statvfs(os.path.dirname(path) or ".").f_bavail
    except OSError:
        return  # a missing directory is reported by the open that follows
    if free_blocks == 0:
        raise LancoError(f"cannot log to {path}: no space left on its file system")


def open_append(path: str, owner: tuple[int, int] | None = None) -> int:
    """Open ``path`` for appending without following a symbolic link; the caller closes the descriptor."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    except OSError as exc:
        if os.path.islink(path):
            raise PermissionDenied(f"refusing to write log {path}: it is a symbolic link") from exc
        raise LancoError(f"cannot open log {path}: {exc.strerror}") from exc
    if owner is not None:
        os.fchown(fd, *owner)
    return fd
