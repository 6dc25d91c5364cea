"""Reading JSON with the json package's own C scanner, without importing the package.

``import json`` loads ``re`` (and with it ``enum``): on the paths of ``check`` and ``stop`` that is more than a
third of what lanco adds to the interpreter's start. ``_json.make_scanner`` is the very scanner ``json.loads``
uses, so documents parse exactly alike; the package itself is loaded only to raise its error for a bad one.
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


def loads(text: str) -> Any:
    """``json.loads(text)``: the same value, and for a document that is not JSON the same ``ValueError``
    (json.JSONDecodeError)."""
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration:
        end = -1
    if end < 0 or text[end:].strip(_WHITESPACE):
        import json

        return json.loads(text)  # raises the package's own error, with its message and position
    return value
