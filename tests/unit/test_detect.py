"""lanco.cgroups.detect: mountinfo parsing and the choice of the natural mode, on texts copied from real hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanco.cgroups.detect import (
    CgroupMount,
    controller_mounts,
    named_mount,
    natural_mode,
    parse_mountinfo,
    read_mounts,
    unified_mount,
)
from lanco.errors import CgroupError

# Debian 12 / Fedora: only the unified tree.
PURE_V2 = """\
22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
23 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
28 1 253:0 / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw,errors=remount-ro
26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,\
nsdelegate,memory_recursiveprot
31 28 0:26 / /run rw,nosuid,nodev,noexec,relatime shared:13 - tmpfs tmpfs rw,size=1620720k,mode=755,inode64
"""

# Ubuntu 20.04: a tmpfs on /sys/fs/cgroup holding the v1 controllers, the unified tree and name=systemd.
HYBRID = """\
24 29 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
29 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
33 24 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
35 33 0:30 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
38 33 0:33 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
39 33 0:34 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
40 33 0:35 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
41 33 0:36 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,freezer
42 33 0:37 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,blkio
43 33 0:38 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:20 - cgroup cgroup rw,cpuset
44 33 0:39 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:21 - cgroup cgroup \
rw,net_cls,net_prio
45 33 0:40 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:22 - cgroup cgroup rw,devices
46 33 0:41 / /sys/fs/cgroup/perf_event rw,nosuid,nodev,noexec,relatime shared:23 - cgroup cgroup rw,perf_event
47 33 0:42 / /sys/fs/cgroup/hugetlb rw,nosuid,nodev,noexec,relatime shared:24 - cgroup cgroup rw,hugetlb
48 33 0:43 / /sys/fs/cgroup/rdma rw,nosuid,nodev,noexec,relatime shared:25 - cgroup cgroup rw,rdma
"""

# CentOS 7: v1 only, plus lanco's named hierarchy mounted by a root init.
PURE_V1 = """\
18 61 0:17 / /sys rw,nosuid,nodev,noexec,relatime shared:6 - sysfs sysfs rw,seclabel
20 61 0:5 / /dev rw,nosuid shared:2 - devtmpfs devtmpfs rw,seclabel,size=929836k,nr_inodes=232459,mode=755
24 18 0:20 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,seclabel,mode=755
25 24 0:21 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,seclabel,xattr,\
release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
28 24 0:24 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup \
rw,seclabel,cpuacct,cpu
29 24 0:25 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,seclabel,memory
30 24 0:26 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,seclabel,pids
31 24 0:27 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,seclabel,freezer
61 0 253:0 / / rw,relatime shared:1 - xfs /dev/mapper/centos-root rw,seclabel,attr2,inode64,noquota
90 24 0:45 / /sys/fs/cgroup/lanco rw,relatime shared:40 - cgroup lanco rw,seclabel,name=lanco
"""

# docker on a v2 host without a cgroup namespace: the container sees its own cgroup, mounted with a non-"/" root.
CONTAINER_V2 = """\
1021 1003 0:60 / / rw,relatime master:305 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X:/var/lib/docker/\
overlay2/l/Y,upperdir=/var/lib/docker/overlay2/abc/diff,workdir=/var/lib/docker/overlay2/abc/work
1026 1021 0:63 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
1027 1026 0:27 /system.slice/docker-4f1e2d.scope /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,\
nsdelegate,memory_recursiveprot
"""

# docker on a v1 host: each controller is a bind of the container's own cgroup.
CONTAINER_V1 = """\
500 480 0:50 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=755
501 500 0:25 /docker/4f1e2d /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime master:14 - cgroup cgroup rw,memory
502 500 0:26 /docker/4f1e2d /sys/fs/cgroup/pids ro,nosuid,nodev,noexec,relatime master:15 - cgroup cgroup rw,pids
"""

ESCAPED = r"""
60 33 0:50 /my\040root /srv/cg\040roups/uni\011fied rw,relatime shared:30 - cgroup2 cgroup2 rw
61 33 0:51 / /srv/back\134slash rw,relatime shared:31 - cgroup none rw,name=lanco
62 33 0:52 / /srv/lit\134040eral rw,relatime shared:32 - cgroup none rw,memory
"""


def by_path(mounts: list[CgroupMount]) -> dict[str, CgroupMount]:
    return {m.path: m for m in mounts}


class TestParseMountinfo:
    def test_pure_v2_has_one_unified_mount(self) -> None:
        assert parse_mountinfo(PURE_V2) == [CgroupMount("/sys/fs/cgroup", "/", 2, frozenset())]

    def test_hybrid_lists_every_cgroup_mount_and_skips_the_tmpfs(self) -> None:
        mounts = parse_mountinfo(HYBRID)
        assert [m.path for m in mounts] == [
            "/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/cpu,cpuacct",
            "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/freezer", "/sys/fs/cgroup/blkio",
            "/sys/fs/cgroup/cpuset", "/sys/fs/cgroup/net_cls,net_prio", "/sys/fs/cgroup/devices",
            "/sys/fs/cgroup/perf_event", "/sys/fs/cgroup/hugetlb", "/sys/fs/cgroup/rdma"]
        found = by_path(mounts)
        assert found["/sys/fs/cgroup/unified"] == CgroupMount("/sys/fs/cgroup/unified", "/", 2, frozenset())
        assert found["/sys/fs/cgroup/systemd"] == CgroupMount("/sys/fs/cgroup/systemd", "/", 1, frozenset(),
                                                              "systemd")
        # Mount options such as rw and xattr are not controllers; co-mounted controllers share one mount.
        assert found["/sys/fs/cgroup/cpu,cpuacct"].controllers == {"cpu", "cpuacct"}
        assert found["/sys/fs/cgroup/cpu,cpuacct"].name is None
        assert found["/sys/fs/cgroup/net_cls,net_prio"].controllers == {"net_cls", "net_prio"}
        assert found["/sys/fs/cgroup/memory"].version == 1

    def test_pure_v1_with_release_agent_and_named_lanco(self) -> None:
        found = by_path(parse_mountinfo(PURE_V1))
        assert set(found) == {"/sys/fs/cgroup/systemd", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/memory",
                              "/sys/fs/cgroup/pids", "/sys/fs/cgroup/freezer", "/sys/fs/cgroup/lanco"}
        assert found["/sys/fs/cgroup/systemd"].name == "systemd"
        assert found["/sys/fs/cgroup/systemd"].controllers == frozenset()
        assert found["/sys/fs/cgroup/lanco"] == CgroupMount("/sys/fs/cgroup/lanco", "/", 1, frozenset(), "lanco")
        assert found["/sys/fs/cgroup/memory"].controllers == {"memory"}  # seclabel is not a controller

    def test_container_root_is_kept(self) -> None:
        assert parse_mountinfo(CONTAINER_V2) == [
            CgroupMount("/sys/fs/cgroup", "/system.slice/docker-4f1e2d.scope", 2, frozenset())]
        assert {m.root for m in parse_mountinfo(CONTAINER_V1)} == {"/docker/4f1e2d"}

    def test_escaped_paths_are_unescaped(self) -> None:
        found = by_path(parse_mountinfo(ESCAPED))
        assert found["/srv/cg roups/uni\tfied"].root == "/my root"
        assert found["/srv/back\\slash"].name == "lanco"
        # An escaped backslash followed by digits stays a backslash and the digits, not a space.
        assert found["/srv/lit\\040eral"].controllers == {"memory"}

    @pytest.mark.parametrize("line", [
        "",
        "garbage",
        "36 35 0:31 / /sys/fs/cgroup/unified rw shared:10 cgroup2 cgroup2 rw",  # no separator
        "36 35 0:31 / - cgroup2 cgroup2 rw",  # too few fields before the separator
        "36 35 0:31 / /x rw - cgroup2",  # too few after it
        "36 35 0:31 / /x rw - ext4 /dev/sda1 rw",
    ])
    def test_malformed_and_foreign_lines_are_skipped(self, line: str) -> None:
        assert parse_mountinfo(line + "\n") == []

    def test_optional_fields_do_not_shift_the_columns(self) -> None:
        text = "36 35 0:31 / /cg rw,relatime shared:10 master:3 propagate_from:2 - cgroup cgroup rw,pids\n"
        assert parse_mountinfo(text) == [CgroupMount("/cg", "/", 1, frozenset({"pids"}))]

    def test_read_mounts_reads_a_file(self, tmp_path: Path) -> None:
        path = tmp_path / "mountinfo"
        path.write_text(HYBRID)
        assert read_mounts(str(path)) == parse_mountinfo(HYBRID)


class TestSelection:
    def test_natural_modes(self) -> None:
        assert natural_mode(parse_mountinfo(PURE_V2)) == "v2"
        assert natural_mode(parse_mountinfo(HYBRID)) == "hybrid"
        assert natural_mode(parse_mountinfo(PURE_V1)) == "v1"
        assert natural_mode(parse_mountinfo(CONTAINER_V2)) == "v2"

    def test_a_named_hierarchy_alone_does_not_make_a_v2_host_hybrid(self) -> None:
        text = PURE_V2 + "90 26 0:45 / /run/lanco/cgroup rw,relatime - cgroup lanco rw,name=lanco\n"
        assert natural_mode(parse_mountinfo(text)) == "v2"

    def test_no_cgroup_at_all(self) -> None:
        with pytest.raises(CgroupError):
            natural_mode(parse_mountinfo("29 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"))

    def test_controller_mounts_hybrid(self) -> None:
        found = controller_mounts(parse_mountinfo(HYBRID))
        assert sorted(found) == ["blkio", "cpu", "cpuacct", "freezer", "memory", "pids"]
        assert found["cpu"] is found["cpuacct"]
        assert found["cpu"].path == "/sys/fs/cgroup/cpu,cpuacct"
        assert found["memory"].path == "/sys/fs/cgroup/memory"
        # cpuset, devices, net_cls... are mounted but not used by lanco.
        assert "cpuset" not in found and "devices" not in found

    def test_controller_mounts_v1_and_v2(self) -> None:
        assert sorted(controller_mounts(parse_mountinfo(PURE_V1))) == ["cpu", "cpuacct", "freezer", "memory", "pids"]
        assert controller_mounts(parse_mountinfo(PURE_V2)) == {}

    def test_controller_mounts_skip_binds_of_a_subtree(self) -> None:
        # Current decision: a v1 hierarchy seen through a non-"/" root (a container's bind) is not used.
        assert controller_mounts(parse_mountinfo(CONTAINER_V1)) == {}

    def test_named_mount(self) -> None:
        assert named_mount(parse_mountinfo(HYBRID)) is None
        systemd = named_mount(parse_mountinfo(HYBRID), "systemd")
        assert systemd is not None and systemd.path == "/sys/fs/cgroup/systemd"
        lanco = named_mount(parse_mountinfo(PURE_V1))
        assert lanco is not None and lanco.path == "/sys/fs/cgroup/lanco"
        assert named_mount(parse_mountinfo(PURE_V2)) is None

    def test_unified_mount(self) -> None:
        hybrid = unified_mount(parse_mountinfo(HYBRID))
        assert hybrid is not None and hybrid.path == "/sys/fs/cgroup/unified"
        v2 = unified_mount(parse_mountinfo(PURE_V2))
        assert v2 is not None and v2.path == "/sys/fs/cgroup"
        assert unified_mount(parse_mountinfo(PURE_V1)) is None

    def test_labels(self) -> None:
        found = by_path(parse_mountinfo(HYBRID))
        assert found["/sys/fs/cgroup/unified"].label == "unified"
        assert found["/sys/fs/cgroup/systemd"].label == "name=systemd"
        assert found["/sys/fs/cgroup/cpu,cpuacct"].label == "cpu,cpuacct"
