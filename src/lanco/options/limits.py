"""A task's resource limits: parsed once from the command line's strings or the API's values, checked against the
namespace's cgroup mode before anything is created, then written through the backend. Everything about a limit
comes from its entry in one table, ``SPECS`` (lanco.options.limittable); this module holds how each kind of value
is parsed, recorded and shown.

Values keep the user's units here (bytes, percent of one CPU, weights of 1-10000 as in cgroup v2); the backend
converts them to what each mode's files take (``cpu.shares``, ``cpu.cfs_quota_us``, memory plus swap, ...).
``MAX`` (from ``units``) stands for ``max``: no limit, which ``set`` uses to lift one.
"""

from __future__ import annotations

import math
import os
import stat

# _collections_abc, not collections.abc: the package collections would load with it, for one name.
from _collections_abc import Mapping

from lanco.errors import UsageError
from lanco.options.limittable import SPECS
from lanco.options.units import MAX, format_size, parse_size
from lanco.values import FrozenValue

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any

    from lanco.cgroups.backend import Backend
    from lanco.options.limittable import DeviceRates


class DeviceRate(FrozenValue):
    _fields = ("device", "rate")
    __slots__ = _fields
    device: str
    """``MAJ:MIN`` of the block device."""
    rate: int
    """Bytes per second, or ``MAX``."""

    def __init__(self, device: str, rate: int) -> None:
        self._set_fields(device, rate)


SYS_DEV_BLOCK = "/sys/dev/block"
"""Where the kernel lists block devices by MAJ:MIN."""
CPU_PERCENT_MIN = 1.0
"""cgroups take a quota of at least 1 ms per 100 ms period: 1 % of a CPU."""
CPU_PERCENT_MAX = 100_000.0
WEIGHT_RANGE = (1, 10_000)

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The limit options of ``run`` and ``set``; each lands under its ``Limits`` field name."""
    for key, spec in SPECS.items():
        # A list of rates is given one DEV=RATE at a time.
        parser.add_argument(*spec.option.split("/"), dest=key, metavar=spec.metavar, help=spec.help,
                            action="append" if spec.kind == "rates" else "store")


def given(namespace: argparse.Namespace) -> dict[str, Any]:
    """The limits given on a command line parsed with :func:`add_arguments`, as options for :meth:`Limits.build`."""
    return {key: getattr(namespace, key) for key in SPECS if getattr(namespace, key, None) is not None}


class Limits(FrozenValue):
    """Limits to enforce on one task, one field per entry of SPECS; None (or an empty tuple of rates) leaves a
    limit as the kernel has it."""

    _fields = tuple(SPECS)
    __slots__ = _fields

    if TYPE_CHECKING:
        # The fields come from the table; a type checker takes each as Any rather than a declaration to repeat.
        def __getattr__(self, name: str) -> Any: ...

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(SPECS)
        if unknown:
            raise TypeError(f"unknown limit {sorted(unknown)[0]!r}")
        self._set_fields(*(values.get(key, KINDS[SPECS[key].kind].unset) for key in self._fields))

    # -- building ------------------------------------------------------------------------------------------

    @classmethod
    def build(cls, options: Mapping[str, Any]) -> Limits:
        """Parse the limit keys of ``options`` (other keys are ignored); UsageError on the first bad value."""
        values: dict[str, Any] = {}
        for key, raw in options.items():
            if key not in SPECS or raw is None:
                continue
            spec = SPECS[key]
            values[key] = KINDS[spec.kind].parse(raw, spec.what)
        return cls(**values)

    def __bool__(self) -> bool:
        return any(True for _ in self.items())

    def items(self) -> Iterator[tuple[str, Any]]:
        """The limits that are set, in the table's order, as (key, value)."""
        for key, value in zip(self._fields, self.field_values(), strict=True):
            if value is not None and value != ():
                yield key, value

    def merged(self, newer: Limits) -> Limits:
        """These limits with those set in ``newer`` replacing them (``set`` on a running task)."""
        values = dict(zip(self._fields, self.field_values(), strict=True))
        values.update(newer.items())
        return Limits(**values)

    # -- enforcing -----------------------------------------------------------------------------------------

    def check(self, backend: Backend, ns: str, *, running: bool = False) -> None:
        """Refuse, before anything is created, a limit the namespace's cgroup mode cannot enforce. For a
        ``running`` task (``set``) the limits it has count too: its memory limit is what swap adds to on v1."""
        for key, _ in self.items():
            backend.check_limit(ns, key, SPECS[key].option)
        if self.memory_swap_max is not None and self.memory_swap_max != MAX and not running:
            backend.check_swap_limit(ns, SPECS["memory_swap_max"].option, self.memory_max is not None)

    def apply(self, backend: Backend, ns: str, task: str) -> None:
        """Write the limits into the task's cgroups (before the task joins them, or while it runs for ``set``)."""
        backend.apply_limits(ns, task, self)

    # -- the record ----------------------------------------------------------------------------------------

    def as_record(self) -> dict[str, Any]:
        """The limits as JSON-ready data for the task's record; numbers carry their unit in their key and an
        explicit "no limit" is the string ``max``."""
        return {SPECS[key].record_key: KINDS[SPECS[key].kind].to_record(value) for key, value in self.items()}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Limits:
        """The inverse of :meth:`as_record`; unknown or damaged entries are skipped, never fatal."""
        values: dict[str, Any] = {}
        by_record_key = {spec.record_key: key for key, spec in SPECS.items()}
        by_record_key["memory_max"] = "memory_max"  # records written before the keys carried units
        for record_key, value in record.items():
            key = by_record_key.get(record_key)
            if key is None:
                continue
            try:
                values[key] = KINDS[SPECS[key].kind].from_record(value)
            except (TypeError, ValueError):
                continue
        return cls(**values)


def describe(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Human-readable (label, value) pairs of a record's ``limits``, for ``status`` and the like."""
    return [(SPECS[key].option.rpartition("--")[2], KINDS[SPECS[key].kind].text(value))
            for key, value in Limits.from_record(record).items()]


def _max_or(value: int | float) -> int | float | str:
    return "max" if value == MAX else value


def _from_max(value: Any) -> Any:
    return MAX if value == "max" else value


def _size_text(value: int) -> str:
    return "max" if value == MAX else format_size(value)


# -- parsers: one per kind of value, each taking the command line's string or the API's number ------------------

def _size(raw: int | str, what: str, *, allow_zero: bool = False) -> int:
    if isinstance(raw, bool):
        raise UsageError(f"invalid {what} {raw!r}: expected a number of bytes")
    if isinstance(raw, int):
        if raw == MAX or raw > 0 or (allow_zero and raw == 0):
            return raw
        raise UsageError(f"invalid {what} {raw}: must be greater than zero")
    return parse_size(str(raw), what=what, allow_zero=allow_zero)


def _swap(raw: int | str, what: str) -> int:
    return _size(raw, what, allow_zero=True)


def _cpu_quota(raw: float | str, what: str) -> float:
    if isinstance(raw, str):
        text = raw.strip().removesuffix("%").strip()
        if text.lower() == "max":
            return float(MAX)
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"invalid {what} {raw!r}: expected a percentage of one CPU (20, 150, 12.5%) "
                             "or max") from None
    elif isinstance(raw, bool):
        raise UsageError(f"invalid {what} {raw!r}: expected a percentage of one CPU")
    else:
        value = float(raw)
        if value == MAX:
            return value
    if not math.isfinite(value) or value < CPU_PERCENT_MIN or value > CPU_PERCENT_MAX:
        raise UsageError(f"invalid {what} {raw!r}: must be from {CPU_PERCENT_MIN:g} to {CPU_PERCENT_MAX:g} "
                         "(% of one CPU)")
    return value


def _integer(raw: int | str, what: str, low: int, high: int | None, *, allow_max: bool) -> int:
    import re  # parsing only: a run without options loads no re
    if isinstance(raw, bool):
        raise UsageError(f"invalid {what} {raw!r}: expected a whole number")
    if isinstance(raw, str):
        text = raw.strip()
        if allow_max and text.lower() == "max":
            return MAX
        if not re.fullmatch(r"-?[0-9]+", text, re.ASCII):
            raise UsageError(f"invalid {what} {raw!r}: expected a whole number{' or max' if allow_max else ''}")
        value = int(text)
    else:
        value = int(raw)
        if allow_max and value == MAX:
            return MAX
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise UsageError(f"invalid {what} {raw!r}: must be {bounds}")
    return value


def _weight(raw: int | str, what: str) -> int:
    return _integer(raw, what, *WEIGHT_RANGE, allow_max=False)


def _pids(raw: int | str, what: str) -> int:
    return _integer(raw, what, 1, 4_194_304, allow_max=True)


_CPU_LIST = r"[0-9]+(?:-[0-9]+)?(?:,[0-9]+(?:-[0-9]+)?)*"
"""Compiled on first use: run imports this module whether or not it is given --cpuset."""


def _cpuset(raw: str, what: str) -> str:
    import re  # parsing only: a run without options loads no re
    text = str(raw).strip()
    if not re.fullmatch(_CPU_LIST, text, re.ASCII):
        raise UsageError(f"invalid {what} {raw!r}: expected a list of CPUs such as 0-3,6")
    wanted: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        low, high = int(first), int(last or first)
        if high < low:
            raise UsageError(f"invalid {what} {raw!r}: range {part} runs backwards")
        wanted.update(range(low, high + 1))
    online = online_cpus()
    if online is not None and not wanted <= online:
        missing = ",".join(str(c) for c in sorted(wanted - online))
        raise UsageError(f"invalid {what} {raw!r}: no such CPU {missing} (online: {format_cpu_list(online)})")
    return format_cpu_list(wanted)


def online_cpus(path: str = "/sys/devices/system/cpu/online") -> set[int] | None:
    try:
        with open(path, encoding="utf-8") as f:  # loaded at start-up; "ascii" would import its codec
            text = f.read().strip()
    except OSError:
        return None
    cpus: set[int] = set()
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def format_cpu_list(cpus: Iterable[int]) -> str:
    """``0-3,6`` for {0, 1, 2, 3, 6}: the kernel's own list form."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    start = previous = None
    for cpu in [*ordered, None]:
        if cpu is not None and previous is not None and cpu == previous + 1:
            previous = cpu
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = cpu
    return ",".join(parts)


def _device_rates(raw: DeviceRates, what: str) -> tuple[DeviceRate, ...]:
    pairs: list[tuple[str, int | str]] = []
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, Mapping):
        pairs = [(str(k), v) for k, v in raw.items()]
    else:
        for item in raw:
            name, sep, text = str(item).rpartition("=")
            if not sep or not name or not text:
                raise UsageError(f"invalid {what} {item!r}: expected DEVICE=RATE (/dev/sda=10M, 8:0=1G)")
            pairs.append((name, text))
    by_device: dict[str, int] = {}
    for device, rate in pairs:
        by_device[block_device(device, what)] = _size(rate, f"{what} of {device}")
    return tuple(DeviceRate(d, r) for d, r in by_device.items())


def block_device(text: str, what: str = "device") -> str:
    """``MAJ:MIN`` of a block device given as a path (its own numbers: a partition stays a partition) or as
    ``MAJ:MIN``; refused when there is no such block device."""
    import re  # parsing only: a run without options loads no re
    if re.fullmatch(r"[0-9]+:[0-9]+", text, re.ASCII):
        if os.path.isdir(SYS_DEV_BLOCK) and not os.path.exists(os.path.join(SYS_DEV_BLOCK, text)):
            raise UsageError(f"invalid {what}: no block device {text}")
        return text
    try:
        st = os.stat(text)
    except OSError as exc:
        raise UsageError(f"invalid {what}: {text}: {exc.strerror}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise UsageError(f"invalid {what}: {text} is not a block device (give /dev/NAME or MAJ:MIN)")
    return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


class Kind(FrozenValue):
    """A kind of limit value: how it is parsed from the command line or the API, what leaves it unset, and how it
    is recorded, read back from a record and shown."""

    _fields = ("parse", "unset", "to_record", "from_record", "text")
    __slots__ = _fields
    parse: Callable[[Any, str], Any]
    unset: Any
    to_record: Callable[[Any], Any]
    from_record: Callable[[Any], Any]
    text: Callable[[Any], str]

    def __init__(self, parse: Callable[[Any, str], Any], unset: Any, to_record: Callable[[Any], Any],
                 from_record: Callable[[Any], Any], text: Callable[[Any], str]) -> None:
        self._set_fields(parse, unset, to_record, from_record, text)


def _whole_from_record(value: Any) -> int:
    return int(_from_max(value))


def _number_text(value: int) -> str:
    return "max" if value == MAX else str(value)


KINDS: dict[str, Kind] = {
    "bytes": Kind(_size, None, _max_or, _whole_from_record, _size_text),
    "bytes_or_zero": Kind(_swap, None, _max_or, _whole_from_record, _size_text),
    "percent": Kind(_cpu_quota, None, _max_or, lambda v: float(_from_max(v)),
                    lambda v: "max" if v == MAX else f"{v:g}% of a CPU"),
    "weight": Kind(_weight, None, _max_or, _whole_from_record, _number_text),
    "count": Kind(_pids, None, _max_or, _whole_from_record, _number_text),
    "cpus": Kind(_cpuset, None, str, str, str),
    "rates": Kind(_device_rates, (), lambda v: {r.device: _max_or(r.rate) for r in v},
                  lambda v: tuple(DeviceRate(str(d), _from_max(r)) for d, r in dict(v).items()),
                  lambda v: ", ".join(f"{r.device} {_size_text(r.rate)}/s" for r in v)),
}
