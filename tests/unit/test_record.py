"""lanco.state.record: spec.json, the key=value result file written once, and how a result fills a record."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanco.errors import StateError
from lanco.state.record import (
    FINISHED_STATES,
    TaskRecord,
    apply_result,
    apply_spec,
    read_int_file,
    read_result,
    read_spec,
    write_result,
    write_spec,
)


class TestSpec:
    def test_round_trip(self, tmp_path: Path) -> None:
        spec = {"run_id": "r1", "argv": ["sleep", "10"], "started": 1700000000.5, "log": "/l/task-t.log",
                "exit_command": "echo done", "limits": {"memory_max": 1 << 20}}
        write_spec(str(tmp_path), spec)
        assert read_spec(str(tmp_path)) == spec
        assert sorted(os.listdir(tmp_path)) == ["spec.json"]  # the temp file was renamed, not left behind
        write_spec(str(tmp_path), {"run_id": "r2"})
        assert read_spec(str(tmp_path)) == {"run_id": "r2"}

    def test_missing(self, tmp_path: Path) -> None:
        assert read_spec(str(tmp_path)) is None
        assert read_spec(str(tmp_path / "no-such-dir")) is None

    @pytest.mark.parametrize(("content", "why"), [
        (b'{"run_id": "r1", "argv": [', "Expecting value"),
        (b"", "Expecting value"),
        (b'["a", "list"]', "not an object"),
        (b'"text"', "not an object"),
        (b"\xff\xfe garbage", "codec"),
        (b"[" * 100_000, "recursion"),
        (b'{"argv": 5}', "argv is not a list of strings"),
        (b'{"argv": ["sleep", 1]}', "argv is not a list of strings"),
        (b'{"argv": [], "limits": []}', "limits is not an object"),
        (b'{"run_id": 7}', "run_id is not a string"),
        (b'{"started": "yesterday"}', "started is not a number"),
        (b'{"started": true}', "started is not a number"),
        (b'{"log": {"path": "/x"}}', "log is not a string"),
    ])
    def test_damaged(self, tmp_path: Path, content: bytes, why: str) -> None:
        state = tmp_path / "my-task"
        state.mkdir()
        (state / "spec.json").write_bytes(content)
        with pytest.raises(StateError) as caught:
            read_spec(str(state))
        assert caught.value.message.startswith(f"the record of task my-task is damaged: {state / 'spec.json'}: ")
        assert why in caught.value.message

    def test_apply_spec(self) -> None:
        record = TaskRecord("ns", "t", "unknown")
        apply_spec(record, {"run_id": "r1", "argv": ["a", "b"], "started": 12.5, "log": "/x.log",
                            "exit_command": "true", "limits": {"memory_max": 5}})
        assert (record.run_id, record.argv, record.started, record.log, record.exit_command, record.limits) == \
               ("r1", ["a", "b"], 12.5, "/x.log", "true", {"memory_max": 5})
        empty = TaskRecord("ns", "t", "unknown")
        apply_spec(empty, {})
        assert (empty.run_id, empty.argv, empty.limits) == (None, [], {})


class TestResult:
    def test_write_then_read(self, tmp_path: Path) -> None:
        assert write_result(str(tmp_path), {"result": "exited", "exit_code": "3", "run_id": "r1"}) is True
        assert (tmp_path / "result").read_text() == "result=exited\nexit_code=3\nrun_id=r1\n"
        os.utime(tmp_path / "result", (1700000000.0, 1700000123.0))
        assert read_result(str(tmp_path)) == ({"result": "exited", "exit_code": "3", "run_id": "r1"},
                                              1700000123.0)
        assert sorted(os.listdir(tmp_path)) == ["result"]

    def test_write_refuses_to_overwrite(self, tmp_path: Path) -> None:
        assert write_result(str(tmp_path), {"result": "exited", "exit_code": "0"}) is True
        assert write_result(str(tmp_path), {"result": "lost"}) is False
        fields, _ = read_result(str(tmp_path)) or ({}, 0.0)
        assert fields == {"result": "exited", "exit_code": "0"}
        assert sorted(os.listdir(tmp_path)) == ["result"]  # the loser's temp file is gone too

    def test_missing(self, tmp_path: Path) -> None:
        assert read_result(str(tmp_path)) is None

    def test_lines_are_split_at_the_first_equals_sign(self, tmp_path: Path) -> None:
        (tmp_path / "result").write_text("result=stopped\nnote=a=b\nno separator here\n\nsignal=15\n")
        fields, _ = read_result(str(tmp_path)) or ({}, 0.0)
        assert fields == {"result": "stopped", "note": "a=b", "signal": "15"}

    @pytest.mark.parametrize("content", ["", "exit_code=0\n", "garbage\n", "Result=exited\n"])
    def test_damaged(self, tmp_path: Path, content: str) -> None:
        state = tmp_path / "my-task"
        state.mkdir()
        (state / "result").write_text(content)
        with pytest.raises(StateError) as caught:
            read_result(str(state))
        assert caught.value.message == f"the result of task my-task is damaged: {state / 'result'}"

    def test_unreadable(self, tmp_path: Path) -> None:
        (tmp_path / "result").mkdir()  # EISDIR, even for root
        with pytest.raises(StateError, match=r"cannot read the result of task .*result"):
            read_result(str(tmp_path))

    def test_undecodable_result_is_damaged(self, tmp_path: Path) -> None:
        (tmp_path / "result").write_bytes(b"result=exited\nexit_code=\xff\xfe\n")
        with pytest.raises(StateError, match="result"):
            read_result(str(tmp_path))


class TestApplyResult:
    def test_fields(self) -> None:
        record = TaskRecord("ns", "t", "running", pids=[5])
        apply_result(record, {"result": "killed", "exit_code": "137", "signal": "9", "oom_kills": "0",
                              "cpu_usec": "1234", "memory_peak_bytes": "4096"}, 99.5)
        assert (record.state, record.exit_code, record.signal, record.oom_kills, record.cpu_usec,
                record.memory_peak_bytes, record.ended) == ("killed", 137, 9, 0, 1234, 4096, 99.5)
        assert not record.running

    def test_cpu_nsec_is_converted(self) -> None:
        record = TaskRecord("ns", "t", "running")
        apply_result(record, {"result": "exited", "cpu_nsec": "2500001999"}, 1.0)
        assert record.cpu_usec == 2500001

    def test_cpu_usec_wins_over_cpu_nsec(self) -> None:
        record = TaskRecord("ns", "t", "running")
        apply_result(record, {"result": "exited", "cpu_usec": "7", "cpu_nsec": "9000000"}, 1.0)
        assert record.cpu_usec == 7

    def test_empty_and_garbled_numbers_are_none(self) -> None:
        record = TaskRecord("ns", "t", "running", exit_code=1, cpu_usec=5)
        apply_result(record, {"result": "lost", "exit_code": "", "signal": "x", "cpu_usec": "",
                              "cpu_nsec": "?"}, 1.0)
        assert (record.state, record.exit_code, record.signal, record.oom_kills, record.cpu_usec,
                record.memory_peak_bytes) == ("lost", None, None, None, None, None)


def test_finished_states() -> None:
    assert set(FINISHED_STATES) == {"exited", "killed", "stopped", "oom", "timeout", "lost"}
    for state in ("running", "starting", "finishing", "unknown"):
        assert state not in FINISHED_STATES


@pytest.mark.parametrize(("state", "running"), [
    ("running", True), ("starting", True), ("finishing", False), ("exited", False), ("lost", False),
    ("unknown", False),
])
def test_record_running(state: str, running: bool) -> None:
    assert TaskRecord("ns", "t", state).running is running


def test_as_dict_is_json_ready() -> None:
    data = TaskRecord("ns", "t", "exited", argv=["a"], exit_code=0).as_dict()
    assert json.loads(json.dumps(data))["argv"] == ["a"]
    assert data["namespace"] == "ns" and data["exit_code"] == 0


def test_read_int_file(tmp_path: Path) -> None:
    path = tmp_path / "monitor"
    assert read_int_file(str(path)) == []
    path.write_text("1234 5678\n")
    assert read_int_file(str(path)) == [1234, 5678]
    path.write_text("12 x\n")
    assert read_int_file(str(path)) == []


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20)


@given(_JSON_VALUES)
def test_specs_are_written_as_json_dumps_writes_them(value: object) -> None:
    from lanco.state.record import compact_json

    assert compact_json(value) == json.dumps(value, sort_keys=True)
