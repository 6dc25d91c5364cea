"""What the favordynmods phase decides to measure, from the kernel's release, mounts and filesystems (the
measurement itself runs in tests/integration/test_bench_favordynmods.py)."""

from __future__ import annotations

from bench.favordynmods import OPT_IN_LATCH, favordynmods_mounts, kernel_version, plan

HYBRID = """\
32 31 0:29 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""
ON_ALREADY = HYBRID.replace("rw,nsdelegate", "rw,nsdelegate,favordynmods")
FILESYSTEMS = "nodev\tsysfs\nnodev\tcgroup\nnodev\tcgroup2\n"
V2_ONLY = "nodev\tsysfs\nnodev\tcgroup2\n"


def test_kernel_version_reads_the_release() -> None:
    assert kernel_version("6.18.44-fc-v1045") == (6, 18)
    assert kernel_version("6.1.0-57-amd64") == (6, 1)
    assert kernel_version("weird") is None


def test_favordynmods_is_read_from_the_superblock_options() -> None:
    assert favordynmods_mounts(HYBRID) == []
    assert favordynmods_mounts(ON_ALREADY) == ["/sys/fs/cgroup/unified"]
    # The mount options (left of " - ") never count: favordynmods is a superblock option.
    assert favordynmods_mounts("40 31 0:37 / /x rw,favordynmods - tmpfs tmpfs rw\n") == []


def test_a_kernel_that_undoes_it_alternates_the_states() -> None:
    chosen = plan(3, release="6.1.0-57-amd64", mountinfo=HYBRID, filesystems=FILESYSTEMS, euid=0, opt_in="")
    assert chosen.order == ["off", "on", "off", "on", "off", "on"]
    assert set(chosen.missing) == {"after"}


def test_a_one_way_kernel_keeps_the_host_as_it_is_unless_told() -> None:
    chosen = plan(2, release="6.18.44", mountinfo=HYBRID, filesystems=FILESYSTEMS, euid=0, opt_in="")
    assert chosen.order == ["off", "off"]
    assert "LANCO_BENCH_FAVORDYNMODS" in chosen.missing["on"] and "until reboot" in chosen.detail
    told = plan(2, release="6.19.1", mountinfo=HYBRID, filesystems=FILESYSTEMS, euid=0, opt_in=OPT_IN_LATCH)
    assert told.order == ["off", "off", "on", "on", "after", "after"] and not told.missing


def test_what_cannot_be_measured_is_said() -> None:
    def missing(**changes: object) -> str:
        args: dict[str, object] = {"release": "6.1.0", "mountinfo": HYBRID, "filesystems": FILESYSTEMS,
                                   "euid": 0, "opt_in": ""}
        args.update(changes)
        chosen = plan(1, **args)  # type: ignore[arg-type]
        assert chosen.order == ["off"]
        return chosen.missing["on"]

    assert "root" in missing(euid=1000)
    assert "cgroup v1" in missing(filesystems=V2_ONLY)
    assert "6.0" in missing(release="5.15.0")
    already = plan(2, release="6.1.0", mountinfo=ON_ALREADY, filesystems=FILESYSTEMS, euid=0, opt_in="")
    assert already.order == ["on", "on"] and "on already" in already.missing["off"]
