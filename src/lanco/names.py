"""Validation of task and namespace names: they become path components, so nothing else is allowed."""

from __future__ import annotations

import re

from lanco.errors import InvalidName

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
NAME_RULE = "1-64 characters of [A-Za-z0-9_.-], not starting with '.' or '-'"


def check_task_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidName(f"invalid task name {name!r}: {NAME_RULE}")
    return name


def check_namespace_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidName(f"invalid namespace name {name!r}: {NAME_RULE}")
    return name
