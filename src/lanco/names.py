"""Validation of task and namespace names: they become path components, so nothing else is allowed."""

from __future__ import annotations

from lanco.errors import InvalidName

NAME_RULE = "1-64 characters of [A-Za-z0-9_.-], not starting with '.' or '-'"
_NAME_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
# A set rather than a regular expression: check runs in loops of scripts, and re is dear to import.


def _valid(name: str) -> bool:
    return 0 < len(name) <= 64 and name[0] not in ".-" and _NAME_CHARACTERS.issuperset(name)


def check_task_name(name: str) -> str:
    if not _valid(name):
        raise InvalidName(f"invalid task name {name!r}: {NAME_RULE}")
    return name


def check_namespace_name(name: str) -> str:
    if not _valid(name):
        raise InvalidName(f"invalid namespace name {name!r}: {NAME_RULE}")
    return name
