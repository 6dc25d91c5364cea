"""lanco.options.limits: parsing of every limit, the record form, and how each mode writes them (a fake cgroupfs)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from lanco.cgroups import cgroupfs
from lanco.cgroups.backend import Backend
from lanco.cgroups.detect import CgroupMount
from lanco.errors import CgroupError, LimitUnavailable, UsageError
from lanco.options import limits as limits_module
from lanco.options import limittable
from lanco.options.limits import DeviceRate, Limits, describe, format_cpu_list
from lanco.options.units import MAX
from tests.unit.conftest import BASE, NS, TASK, FakeHost, make_namespace, read, write

# -- parsing ------------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _four_cpus_and_two_disks(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The host: CPUs 0-3 online, block devices 8:0 (a disk) and 8:1 (its partition) in /sys/dev/block."""
    monkeypatch.setattr(limits_module, "online_cpus", lambda: {0, 1, 2, 3})
    sysfs = tmp_path_factory.mktemp("sys-dev-block")
    (sysfs / "8:0").mkdir()
    (sysfs / "8:1").mkdir()
    monkeypatch.setattr(limits_module, "SYS_DEV_BLOCK", str(sysfs))


class TestParsing:
    def test_nothing_given_is_no_limit(self) -> None:
        assert Limits.build({}) == Limits()
        assert not Limits()
        assert Limits.build({"memory_max": None, "log": "ignored"}) == Limits()

    @pytest.mark.parametrize(("raw", "value"), [
        ("64M", 64 << 20), ("512K", 512 << 10), ("2G", 2 << 30), ("max", MAX), (4096, 4096), (MAX, MAX),
    ])
    def test_sizes(self, raw: int | str, value: int) -> None:
        assert Limits.build({"memory_max": raw, "memory_high": raw}) == Limits(memory_max=value, memory_high=value)

    @pytest.mark.parametrize(("raw", "message"), [
        ("0", "invalid memory limit '0': must be greater than zero"),
        (0, "invalid memory limit 0: must be greater than zero"),
        (-5, "invalid memory limit -5: must be greater than zero"),
        ("-5M", "invalid memory limit '-5M': expected a number of bytes"),
        ("5Q", "invalid memory limit '5Q': expected a number of bytes"),
        (True, "invalid memory limit True"),
    ])
    def test_bad_sizes(self, raw: Any, message: str) -> None:
        with pytest.raises(UsageError, match=message.replace("(", r"\(")):
            Limits.build({"memory_max": raw})

    def test_a_swap_limit_of_zero_means_no_swap(self) -> None:
        assert Limits.build({"memory_swap_max": "0"}).memory_swap_max == 0
        assert Limits.build({"memory_swap_max": 0}).memory_swap_max == 0
        with pytest.raises(UsageError, match="swap limit"):
            Limits.build({"memory_swap_max": "-1"})

    @pytest.mark.parametrize(("raw", "value"), [
        ("20", 20.0), ("20%", 20.0), (" 12.5 % ", 12.5), (150, 150.0), ("max", float(MAX)), ("1", 1.0),
    ])
    def test_cpu_quota(self, raw: float | str, value: float) -> None:
        assert Limits.build({"cpu_quota": raw}).cpu_quota == value

    @pytest.mark.parametrize("raw", ["0", "0.5", "-5", "abc", "", "nan", "inf", "100001", True])
    def test_bad_cpu_quota(self, raw: Any) -> None:
        with pytest.raises(UsageError, match="invalid CPU quota"):
            Limits.build({"cpu_quota": raw})

    @pytest.mark.parametrize("key", ["cpu_weight", "io_weight"])
    def test_weights(self, key: str) -> None:
        assert getattr(Limits.build({key: "1"}), key) == 1
        assert getattr(Limits.build({key: 10000}), key) == 10000
        for bad in ("0", "10001", "1.5", "-3", "max", "heavy"):
            with pytest.raises(UsageError, match="weight"):
                Limits.build({key: bad})

    def test_pids(self) -> None:
        assert Limits.build({"pids_max": "10"}).pids_max == 10
        assert Limits.build({"pids_max": "max"}).pids_max == MAX
        for bad in ("0", "-1", "ten", 0):
            with pytest.raises(UsageError, match="invalid pids limit"):
                Limits.build({"pids_max": bad})

    @pytest.mark.parametrize(("raw", "value"), [("0-3", "0-3"), ("3,1,2", "1-3"), ("0,2", "0,2"), ("1", "1"),
                                                ("0-1,3", "0-1,3")])
    def test_cpuset(self, raw: str, value: str) -> None:
        assert Limits.build({"cpuset": raw}).cpuset == value

    @pytest.mark.parametrize(("raw", "message"), [
        ("4", r"no such CPU 4 \(online: 0-3\)"), ("3-1", "range 3-1 runs backwards"), ("a", "expected a list"),
        ("1,", "expected a list"), ("", "expected a list"),
    ])
    def test_bad_cpuset(self, raw: str, message: str) -> None:
        with pytest.raises(UsageError, match=message):
            Limits.build({"cpuset": raw})

    def test_device_rates_in_every_form(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_stat = os.stat

        def fake_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
            if path == "/dev/sdz1":
                return os.stat_result((0o60660, 0, 0, 1, 0, 0, 0, 0, 0, 0))  # a block device, rdev below
            return real_stat(path, *args, **kwargs)

        monkeypatch.setattr(os, "stat", fake_stat)
        monkeypatch.setattr(os, "major", lambda rdev: 8)
        monkeypatch.setattr(os, "minor", lambda rdev: 1)
        as_list = Limits.build({"io_read_bps": ["8:0=10M", "/dev/sdz1=max", "8:0=1M"]})
        # The last rate given for a device wins; a partition keeps its own numbers.
        assert as_list.io_read_bps == (DeviceRate("8:0", 1 << 20), DeviceRate("8:1", MAX))
        as_mapping = Limits.build({"io_write_bps": {"8:0": 1024, "/dev/sdz1": "2K"}})
        assert as_mapping.io_write_bps == (DeviceRate("8:0", 1024), DeviceRate("8:1", 2048))
        assert Limits.build({"io_write_bps": "8:1=5K"}).io_write_bps == (DeviceRate("8:1", 5120),)

    @pytest.mark.parametrize(("raw", "message"), [
        ("8:0", "expected DEVICE=RATE"), ("=1M", "expected DEVICE=RATE"), ("8:0=", "expected DEVICE=RATE"),
        ("9:9=1M", "no block device 9:9"), ("8:0=0", "must be greater than zero"),
        ("8:0=fast", "invalid IO read rate of 8:0 'fast'"), ("/no/such/dev=1M", "No such file or directory"),
    ])
    def test_bad_device_rates(self, raw: str, message: str) -> None:
        with pytest.raises(UsageError, match=message):
            Limits.build({"io_read_bps": [raw]})

    def test_a_file_is_not_a_block_device(self, tmp_path: Path) -> None:
        regular = tmp_path / "file"
        regular.write_text("")
        with pytest.raises(UsageError, match=f"{regular} is not a block device"):
            Limits.build({"io_write_bps": [f"{regular}=1M"]})

    def test_format_cpu_list(self) -> None:
        assert format_cpu_list([]) == ""
        assert format_cpu_list([5, 0, 1, 2, 7, 8]) == "0-2,5,7-8"


class TestRecord:
    def test_round_trip_with_units_in_the_keys(self) -> None:
        limits = Limits(memory_max=64 << 20, memory_high=MAX, memory_swap_max=0, cpu_quota=12.5, cpu_weight=200,
                        cpuset="0-1", pids_max=10, io_weight=50, io_read_bps=(DeviceRate("8:0", 1024),),
                        io_write_bps=(DeviceRate("8:0", MAX),))
        record = limits.as_record()
        assert record == {"memory_max_bytes": 64 << 20, "memory_high_bytes": "max", "memory_swap_max_bytes": 0,
                          "cpu_quota_percent": 12.5, "cpu_weight": 200, "cpuset": "0-1", "pids_max": 10,
                          "io_weight": 50, "io_read_bps": {"8:0": 1024}, "io_write_bps": {"8:0": "max"}}
        assert Limits.from_record(record) == limits

    def test_old_and_damaged_records(self) -> None:
        assert Limits.from_record({"memory_max": 5}) == Limits(memory_max=5)
        assert Limits.from_record({"pids_max": "lots", "cpu_weight": None, "io_read_bps": 3, "other": 1,
                                   "cpu_quota_percent": "max"}) == Limits(cpu_quota=float(MAX))

    def test_merged_keeps_what_is_not_replaced(self) -> None:
        old = Limits(memory_max=1 << 20, pids_max=5)
        assert old.merged(Limits(pids_max=MAX, cpu_weight=7)) == Limits(memory_max=1 << 20, pids_max=MAX,
                                                                         cpu_weight=7)

    def test_describe(self) -> None:
        rows = describe(Limits(memory_max=64 << 20, cpu_quota=20.0, pids_max=MAX,
                               io_read_bps=(DeviceRate("8:0", 1 << 20),)).as_record())
        assert rows == [("memory-max", "64.0M"), ("cpu-quota", "20% of a CPU"), ("pids-max", "max"),
                        ("io-read-bps", "8:0 1.0M/s")]


# -- enforcing, per mode, on a fake cgroupfs ----------------------------------------------------------------------

@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every write to a cgroup file, in order; as in cgroupfs, a write never creates a file and replaces the
    whole value."""
    done: list[tuple[str, str]] = []

    def write_file(path: str, value: str) -> None:
        if not os.path.exists(path):
            raise FileNotFoundError(2, "No such file or directory", path)
        with open(path, "w", encoding="ascii") as f:
            f.write(value)
        done.append((os.path.basename(path), value))

    monkeypatch.setattr(cgroupfs, "write", write_file)
    return done


V2_FILES = ("memory.max", "memory.high", "memory.swap.max", "memory.oom.group", "cpu.max", "cpu.weight",
            "cpuset.cpus", "pids.max", "io.weight", "io.max")
EVERYTHING = Limits(memory_max=64 << 20, memory_high=32 << 20, memory_swap_max=0, cpu_quota=20.0, cpu_weight=200,
                    cpuset="1", pids_max=10, io_weight=300, io_read_bps=(DeviceRate("8:0", 1 << 20),),
                    io_write_bps=(DeviceRate("8:0", MAX),))


def v2_with_controllers(host: FakeHost, files: tuple[str, ...] = V2_FILES) -> Backend:
    """A v2 host whose base enabled every controller: the namespace and its task have the interface files."""
    b = host.v2()
    make_namespace(b)
    write(os.path.join(b.ns_dir(NS), "cgroup.subtree_control"), "cpu cpuset io memory pids\n")
    for name in files:
        write(os.path.join(b.ns_dir(NS), name), "")
        write(os.path.join(b.task_dir(NS, TASK), name), "")
    return b


class TestV2:
    def test_every_limit(self, host: FakeHost, writes: list[tuple[str, str]]) -> None:
        b = v2_with_controllers(host)
        EVERYTHING.check(b, NS)
        EVERYTHING.apply(b, NS, TASK)
        assert writes == [("memory.max", "67108864"), ("memory.oom.group", "1"), ("memory.high", "33554432"),
                          ("memory.swap.max", "0"), ("cpu.max", "20000 100000"), ("cpu.weight", "200"),
                          ("cpuset.cpus", "1"), ("pids.max", "10"), ("io.weight", "default 300"),
                          ("io.max", "8:0 rbps=1048576"), ("io.max", "8:0 wbps=max")]

    def test_max_lifts_limits(self, host: FakeHost, writes: list[tuple[str, str]]) -> None:
        b = v2_with_controllers(host)
        Limits(memory_max=MAX, cpu_quota=float(MAX), pids_max=MAX).apply(b, NS, TASK)
        assert writes == [("memory.max", "max"), ("memory.oom.group", "1"), ("cpu.max", "max 100000"),
                          ("pids.max", "max")]

    def test_tiny_quota_is_the_kernel_minimum(self, host: FakeHost, writes: list[tuple[str, str]]) -> None:
        b = v2_with_controllers(host)
        Limits(cpu_quota=1.0).apply(b, NS, TASK)
        assert writes == [("cpu.max", "1000 100000")]

    @pytest.mark.parametrize(("key", "value", "controller"), [
        ("memory_max", 1, "memory"), ("memory_high", 1, "memory"), ("memory_swap_max", 0, "memory"),
        ("cpu_quota", 20.0, "cpu"), ("cpu_weight", 5, "cpu"), ("cpuset", "0", "cpuset"), ("pids_max", 5, "pids"),
        ("io_weight", 5, "io"), ("io_read_bps", (DeviceRate("8:0", 1),), "io"),
        ("io_write_bps", (DeviceRate("8:0", 1),), "io"),
    ])
    def test_no_controller_is_refused_by_name(self, host: FakeHost, key: str, value: Any, controller: str) -> None:
        b = host.v2()
        make_namespace(b)  # as forced v2 on a hybrid host: a unified tree without controllers
        option = limittable.SPECS[key].option
        with pytest.raises(LimitUnavailable) as caught:
            Limits(**{key: value}).check(b, NS)
        assert caught.value.message == (f"{option} needs the {controller} controller, which cgroup mode v2 does not "
                                        f"provide for namespace {NS} (available: none)")

    def test_a_missing_file_is_refused_by_name(self, host: FakeHost) -> None:
        # Swap accounting off: the memory controller is there, memory.swap.max is not.
        b = v2_with_controllers(host, tuple(f for f in V2_FILES if f != "memory.swap.max"))
        Limits(memory_max=1 << 20).check(b, NS)
        with pytest.raises(LimitUnavailable, match=r"--memory-swap-max needs memory.swap.max, which the memory "
                                                    r"controller does not offer on this host \(cgroup mode v2"):
            Limits(memory_swap_max=0).check(b, NS)

    def test_io_weight_falls_back_to_bfq(self, host: FakeHost, writes: list[tuple[str, str]]) -> None:
        b = v2_with_controllers(host, ("io.bfq.weight",))
        Limits(io_weight=5000).check(b, NS)
        Limits(io_weight=5000).apply(b, NS, TASK)
        assert writes == [("io.bfq.weight", "default 1000")]

    def test_a_refused_write_names_file_value_and_reason(self, host: FakeHost) -> None:
        b = v2_with_controllers(host)
        os.remove(os.path.join(b.task_dir(NS, TASK), "pids.max"))
        with pytest.raises(CgroupError, match=r"cannot set pids.max to '7' for task first-task: .*ENOENT"):
            Limits(pids_max=7).apply(b, NS, TASK)

    def test_swap_needs_no_memory_limit_in_v2(self, host: FakeHost) -> None:
        Limits(memory_swap_max=1 << 20).check(v2_with_controllers(host), NS)


def v1_host(host: FakeHost) -> tuple[Backend, dict[str, CgroupMount]]:
    """A v1 host with blkio and a cpuset hierarchy of its own besides the fake host's controllers."""
    def mount(name: str, controllers: set[str]) -> CgroupMount:
        path = host.root / name
        path.mkdir()
        return CgroupMount(str(path), "/", 1, frozenset(controllers))

    blkio, cpuset = mount("blkio", {"blkio"}), mount("cpuset", {"cpuset"})
    b = Backend("v1", BASE, host.named, {**host.v1_controllers, "blkio": blkio}, {"cpuset": cpuset})
    for directory in (b.ns_dir(NS, host.memory), b.task_dir(NS, TASK, host.memory)):
        for name, value in (("memory.limit_in_bytes", "9223372036854771712"),
                            ("memory.memsw.limit_in_bytes", "9223372036854771712")):
            write(os.path.join(directory, name), value)
    for directory in (b.ns_dir(NS, host.cpu), b.task_dir(NS, TASK, host.cpu)):
        for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares"):
            write(os.path.join(directory, name), "")
    for directory in (b.ns_dir(NS, host.pids), b.task_dir(NS, TASK, host.pids)):
        write(os.path.join(directory, "pids.max"), "")
    for directory in (b.ns_dir(NS, blkio), b.task_dir(NS, TASK, blkio)):
        for name in ("blkio.bfq.weight", "blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device"):
            write(os.path.join(directory, name), "")
    for directory, cpus in ((str(host.root / "cpuset"), "0-3"), (b.ns_dir(NS, cpuset), "0-3"),
                            (b.task_dir(NS, TASK, cpuset), "")):
        write(os.path.join(directory, "cpuset.cpus"), cpus)
        write(os.path.join(directory, "cpuset.mems"), "0" if cpus else "")
    make_namespace(b)
    return b, {"blkio": blkio, "cpuset": cpuset}


class TestV1:
    def test_every_limit_but_memory_high(self, host: FakeHost, writes: list[tuple[str, str]]) -> None:
        b, _ = v1_host(host)
        limits = Limits(**{k: v for k, v in EVERYTHING.items() if k != "memory_high"})
        limits.check(b, NS)
        limits.apply(b, NS, TASK)
        assert writes == [
            # Memory first, then memory plus swap (here no swap at all): never below the memory limit.
            ("memory.limit_in_bytes", "67108864"), ("memory.memsw.limit_in_bytes", "67108864"),
            ("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "20000"), ("cpu.shares", "2048"),
            # The memory nodes come from the namespace when the kernel has not copied them already.
            ("cpuset.cpus", "1"), ("cpuset.mems", "0"), ("pids.max", "10"),
            ("blkio.bfq.weight", "300"), ("blkio.throttle.read_bps_device", "8:0 1048576"),
            ("blkio.throttle.write_bps_device", "8:0 0")]

    def test_memory_high_is_refused_naming_it(self, host: FakeHost) -> None:
        b, _ = v1_host(host)
        with pytest.raises(LimitUnavailable, match=r"--memory-high needs memory.high, which the v1 memory "
                                                    r"controller does not have \(cgroup mode v1"):
            Limits(memory_high=1 << 20).check(b, NS)

    def test_swap_needs_a_memory_limit(self, host: FakeHost) -> None:
        b, _ = v1_host(host)
        with pytest.raises(LimitUnavailable, match="--memory-swap-max needs -m/--memory-max as well"):
            Limits(memory_swap_max=1 << 20).check(b, NS)
        Limits(memory_swap_max=MAX).check(b, NS)
        Limits(memory_max=1 << 20, memory_swap_max=1 << 20).check(b, NS)
        Limits(memory_swap_max=1 << 20).check(b, NS, running=True)  # set: the task's own memory limit counts

    def test_io_is_blkio_in_v1(self, host: FakeHost) -> None:
        b = Backend("v1", BASE, host.named, host.v1_controllers)
        make_namespace(b)
        with pytest.raises(LimitUnavailable, match=r"--io-weight needs the blkio controller, which cgroup mode v1"):
            Limits(io_weight=5).check(b, NS)

    def test_cpu_weight_keeps_the_default_at_the_default(self, host: FakeHost,
                                                         writes: list[tuple[str, str]]) -> None:
        b, _ = v1_host(host)
        for weight in (100, 1, 10000):
            Limits(cpu_weight=weight).apply(b, NS, TASK)
        assert [v for _, v in writes] == ["1024", "10", "102400"]

    def test_raising_and_lowering_memory_keeps_the_swap_allowance(self, host: FakeHost,
                                                                  writes: list[tuple[str, str]]) -> None:
        b, _ = v1_host(host)
        memory = b.task_dir(NS, TASK, host.memory)
        Limits(memory_max=100, memory_swap_max=10).apply(b, NS, TASK)
        assert (read(os.path.join(memory, "memory.limit_in_bytes")),
                read(os.path.join(memory, "memory.memsw.limit_in_bytes"))) == ("100", "110")
        writes.clear()
        Limits(memory_max=200).apply(b, NS, TASK)  # raising: the total first
        assert writes == [("memory.memsw.limit_in_bytes", "210"), ("memory.limit_in_bytes", "200")]
        writes.clear()
        Limits(memory_max=50).apply(b, NS, TASK)  # lowering: the memory first
        assert writes == [("memory.limit_in_bytes", "50"), ("memory.memsw.limit_in_bytes", "60")]
        writes.clear()
        Limits(memory_max=MAX).apply(b, NS, TASK)
        assert writes == [("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1")]

    def test_swap_alone_counts_from_the_memory_limit(self, host: FakeHost, writes: list[tuple[str, str]]) -> None:
        b, _ = v1_host(host)
        Limits(memory_max=100).apply(b, NS, TASK)
        writes.clear()
        Limits(memory_swap_max=30).apply(b, NS, TASK)
        assert writes == [("memory.memsw.limit_in_bytes", "130")]
        write(os.path.join(b.task_dir(NS, TASK, host.memory), "memory.limit_in_bytes"), "9223372036854771712")
        with pytest.raises(LimitUnavailable, match="limits memory and swap together"):
            Limits(memory_swap_max=30).apply(b, NS, TASK)


class TestOnDemandCpuset:
    def test_namespace_cpuset_directories_are_made_usable(self, host: FakeHost) -> None:
        cpuset = CgroupMount(str(host.root / "cpuset"), "/", 1, frozenset({"cpuset"}))
        write(host.root / "cpuset" / "cpuset.cpus", "0-3\n")
        write(host.root / "cpuset" / "cpuset.mems", "0\n")
        b = Backend("hybrid", BASE, host.unified, host.v1_controllers, {"cpuset": cpuset})
        assert cpuset in b.all_hierarchies and cpuset not in b.hierarchies
        assert "cpuset" not in b.enabled_controllers(NS)
        real_mkdir = os.mkdir

        def mkdir_like_cpuset(path: Any, mode: int = 0o777) -> None:
            # A new v1 cpuset cgroup comes with empty cpus and mems files.
            real_mkdir(path, mode)
            if os.fspath(path).startswith(cpuset.path):
                for name in ("cpuset.cpus", "cpuset.mems", "cgroup.clone_children"):
                    write(os.path.join(path, name), "")

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(os, "mkdir", mkdir_like_cpuset)
            b.create_namespace(NS, os.getuid(), os.getgid(), False)
        for directory in (b.base_dir(cpuset), b.ns_dir(NS, cpuset)):
            assert read(os.path.join(directory, "cpuset.cpus")) == "0-3"
            assert read(os.path.join(directory, "cpuset.mems")) == "0"
            assert read(os.path.join(directory, "cgroup.clone_children")) == "1"
        assert "cpuset" in b.enabled_controllers(NS)

    def test_a_task_joins_the_cpuset_hierarchy_only_for_a_cpuset_limit(self, host: FakeHost) -> None:
        cpuset = CgroupMount(str(host.root / "cpuset"), "/", 1, frozenset({"cpuset"}))
        os.mkdir(cpuset.path)
        b = Backend("v1", BASE, host.named, host.v1_controllers, {"cpuset": cpuset})
        make_namespace(b)
        cpuset_dir = b.task_dir(NS, TASK, cpuset)
        os.makedirs(cpuset_dir)  # a leftover of an earlier run, which this one does not want: removed, not joined
        b.create_task(NS, TASK)
        assert not os.path.exists(cpuset_dir)
        assert os.path.join(cpuset_dir, "cgroup.procs") not in b.join_files(NS, TASK)
        assert cpuset_dir in b.task_dirs(NS, TASK)  # removed with the task whatever it had
        b.remove_task(NS, TASK)
        b.create_task(NS, TASK, controllers=b.controllers_for(["cpuset"]))
        assert os.path.isdir(cpuset_dir)
        assert os.path.join(cpuset_dir, "cgroup.procs") in b.join_files(NS, TASK)
        assert b.join_files(NS, TASK)[0] == os.path.join(b.task_dir(NS, TASK), "cgroup.procs")
        assert b.controllers_for(["memory_max", "io_read_bps"]) == {"memory", "io"}


class TestFreezer:
    def test_v2_freeze_waits_for_the_kernel(self, host: FakeHost) -> None:
        b = host.v2()
        task = b.task_dir(NS, TASK)
        write(os.path.join(task, "cgroup.freeze"), "0")
        write(os.path.join(task, "cgroup.events"), "populated 1\nfrozen 1\n")
        b.set_frozen(NS, TASK, True)
        assert read(os.path.join(task, "cgroup.freeze")) == "1"
        assert b.frozen(NS, TASK)
        b.set_frozen(NS, TASK, False)
        assert read(os.path.join(task, "cgroup.freeze")) == "0"

    def test_v2_freeze_that_never_completes(self, host: FakeHost) -> None:
        b = host.v2()
        task = b.task_dir(NS, TASK)
        write(os.path.join(task, "cgroup.freeze"), "0")
        write(os.path.join(task, "cgroup.events"), "populated 1\nfrozen 0\n")
        with pytest.raises(CgroupError, match=r"task first-task is still freezing after 0\.05s"):
            b.set_frozen(NS, TASK, True, settle_timeout=0.05)

    def test_v1_freezer(self, host: FakeHost) -> None:
        b = host.v1()
        state = os.path.join(b.task_dir(NS, TASK, host.freezer), "freezer.state")
        write(state, "THAWED")
        b.set_frozen(NS, TASK, True)  # a plain file reads back what was written: FROZEN at once
        assert read(state) == "FROZEN" and b.frozen(NS, TASK)
        assert b.freeze_control(NS, TASK) == (state, "FROZEN", "THAWED")
        b.set_frozen(NS, TASK, False)
        assert not b.frozen(NS, TASK)

    def test_no_freezer(self, host: FakeHost) -> None:
        b = Backend("v1", BASE, host.named, {"memory": host.memory})
        assert b.freeze_control(NS, TASK) is None
        with pytest.raises(LimitUnavailable, match="freezing needs the freezer controller"):
            b.set_frozen(NS, TASK, True)

    def test_kill_file_only_where_the_kernel_has_it(self, host: FakeHost) -> None:
        b = host.hybrid()
        assert b.kill_file(NS, TASK) is None
        write(os.path.join(b.task_dir(NS, TASK), "cgroup.kill"), "")
        assert b.kill_file(NS, TASK) == os.path.join(b.task_dir(NS, TASK), "cgroup.kill")
        assert host.v1().kill_file(NS, TASK) is None


class TestMemoryLow:
    """memory.low, the limit added by its entry in the limits table alone: parsed, checked, written, recorded,
    shown and read back from the kernel like the others."""

    def test_parsed_recorded_and_shown(self) -> None:
        limits = Limits.build({"memory_low": "16M"})
        assert limits == Limits(memory_low=16 << 20) and limits.memory_low == 16 << 20
        assert limits.as_record() == {"memory_low_bytes": 16 << 20}
        assert Limits.from_record(limits.as_record()) == limits
        assert describe(limits.as_record()) == [("memory-low", "16.0M")]
        with pytest.raises(UsageError, match="invalid memory protection '0'"):
            Limits.build({"memory_low": "0"})

    def test_written_on_v2_and_read_back_unless_zero(self, host: FakeHost,
                                                     writes: list[tuple[str, str]]) -> None:
        b = v2_with_controllers(host, (*V2_FILES, "memory.low"))
        Limits(memory_low=16 << 20).check(b, NS)
        Limits(memory_low=16 << 20).apply(b, NS, TASK)
        assert writes == [("memory.low", str(16 << 20))]
        assert b.limits_in_force(NS, TASK) == {"memory_low_bytes": 16 << 20}
        write(os.path.join(b.task_dir(NS, TASK), "memory.low"), "0\n")  # the kernel's own: no protection
        assert b.limits_in_force(NS, TASK) == {}

    def test_its_controller_is_among_those_status_reads_back(self) -> None:
        """Which controllers status reads come from the table: a limit marked in_force needs nothing else."""
        from lanco.cgroups import controllers

        assert limittable.SPECS["memory_low"].in_force == "0"
        assert controllers.reporting() == ["memory", "cpu", "pids"]

    def test_refused_on_v1_naming_it(self, host: FakeHost) -> None:
        b, _ = v1_host(host)
        with pytest.raises(LimitUnavailable, match=r"--memory-low needs memory.low, which the v1 memory "
                                                    r"controller does not have \(cgroup mode v1"):
            Limits(memory_low=1 << 20).check(b, NS)

    def test_a_cli_option_of_run_and_set(self) -> None:
        import argparse

        parser = argparse.ArgumentParser()
        limits_module.add_arguments(parser)
        assert limits_module.given(parser.parse_args(["--memory-low", "1G"])) == {"memory_low": "1G"}
