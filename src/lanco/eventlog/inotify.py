"""inotify through ctypes (libc's ``inotify_init1``, ``inotify_add_watch``), for ``events --follow`` alone: the
standard library has no binding, and ``events`` must wait for the journal and the task records without a busy
loop and without a resident process. Imported only by the follow path (ctypes costs some milliseconds).
"""

from __future__ import annotations

import ctypes
import os
import struct

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE_SELF = 0x00000400
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")


class Inotify:
    """One inotify descriptor and its watches; raises OSError where the kernel refuses it (then the caller polls)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._add.restype = ctypes.c_int
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
        self.fd: int = fd
        self.paths: dict[int, str] = {}

    def watch(self, path: str, mask: int) -> int:
        wd = self._add(self.fd, os.fsencode(path), mask)
        if wd < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno), path)
        self.paths[wd] = path
        return int(wd)

    def read(self) -> list[tuple[str | None, int, str]]:
        """The events queued: (watched path or None on overflow, mask, name); [] when none."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        found = []
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            name = data[offset + _EVENT.size:offset + _EVENT.size + length].rstrip(b"\0").decode("utf-8", "replace")
            offset += _EVENT.size + length
            if mask & IN_IGNORED:
                self.paths.pop(wd, None)
                continue
            found.append((None if mask & IN_Q_OVERFLOW else self.paths.get(wd), mask, name))
        return found

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
