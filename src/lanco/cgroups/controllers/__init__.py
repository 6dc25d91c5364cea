"""What each cgroup controller knows of its limits: how a limit whose file takes more than its value is written,
and how the limits in force are read back.

The limits table (``lanco.options.limittable.SPECS``) names each limit's controller and its files in each mode. A
limit whose file takes its value as it is (a number, or ``max``) needs nothing here: :func:`write_plain` writes it
into the first of its files the kernel offers. A controller with more to do has a module of its own here (``memory``,
``cpu``, ``cpuset``, ``io``), whose ``apply`` writes what it must and hands back what is left to write plainly.
Every write goes through :mod:`lanco.cgroups.cgroupfs`.
"""

from __future__ import annotations

import os

from lanco.cgroups import cgroupfs
from lanco.errors import CgroupError, LimitUnavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

_WITH_MODULES = ("memory", "cpu", "cpuset", "io")
_READ_BACK = ("cpu",)
"""The controllers whose module reads back a limit its files do not show plainly (cpu's quota over its period)."""


class LimitTarget:
    """The directory of one task in one controller's hierarchy, the mode of its files, and how a write there
    fails: one line naming the file, the value, the task and the kernel's reason."""

    __slots__ = ("directory", "mode", "task", "v2")

    def __init__(self, directory: str, v2: bool, task: str, mode: str) -> None:
        self.directory = directory
        self.v2 = v2
        self.task = task
        self.mode = mode

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def has(self, name: str) -> bool:
        return os.path.exists(self.path(name))

    def write(self, name: str, value: str, note: str = "") -> None:
        try:
            cgroupfs.write(self.path(name), value)
        except OSError as exc:
            raise CgroupError(f"cannot set {name} to {value!r} for task {self.task}: "
                              f"{cgroupfs.describe(exc)}{note}") from exc


def plain_value(value: int | str) -> str:
    """A value as a v2 file takes it: negative is ``units.MAX``, no limit (not imported: listings load this)."""
    return "max" if isinstance(value, int) and value < 0 else str(value)


def apply(target: LimitTarget, controller: str, wanted: Mapping[str, Any]) -> None:
    """Write limits ``wanted`` (``Limits`` keys and values, all of ``controller``) in the table's order."""
    rest = dict(wanted)
    if controller in _WITH_MODULES:
        rest = _module(controller).apply(target, rest)
    for key, value in rest.items():
        write_plain(target, key, value)


def write_plain(target: LimitTarget, key: str, value: Any) -> None:
    from lanco.options.limittable import SPECS

    spec = SPECS[key]
    files = spec.v2_files if target.v2 else spec.v1_files
    if not files:
        raise LimitUnavailable(f"{spec.option} needs {spec.v2_files[0]}, which the v1 {spec.controller} controller "
                               f"does not have (cgroup mode {target.mode})")
    target.write(next((f for f in files if target.has(f)), files[0]), plain_value(value))


def in_force(target: LimitTarget, controller: str) -> dict[str, int]:
    """The limits of ``controller`` the kernel enforces on the task now, keyed as in the record (with their
    units); unlimited ones are left out."""
    from lanco.options.limittable import SPECS

    found: dict[str, int] = {}
    for spec in SPECS.values():
        if spec.controller != controller or not spec.in_force:
            continue
        for name in spec.v2_files if target.v2 else spec.v1_files:
            value = cgroupfs.limit_value(target.path(name))
            if value is not None and not (value == 0 and spec.in_force == "0"):
                found[spec.record_key] = value
                break
    if controller in _READ_BACK:
        found.update(_module(controller).in_force(target))
    return found


def reporting() -> list[str]:
    """The controllers ``status`` reads limits in force from, in the table's order: those with a limit read back."""
    from lanco.options.limittable import SPECS

    named = [spec.controller for spec in SPECS.values() if spec.in_force or spec.controller in _READ_BACK]
    return list(dict.fromkeys(named))


def _module(controller: str) -> Any:
    # __import__ rather than importlib (whose package stays unloaded); only the controllers asked for load.
    return __import__(f"lanco.cgroups.controllers.{controller}", fromlist=["apply"])
