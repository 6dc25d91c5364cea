"""stop A B C and stop --all: one task's failure, whatever it is, never keeps another from its stop.

The tasks' three steps (the stop turn, the first half of the stop, its second half) are replaced by fakes that
record what was done to whom and fail where a test says; everything between them and the command line is real.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pytest

from lanco import task as task_module
from lanco import taskstop
from lanco.cli import main
from lanco.errors import CgroupError, NotRunning, PermissionDenied, StateError
from lanco.state.record import TaskRecord
from tests.unit.test_cli import LINE, existing_namespace

FAILURES: dict[str, BaseException] = {
    "not-running": NotRunning("task {name} is not running"),
    "permission": PermissionDenied("cannot signal task {name}: permission denied"),
    "damaged": StateError("the record of task {name} is damaged"),
    "cgroup": CgroupError("task {name} still has processes after SIGKILL: 7"),
    "enoent": FileNotFoundError(2, "No such file or directory"),
    "bug": TypeError("'int' object is not iterable"),
}


class Steps:
    """What each task went through, and where each one fails: {name: (step, failure)}."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: dict[str, tuple[str, str]]) -> None:
        self.done: list[tuple[str, str]] = []
        self.fail = fail
        steps = self

        def step(name: str, which: str) -> None:
            steps.done.append((which, name))
            where, kind = steps.fail.get(name, ("", ""))
            if where == which:
                failure = FAILURES[kind]
                if isinstance(failure, OSError):
                    raise type(failure)(failure.errno, failure.strerror, f"/state/tasks/{name}/stop.lock")
                raise type(failure)(str(failure).format(name=name))

        def take_turn(self: task_module.Task, locks: contextlib.ExitStack[Any]) -> None:
            step(self.name, "turn")

        def begin(self: task_module.Task, timeout: float | None, stop_signal: int | None) -> tuple[float, float]:
            step(self.name, "begin")
            return 0.0, 0.0

        def finish(self: task_module.Task, deadline: float, restart_delay: float) -> TaskRecord:
            step(self.name, "finish")
            return TaskRecord("testns", self.name, "stopped")

        monkeypatch.setattr(taskstop, "take_turn", take_turn)
        monkeypatch.setattr(taskstop, "begin", begin)
        monkeypatch.setattr(taskstop, "finish", finish)
        monkeypatch.setattr(task_module.Task, "is_active", lambda self: True)

    def stopped(self) -> list[str]:
        return [name for which, name in self.done if which == "finish"]


def warnings(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The text of each line on stderr, every one in the original's form."""
    lines = capsys.readouterr().err.splitlines()
    matches = [re.fullmatch(LINE, line) for line in lines]
    assert all(m is not None and m["level"] == "WARN" and m["token"] == "stop" for m in matches), lines
    return [m["text"] for m in matches if m is not None]


@pytest.mark.parametrize("kind", sorted(FAILURES))
@pytest.mark.parametrize("where", ["turn", "begin", "finish"])
def test_every_task_gets_its_stop_past_a_failure(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                 where: str, kind: str) -> None:
    existing_namespace()
    steps = Steps(monkeypatch, {"b": (where, kind)})
    code = main(["testns", "stop", "a", "b", "c"])
    assert steps.stopped() == (["a", "b", "c"] if where == "finish" else ["a", "c"])
    # The first half of every stop before the second half of any.
    assert [which for which, _ in steps.done if which != "finish"][-1:] == ["begin"]
    assert max(i for i, (which, _) in enumerate(steps.done) if which != "finish") < \
        min(i for i, (which, _) in enumerate(steps.done) if which == "finish")
    texts = warnings(capsys)
    assert len(texts) == 1
    expected = {
        "not-running": "task b is not running", "permission": "cannot signal task b: permission denied",
        "damaged": "the record of task b is damaged", "cgroup": "task b still has processes after SIGKILL: 7",
        "enoent": "task b: No such file or directory: /state/tasks/b/stop.lock",
        "bug": "task b: internal error: TypeError: 'int' object is not iterable (lanco -dd shows where)"}[kind]
    assert texts == [expected]
    assert code == (70 if kind == "bug" else 1)


def test_each_failure_its_own_line_in_the_order_named_and_the_first_one_s_code(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The first failure in the order the tasks were named, though the second half of b's stop, where it fails,
    comes after the first half of d's."""
    existing_namespace()
    steps = Steps(monkeypatch, {"b": ("finish", "bug"), "d": ("turn", "not-running"), "e": ("begin", "enoent")})
    code = main(["testns", "stop", "a", "b", "c", "d", "e", "f"])
    assert steps.stopped() == ["a", "b", "c", "f"]
    assert warnings(capsys) == [
        "task b: internal error: TypeError: 'int' object is not iterable (lanco -dd shows where)",
        "task d is not running",
        "task e: No such file or directory: /state/tasks/e/stop.lock"]
    assert code == 70


def test_a_name_given_twice_is_stopped_once(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Twice would be a deadlock: the second stop turn waits for the lock the first one holds until the end."""
    existing_namespace()
    steps = Steps(monkeypatch, {})
    assert main(["testns", "stop", "a", "b", "a"]) == 0
    assert steps.stopped() == ["a", "b"]
    assert warnings(capsys) == []


def test_stop_all_stops_a_task_whose_state_cannot_be_read(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """stop --all asks each task whether it is active: one that cannot tell is stopped too (its stop says what
    it meets), rather than its question ending the whole command before any stop."""
    import os

    config = existing_namespace()
    for name in ("a", "b", "c"):
        os.makedirs(os.path.join(config.tasks_dir, name))
        # A record directory counts as a task's only with a record in it (a lock-only one is nobody's).
        with open(os.path.join(config.tasks_dir, name, "spec.json"), "w", encoding="utf-8") as f:
            f.write("{}")
    steps = Steps(monkeypatch, {"b": ("turn", "damaged")})

    def is_active(self: task_module.Task) -> bool:
        if self.name == "b":
            raise StateError("the record of task b is damaged")
        return True

    monkeypatch.setattr(task_module.Task, "is_active", is_active)
    assert main(["testns", "stop", "--all"]) == 1
    assert steps.stopped() == ["a", "c"]
    assert warnings(capsys) == ["the record of task b is damaged"]
