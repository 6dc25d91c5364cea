"""The event stream of a namespace (``lanco NS events``, :meth:`lanco.namespace.Namespace.events`): the starts
and ends of its tasks, read from the namespace's journal (lanco.state.journal) with a cursor to resume from.

There is no daemon: the journal is appended by the launcher (``started``) and by whoever finds a run's end first
(lanco.eventlog.claims), the reader among them. A reader sweeps the task records before it prints, journaling
the ends not yet journaled, then prints the journal past its cursor; following, it waits on inotify for the
journal and the record directories to change (or, where inotify is refused, looks again every
``POLL_S`` seconds), and sweeps again every ``LOST_RESCAN_S`` seconds for runs whose monitor died, which
no file tells of.
"""

from __future__ import annotations

import os
import select
import time

from lanco.errors import NamespaceMissing, StaleCursor, UnknownCursor, UnlinkedCursor, as_lanco_error
from lanco.eventlog import claims
from lanco.state import journal

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import AsyncIterator, Iterator, Mapping
    from typing import Any

    from lanco.eventlog.inotify import Inotify
    from lanco.namespace import Namespace

SCHEMA_VERSION = 1
POLL_S = 1.0
"""Where inotify is refused (no descriptor, no watch left): how often a follower looks again."""
LOST_RESCAN_S = 10.0
"""How often a follower sweeps every record again: a monitor killed leaves no file to watch."""


class Event:
    """One line of the stream: ``kind`` (started, run_ended, ended, lost), its ``cursor`` to resume after, the
    ``task``, its ``run_id`` and ``run`` number, when it was journaled (``time``), and ``record``: the task's
    record fields as ``status --json`` names them (the whole result for ended and lost)."""

    __slots__ = ("cursor", "kind", "namespace", "record", "run", "run_id", "seq", "task", "time")

    def __init__(self, namespace: str, journal_id: str, data: dict[str, Any]) -> None:
        self.seq: int = data["seq"]
        self.cursor = f"{journal_id}:{self.seq}"
        self.namespace = namespace
        self.kind: str = data.get("kind", "")
        self.task: str = data.get("task", "")
        self.run_id: str | None = data.get("run_id")
        self.run: int | None = data.get("run")
        self.time: float | None = data.get("time_epoch_s")
        record = data.get("record")
        self.record: dict[str, Any] = record if isinstance(record, dict) else {}

    @property
    def labels(self) -> dict[str, str]:
        labels = self.record.get("labels")
        return labels if isinstance(labels, dict) else {}

    def as_dict(self) -> dict[str, Any]:
        """The JSON line of ``events --json`` (docs/json.md)."""
        return {"schema_version": SCHEMA_VERSION, "cursor": self.cursor, "seq": self.seq, "kind": self.kind,
                "namespace": self.namespace, "task": self.task, "run_id": self.run_id, "run": self.run,
                "time_epoch_s": self.time, "record": self.record}

    def __repr__(self) -> str:
        return f"Event({self.kind} {self.task} {self.cursor})"


def matches(labels: Mapping[str, str], selectors: Mapping[str, str] | None) -> bool:
    """Whether a task's labels carry every ``KEY=VALUE`` of the selectors (none: every task): the selectors'
    rule of ``ls``, ``stop`` and ``wait``, :func:`lanco.options.labels.matches`."""
    from lanco.options.labels import matches as labels_match

    return not selectors or labels_match(labels, selectors)


def parse_cursor(cursor: str) -> tuple[str, int]:
    journal_id, _, seq = cursor.partition(":")
    if len(journal_id) != 16 or any(c not in "0123456789abcdef" for c in journal_id) or not seq.isdigit():
        raise UnknownCursor(f"unknown cursor {cursor!r}: a cursor is JOURNAL-ID:SEQ, as events prints it")
    return journal_id, int(seq)


class EventReader:
    """The journal read from a cursor on, the records swept before each read; ``pending()`` the events come
    since the last call, ``wait()`` blocks until there may be more (see the module's docstring)."""

    def __init__(self, namespace: Namespace, since: str | None = None,
                 labels: Mapping[str, str] | None = None) -> None:
        namespace.authorize()
        self.namespace = namespace
        self.labels = labels
        self._tasks_dir = namespace.config.tasks_dir
        self._path = os.path.join(self._tasks_dir, journal.JOURNAL)
        self._fd = -1
        self._ino = 0
        self._rest = b""
        self._notify: Inotify | None = None
        self._changed: set[str] | None = None  # None: every task
        self._full_sweep = 0.0
        if not os.path.isdir(self._tasks_dir):
            raise NamespaceMissing(f"namespace {namespace.name} has no tasks directory {self._tasks_dir}")
        self._open()
        if since is None:
            self.last = self._first - 1
            return
        journal_id, seq = parse_cursor(since)
        if journal_id != self.journal_id:
            raise UnlinkedCursor(f"cursor {since} is of another journal: namespace {namespace.name} was released "
                                 "and made again since (its journal is " + self.journal_id + ")")
        if seq > journal.bounds(self._fd)[1]:
            raise UnknownCursor(f"unknown cursor {since}: the journal of namespace {namespace.name} has no such event")
        if seq < self._first - 1:
            raise StaleCursor(f"cursor {since} is older than the events kept (from {self.journal_id}:"
                              f"{self._first}): events were missed")
        self.last = seq

    def _open(self) -> None:
        """(Re)open the journal, made where it is missing."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            access = journal.Access(self._tasks_dir, self.namespace.config.group_access,
                                    self.namespace.acting_for_owner)
            journal.ensure(access)
            fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        header = journal.parse_header(os.pread(fd, 512, 0).split(b"\n", 1)[0])
        if header is None:
            os.close(fd)
            raise UnknownCursor(f"the event journal {self._path} is damaged: no header")
        self.journal_id, self._first = header
        self._fd, self._ino, self._rest = fd, os.fstat(fd).st_ino, b""
        os.lseek(fd, 0, os.SEEK_SET)

    def sweep(self) -> None:
        """Journal the ends that the records tell of and the journal does not yet."""
        from lanco.errors import LancoError
        from lanco.task import Task

        changed, self._changed = self._changed, set()
        if changed is not None and time.monotonic() - self._full_sweep > LOST_RESCAN_S:
            changed = None  # a busy namespace gets its slow sweep too
        if changed is None:
            self._full_sweep = time.monotonic()
            try:
                names = [n for n in os.listdir(self._tasks_dir) if not n.startswith(".")]
            except FileNotFoundError:
                raise NamespaceMissing(f"namespace {self.namespace.name} is gone") from None
        else:
            names = sorted(changed)
        for name in names:
            try:
                # The owner's ids for each record read (root reads a user's records as the user), never across
                # a yield: the caller's code runs between two events.
                with self.namespace.owner_ids():
                    claims.journal_end(Task(self.namespace, name))
            except (LancoError, OSError):
                continue  # a damaged or vanishing record: the views say what is wrong with it

    def pending(self) -> list[Event]:
        """The events journaled since the last call; an OSError reading them comes as lanco's error."""
        try:
            return self._read_pending()
        except OSError as exc:
            raise as_lanco_error(exc) from exc

    def _read_pending(self) -> list[Event]:
        from lanco.state import jsonread

        self.sweep()
        try:
            replaced = os.stat(self._path).st_ino != self._ino
        except FileNotFoundError:
            raise NamespaceMissing(f"namespace {self.namespace.name}: its event journal is gone") from None
        events: list[Event] = []
        while chunk := os.read(self._fd, 1 << 20):
            lines = (self._rest + chunk).split(b"\n")
            self._rest = lines.pop()
            for line in lines:
                seq = journal.line_seq(line)
                if seq is None or seq <= self.last:
                    continue
                try:
                    event = Event(self.namespace.name, self.journal_id, jsonread.loads(line.decode("utf-8")))
                except (ValueError, UnicodeDecodeError, KeyError, TypeError):
                    continue
                self.last = seq
                if matches(event.labels, self.labels):
                    events.append(event)
        if replaced:
            old_id = self.journal_id
            self._open()
            if self.journal_id != old_id:
                raise UnlinkedCursor(f"namespace {self.namespace.name} was released and made again: its journal "
                                     f"is {self.journal_id} now")
            if self._first > self.last + 1:
                raise StaleCursor(f"events after {old_id}:{self.last} were dropped before they were read")
            events.extend(self.pending())
        return events

    # -- following ------------------------------------------------------------------------------------------

    def start_watching(self) -> None:
        """Watch the journal and every record directory; without inotify, poll."""
        from lanco.eventlog import inotify

        try:
            notify = inotify.Inotify()
        except (OSError, AttributeError):
            return
        try:
            notify.watch(self._tasks_dir, inotify.IN_MODIFY | inotify.IN_MOVED_TO | inotify.IN_CREATE)
            for name in os.listdir(self._tasks_dir):
                if not name.startswith("."):
                    self._watch_task(notify, name)
        except OSError:
            notify.close()
            return
        self._notify = notify
        self._changed = None

    def _watch_task(self, notify: Inotify, name: str) -> None:
        from lanco.eventlog import inotify

        path = os.path.join(self._tasks_dir, name)
        if os.path.isdir(path):
            notify.watch(path, inotify.IN_CLOSE_WRITE | inotify.IN_MOVED_TO | inotify.IN_CREATE | inotify.IN_MODIFY)

    def fileno(self) -> int:
        return self._notify.fd if self._notify is not None else -1

    @property
    def timeout(self) -> float:
        return LOST_RESCAN_S if self._notify is not None else POLL_S

    def notified(self) -> None:
        """Take in what inotify queued: the tasks to look at again (all of them after a quiet timeout)."""
        notify = self._notify
        found = notify.read() if notify is not None else []
        if notify is None or not found or any(path is None for path, _, _ in found):
            self._changed = None  # polling, the timeout (the slow sweep for monitors that died), or an overflow
            return
        changed: set[str] = set() if self._changed is None else self._changed
        for path, _mask, name in found:
            if path != self._tasks_dir:
                changed.add(os.path.basename(path or ""))
            elif not name.startswith("."):
                changed.add(name)
                try:
                    self._watch_task(notify, name)
                except OSError:  # no watch left: poll from now on
                    notify.close()
                    self._notify = None
                    self._changed = None
                    return
        self._changed = changed

    def wait(self) -> None:
        fd = self.fileno()
        if fd >= 0:
            select.select([fd], [], [], self.timeout)
        else:
            select.select([], [], [], self.timeout)
        self.notified()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._notify is not None:
            self._notify.close()
            self._notify = None


def iterate(namespace: Namespace, since: str | None, follow: bool,
            labels: Mapping[str, str] | None) -> Iterator[Event]:
    """The events as :meth:`lanco.namespace.Namespace.events` gives them: the cursor checked at once (its error
    raised by the call), the records swept and the journal read as the caller iterates."""
    return _iterate(EventReader(namespace, since, labels), follow)


def _iterate(reader: EventReader, follow: bool) -> Iterator[Event]:
    try:
        if follow:
            reader.start_watching()
        while True:
            yield from reader.pending()
            if not follow:
                return
            reader.wait()
    finally:
        reader.close()


def iterate_async(namespace: Namespace, since: str | None,
                  labels: Mapping[str, str] | None) -> AsyncIterator[Event]:
    """:func:`iterate` followed, for ``async for``: one thread, the inotify descriptor on the loop's reader."""
    return _iterate_async(EventReader(namespace, since, labels))


async def _iterate_async(reader: EventReader) -> AsyncIterator[Event]:
    import asyncio

    loop = asyncio.get_running_loop()
    try:
        reader.start_watching()
        while True:
            for event in reader.pending():
                yield event
            ready = loop.create_future()
            fd = reader.fileno()
            if fd >= 0:
                loop.add_reader(fd, _wake, ready)
            try:
                await asyncio.wait([ready], timeout=reader.timeout)
            finally:
                if fd >= 0:
                    loop.remove_reader(fd)
            reader.notified()
    finally:
        reader.close()


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)
