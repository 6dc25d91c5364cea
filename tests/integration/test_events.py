"""``lanco NS events`` on the real kernel: a consumer killed and restarted with its cursor misses no event and
sees none twice, the cursor's refusals, and an unprivileged owner's stream."""

from __future__ import annotations

import grp
import json
import os
import pwd
import random
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import Sandbox
from tests.integration.conftest import group_with_member, make_namespace, wait_until

TASKS = 200
CONCURRENCY = 4
KILLS = 5


class Consumer:
    """``events --follow --json`` in a subprocess, its lines gathered by a thread."""

    def __init__(self, sandbox: Sandbox, ns: str, since: str | None, user: str | None = None) -> None:
        args = [ns, "events", "--follow", "--json", *(["--since", since] if since else [])]
        ids = {}
        if user is not None:  # the ids switched by Popen itself: no runuser between, whose child a kill would miss
            entry = pwd.getpwnam(user)
            ids = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": os.getgrouplist(user, entry.pw_gid)}
        # A session of its own, killed whole.
        self.proc: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            sandbox.command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/", start_new_session=True,
            **ids)
        self.lines: list[dict[str, object]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(json.loads(raw))

    def kill(self) -> str:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.reader.join(10)
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode()


def test_a_consumer_killed_five_times_sees_every_event_once_in_order(sandbox: Sandbox) -> None:
    ns = make_namespace(sandbox)
    rng = random.Random(15)
    plans = {}
    for n in range(TASKS):
        name = f"t{n:03d}"
        if n % 10 == 7:
            plans[name] = ("sh", "-c", "sleep 0.$RANDOM; kill -9 $$")  # killed: signal 9
        else:
            plans[name] = ("sh", "-c", f"sleep 0.$RANDOM; exit {rng.randrange(0, 5)}")
    seen: list[dict[str, object]] = []
    consumer = Consumer(sandbox, ns, None)
    kill_points = {TASKS * (k + 1) // (KILLS + 1) for k in range(KILLS)}
    launched = 0

    def launch(name: str) -> None:
        sandbox.ok(ns, "run", name, *plans[name])

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        names = sorted(plans)
        for start in range(0, TASKS, 10):
            list(pool.map(launch, names[start:start + 10]))
            launched += 10
            if any(launched - 10 < point <= launched for point in kill_points):
                errors = consumer.kill()
                assert errors == "", errors
                seen.extend(consumer.lines)
                cursor = str(seen[-1]["cursor"]) if seen else None
                consumer = Consumer(sandbox, ns, cursor)

    def all_ended() -> bool:
        return sum(1 for line in seen + consumer.lines if line["kind"] in ("ended", "lost")) >= TASKS

    assert wait_until(all_ended, timeout=90, interval=0.2)
    time.sleep(0.5)  # nothing more may come
    assert consumer.kill() == ""
    seen.extend(consumer.lines)

    seqs = [line["seq"] for line in seen]
    assert seqs == list(range(1, 2 * TASKS + 1)), "every event once, in the journal's order"
    records = json.loads(sandbox.ok(ns, "ls", "--all", "--json").stdout)["tasks"]
    by_name = {r["name"]: r for r in records}
    order: dict[str, list[str]] = {}
    for line in seen:
        order.setdefault(str(line["task"]), []).append(str(line["kind"]))
        if line["kind"] == "ended":
            record = line["record"]
            assert isinstance(record, dict)
            final = by_name[str(line["task"])]
            assert (record["state"], record["exit_code"], record["signal"], record["run_id"]) == \
                (final["state"], final["exit_code"], final["signal"], final["run_id"]), line["task"]
    assert order == {name: ["started", "ended"] for name in plans}
    killed = [by_name[n] for n in plans if n.endswith("7")]
    assert all(r["state"] == "killed" and r["signal"] == 9 for r in killed)


def test_cursors_unknown_stale_and_of_a_namespace_made_again(sandbox: Sandbox) -> None:
    from lanco.state import journal

    ns = make_namespace(sandbox)
    for n in range(3):
        sandbox.ok(ns, "run", "-f", f"t{n}", "true")
    lines = [json.loads(line) for line in sandbox.ok(ns, "events", "--json").stdout.splitlines()]
    assert [line["kind"] for line in lines] == ["started", "ended"] * 3
    first = lines[0]["cursor"]

    unknown = sandbox.lanco(ns, "events", "--since", "not-a-cursor")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert len(unknown.stderr.splitlines()) == 1 and "[WARN/events] unknown cursor" in unknown.stderr

    # A compaction that keeps the last event only: the first cursor is beyond what is kept, the last still good.
    tasks_dir = str(sandbox.state_dir(ns) / "tasks")
    access = journal.Access(tasks_dir, False, None)
    kept, journal.KEEP_EVENTS = journal.KEEP_EVENTS, 1
    try:
        with journal.Lock(access):
            journal.compact(access)
    finally:
        journal.KEEP_EVENTS = kept
    stale = sandbox.lanco(ns, "events", "--since", first)
    assert stale.returncode == 3 and stale.stdout == ""
    assert len(stale.stderr.splitlines()) == 1 and "older than the events kept" in stale.stderr
    assert sandbox.ok(ns, "events", "--since", lines[-1]["cursor"]).stdout == ""
    assert sandbox.ok(ns, "events", "--since", lines[-2]["cursor"]).stdout.count("\n") == 1

    sandbox.ok(ns, "release")
    sandbox.ok(ns, "init")
    again = sandbox.lanco(ns, "events", "--since", lines[-1]["cursor"])
    assert again.returncode == 4 and again.stdout == ""
    assert len(again.stderr.splitlines()) == 1 and "released and made again" in again.stderr


def test_an_unprivileged_owner_follows_the_events_of_its_tasks(sandbox: Sandbox, test_user: str) -> None:
    ns = make_namespace(sandbox, "v1", user=test_user)
    consumer = Consumer(sandbox, ns, None, user=test_user)
    try:
        sandbox.ok(ns, "run", "a", "sh", "-c", "exit 4", user=test_user)
        sandbox.ok(ns, "run", "b", "sleep", "0.2")  # root, acting for the owner
        assert wait_until(lambda: sum(line["kind"] == "ended" for line in consumer.lines) == 2, timeout=20)
    finally:
        errors = consumer.kill()
    assert errors == ""
    ended = {line["task"]: line["record"] for line in consumer.lines if line["kind"] == "ended"}
    assert ended["a"]["exit_code"] == 4 and ended["b"]["exit_code"] == 0  # type: ignore[index]
    tasks_dir = sandbox.state_dir(ns) / "tasks"
    owner = os.stat(tasks_dir).st_uid
    for name in (journal_name := ".events.jsonl", ".events.lock", "a/journaled", "b/journaled"):
        assert os.stat(tasks_dir / name).st_uid == owner, name
    as_root = [json.loads(line) for line in sandbox.ok(ns, "events", "--json").stdout.splitlines()]
    assert [line["seq"] for line in as_root] == [line["seq"] for line in consumer.lines]
    assert (tasks_dir / journal_name).stat().st_mode & 0o777 == 0o600


def test_group_members_journal_and_read_one_stream(sandbox: Sandbox, test_user: str, other_user: str) -> None:
    group = group_with_member(other_user)
    ns = make_namespace(sandbox, user=test_user, group=group)
    # The member makes the journal (its first event), the owner appends to it, the member reads and journals the
    # ends: every file stays writable by the group.
    assert sandbox.lanco(ns, "run", "-f", "by-member", "sh", "-c", "exit 5", user=other_user).returncode == 5
    sandbox.ok(ns, "run", "by-owner", "sh", "-c", "exit 6", user=test_user)
    assert wait_until(lambda: sandbox.lanco(ns, "check", "by-owner", user=test_user).returncode == 1)
    read = [json.loads(line) for line in sandbox.ok(ns, "events", "--json", user=other_user).stdout.splitlines()]
    assert [(line["kind"], line["task"]) for line in read] == [
        ("started", "by-member"), ("ended", "by-member"), ("started", "by-owner"), ("ended", "by-owner")]
    assert [line["record"]["exit_code"] for line in read if line["kind"] == "ended"] == [5, 6]
    tasks_dir = sandbox.state_dir(ns) / "tasks"
    for name in (".events.jsonl", ".events.lock"):
        mode = (tasks_dir / name).stat()
        assert mode.st_mode & 0o777 == 0o666 and mode.st_gid == grp.getgrnam(group).gr_gid, name
    assert (tasks_dir.stat().st_mode & 0o7777) == 0o2770  # which keeps out all but the owner and the group
    again = sandbox.ok(ns, "events", "--json", "--since", read[1]["cursor"], user=test_user).stdout.splitlines()
    assert [json.loads(line)["task"] for line in again] == ["by-owner", "by-owner"]


def test_a_new_run_journals_the_unseen_end_of_the_run_before(sandbox: Sandbox) -> None:
    """A name run again clears its previous result: that run's end is journaled first, whoever looked or not, and
    a new run that then fails leaves no record directory behind (nothing half-made)."""
    ns = make_namespace(sandbox)
    sandbox.ok(ns, "run", "again", "sh", "-c", "exit 3")
    assert wait_until(lambda: '"state":"exited"' in sandbox.ok(ns, "ls", "--all", "--json").stdout.replace(" ", ""))
    sandbox.ok(ns, "run", "again", "sh", "-c", "exit 4")  # no events, wait nor run -f saw the first end
    assert wait_until(lambda: '"exit_code":4' in sandbox.ok(ns, "status", "--json", "again").stdout.replace(" ", ""))
    events = [json.loads(line) for line in sandbox.ok(ns, "events", "--json").stdout.splitlines()]
    seen = [(e["kind"], e["record"].get("exit_code")) for e in events if e["task"] == "again"]
    assert seen == [("started", None), ("ended", 3), ("started", None), ("ended", 4)], seen
    failed = sandbox.lanco(ns, "run", "-l", "/nonexistent-dir/a.log", "again", "true")
    assert failed.returncode == 1
    assert not (sandbox.state_dir(ns) / "tasks" / "again").exists()
    kinds = [json.loads(line)["kind"] for line in sandbox.ok(ns, "events", "--json").stdout.splitlines()]
    assert kinds.count("started") == 2 and kinds.count("ended") == 2  # the failed run journaled nothing
