"""Signals as options name them (``TERM``, ``SIGINT``, ``15``, ``RTMIN+2``): ``run --stop-signal`` and ``kill -s``.

``signal`` wraps every number in an enum and loads enum with it: only these parsers import it (lanco.signums holds
the numbers the other commands need).
"""

from __future__ import annotations

from lanco.errors import UsageError


def parse_signal(raw: int | str, what: str = "signal") -> int:
    """A signal number from ``TERM``, ``SIGTERM``, ``sigterm``, ``15`` or ``RTMIN+2``; 0 is refused."""
    import re
    import signal

    from lanco import signums

    if isinstance(raw, bool):
        raise UsageError(f"invalid {what} {raw!r}")
    text = str(raw).strip()
    number: int | None = None
    if re.fullmatch(r"[0-9]+", text, re.ASCII):
        number = int(text)
    else:
        name = text.upper().removeprefix("SIG")
        realtime = re.fullmatch(r"RTM(IN|AX)([+-][0-9]+)?", name, re.ASCII)
        if realtime:
            base = signal.SIGRTMIN if realtime.group(1) == "IN" else signal.SIGRTMAX
            number = int(base) + int(realtime.group(2) or 0)
            if not signal.SIGRTMIN <= number <= signal.SIGRTMAX:
                number = None
        else:
            member = getattr(signal.Signals, f"SIG{name}", None)
            number = None if member is None or name.startswith("_") else int(member)
    if number is None or number not in signums.valid_signals():
        raise UsageError(f"invalid {what} {raw!r}: expected a signal name (TERM, SIGINT, RTMIN+1) or number")
    return number


def signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIGRTMIN+{number - signal.SIGRTMIN}" if number >= signal.SIGRTMIN else str(number)
