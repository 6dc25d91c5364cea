"""The event journal and its stream on the fake cgroupfs: what is journaled of a run and that it is journaled
once, the cursor's checks, retention, and the command line's lines."""

from __future__ import annotations

import asyncio
import json
import os
import threading

import pytest

from lanco.cli import main
from lanco.errors import StaleCursor, UnknownCursor, UnlinkedCursor
from lanco.eventlog import claims
from lanco.eventlog.stream import matches
from lanco.namespace import Namespace
from lanco.state import journal, recorddir
from lanco.state.record import write_spec
from lanco.task import Task
from tests.unit.conftest import NS, write


def spec_of(name: str, run_id: str, **extra: object) -> dict[str, object]:
    return {"run_id": run_id, "namespace": NS, "name": name, "argv": ["sh", "-c", "exit 3"], "started": 1.0,
            "log": None, "limits": {}, "lifetime": {"restart": "no"}, **extra}


def finished(namespace: Namespace, name: str, run_id: str, exit_code: int = 3, state: str = "exited",
             **extra: object) -> Task:
    """A run's files as a monitor leaves them at its end."""
    task = Task(namespace, name)
    os.makedirs(task.state_dir, exist_ok=True)
    write_spec(task.state_dir, spec_of(name, run_id, **extra))
    write(os.path.join(task.state_dir, "pid"), "4242\n")
    write(os.path.join(task.state_dir, "result"),
          f"run_id={run_id}\nresult={state}\nexit_code={exit_code}\nsignal=\nrestarts=0\ncpu_usec=10\n")
    return task


def kinds(namespace: Namespace, since: str | None = None) -> list[tuple[str, str]]:
    return [(e.kind, e.task) for e in namespace.events(since)]


def test_an_end_found_is_journaled_with_its_start_once(namespace: Namespace) -> None:
    finished(namespace, "a", "r1")
    events = list(namespace.events())
    assert [(e.kind, e.task, e.run_id) for e in events] == [("started", "a", "r1"), ("ended", "a", "r1")]
    ended = events[1].record
    assert (ended["state"], ended["exit_code"], ended["cpu_usage_usec"], ended["labels"]) == ("exited", 3, 10, {})
    assert kinds(namespace) == [("started", "a"), ("ended", "a")]  # read again: nothing journaled twice
    assert kinds(namespace, events[-1].cursor) == []
    assert kinds(namespace, events[0].cursor) == [("ended", "a")]


def test_the_launchers_start_is_not_journaled_again_by_the_finder(namespace: Namespace) -> None:
    task = finished(namespace, "a", "r1")
    os.unlink(os.path.join(task.state_dir, "result"))
    claims.journal_started(task, spec_of("a", "r1"))
    claims.journal_started(task, spec_of("a", "r1"))
    finished(namespace, "a", "r1")
    assert kinds(namespace) == [("started", "a"), ("ended", "a")]


def test_a_new_run_of_a_name_is_journaled_anew(namespace: Namespace) -> None:
    finished(namespace, "a", "r1")
    assert len(list(namespace.events())) == 2
    finished(namespace, "a", "r2", exit_code=0)
    events = list(namespace.events())
    assert [(e.kind, e.run_id) for e in events] == [("started", "r1"), ("ended", "r1"), ("started", "r2"),
                                                     ("ended", "r2")]


def test_a_finder_killed_between_its_marker_and_its_line_leaves_the_event_to_the_next(namespace: Namespace) -> None:
    """The marker is written just before the line: one without its line is taken back by one event."""
    task = finished(namespace, "a", "r1")
    os.unlink(os.path.join(task.state_dir, "result"))
    claims.journal_started(task, spec_of("a", "r1"))
    path = os.path.join(namespace.config.tasks_dir, journal.JOURNAL)
    # As a finder killed after its marker: the end claimed at the journal's end, no line written.
    recorddir.write_marker(task, claims.MARKER, f"r1 0 1 {os.stat(path).st_ino} {os.path.getsize(path)}")
    finished(namespace, "a", "r1")
    assert kinds(namespace) == [("started", "a"), ("ended", "a")]
    assert kinds(namespace) == [("started", "a"), ("ended", "a")]


def test_a_restart_task_journals_each_run_then_its_end(namespace: Namespace) -> None:
    task = finished(namespace, "d", "r1", exit_code=1, lifetime={"restart": "always"})
    write(os.path.join(task.state_dir, "runs.jsonl"), "".join(
        f'{{"run": {n}, "result": "exited", "exit_code": 1, "signal": null, "oom_kills": 0}}\n' for n in (1, 2)))
    events = list(namespace.events())
    assert [(e.kind, e.run) for e in events] == [("started", 1), ("run_ended", 1), ("run_ended", 2), ("ended", 1)]
    assert events[1].record["exit_code"] == 1


def test_a_run_whose_monitor_is_gone_is_journaled_lost(namespace: Namespace) -> None:
    task = finished(namespace, "a", "r1")
    os.unlink(os.path.join(task.state_dir, "result"))
    events = list(namespace.events())
    assert [(e.kind, e.record["state"]) for e in events] == [("started", "running"), ("lost", "lost")]
    assert kinds(namespace) == [("started", "a"), ("lost", "a")]


def test_labels_select_the_events(namespace: Namespace) -> None:
    finished(namespace, "a", "r1", labels={"app": "web"}, description="the web")
    finished(namespace, "b", "r2", labels={"app": "db"})
    web = list(namespace.events(labels={"app": "web"}))
    assert [(e.kind, e.task) for e in web] == [("started", "a"), ("ended", "a")]
    assert web[1].record["description"] == "the web"
    assert matches({"a": "1", "b": "2"}, {"a": "1"}) and not matches({"a": "1"}, {"a": "1", "b": "2"})
    assert matches({}, None)


def test_cursors_garbled_foreign_and_stale_are_refused(namespace: Namespace, monkeypatch: pytest.MonkeyPatch) -> None:
    finished(namespace, "a", "r1")
    events = list(namespace.events())
    journal_id = events[0].cursor.split(":")[0]
    for garbled in ("", "x", "abc:1", f"{journal_id}:x", f"{journal_id}", f"{journal_id}:3"):
        with pytest.raises(UnknownCursor):
            namespace.events(garbled)
    other = "0" * 16 if journal_id != "0" * 16 else "1" * 16
    with pytest.raises(UnlinkedCursor) as foreign:
        namespace.events(f"{other}:1")
    assert foreign.value.exit_code == 4
    monkeypatch.setattr(journal, "KEEP_EVENTS", 2)
    for n in range(4):
        claims.journal_end(finished(namespace, f"t{n}", f"q{n}"))
    with pytest.raises(StaleCursor) as stale:
        namespace.events(events[0].cursor)
    assert stale.value.exit_code == 3 and "older than the events kept" in stale.value.message


def test_the_journal_stays_within_its_bound_and_keeps_its_cursors(namespace: Namespace,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal, "KEEP_EVENTS", 10)
    access = journal.Access(namespace.config.tasks_dir, False, None)
    path = access.path(journal.JOURNAL)
    seqs = []
    for n in range(200):
        with journal.Lock(access):
            seqs.append(journal.append(access, {"kind": "started", "task": f"t{n}"}, f"c{n}"))
        with open(path, "rb") as f:
            assert len(f.read().splitlines()) <= 2 * 10 + 1  # the header and at most twice the kept events
    assert seqs == list(range(1, 201))
    kept = list(namespace.events())
    assert 10 <= len(kept) <= 20 and kept[-1].seq == 200
    assert [e.seq for e in kept] == list(range(kept[0].seq, 201))
    middle = kept[len(kept) // 2]
    assert [e.seq for e in namespace.events(middle.cursor)] == list(range(middle.seq + 1, 201))


def test_a_journal_made_again_has_another_id(namespace: Namespace) -> None:
    finished(namespace, "a", "r1")
    cursor = list(namespace.events())[-1].cursor
    os.unlink(os.path.join(namespace.config.tasks_dir, journal.JOURNAL))
    with pytest.raises(UnlinkedCursor):
        namespace.events(cursor)


def test_the_command_prints_one_line_per_event(namespace: Namespace, capsys: pytest.CaptureFixture[str]) -> None:
    finished(namespace, "a", "r1", labels={"k": "v"})
    assert main([NS, "events", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["schema_version"], d["kind"], d["task"]) for d in lines] == [(1, "started", "a"), (1, "ended", "a")]
    assert lines[1]["record"]["exit_code"] == 3 and lines[1]["record"]["labels"] == {"k": "v"}
    assert main([NS, "events", "--since", lines[0]["cursor"]]) == 0
    text = capsys.readouterr().out.splitlines()
    assert len(text) == 1 and f" {lines[1]['cursor']} ended a exited, code 3" in text[0]
    assert main([NS, "events", "--label", "k=w"]) == 0
    assert capsys.readouterr().out == ""
    assert main([NS, "events", "--since", "nonsense"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1 and "unknown cursor" in captured.err
    assert main([NS, "events", "--label", "novalue"]) == 2


def test_the_async_stream_gives_the_same_events(namespace: Namespace) -> None:
    finished(namespace, "a", "r1")

    async def first_two() -> list[str]:
        seen = []
        stream = namespace.events_async()
        async for event in stream:
            seen.append(event.kind)
            if len(seen) == 2:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        return seen

    assert asyncio.run(first_two()) == ["started", "ended"]


@pytest.mark.parametrize("notify", [True, False], ids=["inotify", "polling"])
def test_a_follower_is_woken_by_an_end(namespace: Namespace, monkeypatch: pytest.MonkeyPatch, notify: bool) -> None:
    if not notify:
        from lanco.eventlog import inotify

        def refused() -> None:
            raise OSError(24, "Too many open files")

        monkeypatch.setattr(inotify, "Inotify", refused)
    finished(namespace, "a", "r1")
    stream = namespace.events(follow=True)
    got: list[tuple[str, str]] = []

    def consume() -> None:
        for event in stream:
            got.append((event.kind, event.task))
            if len(got) == 4:
                return

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    while len(got) < 2 and reader.is_alive():
        reader.join(0.05)
    finished(namespace, "b", "r2")  # while the follower waits
    reader.join(60)
    assert got == [("started", "a"), ("ended", "a"), ("started", "b"), ("ended", "b")]
