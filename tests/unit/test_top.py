"""lanco.views.top: frames built from two samples, checked against golden text and JSON. No I/O anywhere."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from lanco.views.top import (
    HISTORY_LENGTH,
    Frame,
    Sample,
    TaskSample,
    bar,
    build_frame,
    frame_data,
    frame_json,
    frame_lines,
    frame_text,
    sparkline,
)
from tests.unit.test_render import assert_units_in_keys

PSI = {"cpu_some": 4.5, "cpu_full": 4.5, "memory_some": 0.25, "memory_full": 0.0, "io_some": 12.0, "io_full": 1.0}
MIB = 1 << 20


pytestmark = pytest.mark.usefixtures("utc")


def sample(at: float, *tasks: TaskSample) -> Sample:
    return Sample(namespace="testns", monotonic_s=at, epoch_s=1700000000.0 + at, nbcpus=2,
                  memory_total_bytes=1024 * MIB, tasks=tasks)


def task(name: str, cpu_usec: int | None, *, pids: int = 1, memory: int | None = 10 * MIB,
         limit: int | None = None, command: str = "sleep 100", state: str = "running",
         pressure: Mapping[str, float | None] | None = None, oom_kills: int | None = 0) -> TaskSample:
    return TaskSample(name=name, state=state, process_count=pids, command=command, cpu_usage_usec=cpu_usec,
                      memory_current_bytes=memory, memory_max_bytes=limit, pressure=pressure, oom_kills=oom_kills)


def two_frames(sort: str = "cpu") -> Frame:
    before = sample(100.0,
                    task("busy", 1_000_000, command="sh -c while :; do :; done", pressure=PSI),
                    task("web", 5_000_000, pids=6, memory=200 * MIB, limit=400 * MIB, command="httpd -X"),
                    task("idle", 10, memory=None))
    after = sample(102.0,
                   task("busy", 2_990_000, command="sh -c while :; do :; done", pressure=PSI),
                   task("web", 5_500_000, pids=7, memory=300 * MIB, limit=400 * MIB, command="httpd -X",
                        oom_kills=3),
                   task("idle", 10, memory=None, oom_kills=None),
                   task("newcomer", 50, state="frozen", command="make -j8"))
    return build_frame(before, after, sort=sort)


def test_cpu_percent_is_the_usage_delta_over_the_interval() -> None:
    frame = two_frames()
    cpu = {r.name: r.cpu_percent for r in frame.rows}
    assert cpu["busy"] == pytest.approx(99.5)  # 1.99 s of CPU in 2 s
    assert cpu["web"] == pytest.approx(25.0)
    assert cpu["idle"] == 0.0
    assert cpu["newcomer"] is None  # first seen now: no delta yet
    assert frame.interval_s == pytest.approx(2.0)
    assert frame.cpu_percent == pytest.approx(124.5)
    assert frame.process_count == 10
    assert frame.memory_current_bytes == 320 * MIB


def test_memory_percent_is_of_the_limit_else_of_the_host() -> None:
    rows = {r.name: r for r in two_frames().rows}
    assert rows["web"].memory_percent == pytest.approx(75.0)
    assert rows["busy"].memory_percent == pytest.approx(10 / 1024 * 100)
    assert rows["idle"].memory_percent is None


def test_frame_text_golden() -> None:
    assert frame_text(two_frames()) == (
        "testns  4 tasks  10 processes  cpu 124.5% of 200%  memory 320.0M  sort cpu  22:15:02\n"
        "TASK     STATE    PIDS   CPU% CPU HISTORY   MEMORY  MEM%         OOM P.CPU P.MEM  P.IO COMMAND\n"
        "busy     running     1   99.5            █   10.0M   1.0 ▏         0   4.5   0.2  12.0 "
        "sh -c while :; do :; done\n"
        "web      running     7   25.0            ▃  300.0M  75.0 ████▌     3     -     -     - httpd -X\n"
        "idle     running     1    0.0            ▁       -     -           -     -     -     - sleep 100\n"
        "newcomer frozen      1      -                10.0M   1.0 ▏         0     -     -     - make -j8\n"
    )


@pytest.mark.parametrize(("sort", "order"), [
    ("cpu", ["busy", "web", "idle", "newcomer"]),
    ("memory", ["web", "busy", "newcomer", "idle"]),
    ("pids", ["web", "busy", "idle", "newcomer"]),
    ("name", ["busy", "idle", "newcomer", "web"]),
])
def test_sort_orders(sort: str, order: list[str]) -> None:
    assert [r.name for r in two_frames(sort).rows] == order


def test_unknown_sort_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown sort order"):
        build_frame(None, sample(0.0), sort="size")


def test_first_frame_has_no_cpu_percent() -> None:
    frame = build_frame(None, sample(5.0, task("a", 100)))
    assert frame.rows[0].cpu_percent is None and frame.interval_s is None and frame.cpu_percent is None
    assert frame.history == {"a": ()}
    assert frame_text(frame).splitlines()[2] == \
        "a    running     1      -                10.0M   1.0 ▏         0     -     -     - sleep 100"


def test_a_task_run_again_between_samples_has_no_cpu_percent() -> None:
    frame = build_frame(sample(0.0, task("a", 9_000_000)), sample(1.0, task("a", 1_000)))
    assert frame.rows[0].cpu_percent is None


def test_history_accumulates_and_is_capped() -> None:
    history: dict[str, tuple[float, ...]] = {}
    previous = sample(0.0, task("a", 0))
    for step in range(1, HISTORY_LENGTH + 5):
        current = sample(float(step), task("a", step * 100_000), task("gone", 0) if step < 3 else task("b", 0))
        frame = build_frame(previous, current, history=history)
        history = dict(frame.history)
        previous = current
    assert history["a"] == (pytest.approx(10.0),) * HISTORY_LENGTH
    assert "gone" not in history  # tasks that ended are forgotten
    assert len(history["b"]) == HISTORY_LENGTH


def test_sparkline_and_bar() -> None:
    assert sparkline((0.0, 50.0, 100.0, 250.0), width=6) == "  ▁▅██"
    assert sparkline((), width=3) == "   "
    assert bar(None, 4) == "    "
    assert bar(0.0, 4) == "    "
    assert bar(50.0, 4) == "██  "
    assert bar(56.25, 4) == "██▎ "
    assert bar(180.0, 4) == "████"


def test_narrow_screens_drop_columns_and_cut_lines() -> None:
    frame = two_frames()
    lines = frame_lines(frame, width=60)
    assert lines.header == "TASK     STATE    PIDS   CPU%  MEMORY  MEM%        COMMAND"
    assert lines.rows[0] == "busy     running     1   99.5   10.0M   1.0 ▏      sh -c wh…"
    assert lines.rows[1] == "web      running     7   25.0  300.0M  75.0 ████▌  httpd -X"
    assert all(len(line) <= 60 for line in (lines.summary, lines.header, *lines.rows))
    tiny = frame_lines(frame, width=30)
    assert tiny.header.startswith("TASK      PIDS   CPU%  MEMORY")
    assert all(len(line) <= 30 for line in (tiny.summary, tiny.header, *tiny.rows))
    wide = frame_lines(frame, width=200)
    assert wide.header == frame_lines(frame).header  # nothing dropped when it fits


def test_long_names_are_cut() -> None:
    name = "a-very-long-task-name-that-goes-on"
    frame = build_frame(None, sample(0.0, task(name, 0)))
    assert frame_text(frame).splitlines()[2].startswith("a-very-long-task-name-t… running")


def test_frame_json_golden() -> None:
    line = frame_json(two_frames())
    assert line.endswith("\n") and "\n" not in line[:-1]
    data = json.loads(line)
    assert {k: data[k] for k in list(data)[:10]} == {
        "schema_version": 1, "namespace": "testns", "timestamp_epoch_s": 1700000102.0, "interval_s": 2.0,
        "nbcpus": 2, "sort": "cpu", "task_count": 4, "process_count": 10, "cpu_percent": 124.5,
        "memory_current_bytes": 320 * MIB,
    }
    assert data["tasks"][0] == {
        "name": "busy", "state": "running", "process_count": 1, "command": "sh -c while :; do :; done",
        "cpu_percent": 99.5, "cpu_history_percent": [99.5], "cpu_usage_usec": 2_990_000,
        "memory_current_bytes": 10 * MIB, "memory_max_bytes": None, "memory_percent": 0.98, "oom_kills": 0,
        "pressure": {"cpu_some_avg10_percent": 4.5, "cpu_full_avg10_percent": 4.5,
                     "memory_some_avg10_percent": 0.25, "memory_full_avg10_percent": 0.0,
                     "io_some_avg10_percent": 12.0, "io_full_avg10_percent": 1.0},
        "labels": {}, "description": None,
    }
    assert data["tasks"][3]["cpu_percent"] is None and data["tasks"][3]["state"] == "frozen"
    assert [t["oom_kills"] for t in data["tasks"]] == [0, 3, None, 0]
    assert_units_in_keys(data)


def test_empty_namespace_frame() -> None:
    frame = build_frame(sample(0.0), sample(1.0))
    assert frame_text(frame) == (
        "testns  0 tasks  0 processes  cpu -% of 200%  memory -  sort cpu  22:13:21\n"
        "TASK STATE    PIDS   CPU% CPU HISTORY   MEMORY  MEM%         OOM P.CPU P.MEM  P.IO COMMAND\n"
    )
    assert frame_data(frame)["tasks"] == [] and frame_data(frame)["cpu_percent"] is None
