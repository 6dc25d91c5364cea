"""lanco.jsonread reads what json.loads reads, the same way, and refuses what it refuses with the same error."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lanco.jsonread import loads

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def outcome(read: Any, text: str) -> tuple[str, Any]:
    try:
        return "value", read(text)
    except ValueError as exc:
        return type(exc).__name__, str(exc)


@settings(max_examples=300, deadline=None)
@given(value=VALUES, indent=st.sampled_from([None, 2]), padding=st.sampled_from(["", " ", "\n\t "]))
def test_documents_read_as_json_reads_them(value: Any, indent: int | None, padding: str) -> None:
    text = padding + json.dumps(value, indent=indent) + padding
    assert same(loads(text), json.loads(text))


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet='{}[]":,0123456789.eE+-ntrufalsNIy \\u\n', max_size=12))
def test_anything_else_gets_json_s_own_answer(text: str) -> None:
    ours, theirs = outcome(loads, text), outcome(json.loads, text)
    assert ours[0] == theirs[0]
    assert same(ours[1], theirs[1]) if ours[0] == "value" else ours[1] == theirs[1]


def test_byte_order_mark_and_trailing_data_are_refused_alike() -> None:
    for text in ("\ufeff{}", '{"a": 1} {"b": 2}', "", "   "):
        assert outcome(loads, text) == outcome(json.loads, text)
