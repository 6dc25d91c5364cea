"""Parsing of sizes (``512K``, ``64M``, ``2G``, ``max``) and durations (``500ms``, ``30s``, ``5m``, ``2h``)."""

from __future__ import annotations

import math

from lanco.errors import UsageError

# Compiled on first use (re caches them): stop and run import this module, and most calls parse nothing.
_SIZE = r"([0-9]+)([KMGT]?)(i?B?)"
_SIZE_FACTORS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_DURATION = r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)?"
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
    import re  # parsing only: a run without options loads no re
    match = re.fullmatch(_DURATION, text.strip(), re.ASCII)
    if not match:
        raise UsageError(f"invalid {what} {text!r}: expected a number with ms, s, m, h or d")
    value = float(match.group(1)) * _DURATION_FACTORS[match.group(2)]
    if not math.isfinite(value) or value > MAX_DURATION:
        raise UsageError(f"invalid {what} {text!r}: longer than {MAX_DURATION / 86400:.0f} days")
    if value == 0 and allow_zero:
        return 0.0
    if value <= 0:
        raise UsageError(f"invalid {what} {text!r}: must be greater than zero")
    return value


def format_size(value: int | None) -> str:
    if value is None:
        return "-"
    if value == MAX:
        return "max"
    for unit, factor in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if value >= factor:
            return f"{value / factor:.1f}{unit}"
    return f"{value}B"
