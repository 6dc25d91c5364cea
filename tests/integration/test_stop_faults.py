"""stop A B C and stop --all on the real kernel: a task whose stop fails keeps no other from its stop."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import Sandbox
from tests.integration.conftest import no_process_left, task_pids, wait_until
from tests.integration.test_lifecycle import MESSAGE

STUBBORN = "trap '' TERM; sleep 300 & while true; do sleep 1; done"
"""A task that ignores the stop signal: only the kill after the grace ends it (what a stop cut short skips)."""


def warnings(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    matches = [MESSAGE.fullmatch(line) for line in lines]
    assert all(m is not None and m.group(1) == "stop" for m in matches), stderr
    return [m.group(2) for m in matches if m is not None]


def start_stubborn(sandbox: Sandbox, ns: str, *names: str) -> list[int]:
    for name in names:
        sandbox.ok(ns, "run", name, "sh", "-c", STUBBORN)
    assert wait_until(lambda: all(len(task_pids(sandbox, ns, n)) >= 2 for n in names))
    return [p for n in names for p in task_pids(sandbox, ns, n)]


@contextlib.contextmanager
def unwritable_stop_marker(sandbox: Sandbox, ns: str, task: str) -> Iterator[Path]:
    """A directory where ``task``'s stop marker goes: its stop fails with an OSError (EISDIR) until the block
    ends, then it is stopped."""
    marker = sandbox.state_dir(ns) / "tasks" / task / "stop"
    marker.mkdir()
    try:
        yield marker
    finally:
        marker.rmdir()
        sandbox.ok(ns, "stop", "-t", "1", task)


def eisdir(task: str, marker: Path) -> re.Pattern[str]:
    return re.compile(rf"task {task}: Is a directory: {re.escape(str(marker))}\.\d+ -> {re.escape(str(marker))}")


def test_stop_of_several_goes_past_a_task_whose_stop_fails(sandbox: Sandbox, ns: str) -> None:
    """b's stop marker cannot be written: an OSError, which ended the whole command before the others' kills,
    and before c got anything at all."""
    pids = start_stubborn(sandbox, ns, "a", "b", "c")
    b_pids = task_pids(sandbox, ns, "b")
    with unwritable_stop_marker(sandbox, ns, "b") as marker:
        result = sandbox.lanco(ns, "stop", "-t", "1", "a", "nosuch", "b", "c")
        assert result.returncode == 1
        lines = warnings(result.stderr)
        assert len(lines) == 2 and lines[0] == "task nosuch is not running", lines
        assert eisdir("b", marker).fullmatch(lines[1]), lines
        for name in ("a", "c"):
            assert json.loads(sandbox.ok(ns, "status", "--json", name).stdout)["state"] == "stopped", name
        assert no_process_left([p for p in pids if p not in b_pids])
        assert sandbox.lanco(ns, "check", "b").returncode == 0  # b runs on, and its line says so
        assert sorted(p.name for p in marker.parent.iterdir() if p.name.startswith("stop")) == ["stop", "stop.lock"]
    assert no_process_left(pids)


def test_stop_all_goes_past_a_task_whose_stop_fails(sandbox: Sandbox, ns: str) -> None:
    pids = start_stubborn(sandbox, ns, "a", "b", "c")
    b_pids = task_pids(sandbox, ns, "b")
    with unwritable_stop_marker(sandbox, ns, "b") as marker:
        result = sandbox.lanco(ns, "stop", "-t", "1", "--all")
        assert result.returncode == 1
        lines = warnings(result.stderr)
        assert len(lines) == 1 and eisdir("b", marker).fullmatch(lines[0]), lines
        assert no_process_left([p for p in pids if p not in b_pids])
        assert [sandbox.lanco(ns, "check", n).returncode for n in ("a", "b", "c")] == [1, 0, 1]
    assert no_process_left(pids)


def test_a_name_given_twice_is_stopped_once(sandbox: Sandbox, ns: str) -> None:
    """Twice, the second stop turn would wait for the stop lock the first one holds until the end: for ever."""
    pids = start_stubborn(sandbox, ns, "a", "b")
    result = sandbox.lanco(ns, "stop", "-t", "1", "a", "b", "a", timeout=30)
    assert (result.returncode, result.stderr) == (0, "")
    assert no_process_left(pids)
