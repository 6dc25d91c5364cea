"""Damaged state files: every command answers in one line in the original's form, never with a traceback.

A state file is damaged when it is cut short by a crash, overwritten by hand or by a bug, or holds the right
syntax in the wrong shape. lanco reads them before anything else has loaded the json package (see
lanco.state.jsonread), so these run as a user would run lanco: one fresh process per command.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Sandbox
from tests.integration.conftest import EMULATED
from tests.integration.test_lifecycle import MESSAGE

SPEC_DAMAGE = ["{not json", "{", "", "[1, 2]", '{"argv": 5, "limits": [], "started": "x", "log": 7}',
               '{"argv": ["a", 1], "limits": {"memory_max": "x"}, "started": null, "run_id": []}', b"\xff\xfe{}",
               "[" * 100_000]
RESULT_DAMAGE = ["garbage", "", b"\xff\xfe", "result=\nexit_code=x\nsignal=y\ncpu_usec=z\n", "result=nonsense\n"]
CONFIG_DAMAGE = ["{not json", "{", "", "[1]", '{"mode": 5}', '{"owner_uid": "x", "state_dir": 1}', b"\xff",
                 {"owner_uid": "x"}, {"state_dir": 1}, {"group_access": "yes"}, {"mode": None}, {"created": "x"}]
"""Texts, or changes to the namespace's own configuration (whole, but with a field of the wrong type)."""
if EMULATED:
    # Each case runs some twenty commands, seconds each in the emulated guest: there, one of each kind of damage
    # (not JSON, cut short, the wrong shape) stands for the rest, which the host runs all.
    SPEC_DAMAGE, RESULT_DAMAGE, CONFIG_DAMAGE = SPEC_DAMAGE[:1] + SPEC_DAMAGE[4:5], RESULT_DAMAGE[:1], \
        CONFIG_DAMAGE[:1] + CONFIG_DAMAGE[7:8]


def commands(task: str) -> list[list[str]]:
    """Every command that reads state, on ``task``; release last, as it may succeed and remove everything."""
    return [["check", task], ["status", task], ["status", "--json", task], ["ls"], ["ls", "--all"],
            ["ls", "-l", "--all"], ["ls", "--json", "--all"], ["ls", "-q", "--all"], ["dump"], ["top", "-n", "1"],
            ["logs", task], ["wait", "-t", "1", task], ["kill", "-s", "CONT", task], ["stop", "-t", "1", task],
            ["stop", "--all"], ["release", "-n", task], ["release", task], ["release", "-n"], ["release"]]


def assert_answers_in_one_line(sandbox: Sandbox, ns: str, task: str) -> None:
    for args in commands(task):
        result = sandbox.lanco(ns, *args, timeout=30)
        where = f"lanco {ns} {' '.join(args)} -> {result.returncode}: {result.stderr}"
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr, where
        # 255: wait on a run whose result is lost (one that does not belong to the run is replaced by lost).
        assert result.returncode in ((0, 1, 255) if args[0] == "wait" else (0, 1)), where
        lines = result.stderr.splitlines()
        # A running task whose record is damaged is served from its cgroup: one line says so, once, and the
        # command's own answer (one line at most) follows.
        answers = [line for line in lines if "known from its cgroup only" not in line]
        assert len(lines) - len(answers) <= 1 and len(answers) <= 1, where
        if result.returncode == 1 and args[0] != "check":
            assert len(lines) >= 1, where
        for line in lines:
            match = MESSAGE.fullmatch(line)
            assert match and match.group(1) == args[0], where


@contextlib.contextmanager
def damaged(path: Path, content: str | bytes | dict[str, object]) -> Iterator[None]:
    """``path`` damaged while the block runs, then restored (so that the sandbox's teardown can stop and release
    what the test started)."""
    original = path.read_bytes()
    if isinstance(content, dict):
        content = json.dumps({**json.loads(original), **content})
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    try:
        yield
    finally:
        if path.parent.is_dir():  # release may have forgotten the task or the namespace, as it should
            path.write_bytes(original)


@pytest.mark.parametrize("content", SPEC_DAMAGE, ids=range(len(SPEC_DAMAGE)))
@pytest.mark.parametrize("which", ["finished", "running"])
def test_damaged_spec(sandbox: Sandbox, ns: str, which: str, content: str | bytes) -> None:
    sandbox.ok(ns, "run", "finished", "true")
    assert sandbox.lanco(ns, "wait", "finished").returncode == 0
    sandbox.ok(ns, "run", "running", "sleep", "300")
    sandbox.ok(ns, "run", "bystander", "sleep", "300")
    with damaged(sandbox.state_dir(ns) / "tasks" / which / "spec.json", content):
        assert_answers_in_one_line(sandbox, ns, which)


@pytest.mark.parametrize("content", RESULT_DAMAGE, ids=range(len(RESULT_DAMAGE)))
def test_damaged_result(sandbox: Sandbox, ns: str, content: str | bytes) -> None:
    sandbox.ok(ns, "run", "finished", "true")
    assert sandbox.lanco(ns, "wait", "finished").returncode == 0
    sandbox.ok(ns, "run", "bystander", "sleep", "300")
    with damaged(sandbox.state_dir(ns) / "tasks" / "finished" / "result", content):
        assert_answers_in_one_line(sandbox, ns, "finished")


@pytest.mark.parametrize("content", CONFIG_DAMAGE, ids=range(len(CONFIG_DAMAGE)))
def test_damaged_config(sandbox: Sandbox, ns: str, content: str | bytes | dict[str, object]) -> None:
    sandbox.ok(ns, "run", "running", "sleep", "300")
    with damaged(sandbox.state_dir(ns) / "config.json", content):
        assert_answers_in_one_line(sandbox, ns, "running")
        namespaces = sandbox.lanco("ls")
        assert (namespaces.returncode, namespaces.stderr) == (0, "")
    assert sandbox.lanco(ns, "check", "running").returncode == 0


def test_release_forgets_a_damaged_record(sandbox: Sandbox, ns: str) -> None:
    """The case of the report: release ended in a traceback. A damaged record is what release is for."""
    for name in ("first", "second"):
        sandbox.ok(ns, "run", name, "true")
        assert sandbox.lanco(ns, "wait", name).returncode == 0
    (sandbox.state_dir(ns) / "tasks" / "first" / "spec.json").write_text("{not json")
    (sandbox.state_dir(ns) / "tasks" / "second" / "result").write_text("garbage")
    status = sandbox.lanco(ns, "status", "first")
    assert status.returncode == 1
    assert MESSAGE.fullmatch(status.stderr.strip())
    assert "the record of task first is damaged" in status.stderr and "spec.json" in status.stderr
    sandbox.ok(ns, "release", "second")
    assert not (sandbox.state_dir(ns) / "tasks" / "second").exists()
    assert sandbox.ok(ns, "release").stderr == ""
    assert not (sandbox.state_dir(ns) / "config.json").exists()


def test_stop_all_stops_every_task_past_a_damaged_record(sandbox: Sandbox, ns: str) -> None:
    sandbox.ok(ns, "run", "finished", "true")
    assert sandbox.lanco(ns, "wait", "finished").returncode == 0
    for name in ("a", "b"):
        sandbox.ok(ns, "run", name, "sleep", "300")
    with damaged(sandbox.state_dir(ns) / "tasks" / "finished" / "spec.json", "{not json"):
        sandbox.ok(ns, "stop", "--all")
    for name in ("a", "b"):
        assert sandbox.lanco(ns, "check", name).returncode == 1, name
