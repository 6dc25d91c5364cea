"""The limits table: every limit lanco knows, one entry each. The command line's options, the API's keywords,
the record's keys, the checks and the cgroup files of each mode are all derived from ``SPECS``.

A module of its own, without the parsers (lanco.options.limits), because the readers need only the table:
``status`` reads the limits in force back from the files it names.
"""

from __future__ import annotations

# _collections_abc, not collections.abc: the package collections would load with it, for one name.
from _collections_abc import Mapping

from lanco.values import FrozenValue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable


class LimitSpec(FrozenValue):
    """Everything lanco knows of one limit; the command line, the API, the record, the checks and the cgroup files
    are all derived from these entries."""

    _fields = ("option", "what", "metavar", "help", "kind", "controller", "v2_files", "v1_files", "record_key",
               "in_force")
    __slots__ = _fields
    option: str
    """Its command-line option (``-m/--memory-max``); the API keyword is the table's key."""
    what: str
    """How messages call its value (``invalid memory limit '5X'``)."""
    metavar: str
    help: str
    kind: str
    """The kind of its value (a key of ``KINDS``): how it is parsed, recorded and shown."""
    controller: str
    """The controller whose files carry it, as cgroup v2 names it; ``lanco.cgroups.controllers`` writes them."""
    v2_files: tuple[str, ...]
    """The v2 files that carry it: the first that exists is written. None: v2 has no such limit."""
    v1_files: tuple[str, ...]
    """Likewise in v1 (where ``io`` is ``blkio``)."""
    record_key: str
    """Its key in the task's record, and in ``limits_in_force`` (with its unit: ``memory_max_bytes``)."""
    in_force: str
    """What its file reads when the limit is not set, if ``status`` reads it back (``limits_in_force``): ``max``,
    or ``0`` for a protection; "" where it is not read back."""

    def __init__(self, option: str, what: str, metavar: str, help: str, kind: str, controller: str,
                 v2_files: tuple[str, ...], v1_files: tuple[str, ...] = (), record_key: str = "",
                 in_force: str = "") -> None:
        self._set_fields(option, what, metavar, help, kind, controller, v2_files, v1_files, record_key,
                         in_force)


# To add a limit: an entry here, its typed key in LimitOptions below, its kind in lanco.options.limits.KINDS if
# none fits, and, where its file takes more than its value, a line in the controller's module of
# lanco.cgroups.controllers (docs/architecture.md).
SPECS: dict[str, LimitSpec] = {
    "memory_max": LimitSpec("-m/--memory-max", "memory limit", "SIZE", "hard memory limit (512K, 64M, 2G, max)",
                            "bytes", "memory", ("memory.max",), ("memory.limit_in_bytes",), "memory_max_bytes",
                            in_force="max"),
    "memory_high": LimitSpec("--memory-high", "memory high limit", "SIZE", "memory throttling threshold (v2)",
                             "bytes", "memory", ("memory.high",), (), "memory_high_bytes", in_force="max"),
    "memory_low": LimitSpec("--memory-low", "memory protection", "SIZE",
                            "memory kept from reclaim while the host is short of it (v2)",
                            "bytes", "memory", ("memory.low",), (), "memory_low_bytes", in_force="0"),
    "memory_swap_max": LimitSpec("--memory-swap-max", "swap limit", "SIZE", "swap on top of the memory (0: none)",
                                 "bytes_or_zero", "memory", ("memory.swap.max",), ("memory.memsw.limit_in_bytes",),
                                 "memory_swap_max_bytes", in_force="max"),
    "cpu_quota": LimitSpec("--cpu-quota", "CPU quota", "PERCENT", "percent of one CPU (150: one and a half)",
                           "percent", "cpu", ("cpu.max",), ("cpu.cfs_quota_us",), "cpu_quota_percent"),
    "cpu_weight": LimitSpec("--cpu-weight", "CPU weight", "N", "relative CPU share, 1-10000 (default 100)",
                            "weight", "cpu", ("cpu.weight",), ("cpu.shares",), "cpu_weight"),
    "cpuset": LimitSpec("--cpuset", "cpuset", "CPUS", "CPUs to run on, such as 0-3,6",
                        "cpus", "cpuset", ("cpuset.cpus",), ("cpuset.cpus",), "cpuset"),
    "pids_max": LimitSpec("--pids-max", "pids limit", "N", "most processes and threads at once",
                          "count", "pids", ("pids.max",), ("pids.max",), "pids_max", in_force="max"),
    "io_weight": LimitSpec("--io-weight", "IO weight", "N", "relative IO share, 1-10000 (default 100)",
                           "weight", "io", ("io.weight", "io.bfq.weight"), ("blkio.weight", "blkio.bfq.weight"),
                           "io_weight"),
    "io_read_bps": LimitSpec("--io-read-bps", "IO read rate", "DEV=RATE", "read bytes/s from DEV (path or MAJ:MIN)",
                             "rates", "io", ("io.max",), ("blkio.throttle.read_bps_device",), "io_read_bps"),
    "io_write_bps": LimitSpec("--io-write-bps", "IO write rate", "DEV=RATE", "written bytes/s to DEV",
                              "rates", "io", ("io.max",), ("blkio.throttle.write_bps_device",), "io_write_bps"),
}

if TYPE_CHECKING:
    from typing import TypedDict

    DeviceRates = Mapping[str, int | str] | Iterable[str]
    """Per-device rates: ``{"/dev/sda": "10M", "8:16": 1048576}`` or ``["/dev/sda=10M", "8:16=1M"]``."""

    class LimitOptions(TypedDict, total=False):
        """The limits ``run`` and ``set`` take, as keyword arguments of the API (one key per entry of SPECS, which
        a unit test keeps equal); strings are parsed as on the command line (``"64M"``, ``"max"``), numbers are
        taken in the unit named. At run time this TypedDict is made from SPECS (:func:`_typed_options`)."""

        memory_max: int | str | None
        memory_high: int | str | None
        memory_low: int | str | None
        memory_swap_max: int | str | None
        cpu_quota: float | str | None
        cpu_weight: int | str | None
        cpuset: str | None
        pids_max: int | str | None
        io_weight: int | str | None
        io_read_bps: DeviceRates | None
        io_write_bps: DeviceRates | None
else:
    # Hidden from type checkers, which then still flag a misspelled attribute of this module; they read the
    # declarations above.
    def __getattr__(name: str) -> object:
        if name in ("LimitOptions", "DeviceRates"):
            return _typed_options()[name]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _typed_options() -> dict[str, object]:
    """LimitOptions and DeviceRates for the API's readers, made from the table on first use: typing is too dear
    for run and set, which never ask for them."""
    from collections.abc import Iterable
    from typing import TypedDict

    rates = Mapping[str, int | str] | Iterable[str]
    api_types: dict[str, object] = {
        "bytes": int | str | None, "bytes_or_zero": int | str | None, "percent": float | str | None,
        "weight": int | str | None, "count": int | str | None, "cpus": str | None, "rates": rates | None,
    }
    options = TypedDict("LimitOptions", {key: api_types[spec.kind] for key, spec in SPECS.items()},  # type: ignore[misc]
                        total=False)
    options.__doc__ = ("The limits run and set take, as keyword arguments of the API: "
                       + "; ".join(f"{key}: {spec.help}" for key, spec in SPECS.items()) + ".")
    options.__module__ = __name__
    globals().update(LimitOptions=options, DeviceRates=rates)
    return {"LimitOptions": options, "DeviceRates": rates}
