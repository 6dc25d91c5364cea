"""lanco.state.jsonread reads what json.loads reads, the same way, and refuses what it refuses with the same error.

lanco's commands read state files before anything has imported the json package (that is the point of jsonread),
and CPython's scanner behaves differently then: its error path looks ``json.decoder`` up in ``sys.modules``
without importing it, and without it returns NULL with no exception set (a SystemError). pytest itself has the
package loaded, so every comparison here runs with json unloaded, as in a fresh ``lanco`` process.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lanco
from lanco.state.jsonread import loads

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20)


def _json_modules() -> list[str]:
    return [name for name in sys.modules if name == "json" or name.startswith("json.")]


@contextlib.contextmanager
def json_unloaded() -> Iterator[None]:
    """The json package out of sys.modules while the block runs (a fresh copy may be imported inside it), and
    pytest's own copy back afterwards."""
    saved = {name: sys.modules.pop(name) for name in _json_modules()}
    try:
        yield
    finally:
        for name in _json_modules():
            del sys.modules[name]
        sys.modules.update(saved)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def outcome(read: Callable[[str], Any], text: str) -> tuple[str, Any]:
    """("value", the value) or (the exception's class name, its message): whatever the reader raises."""
    try:
        return "value", read(text)
    except Exception as exc:
        return type(exc).__name__, str(exc)


def ours(text: str) -> tuple[str, Any]:
    with json_unloaded():
        return outcome(loads, text)


def assert_alike(text: str) -> None:
    mine, theirs = ours(text), outcome(json.loads, text)
    assert mine[0] == theirs[0], (text, mine, theirs)
    assert same(mine[1], theirs[1]) if mine[0] == "value" else mine[1] == theirs[1], (text, mine, theirs)


def test_json_unloaded_hides_the_package() -> None:
    """The condition the tests below depend on: without it they would pass against a scanner that fails."""
    with json_unloaded():
        assert "json.decoder" not in sys.modules
    assert sys.modules["json"] is json


@settings(max_examples=300, deadline=None)
@given(value=VALUES, indent=st.sampled_from([None, 2]), padding=st.sampled_from(["", " ", "\n\t "]))
def test_documents_read_as_json_reads_them(value: Any, indent: int | None, padding: str) -> None:
    text = padding + json.dumps(value, indent=indent) + padding
    with json_unloaded():
        assert same(loads(text), json.loads(text))


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet='{}[]":,0123456789.eE+-ntrufalsNIy \\u\n', max_size=12))
def test_json_like_text_gets_json_s_own_answer(text: str) -> None:
    assert_alike(text)


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_arbitrary_text_gets_json_s_own_answer(text: str) -> None:
    assert_alike(text)


@settings(max_examples=300, deadline=None)
@given(value=VALUES, cut=st.integers(min_value=0), insert=st.text(max_size=3))
def test_damaged_documents_get_json_s_own_answer(value: Any, cut: int, insert: str) -> None:
    """A document cut short (a file truncated mid-write) or with a stray character in it."""
    text = json.dumps(value)
    at = cut % (len(text) + 1)
    assert_alike(text[:at])
    assert_alike(text[:at] + insert + text[at:])


@pytest.mark.parametrize("text", ["{", "{not json", "[{", '{"a": {', '{"a" 1}', '[1 2]', '{"a":1,}', "\ufeff{}",
                                  '{"a": 1} {"b": 2}', "", "   ", '"\\x"', "1" * 5000])
def test_each_kind_of_damage_is_refused_alike(text: str) -> None:
    assert_alike(text)


def test_a_fresh_interpreter_reads_a_damaged_document_as_json_does() -> None:
    """The form in which the fault was found: ``loads("{")`` as the first JSON a lanco process reads."""
    package_parent = os.path.dirname(os.path.dirname(lanco.__file__))
    program = ("import sys\n"
               f"sys.path.insert(0, {package_parent!r})\n"
               "from lanco.state.jsonread import loads\n"
               "try:\n"
               "    loads('{not json')\n"
               "except ValueError as exc:\n"
               "    print(type(exc).__name__, exc)\n")
    result = subprocess.run([sys.executable, "-I", "-c", program], capture_output=True, text=True, check=False,
                            timeout=60)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "JSONDecodeError Expecting property name enclosed in double quotes: line 1 column 2 " \
                            "(char 1)\n"


@pytest.mark.parametrize("opening", ["[", '{"a": '])
def test_nesting_too_deep_for_json_is_a_value_error(opening: str) -> None:
    """json.loads raises RecursionError for nesting deeper than the interpreter's recursion limit; jsonread raises
    the same, as a ValueError too, so that every reader refusing a damaged file also refuses this one."""
    text = opening * 100_000
    with pytest.raises(RecursionError):
        json.loads(text)
    with json_unloaded(), pytest.raises(ValueError, match="recursion") as caught:
        loads(text)
    assert isinstance(caught.value, RecursionError)
