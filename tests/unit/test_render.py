"""lanco.render: golden outputs of the ls tree, status text and the JSON documents."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

from lanco import procfs
from lanco.record import TaskRecord
from lanco.render import COMMAND_WIDTH, SCHEMA_VERSION, describe_result, records_json, status_json, status_text, tree

LONG_COMMAND = "python3 -m http.server --bind 127.0.0.1 --directory /srv/www/htdocs 8080"


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def records() -> list[TaskRecord]:
    return [
        TaskRecord("testns", "web", "running", argv=LONG_COMMAND.split(), pids=[101, 102, 103]),
        TaskRecord("testns", "t", "exited", exit_code=3),
        TaskRecord("testns", "k", "killed", exit_code=137, signal=9),
        TaskRecord("testns", "gone", "lost"),
        TaskRecord("testns", "boot", "starting"),
    ]


CMDLINES = {101: "sleep 1000", 102: LONG_COMMAND}


def test_tree_golden() -> None:
    assert tree("testns", records(), cmdlines=CMDLINES) == (
        "testns\n"
        " ├ web\n"
        " │  → 101 sleep 1000\n"
        " │  → 102 python3 -m http.server --bind 127.0.0.1 --directo…\n"
        " │  → 103\n"
        " ├ t (exited, code 3)\n"
        " ├ k (killed, signal 9)\n"
        " ├ gone (lost)\n"
        " ├ boot\n"
    )


def test_tree_long_keeps_the_whole_command() -> None:
    text = tree("testns", records()[:1], long=True, cmdlines=CMDLINES)
    assert f" │  → 102 {LONG_COMMAND}\n" in text
    assert "…" not in text


def test_tree_cut_is_exactly_the_width() -> None:
    exact = "x" * COMMAND_WIDTH
    over = "y" * (COMMAND_WIDTH + 1)
    text = tree("n", [TaskRecord("n", "a", "running", pids=[1, 2])], cmdlines={1: exact, 2: over})
    assert text.splitlines()[2:] == [f" │  → 1 {exact}", f" │  → 2 {'y' * (COMMAND_WIDTH - 1)}…"]


def test_tree_of_an_empty_namespace() -> None:
    assert tree("testns", [], cmdlines={}) == "testns\n"


def test_tree_reads_proc_without_cmdlines() -> None:
    me = os.getpid()
    text = tree("n", [TaskRecord("n", "self", "running", pids=[me])], long=True)
    assert text.splitlines()[2] == f" │  → {me} {procfs.cmdline(me)}".rstrip()
    assert procfs.cmdline(me)  # this process has a command line


@pytest.mark.parametrize(("record", "text"), [
    (TaskRecord("n", "t", "exited", exit_code=0), "exited, code 0"),
    (TaskRecord("n", "t", "stopped", exit_code=143, signal=15), "stopped, signal 15"),
    (TaskRecord("n", "t", "oom", exit_code=137, signal=9), "oom, signal 9"),
    (TaskRecord("n", "t", "timeout", exit_code=124), "timeout, code 124"),
    (TaskRecord("n", "t", "exited"), "exited"),
    (TaskRecord("n", "t", "lost", exit_code=None), "lost"),
    (TaskRecord("n", "t", "lost", exit_code=1), "lost"),
    (TaskRecord("n", "t", "finishing"), "finishing"),
])
def test_describe_result(record: TaskRecord, text: str) -> None:
    assert describe_result(record) == text


def test_status_text_finished_golden(utc: None) -> None:
    record = TaskRecord("testns", "t", "exited", run_id="r1", argv=["make", "-j4"], started=1700000000.0,
                        ended=1700000065.0, exit_code=3, oom_kills=0, cpu_usec=1500000,
                        memory_peak_bytes=64 << 20, log="/var/log/lanco-testns/task-t.log",
                        limits={"memory_max": 128 << 20})
    assert status_text(record) == (
        "            task: testns/t\n"
        "           state: exited, code 3\n"
        "         command: make -j4\n"
        "         started: 2023-11-14T22:13:20\n"
        "           ended: 2023-11-14T22:14:25\n"
        "       exit code: 3\n"
        "          signal: -\n"
        "       processes: 0\n"
        "             cpu: 1.500s\n"
        "          memory: -\n"
        "     memory peak: 64.0M\n"
        "       oom kills: 0\n"
        "             log: /var/log/lanco-testns/task-t.log\n"
        "    exit command: -\n"
        "limit memory max: 128.0M\n"
    )


def test_status_text_running_lists_processes(utc: None) -> None:
    me = os.getpid()
    record = TaskRecord("testns", "web", "running", argv=["sleep", "9"], pids=[me], memory_bytes=2048,
                        exit_command="echo bye")
    lines = status_text(record).splitlines()
    width = len("exit command")
    assert lines[:5] == [
        "        task: testns/web",
        "       state: running",
        "     command: sleep 9",
        "     started: -",
        "   processes: 1",
    ]
    assert lines[5] == f"{'':>{width}}  {me} {procfs.cmdline(me)}"
    assert "      memory: 2.0K" in lines
    assert "exit command: echo bye" in lines
    assert not any(line.lstrip().startswith(("ended:", "exit code:", "signal:")) for line in lines)


def test_status_json_schema() -> None:
    record = TaskRecord("testns", "t", "exited", run_id="r1", argv=["true"], started=1.5, ended=2.5,
                        exit_code=0, cpu_usec=10, memory_bytes=None, memory_peak_bytes=4096,
                        limits={"memory_max": 1024})
    data = json.loads(status_json(record))
    assert data["schema_version"] == SCHEMA_VERSION == 1
    assert data["name"] == "t" and data["namespace"] == "testns" and data["state"] == "exited"
    assert data["processes"] == []
    assert (data["cpu_usage_usec"], data["memory_peak_bytes"], data["memory_current_bytes"]) == (10, 4096, None)
    assert (data["started_epoch_s"], data["ended_epoch_s"]) == (1.5, 2.5)
    assert data["limits"] == {"memory_max": 1024}
    # Every figure carries its unit in its key: no bare "cpu", "memory" or "started".
    for bare in ("cpu", "cpu_usec", "memory", "memory_bytes", "started", "ended"):
        assert bare not in data


def test_status_json_processes() -> None:
    me = os.getpid()
    data = json.loads(status_json(TaskRecord("n", "t", "running", pids=[me], main_pid=me)))
    assert data["processes"] == [{"pid": me, "cmdline": procfs.cmdline(me)}]
    assert data["main_pid"] == me


def test_records_json() -> None:
    text = records_json("testns", [TaskRecord("testns", "a", "exited", exit_code=0),
                                   TaskRecord("testns", "b", "lost")])
    assert text.endswith("}\n")
    data = json.loads(text)
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["namespace"] == "testns"
    assert [(t["name"], t["state"], t["exit_code"]) for t in data["tasks"]] == [("a", "exited", 0),
                                                                               ("b", "lost", None)]
    assert "schema_version" not in data["tasks"][0]
    assert json.loads(records_json("testns", [])) == {"schema_version": 1, "namespace": "testns", "tasks": []}
