"""A namespace's event journal: the file ``lanco NS events`` reads, appended by whichever lanco command first
learns of a task's start or end, with no daemon behind it.

The journal is ``.events.jsonl`` in the namespace's tasks directory (where the owner and, with ``init -g``, the
group's members may write; views skip names starting with a dot). Its first line is a header
``{"first_seq": N, "format": 1, "journal_id": ID}``; every other line one event ``{"seq": N, ...}``, written by
one ``write()`` under the exclusive flock of ``.events.lock``, its sequence number one above the last. The id is
drawn when the journal is made, so a namespace released and made again has another: a cursor ``ID:SEQ`` names
the journal it came from.

Retention: once the journal holds more than ``2 * KEEP_EVENTS`` events or ``2 * KEEP_BYTES`` bytes, the writer
that crossed the line rewrites it, under the same lock, to its last events within ``KEEP_EVENTS`` and
``KEEP_BYTES`` (a new file renamed over the old, its header's ``first_seq`` the first event kept): sequence numbers
never change, so every cursor into what is kept stays valid, and a cursor older than ``first_seq - 1`` is known
to have missed events. Appending reads only the file's two ends, so that ``run``'s one append stays small.
"""

from __future__ import annotations

import fcntl
import os

from lanco.state.record import compact_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

JOURNAL = ".events.jsonl"
LOCK = ".events.lock"
FORMAT = 1
KEEP_EVENTS = 10000
"""Events kept after a compaction; the journal compacts at twice as many."""
KEEP_BYTES = 8 << 20
"""Bytes of events kept after a compaction; the journal compacts at twice as many."""
_TAIL = 8192


class Access:
    """Who the journal's files are made for: the mode (group-writable with ``init -g``) and, when root acts for
    a user, the owner to give them to."""

    __slots__ = ("group", "owner", "tasks_dir")

    def __init__(self, tasks_dir: str, group: bool, owner: tuple[int, int] | None) -> None:
        self.tasks_dir = tasks_dir
        self.group = group
        self.owner = owner

    @property
    def mode(self) -> int:
        # With group access, writable by all: the tasks directory (2770) keeps out all but the owner and the
        # group, and a file a member made (theirs, the namespace's group) must stay writable by the owner, who
        # need not be in the group. Without, the owner's alone.
        return 0o666 if self.group else 0o600

    def path(self, name: str) -> str:
        return os.path.join(self.tasks_dir, name)

    def created(self, fd: int) -> None:
        """A file just made: its mode set past the umask, its owner the namespace's when root made it."""
        os.fchmod(fd, self.mode)
        if self.owner is not None:
            os.fchown(fd, *self.owner)


class Lock:
    """The journal's exclusive flock, held while appending or compacting (``with Lock(access):``)."""

    __slots__ = ("_access", "_fd")

    def __init__(self, access: Access) -> None:
        self._access = access
        self._fd = -1

    def __enter__(self) -> Lock:
        access = self._access
        path = access.path(LOCK)
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            self._fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, access.mode)
            access.created(self._fd)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)
        self._fd = -1


def write_claim(path: str, text: str, owner: tuple[int, int] | None) -> None:
    """A task's claim marker (lanco.eventlog.claims): a new file renamed into place, readable by all (as the
    record's spec and result are: the record directory keeps out all but the owner and the group), so that every
    finder of a run's end reads the claim, whoever of the owner and the members wrote it."""
    tmp = f"{path}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.fchmod(fd, 0o644)
        if owner is not None:
            os.fchown(fd, *owner)
        os.write(fd, text.encode() + b"\n")
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise


def header_line(journal_id: str, first_seq: int) -> bytes:
    return (compact_json({"first_seq": first_seq, "format": FORMAT, "journal_id": journal_id}) + "\n").encode()


def parse_header(line: bytes) -> tuple[str, int] | None:
    """The journal id and first sequence number of a header line, or None when it is none."""
    from lanco.state import jsonread

    try:
        data = jsonread.loads(line.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    journal_id, first = data.get("journal_id"), data.get("first_seq")
    if not isinstance(journal_id, str) or not isinstance(first, int) or data.get("format") != FORMAT:
        return None
    return journal_id, first


def line_seq(line: bytes) -> int | None:
    """The sequence number an event line starts with (``{"seq": N, ``), read without a JSON parser."""
    if not line.startswith(b'{"seq": '):
        return None
    end = line.find(b",", 8)
    try:
        return int(line[8:end])
    except ValueError:
        return None


def _open_journal(access: Access) -> int:
    """The journal opened for appending, made (with a new id) where there is none. The caller holds the lock."""
    path = access.path(JOURNAL)
    try:
        return os.open(path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, access.mode)
    try:
        access.created(fd)
        os.write(fd, header_line(os.urandom(8).hex(), 1))
    except BaseException:
        os.close(fd)
        raise
    return fd


def ensure(access: Access) -> None:
    """Make the journal where there is none yet (a reader before any run)."""
    with Lock(access):
        os.close(_open_journal(access))


def bounds(fd: int) -> tuple[int, int]:
    """(first_seq, last_seq) of an open journal: the events it holds (none where last < first)."""
    first, last, _size = _ends(fd)
    return first, last


def _ends(fd: int) -> tuple[int, int, int]:
    """(first_seq, last_seq, size) of an open journal: its header and its last whole line."""
    size = os.fstat(fd).st_size
    head = os.pread(fd, 512, 0)
    header = parse_header(head.split(b"\n", 1)[0])
    first = header[1] if header is not None else 1
    last = first - 1
    span = _TAIL
    while True:
        start = max(0, size - span)
        lines = os.pread(fd, size - start, start).split(b"\n")
        # The first piece may be cut (unless the read began at 0); the last is empty after the final newline.
        for line in reversed(lines[1:-1] if start else lines[:-1]):
            seq = line_seq(line)
            if seq is not None:
                return first, seq, size
        if start == 0:
            return first, last, size
        span *= 8


def append(access: Access, event: dict[str, Any], claim: str,
           before: Callable[[int, int], None] | None = None) -> int:
    """Append one event (its fields without ``seq``) under ``claim``, a token that tells its line from any
    other's (:func:`holds`); returns its sequence number. ``before(inode, offset)`` is called just before the
    write with where the line will be. The caller holds the lock."""
    fd = _open_journal(access)
    try:
        first, last, size = _ends(fd)
        seq = last + 1
        body = compact_json(event)
        line = f'{{"seq": {seq}, "claim": {compact_json(claim)}' + (", " + body[1:] if body != "{}" else "}") + "\n"
        data = line.encode("utf-8")
        if before is not None:
            before(os.fstat(fd).st_ino, size)
        os.write(fd, data)
    finally:
        os.close(fd)
    if seq - first + 1 > 2 * KEEP_EVENTS or size + len(data) > 2 * KEEP_BYTES:
        compact(access)
    return seq


def holds(access: Access, inode: int, offset: int, claim: str) -> bool:
    """Whether the line at ``offset`` of the journal is the one of ``claim``; True also where the journal was
    rewritten since (another inode: a compaction, which no claim's crash can precede unseen)."""
    try:
        fd = os.open(access.path(JOURNAL), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        if os.fstat(fd).st_ino != inode:
            return True
        head = os.pread(fd, 64 + len(claim), offset)
    finally:
        os.close(fd)
    start = head.find(b'"claim": ')
    return start > 0 and head[start + 9:].startswith(compact_json(claim).encode())


def compact(access: Access) -> None:
    """Rewrite the journal to its last events within the bounds. The caller holds the lock."""
    path = access.path(JOURNAL)
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    header = parse_header(lines[0])
    if header is None:
        return
    events = [line + b"\n" for line in lines[1:] if line_seq(line) is not None]
    kept: list[bytes] = []
    size = 0
    for line in reversed(events):
        if len(kept) >= KEEP_EVENTS or size + len(line) > KEEP_BYTES:
            break
        kept.append(line)
        size += len(line)
    kept.reverse()
    first = line_seq(kept[0]) if kept else (line_seq(events[-1]) or 0) + 1 if events else header[1]
    tmp = f"{path}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, access.mode)
    try:
        access.created(fd)
        os.write(fd, header_line(header[0], first or header[1]) + b"".join(kept))
    finally:
        os.close(fd)
    os.replace(tmp, path)
