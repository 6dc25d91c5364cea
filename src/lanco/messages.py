"""Messages on stderr in the original lanĉo's form: ``2026-11-28T17:15:14 [WARN/run] text``."""

from __future__ import annotations

import sys
import time

_debug_level = 0
_debug_tokens: set[str] = set()
_command = "lanco"


def set_command(token: str) -> None:
    """The command running (``stop``, ``ls``): what warnings from deep inside it are tagged with."""
    global _command
    _command = token


def command() -> str:
    return _command


def configure(debug_level: int, tokens: list[str]) -> None:
    global _debug_level, _debug_tokens
    _debug_level = debug_level
    _debug_tokens = set(tokens)


_NAMED_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape_character(c: str) -> str:
    if (named := _NAMED_ESCAPES.get(c)) is not None:
        return named
    if c.isprintable():
        return c
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode keeps it (surrogateescape)
        code -= 0xDC00
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape(text: str) -> str:
    """``text`` as every text view shows what came from a user or a task (command lines, paths, results): each
    character that is not printable as itself (``str.isprintable``: controls, line and paragraph separators,
    format characters such as bidi overrides) as a backslash escape, ``\\t`` ``\\n`` ``\\r`` or ``\\xNN``,
    ``\\uNNNN``, ``\\UNNNNNNNN`` (a byte that is not UTF-8: ``\\xNN``), and the backslash itself as ``\\\\``, as
    ``ls -b`` and systemd do, so that a shown line is one line of the view and reads back unambiguously."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(map(_escape_character, text))


def one_line(text: str) -> str:
    """A message on one line whatever it quotes: the characters :func:`escape` escapes, but the backslash, as
    messages quote what a user gave with ``repr``, which escapes alike (inside quotes) and would be doubled."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape_character(c) for c in text)


def _emit(level: str, token: str, text: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    sys.stderr.write(f"{stamp} [{level}/{token}] {one_line(text)}\n")
    sys.stderr.flush()


def warn(token: str, text: str) -> None:
    _emit("WARN", token, text)


def announce(token: str, text: str) -> None:
    """An INFO line whatever the debug level: what a command reports as its outcome (``restore``, one line per
    namespace; ``logs --rotate -v``, one per log), where :func:`info` is what ``-d`` adds."""
    _emit("INFO", token, text)


def info(token: str, text: str) -> None:
    if _debug_level >= 1:
        _emit("INFO", token, text)


def debugging(token: str) -> bool:
    """True when debug messages of ``token`` are shown (``-dd``, and ``-D TOKEN`` if any is given)."""
    return _debug_level >= 2 and (not _debug_tokens or token in _debug_tokens)


def debug(token: str, text: str) -> None:
    if debugging(token):
        _emit("DEBUG", token, text)
