"""The io controller (``blkio`` in v1): weights on each mode's scale, and rates per block device.

A v2 weight of 1-10000 (default 100) is written as ``default N`` (``io.weight``, or BFQ's ``io.bfq.weight`` of
1-1000); v1's CFQ ``blkio.weight`` takes 10-1000 (default 500). Rates are lines ``MAJ:MIN rbps=N`` of
``io.max`` in v2 and ``MAJ:MIN N`` of the v1 throttle files, where 0 removes a device's rule.
"""

from __future__ import annotations

import os

from lanco.cgroups import cgroupfs
from lanco.cgroups.controllers import plain_value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from lanco.cgroups.controllers import LimitTarget

_RATES = (("io_read_bps", "rbps", "blkio.throttle.read_bps_device"),
          ("io_write_bps", "wbps", "blkio.throttle.write_bps_device"))


def apply(target: LimitTarget, wanted: dict[str, Any]) -> dict[str, Any]:
    if "io_weight" in wanted:
        _weight(target, wanted["io_weight"])
    for key, v2_key, v1_file in _RATES:
        for rate in wanted.get(key, ()):
            note = partition_note(rate.device)
            if target.v2:
                target.write("io.max", f"{rate.device} {v2_key}={plain_value(rate.rate)}", note)
            else:
                target.write(v1_file, f"{rate.device} {max(rate.rate, 0)}", note)
    return {k: v for k, v in wanted.items() if k not in ("io_weight", "io_read_bps", "io_write_bps")}


def _weight(target: LimitTarget, weight: int) -> None:
    if target.v2:
        if target.has("io.weight"):
            target.write("io.weight", f"default {weight}")
        else:
            target.write("io.bfq.weight", f"default {min(weight, 1000)}")
    elif target.has("blkio.weight"):
        target.write("blkio.weight", str(min(max(weight * 5, 10), 1000)))
    else:
        target.write("blkio.bfq.weight", str(min(weight, 1000)))


def partition_note(device: str) -> str:
    """A hint for a limit refused on a partition: the kernel throttles whole disks."""
    sysfs = f"/sys/dev/block/{device}"
    if not os.path.exists(os.path.join(sysfs, "partition")):
        return ""
    try:
        disk = cgroupfs.read(os.path.join(sysfs, "..", "dev")).strip()
    except OSError:
        return f" ({device} is a partition; the kernel limits whole disks)"
    return f" ({device} is a partition; the kernel limits whole disks, such as {disk})"
