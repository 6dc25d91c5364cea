"""lanco.views.render: golden outputs of the ls tree, status text and the JSON documents."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from lanco import procfs
from lanco.state.record import TaskRecord
from lanco.views.render import (
    COMMAND_WIDTH,
    DUMP_SCHEMA_VERSION,
    SCHEMA_VERSION,
    LiveDetail,
    NamespaceInfo,
    describe_result,
    dump_json,
    dump_task,
    format_duration,
    limit_key,
    names,
    namespaces_json,
    namespaces_text,
    records_json,
    status_json,
    status_text,
    tree,
)

LONG_COMMAND = "python3 -m http.server --bind 127.0.0.1 --directory /srv/www/htdocs 8080"


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
        "        task: testns/t\n"
        "       state: exited, code 3\n"
        "     command: make -j4\n"
        "     started: 2023-11-14T22:13:20\n"
        "       ended: 2023-11-14T22:14:25\n"
        "   exit code: 3\n"
        "      signal: -\n"
        "    run time: 1m05s\n"
        "   processes: 0\n"
        "         cpu: 1.500s\n"
        "      memory: -\n"
        " memory peak: 64.0M\n"
        "   oom kills: 0\n"
        "         log: /var/log/lanco-testns/task-t.log\n"
        "exit command: -\n"
        "      limits: memory max 128.0M (as requested)\n"
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
    assert data["limits"] == {"memory_max_bytes": 1024}  # recorded as memory_max: the unit is added
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


# -- frozen, live detail, dump, namespaces ---------------------------------------------------------------------

PRESSURE = {"cpu_some": 12.5, "cpu_full": 3.0, "memory_some": 0.0, "memory_full": 0.0, "io_some": 1.25,
            "io_full": None}
LIVE = LiveDetail(limits_in_force={"memory_max_bytes": 64 << 20, "pids_max": 100, "cpu_quota_usec": 50000,
                                   "cpu_period_usec": 100000},
                  pressure=PRESSURE, memory_max_bytes=64 << 20)


def test_tree_marks_a_frozen_task_and_keeps_its_processes() -> None:
    text = tree("testns", [TaskRecord("testns", "cold", "frozen", pids=[7])], cmdlines={7: "sleep 9"})
    assert text == "testns\n ├ cold (frozen)\n │  → 7 sleep 9\n"


def test_names_one_a_line() -> None:
    assert names(records()) == "web\nt\nk\ngone\nboot\n"


def test_status_text_running_golden(utc: None) -> None:
    record = TaskRecord("testns", "web", "frozen", run_id="r2", argv=["httpd", "-X"], pids=[41, 42],
                        main_pid=41, started=1700000000.0, cpu_usec=2_250_000, memory_bytes=3 << 20,
                        memory_peak_bytes=5 << 20, oom_kills=0, log="/l/task-web.log", exit_command="echo bye",
                        limits={"memory_max": 64 << 20})
    assert status_text(record, LIVE, now=1700003725.0, cmdlines={41: "httpd -X", 42: "httpd -X worker"}) == (
        "        task: testns/web\n"
        "       state: frozen\n"
        "     command: httpd -X\n"
        "     started: 2023-11-14T22:13:20\n"
        "    run time: 1h02m\n"
        "   processes: 2\n"
        "              41 httpd -X\n"
        "              42 httpd -X worker\n"
        "         cpu: 2.250s\n"
        "      memory: 3.0M of 64.0M\n"
        " memory peak: 5.0M\n"
        "   oom kills: 0\n"
        "    pressure: cpu 12.50%, memory 0.00%, io 1.25% (some, avg10)\n"
        "         log: /l/task-web.log\n"
        "exit command: echo bye\n"
        "      limits: memory max 64.0M, pids max 100, cpu 50%\n"
    )


def test_status_json_carries_live_detail() -> None:
    record = TaskRecord("n", "t", "running", pids=[5], memory_bytes=10)
    data = json.loads(status_json(record, LIVE, cmdlines={5: "x"}))
    assert data["limits_in_force"] == {"cpu_period_usec": 100000, "cpu_quota_usec": 50000,
                                       "memory_max_bytes": 64 << 20, "pids_max": 100}
    assert data["pressure"] == {"cpu_some_avg10_percent": 12.5, "cpu_full_avg10_percent": 3.0,
                                "memory_some_avg10_percent": 0.0, "memory_full_avg10_percent": 0.0,
                                "io_some_avg10_percent": 1.25, "io_full_avg10_percent": None}
    assert data["process_count"] == 1
    assert json.loads(status_json(record))["pressure"] is None


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "-"), (-1, "-"), (0.25, "0.2s"), (9.96, "10.0s"), (42, "42s"), (307, "5m07s"), (10920, "3h02m"),
    (187200, "2d04h"),
])
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_limit_keys_gain_their_unit() -> None:
    assert limit_key("memory_max") == "memory_max_bytes"
    assert limit_key("memory_swap_max") == "memory_swap_max_bytes"
    assert limit_key("pids_max") == "pids_max"
    assert limit_key("cpu_quota_percent") == "cpu_quota_percent"


def dump_document() -> dict[str, Any]:
    record = TaskRecord("testns", "web", "running", run_id="r1", argv=["httpd"], pids=[41, 42], main_pid=41,
                        started=1700000000.0, cpu_usec=1500, memory_bytes=4096, memory_peak_bytes=8192,
                        oom_kills=0, log="/l/web.log")
    blind = TaskRecord("testns", "blind", "running", pids=[43])  # a mode without cpu or memory figures
    tasks = {"blind": dump_task(blind, cmdlines={43: "sleep 1"}),
             "web": dump_task(record, LIVE, cmdlines={41: "httpd", 42: "httpd worker"})}
    text = dump_json("testns", tasks, namespace_cpu_usec=2000, nbcpus=4, monotonic_ms=123456,
                     epoch_s=1700000100.5)
    assert text.startswith('{\n "schema_version": 1,\n "namespace": "testns",\n "count": 2,\n "cpu": 2000000,\n')
    data: dict[str, Any] = json.loads(text)
    return data


def test_dump_keeps_the_original_schema() -> None:
    data = dump_document()
    # The original's keys, names and units: cpu in nanoseconds, memory in bytes, timestamp monotonic ms.
    assert (data["namespace"], data["count"], data["cpu"], data["nbcpus"], data["timestamp"]) == \
        ("testns", 2, 2_000_000, 4, 123456)
    web = data["tasks"]["web"]
    assert (web["count"], web["cpu"], web["memory"]) == (2, 1_500_000, 4096)
    assert web["processes"] == [{"pid": 41, "cmdline": "httpd"}, {"pid": 42, "cmdline": "httpd worker"}]
    assert list(web)[:5] == ["count", "processes", "cpu", "memory", "namespace"]
    # As the original, a figure the kernel does not give is left out of the original keys, not null.
    blind = data["tasks"]["blind"]
    assert "cpu" not in blind and "memory" not in blind and blind["count"] == 1


def test_dump_adds_the_new_keys_with_units() -> None:
    data = dump_document()
    assert data["schema_version"] == DUMP_SCHEMA_VERSION == 1
    assert (data["timestamp_epoch_s"], data["cpu_usage_usec"]) == (1700000100.5, 2000)
    web = data["tasks"]["web"]
    assert (web["cpu_usage_usec"], web["memory_current_bytes"], web["memory_peak_bytes"]) == (1500, 4096, 8192)
    assert web["memory_max_bytes"] == 64 << 20 and web["state"] == "running" and web["process_count"] == 2
    assert web["pressure"]["cpu_some_avg10_percent"] == 12.5
    assert data["tasks"]["blind"]["cpu_usage_usec"] is None
    assert_units_in_keys(data, allowed={"cpu", "memory", "timestamp"})


def test_dump_task_keys_are_stable_and_ordered() -> None:
    data = dump_document()
    blind = data["tasks"]["blind"]
    assert list(blind) == [
        "count", "processes", "namespace", "name", "state", "run_id", "argv", "main_pid", "process_count",
        "started_epoch_s", "ended_epoch_s", "exit_code", "signal", "oom_kills", "cpu_usage_usec",
        "memory_current_bytes", "memory_peak_bytes", "log", "exit_command", "limits", "limits_in_force",
        "pressure", "labels", "description", "memory_max_bytes",
    ]


def namespace_info(name: str) -> NamespaceInfo:
    return NamespaceInfo(name=name, owner="alice", owner_uid=1000, group="staff", owner_gid=50, group_access=True,
                         cgroup_mode="hybrid", state_dir=f"/var/lib/lanco/{name}", log_dir=f"/var/log/lanco-{name}",
                         created=1700000000.25)


def test_namespaces_text_and_json() -> None:
    infos = [namespace_info("alpha"), namespace_info("beta")]
    assert namespaces_text(infos) == "alpha\nbeta\n"
    data = json.loads(namespaces_json(infos))
    assert data["schema_version"] == 1
    assert data["namespaces"][0] == {
        "name": "alpha", "owner": "alice", "owner_uid": 1000, "group": "staff", "owner_gid": 50,
        "group_access": True, "cgroup_mode": "hybrid", "state_dir": "/var/lib/lanco/alpha",
        "log_dir": "/var/log/lanco-alpha", "created_epoch_s": 1700000000.25}
    assert_units_in_keys(data)
    assert json.loads(namespaces_json([])) == {"schema_version": 1, "namespaces": []}


# Keys that hold numbers without a unit because they are counts or identifiers, not quantities.
UNITLESS = {"schema_version", "count", "process_count", "task_count", "pid", "main_pid", "exit_code", "signal",
            "oom_kills", "nbcpus", "owner_uid", "owner_gid", "pids_max"}
UNITS = ("_bytes", "_usec", "_s", "_percent", "_ms", "_bps")


def assert_units_in_keys(data: Any, allowed: frozenset[str] | set[str] = frozenset(), path: str = "") -> None:
    """Every number in ``data`` sits under a key that names its unit, or is a count or an identifier."""
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                # A per-device map such as {"io_read_bps": {"8:0": 1048576}} has its unit in its own key.
                assert key in UNITLESS or key in allowed or key.endswith(UNITS) or path.endswith(UNITS), \
                    f"{path}/{key} has no unit"
            if key == "tasks" and isinstance(value, dict):
                for name, task in value.items():  # dump keys its tasks by name: names are not units
                    assert_units_in_keys(task, allowed, f"{path}/tasks/{name}")
            else:
                assert_units_in_keys(value, allowed, f"{path}/{key}")
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, int | float) and not isinstance(item, bool):
                assert path.endswith(UNITS), f"{path} holds numbers without a unit"
            assert_units_in_keys(item, allowed, path)


def test_record_json_numbers_carry_units() -> None:
    record = TaskRecord("n", "t", "exited", run_id="r", argv=["a"], pids=[1], main_pid=1, started=1.0, ended=2.0,
                        exit_code=0, signal=None, oom_kills=0, cpu_usec=1, memory_bytes=2, memory_peak_bytes=3,
                        limits={"memory_max": 5, "pids_max": 7, "cpu_quota_percent": 50.0,
                                "io_read_bps": {"8:0": 1024}})
    assert_units_in_keys(json.loads(status_json(record, LIVE, cmdlines={1: "a"})))
    assert_units_in_keys(json.loads(records_json("n", [record], cmdlines={1: "a"})))


def test_requested_limits_as_run_records_them() -> None:
    record = TaskRecord("n", "t", "exited", exit_code=0, limits={
        "memory_max_bytes": 64 << 20, "memory_high_bytes": "max", "cpu_quota_percent": 150.0, "cpu_weight": 200,
        "cpuset": "0-3", "pids_max": 10, "io_read_bps": {"8:16": 1 << 20, "8:0": "max"}})
    line = next(x for x in status_text(record).splitlines() if x.lstrip().startswith("limits:"))
    assert line.split(": ", 1)[1] == (
        "cpu quota 150.0%, cpu weight 200, cpuset 0-3, io read 8:0 max/s, 8:16 1.0M/s, memory high unlimited, "
        "memory max 64.0M, pids max 10 (as requested)")
