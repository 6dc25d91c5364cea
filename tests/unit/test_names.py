"""lanco.names: task and namespace names become path components, so only a narrow alphabet is allowed."""

from __future__ import annotations

import string
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanco.errors import InvalidName, UsageError
from lanco.names import check_namespace_name, check_task_name

CHECKS: list[Callable[[str], str]] = [check_task_name, check_namespace_name]
ALLOWED = set(string.ascii_letters + string.digits + "_.-")

VALID = ["a", "first-task", "a.b-c_1", "_hidden-ish", "0", "A" * 64, "x" + "." * 63, "9-..-_"]
INVALID = ["", "../x", "..", ".", "a/b", "/abs", ".x", ".monitors", "-x", "-", "a" * 65, "tâche", "naïve",
           "a b", "a\nb", "a\n", "tab\t", "x;y", "a:b", "*", "ünïcode", "٣", "ａ"]


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("name", VALID)
def test_valid_names(check: Callable[[str], str], name: str) -> None:
    assert check(name) == name


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("name", INVALID)
def test_invalid_names(check: Callable[[str], str], name: str) -> None:
    with pytest.raises(InvalidName) as caught:
        check(name)
    assert repr(name) in caught.value.message
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 2


def test_the_messages_say_which_kind_of_name() -> None:
    with pytest.raises(InvalidName, match=r"^invalid task name '\.\./x': 1-64 characters"):
        check_task_name("../x")
    with pytest.raises(InvalidName, match=r"^invalid namespace name 'a/b': 1-64 characters"):
        check_namespace_name("a/b")


def _rule(name: str) -> bool:
    return 1 <= len(name) <= 64 and set(name) <= ALLOWED and name[0] not in ".-"


@given(st.text(alphabet=st.sampled_from([*sorted(ALLOWED), "/", " ", "\n", "â", "\x00", "é", "\u212a"]),
               max_size=70) | st.text(max_size=70))
def test_acceptance_is_exactly_the_rule(name: str) -> None:
    for check in CHECKS:
        try:
            check(name)
            accepted = True
        except InvalidName:
            accepted = False
        assert accepted == _rule(name), name
