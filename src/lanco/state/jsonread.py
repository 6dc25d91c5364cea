"""Reading JSON with the json package's own C scanner, without importing the package.

``import json`` loads ``re`` (and with it ``enum``): on the paths of ``check`` and ``stop`` that is more than a
third of what lanco adds to the interpreter's start. ``_json.make_scanner`` is the very scanner ``json.loads``
uses, so documents parse exactly alike. For a text it does not read to the end, whatever it did (raised
StopIteration, ValueError, or, with the json package unloaded, SystemError: its error path looks ``json.decoder``
up in ``sys.modules`` without importing it, and without it returns NULL with no exception set), the package is
loaded and ``json.loads`` itself gives the answer: the same error, message and position, by construction.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WHITESPACE = " \t\n\r"


class _Settings:
    """What the scanner asks of json.JSONDecoder: the defaults of json.loads."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}.__getitem__


_scan = _json.make_scanner(_Settings())  # type: ignore[arg-type]  # typeshed names only the decoder class


class NestedTooDeeply(ValueError, RecursionError):
    """What json.loads raises as a RecursionError (nesting deeper than the interpreter's recursion limit), also a
    ValueError: to a reader of state files that is one more damaged document, refused as the others are."""


def loads(text: str) -> Any:
    """``json.loads(text)``: the same value, and for a document that is not JSON the same ``ValueError``
    (json.JSONDecodeError); for one nested too deeply :class:`NestedTooDeeply`, a RecursionError as json.loads
    raises that is also a ValueError."""
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except Exception:  # json.loads below says what is wrong, in its own words
        end = -1
    if end < 0 or text[end:].strip(_WHITESPACE):
        return _package_loads(text)
    return value


def _package_loads(text: str) -> Any:
    import json

    try:
        return json.loads(text)  # raises the package's own error, with its message and position
    except RecursionError as exc:
        raise NestedTooDeeply(str(exc)) from None
