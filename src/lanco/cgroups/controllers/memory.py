"""The memory controller: an OOM kill takes the whole task, and v1 counts memory and swap together.

v2 has a file per limit, written plainly, and ``memory.oom.group`` beside the hard limit. v1 has no swap limit of
its own: ``memory.memsw.limit_in_bytes`` bounds memory plus swap, may never fall below the memory limit, and so is
counted from it and written in the order that keeps that true at every step.
"""

from __future__ import annotations

from lanco.cgroups import cgroupfs
from lanco.cgroups.controllers import plain_value
from lanco.errors import LimitUnavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from lanco.cgroups.controllers import LimitTarget

_V1_LIMIT = "memory.limit_in_bytes"
_V1_TOTAL = "memory.memsw.limit_in_bytes"


def apply(target: LimitTarget, wanted: dict[str, Any]) -> dict[str, Any]:
    if target.v2:
        rest = dict(wanted)
        if "memory_max" in rest:
            target.write("memory.max", plain_value(rest.pop("memory_max")))
            # So that an OOM kill takes the whole task rather than one of its processes.
            target.write("memory.oom.group", "1")
        return rest
    rest = {k: v for k, v in wanted.items() if k not in ("memory_max", "memory_swap_max")}
    _apply_v1(target, wanted.get("memory_max"), wanted.get("memory_swap_max"))
    return rest


def _apply_v1(target: LimitTarget, maximum: int | None, swap_max: int | None) -> None:
    """``swap_max`` is the swap allowed on top of the memory, as v2 counts it."""
    if maximum is None and swap_max is None:
        return
    unlimited = cgroupfs.V1_UNLIMITED
    current_limit = cgroupfs.single(target.path(_V1_LIMIT))
    current_limit = unlimited if current_limit is None else current_limit
    current_total = cgroupfs.single(target.path(_V1_TOTAL))
    new_limit = current_limit if maximum is None else (unlimited if maximum < 0 else maximum)
    new_total: int | None = None
    if swap_max is not None:
        if swap_max < 0:
            new_total = unlimited
        elif new_limit >= unlimited:
            raise LimitUnavailable(f"--memory-swap-max needs a memory limit in cgroup mode {target.mode}: the v1 "
                                   "memory controller limits memory and swap together")
        else:
            new_total = new_limit + swap_max
    elif maximum is not None and current_total is not None and current_total < unlimited:
        # The task had a swap allowance: it keeps it on top of its new memory limit.
        new_total = unlimited if new_limit >= unlimited else new_limit + max(0, current_total - current_limit)
    writes = [(_V1_LIMIT, new_limit)] if maximum is not None else []
    if new_total is not None:
        # Each write must keep memory <= memory+swap: raise the total first, lower it last.
        if new_total >= current_limit:
            writes.insert(0, (_V1_TOTAL, new_total))
        else:
            writes.append((_V1_TOTAL, new_total))
    for name, value in writes:
        target.write(name, "-1" if value >= unlimited else str(value))
