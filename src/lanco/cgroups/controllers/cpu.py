"""The cpu controller: a quota is a share of a period, and v1 counts weights as shares of 1024.

A quota in percent of one CPU becomes microseconds of a 100 ms period (``cpu.max`` in v2, ``cpu.cfs_quota_us``
with its period in v1), at least the kernel's 1 ms. A v2 weight of 1-10000 (default 100) becomes v1 shares that
keep the default at the default (100 -> 1024).
"""

from __future__ import annotations

from lanco.cgroups import cgroupfs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from lanco.cgroups.controllers import LimitTarget

PERIOD_USEC = 100_000
QUOTA_MIN_USEC = 1_000


def apply(target: LimitTarget, wanted: dict[str, Any]) -> dict[str, Any]:
    if "cpu_quota" in wanted:
        percent = wanted["cpu_quota"]
        quota = None if percent < 0 else max(QUOTA_MIN_USEC, round(percent * PERIOD_USEC / 100))
        if target.v2:
            target.write("cpu.max", f"{quota or 'max'} {PERIOD_USEC}")
        else:
            target.write("cpu.cfs_period_us", str(PERIOD_USEC))
            target.write("cpu.cfs_quota_us", str(quota or -1))
    if "cpu_weight" in wanted:
        weight = wanted["cpu_weight"]
        if target.v2:
            target.write("cpu.weight", str(weight))
        else:
            target.write("cpu.shares", str(min(max(weight * 1024 // 100, 2), 262144)))
    return {k: v for k, v in wanted.items() if k not in ("cpu_quota", "cpu_weight")}


def in_force(target: LimitTarget) -> dict[str, int]:
    """The quota in force, as ``cpu_quota_usec`` of ``cpu_period_usec``; nothing where there is none."""
    if target.v2:
        try:
            quota, _, period = cgroupfs.read_attribute(target.path("cpu.max")).partition(" ")
            period = period.strip()
        except OSError:
            quota, period = "max", ""
    else:
        quota = str(cgroupfs.single(target.path("cpu.cfs_quota_us")) or "max")
        # Without a quota (-1) the period says nothing: spare dump that read for every task.
        period = ""
        if quota.isdigit():
            period = str(cgroupfs.single(target.path("cpu.cfs_period_us")) or "")
    if quota.isdigit() and period.isdigit():
        return {"cpu_quota_usec": int(quota), "cpu_period_usec": int(period)}
    return {}
