"""Messages on stderr in the original lanĉo's form: ``2026-11-28T17:15:14 [WARN/run] text``."""

from __future__ import annotations

import sys
import time

_debug_level = 0
_debug_tokens: set[str] = set()


def configure(debug_level: int, tokens: list[str]) -> None:
    global _debug_level, _debug_tokens
    _debug_level = debug_level
    _debug_tokens = set(tokens)


def one_line(text: str) -> str:
    """Escape control and line-separator characters, so that a message stays one line whatever it quotes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _emit(level: str, token: str, text: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    sys.stderr.write(f"{stamp} [{level}/{token}] {one_line(text)}\n")
    sys.stderr.flush()


def warn(token: str, text: str) -> None:
    _emit("WARN", token, text)


def info(token: str, text: str) -> None:
    if _debug_level >= 1:
        _emit("INFO", token, text)


def debugging(token: str) -> bool:
    """True when debug messages of ``token`` are shown (``-dd``, and ``-D TOKEN`` if any is given)."""
    return _debug_level >= 2 and (not _debug_tokens or token in _debug_tokens)


def debug(token: str, text: str) -> None:
    if debugging(token):
        _emit("DEBUG", token, text)
