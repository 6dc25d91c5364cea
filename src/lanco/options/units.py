"""Parsing of sizes (``512K``, ``64M``, ``2G``, ``max``) and durations (``500ms``, ``30s``, ``5m``, ``2h``)."""

from __future__ import annotations

import math

from lanco.errors import UsageError

# Compiled on first use (re caches them): stop and run import this module, and most calls parse nothing.
_SIZE = r"([0-9]+)([KMGT]?)(i?B?)"
_SIZE_FACTORS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_DURATION = r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)?"
"""The grammar of a duration: split_duration reads it by hand, and the tests hold it to this."""
_DURATION_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}

MAX = -1
MAX_DURATION = 10 * 365 * 86400.0
"""The value of ``max``: no limit."""


def parse_size(text: str, *, what: str = "size", allow_zero: bool = False) -> int:
    """Bytes for ``text``; ``MAX`` for ``max``. Zero is refused unless ``allow_zero`` (a swap limit of 0 means none)."""
    import re  # parsing only: a run without options loads no re
    if text.strip().lower() in ("max", "infinity"):
        return MAX
    match = re.fullmatch(_SIZE, text.strip(), re.IGNORECASE | re.ASCII)
    if not match:
        raise UsageError(f"invalid {what} {text!r}: expected a number of bytes with K, M, G or T, or max")
    value = int(match.group(1)) * _SIZE_FACTORS[match.group(2).upper()]
    if value == 0 and allow_zero:
        return 0
    if value <= 0:
        raise UsageError(f"invalid {what} {text!r}: must be greater than zero")
    return value


def parse_duration(text: str, *, what: str = "duration", allow_zero: bool = False) -> float:
    """Seconds for ``text`` (a bare number is seconds); must be positive, or zero with ``allow_zero``."""
    split = split_duration(text)
    if split is None:
        raise UsageError(f"invalid {what} {text!r}: expected a number with ms, s, m, h or d")
    value = float(split[0]) * _DURATION_FACTORS[split[1]]
    if not math.isfinite(value) or value > MAX_DURATION:
        raise UsageError(f"invalid {what} {text!r}: longer than {MAX_DURATION / 86400:.0f} days")
    if value == 0 and allow_zero:
        return 0.0
    if value <= 0:
        raise UsageError(f"invalid {what} {text!r}: must be greater than zero")
    return value


def split_duration(text: str) -> tuple[str, str | None] | None:
    """(number, unit or None) when ``text``, stripped, is a duration as ``_DURATION`` reads it; else None. By hand:
    re (with enum) would be a third of what ``stop -t 5s`` and a frame of ``top -d 1`` load."""
    stripped = text.strip()
    unit = next((u for u in ("ms", "s", "m", "h", "d") if stripped.endswith(u)), None)
    number = stripped[:-len(unit)] if unit else stripped
    whole, dot, fraction = number.partition(".")
    if not _digits(whole) or (dot and not _digits(fraction)):
        return None
    return number, unit


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def format_size(value: int | None) -> str:
    if value is None:
        return "-"
    if value == MAX:
        return "max"
    for unit, factor in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if value >= factor:
            return f"{value / factor:.1f}{unit}"
    return f"{value}B"


def parse_seconds(raw: float | str, what: str, *, allow_zero: bool = False) -> float:
    """A duration given as a number of seconds (the API) or as text with a unit (the command line)."""
    if isinstance(raw, bool):
        raise UsageError(f"invalid {what} {raw!r}")
    if isinstance(raw, int | float):
        raw = repr(float(raw)) if raw >= 0 else str(raw)
    return parse_duration(str(raw), what=what, allow_zero=allow_zero)


def parse_whole(raw: int | str, what: str, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high``, given as a number or as its digits."""
    import re

    if isinstance(raw, bool) or not re.fullmatch(r"-?[0-9]+", str(raw).strip(), re.ASCII):
        raise UsageError(f"invalid {what} {raw!r}: expected a whole number")
    value = int(str(raw).strip())
    if not low <= value <= high:
        raise UsageError(f"invalid {what} {raw!r}: must be from {low} to {high}")
    return value
