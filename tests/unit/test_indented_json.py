"""lanco.views.render.indented_json and compact_json: the very text of json.dumps(value, indent=N), and of json.dumps
with tight separators, whatever the value."""

from __future__ import annotations

import collections
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanco.state.record import TaskRecord
from lanco.views.render import LiveDetail, compact_json, dump_json, dump_task, indented_json, records_json, status_json

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    st.text())
KEYS = st.one_of(st.text(), st.integers(), st.floats(allow_nan=False), st.booleans(), st.none())
VALUES = st.recursive(SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=5), st.tuples(children, children),
    st.dictionaries(KEYS, children, max_size=5)), max_leaves=40)


@settings(max_examples=500, deadline=None)
@given(value=VALUES, indent=st.integers(min_value=0, max_value=4))
def test_same_text_as_json_dumps(value: Any, indent: int) -> None:
    assert indented_json(value, indent) == json.dumps(value, indent=indent)


TRICKY = [
    "",
    "é ü 漢字 🎉",  # non-ASCII, and a character outside the BMP (a surrogate pair once escaped)
    "\ud800 lone surrogate",
    "\x00\x01\x1f\t\r\n\x7f\u2028\u2029",
    'quote " backslash \\ slash /',
    ",\n  ",  # the item separator itself, inside a string
    '": null',
    "null",
    "[{]}",
    {},
    [],
    (),
    [[]],
    [{}],
    {"": {}},
    [[[]], [[1]], [[], [2, [3, {}]]]],
    {"a": {"b": {"c": {"d": []}}}, "e": [{"f": None}, {}, [{}]]},
    {"argv": ["sleep", "3600"], "processes": [{"pid": 1, "cmdline": "a\nb"}], "limits": {}, "pressure": None},
    {1: "int key", 2.5: "float key", False: "bool key", None: "null key"},
    [float("nan"), float("inf"), -float("inf"), -0.0, 1e300, 1.5, 10**30, True, False, None],
    collections.OrderedDict([("z", 1), ("a", [1, 2])]),
    [collections.OrderedDict([("nested", collections.OrderedDict([("x", [])]))])],
    [0, -1, 12345678901234567890],
]


@pytest.mark.parametrize("indent", [0, 1, 2, 4])
@pytest.mark.parametrize("value", TRICKY, ids=range(len(TRICKY)))
def test_tricky_values(value: Any, indent: int) -> None:
    assert indented_json(value, indent) == json.dumps(value, indent=indent)


def test_what_json_refuses_it_refuses_alike() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        indented_json({"when": object()}, 2)
    with pytest.raises(TypeError, match="keys must be"):
        indented_json([{(1, 2): "tuple key"}], 2)
    loop: list[Any] = []
    loop.append([loop])
    with pytest.raises(ValueError, match="Circular reference"):
        indented_json({"loop": loop}, 2)


def test_documents_are_those_of_json_dumps() -> None:
    """ls --json and status --json indent by two, dump by one, as they did through json.dumps."""
    record = TaskRecord("testns", "web", "running", run_id="r1", argv=["sleep", "é\n"], pids=[1, 2], main_pid=1,
                        started=1795889339.78, cpu_usec=5, memory_bytes=4096, limits={"memory_max": 1 << 20})
    live = LiveDetail(limits_in_force={"pids_max": 10}, pressure={"cpu_some": 0.5}, memory_max_bytes=None)
    cmdlines = {1: "sleep 1", 2: "x \x01 y"}
    for text, indent in ((records_json("testns", [record, record], cmdlines), 2),
                         (status_json(record, live, cmdlines), 2),
                         (dump_json("testns", {"web": dump_task(record, live, cmdlines)}, namespace_cpu_usec=7,
                                    nbcpus=2, monotonic_ms=1, epoch_s=2.5), 1)):
        assert text == json.dumps(json.loads(text), indent=indent) + "\n"


@settings(max_examples=300, deadline=None)
@given(value=VALUES)
def test_compact_json_is_the_text_of_json_dumps_with_tight_separators(value: Any) -> None:
    assert compact_json(value) == json.dumps(value, separators=(",", ":"))


def test_compact_json_leaves_to_json_dumps_what_the_c_encoder_refuses() -> None:
    with pytest.raises(TypeError):
        compact_json({"when": object()})
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        compact_json(loop)
