"""The waits and the event stream of a namespace on another host: ``wait --any/--all`` and ``events --json``
run by the host's lanco over one ssh session each, their lines read as they come.

Each call is one ssh process, whatever the number of tasks it waits for. The asyncio forms run that same call on
one worker thread of the loop's default executor (a thread per call, never one per task): ssh's descriptors are
the subprocess module's, and the remote side already waits on pidfds and inotify in one process.
"""

from __future__ import annotations

import json
import subprocess

from lanco import errors
from lanco.remote.errormap import remote_error
from lanco.remote.ssh import Session

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Mapping, Sequence

    from lanco.eventlog.stream import Event
    from lanco.remote.api import RemoteNamespace, RemoteTask
    from lanco.state.record import TaskRecord

    Ended = list[tuple[RemoteTask, TaskRecord]]


def label_words(labels: Mapping[str, str] | None) -> list[str]:
    return [word for key, value in (labels or {}).items() for word in ("--label", f"{key}={value}")]


def lines_of(namespace: RemoteNamespace, words: Sequence[str], ok: Iterable[int] = (0,)) -> Iterator[str]:
    """The stdout lines of ``lanco -H HOST NS WORDS...`` as they come; at the end, a message line or an exit code
    not in ``ok`` raised as the error a local call would raise."""
    session = Session(namespace.target, [*namespace.globals, namespace.name, *words], stdout=subprocess.PIPE,
                      stdin=subprocess.DEVNULL)
    for raw in session.lines():
        yield raw.decode(errors="replace")
    said = session.passed[-1] if session.passed else ""
    if said or session.exit_code not in ok:
        raise remote_error(session.exit_code, said)


def events(namespace: RemoteNamespace, since: str | None, follow: bool,
           labels: Mapping[str, str] | None) -> Generator[Event, None, None]:
    """``events --json`` of the remote namespace, as :class:`lanco.eventlog.stream.Event` objects."""
    from lanco.eventlog.stream import Event

    words = ["events", "--json", *(["--follow"] if follow else []), *(["--since", since] if since else []),
             *label_words(labels)]
    for line in lines_of(namespace, words):
        if line.strip():
            data = json.loads(line)
            yield Event(namespace.name, str(data["cursor"]).rpartition(":")[0], data)


async def events_async(namespace: RemoteNamespace, since: str | None,
                       labels: Mapping[str, str] | None) -> AsyncIterator[Event]:
    """:func:`events` followed, each next line awaited on one worker thread."""
    import asyncio

    stream = events(namespace, since, True, labels)
    done = object()
    try:
        while True:
            event = await asyncio.to_thread(next, stream, done)
            if event is done:
                return
            yield event  # type: ignore[misc]
    finally:
        stream.close()  # ends the ssh session


def wait_many(namespace: RemoteNamespace, tasks: Sequence[RemoteTask | str], which: str, timeout: float | None,
              on_end: Callable[[Ended], object] | None = None) -> Ended:
    """``wait --any`` or ``wait --all`` on the host: the tasks that ended (their records), in the order they did;
    at a timeout those that had, as the local waits return."""
    handles = [namespace.task(t) if isinstance(t, str) else t for t in tasks]
    if not handles:
        return []
    words = ["wait", f"--{which}", *(["-t", str(timeout)] if timeout is not None else []),
             *dict.fromkeys(t.name for t in handles)]
    by_name = {t.name: t for t in handles}
    ended: Ended = []
    try:
        # wait exits with a task's own code, any code: only a message line is a failure.
        for line in lines_of(namespace, words, ok=range(256)):
            name = line.split(" ", 1)[0]
            if name in by_name:
                batch = [(by_name[name], by_name[name].record())]
                ended += batch
                if on_end is not None:
                    on_end(batch)
    except errors.LancoError as failure:
        if "still running after" not in failure.message:  # a timeout: the local waits return what ended
            raise
    return ended


async def wait_many_async(namespace: RemoteNamespace, tasks: Sequence[RemoteTask | str], which: str,
                          timeout: float | None) -> Ended:
    import asyncio

    return await asyncio.to_thread(wait_many, namespace, tasks, which, timeout)


async def wait_async(task: RemoteTask, timeout: float | None) -> TaskRecord:
    import asyncio

    return await asyncio.to_thread(task.wait, timeout)
