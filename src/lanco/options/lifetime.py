"""A task's lifetime: when the monitor stops and restarts it, and how ``stop`` ends it.

Its own module because ``stop`` and ``wait`` read a lifetime from the task's record and need nothing else of the
run plan (lanco.options.runopts): the parsers it takes for ``run`` load only when ``run`` builds one.
"""

from __future__ import annotations

from _collections_abc import Mapping

from lanco.errors import UsageError
from lanco.values import FrozenValue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SIGTERM = 15
"""The default stop signal (its number on every Linux architecture). re, signal and lanco.options.units are imported
where values are parsed, not here: stop reads a Lifetime from its record and needs none of them."""
DEFAULT_STOP_TIMEOUT = 10.0
DEFAULT_RESTART_DELAY = 0.1
"""As systemd's RestartSec: long enough that a command failing at once does not spin a CPU."""
RESTART_POLICIES = ("no", "on-failure", "always")


class Lifetime(FrozenValue):
    """When the monitor stops and restarts the task, and how ``stop`` ends it."""

    _fields = ("timeout", "stop_signal", "stop_timeout", "restart", "restart_max", "restart_delay")
    __slots__ = _fields
    timeout: float | None
    stop_signal: int
    stop_timeout: float
    restart: str
    restart_max: int | None
    restart_delay: float

    def __init__(self, timeout: float | None = None, stop_signal: int = SIGTERM,
                 stop_timeout: float = DEFAULT_STOP_TIMEOUT, restart: str = "no", restart_max: int | None = None,
                 restart_delay: float = DEFAULT_RESTART_DELAY) -> None:
        self._set_fields(timeout, stop_signal, stop_timeout, restart, restart_max, restart_delay)

    @classmethod
    def build(cls, options: Mapping[str, Any]) -> Lifetime:
        from lanco.options.units import parse_seconds, parse_whole

        values: dict[str, Any] = {}
        if options.get("timeout") is not None:
            values["timeout"] = parse_seconds(options["timeout"], "timeout")
        if options.get("stop_signal") is not None:
            from lanco.options.signals import parse_signal  # signal's enum only for a run that names one

            values["stop_signal"] = parse_signal(options["stop_signal"], "stop signal")
        if options.get("stop_timeout") is not None:
            values["stop_timeout"] = parse_seconds(options["stop_timeout"], "stop timeout")
        restart = options.get("restart")
        if restart is not None:
            if restart not in RESTART_POLICIES:
                raise UsageError(f"invalid restart policy {restart!r}: expected {', '.join(RESTART_POLICIES)}")
            values["restart"] = restart
        for key in ("restart_max", "restart_delay"):
            if options.get(key) is not None and values.get("restart", "no") == "no":
                raise UsageError(f"--{key.replace('_', '-')} needs --restart on-failure or always")
        if options.get("restart_max") is not None:
            values["restart_max"] = parse_whole(options["restart_max"], "restart count", 1, 1_000_000)
        if options.get("restart_delay") is not None:
            values["restart_delay"] = parse_seconds(options["restart_delay"], "restart delay", allow_zero=True)
        return cls(**values)

    def as_record(self) -> dict[str, Any]:
        return {"timeout_s": self.timeout, "stop_signal": self.stop_signal, "stop_timeout_s": self.stop_timeout,
                "restart": self.restart, "restart_max": self.restart_max, "restart_delay_s": self.restart_delay}

    @classmethod
    def from_record(cls, record: Any) -> Lifetime:
        """The lifetime a record holds; a record without one (or a damaged one) gets the defaults."""
        if not isinstance(record, Mapping):
            return cls()
        try:
            timeout = record.get("timeout_s")
            restart_max = record.get("restart_max")
            return cls(timeout=None if timeout is None else float(timeout),
                       stop_signal=int(record.get("stop_signal", SIGTERM)),
                       stop_timeout=float(record.get("stop_timeout_s", DEFAULT_STOP_TIMEOUT)),
                       restart=str(record.get("restart", "no")),
                       restart_max=None if restart_max is None else int(restart_max),
                       restart_delay=float(record.get("restart_delay_s", DEFAULT_RESTART_DELAY)))
        except (TypeError, ValueError):
            return cls()
