"""lanco.cgroups.backend.Backend on a fake cgroupfs tree: paths, task cgroups, processes, limits and figures."""

from __future__ import annotations

import errno
import os
import select
from pathlib import Path
from typing import Any

import pytest

from lanco.cgroups.backend import Backend, NamespaceSetup, open_backend
from lanco.cgroups.detect import CgroupMount, parse_mountinfo
from lanco.cgroups.figures import StatSource, TaskFigures
from lanco.errors import CgroupError, CgroupsMissing, LimitUnavailable
from lanco.options.limits import Limits
from lanco.options.units import MAX
from tests.unit.conftest import BASE, NS, TASK, FakeHost, make_namespace, read, write
from tests.unit.test_detect import CONTAINER_V2, HYBRID, PURE_V1, PURE_V2


def tdir(host: FakeHost, mount: str, task: str = TASK) -> str:
    return str(host.root / mount / "lanco" / NS / task)


class TestPaths:
    def test_v2_paths(self, host: FakeHost) -> None:
        b = host.v2()
        assert b.hierarchies == [host.unified]
        assert b.ns_dir(NS) == str(host.root / "unified/lanco/testns")
        assert b.task_dir(NS, TASK) == str(host.root / "unified/lanco/testns/first-task")
        assert b.join_files(NS, TASK) == [str(host.root / "unified/lanco/testns/first-task/cgroup.procs")]
        assert b.monitor_join_files(NS) == [str(host.root / "unified/lanco/testns/.monitors/cgroup.procs")]
        assert b.task_dirs(NS, TASK) == [tdir(host, "unified")]
        assert b.events_file(NS, TASK) == str(host.root / "unified/lanco/testns/first-task/cgroup.events")
        assert b.controller_dir("memory", NS, TASK) is None

    def test_hybrid_paths_cover_each_hierarchy_once(self, host: FakeHost) -> None:
        b = host.hybrid()
        # cpu and cpuacct are co-mounted: one hierarchy, one directory, one cgroup.procs.
        assert [m.path for m in b.hierarchies] == [host.unified.path, host.memory.path, host.cpu.path,
                                                   host.pids.path, host.freezer.path]
        assert b.join_files(NS, TASK) == [os.path.join(tdir(host, m), "cgroup.procs")
                                          for m in ("unified", "memory", "cpu,cpuacct", "pids", "freezer")]
        assert b.monitor_join_files(NS) == [str(host.root / m / "lanco/testns/.monitors/cgroup.procs")
                                            for m in ("unified", "memory", "cpu,cpuacct", "pids", "freezer")]
        assert b.controller_dir("cpuacct", NS, TASK) == tdir(host, "cpu,cpuacct")
        assert b.controller_dir("memory", NS, TASK) == tdir(host, "memory")
        assert b.controller_dir("blkio", NS, TASK) is None
        assert b.events_file(NS, TASK) is not None

    def test_task_dirs_put_the_tracker_last(self, host: FakeHost) -> None:
        dirs = host.hybrid().task_dirs(NS, TASK)
        assert dirs[-1] == tdir(host, "unified")
        assert sorted(dirs[:-1]) == sorted(tdir(host, m) for m in ("memory", "cpu,cpuacct", "pids", "freezer"))
        assert host.v1().task_dirs(NS, TASK)[-1] == tdir(host, "lanco-named")

    def test_events_file_only_with_a_v2_tracker(self, host: FakeHost) -> None:
        assert host.v1().events_file(NS, TASK) is None
        assert host.hybrid_named().events_file(NS, TASK) is None

    def test_base_is_normalised(self, host: FakeHost) -> None:
        for base in ("lanco", "/lanco/", "lanco/"):
            assert Backend("v2", base, host.unified, {}).ns_dir(NS) == str(host.root / "unified/lanco/testns")
        assert Backend("v2", "/a/b", host.unified, {}).ns_dir(NS) == str(host.root / "unified/a/b/testns")
        assert Backend("v2", "/", host.unified, {}).ns_dir(NS) == str(host.root / "unified/testns")

    def test_a_mount_with_a_non_root_root_strips_it(self, tmp_path: Path) -> None:
        mount = CgroupMount(str(tmp_path), "/docker/abc", 2, frozenset())
        b = Backend("v2", "/docker/abc/lanco", mount, {})
        assert b.ns_dir(NS) == os.path.join(str(tmp_path), "lanco", NS)
        assert Backend("v2", "/docker/abc", mount, {}).ns_dir(NS) == os.path.join(str(tmp_path), NS)

    def test_a_sibling_of_the_mount_root_is_not_taken_for_a_child(self, tmp_path: Path) -> None:
        mount = CgroupMount(str(tmp_path), "/docker/abc", 2, frozenset())
        outside = Backend("v2", "/elsewhere/lanco", mount, {}).ns_dir(NS)
        sibling = Backend("v2", "/docker/abcdef/lanco", mount, {}).ns_dir(NS)
        # A base outside the root is kept whole, like any other base outside it.
        assert outside == os.path.join(str(tmp_path), "elsewhere/lanco", NS)
        assert sibling == os.path.join(str(tmp_path), "docker/abcdef/lanco", NS)


class TestNamespaces:
    def test_namespace_exists_and_task_names(self, host: FakeHost) -> None:
        b = host.v2()
        assert not b.namespace_exists(NS)
        assert b.task_names(NS) == []
        make_namespace(b)
        assert b.namespace_exists(NS)
        for name in ("b-task", "a-task"):
            os.mkdir(b.task_dir(NS, name))
        write(os.path.join(b.ns_dir(NS), "cgroup.procs"), "")  # a file, not a task
        assert b.task_names(NS) == ["a-task", "b-task"]  # sorted, .monitors left out

    def test_create_namespace_v2_enables_wanted_controllers(self, host: FakeHost) -> None:
        b = host.v2()
        base = host.root / "unified/lanco"
        write(base / "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
        write(base / "cgroup.subtree_control", "")
        setup = b.create_namespace(NS, os.getuid(), os.getgid(), False)
        # The base existed already: only the namespace and its monitors' leaf are new.
        assert setup.made == [b.ns_dir(NS), os.path.join(b.ns_dir(NS), ".monitors")]
        assert setup.adjusted == [str(base)]  # its controllers handed down
        assert read(base / "cgroup.subtree_control") == "+cpu +cpuset +io +memory +pids"
        assert os.stat(b.ns_dir(NS)).st_mode & 0o777 == 0o755
        # Idempotent: a second call (the kernel lists the enabled controllers without their +) changes nothing.
        write(base / "cgroup.subtree_control", "cpu cpuset io memory pids\n")
        assert b.create_namespace(NS, os.getuid(), os.getgid(), False) == NamespaceSetup([], [])
        assert read(base / "cgroup.subtree_control") == "cpu cpuset io memory pids\n"

    def test_create_namespace_sets_right_what_differs_and_says_so(self, host: FakeHost) -> None:
        b = host.v1()
        assert len(b.create_namespace(NS, os.getuid(), os.getgid(), False).made) == 3 * len(b.hierarchies)
        os.chmod(b.ns_dir(NS, host.memory), 0o700)
        setup = b.create_namespace(NS, os.getuid(), os.getgid(), False)
        assert setup == NamespaceSetup([], [b.ns_dir(NS, host.memory)])
        assert os.stat(b.ns_dir(NS, host.memory)).st_mode & 0o777 == 0o755

    def test_create_namespace_group_access(self, host: FakeHost) -> None:
        b = host.v1()
        b.create_namespace(NS, os.getuid(), os.getgid(), True)
        for mount in b.hierarchies:
            assert os.path.isdir(os.path.join(b.ns_dir(NS, mount), ".monitors"))
            assert os.stat(b.ns_dir(NS, mount)).st_mode & 0o777 == 0o775

    def test_remove_namespace(self, host: FakeHost) -> None:
        b = host.hybrid()
        make_namespace(b)
        os.mkdir(os.path.join(b.ns_dir(NS, host.memory), "leftover"))
        removed = b.remove_namespace(NS)
        assert sorted(removed) == sorted(b.ns_dir(NS, m) for m in b.hierarchies)
        for mount in b.hierarchies:
            assert not os.path.exists(b.base_dir(mount))  # the emptied base goes too
        assert b.remove_namespace(NS) == []


class TestCgroupsMissing:
    """A boot leaves cgroupfs empty and the state as it was: whatever needs the namespace's cgroups says so in one
    line, with the remedy, and makes nothing."""

    MESSAGE = f"cgroups of namespace {NS} are missing (a reboot?): run lanco restore as root"

    @pytest.mark.parametrize("kind", ["v2", "hybrid", "v1"])
    def test_a_task_of_a_namespace_without_cgroups(self, host: FakeHost, kind: str) -> None:
        b = getattr(host, kind)()
        with pytest.raises(CgroupsMissing) as caught:
            b.create_task(NS, TASK)
        assert caught.value.message == self.MESSAGE and caught.value.exit_code == 1
        assert not os.path.exists(b.base_dir(b.tracker))

    def test_a_hierarchy_that_lost_the_namespace_leaves_no_half_made_task(self, host: FakeHost) -> None:
        b = host.hybrid()
        make_namespace(b)
        os.rmdir(os.path.join(b.ns_dir(NS, host.pids), ".monitors"))
        os.rmdir(b.ns_dir(NS, host.pids))
        with pytest.raises(CgroupsMissing, match="run lanco restore as root"):
            b.create_task(NS, TASK)
        assert not any(os.path.exists(d) for d in b.task_dirs(NS, TASK))

    def test_limits_of_a_namespace_without_cgroups(self, host: FakeHost) -> None:
        with pytest.raises(CgroupsMissing):
            host.hybrid().check_limit(NS, "memory_max", "-m")
        with pytest.raises(CgroupsMissing):
            host.v2().check_limit(NS, "pids_max", "--pids-max")  # no controller handed down: none enabled

    def test_a_limit_the_namespace_lacks_is_still_named(self, host: FakeHost) -> None:
        b = host.v2()
        make_namespace(b)
        with pytest.raises(LimitUnavailable, match="pids controller"):
            b.check_limit(NS, "pids_max", "--pids-max")


class TestCreateRemoveTask:
    def test_create_task_makes_a_directory_in_every_hierarchy(self, host: FakeHost) -> None:
        b = host.hybrid()
        make_namespace(b)
        b.create_task(NS, TASK)
        assert all(os.path.isdir(d) for d in b.task_dirs(NS, TASK))
        assert b.task_exists(NS, TASK)

    def test_the_tracker_directory_is_the_name_lock(self, host: FakeHost) -> None:
        b = host.hybrid()
        make_namespace(b)
        os.mkdir(b.task_dir(NS, TASK))
        with pytest.raises(FileExistsError):
            b.create_task(NS, TASK)
        # Nothing was created (nor removed) elsewhere by the losing call.
        assert os.path.isdir(b.task_dir(NS, TASK))
        assert not os.path.exists(b.task_dir(NS, TASK, host.memory))

    def test_a_leftover_controller_directory_is_replaced(self, host: FakeHost) -> None:
        b = host.hybrid()
        make_namespace(b)
        os.makedirs(os.path.join(b.task_dir(NS, TASK, host.memory), "child-of-old-run"))
        b.create_task(NS, TASK)
        assert os.path.isdir(b.task_dir(NS, TASK, host.memory))
        assert os.listdir(b.task_dir(NS, TASK, host.memory)) == []

    def test_failure_rolls_back_every_directory_made(self, host: FakeHost) -> None:
        b = host.hybrid()
        make_namespace(b)
        # The pids hierarchy's namespace is no directory: its mkdir fails after the tracker, memory and cpu ones.
        os.rmdir(os.path.join(b.ns_dir(NS, host.pids), ".monitors"))
        os.rmdir(b.ns_dir(NS, host.pids))
        write(b.ns_dir(NS, host.pids), "")
        with pytest.raises(CgroupError, match=r"cannot create the cgroups of task first-task: .*ENOTDIR"):
            b.create_task(NS, TASK)
        assert [d for d in b.task_dirs(NS, TASK) if os.path.exists(d)] == []
        # The name is free again.
        os.unlink(b.ns_dir(NS, host.pids))
        os.mkdir(b.ns_dir(NS, host.pids))
        b.create_task(NS, TASK)
        assert b.task_exists(NS, TASK)

    def test_create_task_with_owner(self, host: FakeHost) -> None:
        b = host.v2()
        make_namespace(b)
        b.create_task(NS, TASK, owner=(os.getuid(), os.getgid()))
        assert os.stat(b.task_dir(NS, TASK)).st_uid == os.getuid()

    def test_remove_task_is_depth_first_and_tracker_last(self, host: FakeHost,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
        b = host.hybrid()
        make_namespace(b)
        b.create_task(NS, TASK)
        tracker = b.task_dir(NS, TASK)
        os.makedirs(os.path.join(tracker, "a", "a1"))
        os.makedirs(os.path.join(tracker, "b"))
        os.makedirs(os.path.join(b.task_dir(NS, TASK, host.memory), "m"))
        removed: list[str] = []
        real_rmdir = os.rmdir

        def recording_rmdir(path: Any, *args: Any, **kwargs: Any) -> None:
            real_rmdir(path, *args, **kwargs)
            removed.append(os.fspath(path))

        monkeypatch.setattr(os, "rmdir", recording_rmdir)
        b.remove_task(NS, TASK)
        assert not any(os.path.exists(d) for d in b.task_dirs(NS, TASK))
        assert removed[-1] == tracker
        for i, path in enumerate(removed):
            # No directory goes before any of its descendants.
            assert not any(later.startswith(path + os.sep) for later in removed[i + 1:]), removed
        assert removed.index(os.path.join(tracker, "a", "a1")) < removed.index(os.path.join(tracker, "a"))
        assert removed.index(os.path.join(b.task_dir(NS, TASK, host.memory), "m")) < removed.index(tracker)

    def test_remove_task_of_a_missing_task_is_quiet(self, host: FakeHost) -> None:
        b = host.hybrid()
        make_namespace(b)
        b.remove_task(NS, "never-made")

    def test_rmdir_retries_while_busy(self, host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
        b = host.v2()
        make_namespace(b)
        b.create_task(NS, TASK)
        real_rmdir = os.rmdir
        calls: list[str] = []

        def busy_twice(path: Any, *args: Any, **kwargs: Any) -> None:
            calls.append(os.fspath(path))
            if len(calls) <= 2:
                raise OSError(errno.EBUSY, "Device or resource busy", os.fspath(path))
            real_rmdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "rmdir", busy_twice)
        b.remove_task(NS, TASK)
        assert len(calls) == 3
        assert not os.path.exists(b.task_dir(NS, TASK))

    def test_rmdir_gives_up_after_the_attempts(self, host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
        b = host.v2()
        make_namespace(b)
        b.create_task(NS, TASK)

        def always_busy(path: Any, *args: Any, **kwargs: Any) -> None:
            raise OSError(errno.EBUSY, "Device or resource busy", os.fspath(path))

        monkeypatch.setattr(os, "rmdir", always_busy)
        with pytest.raises(CgroupError, match=r"cannot remove cgroup .*first-task.*EBUSY"):
            b.remove_task(NS, TASK, attempts=3)

    def test_rmdir_does_not_retry_other_errors(self, host: FakeHost) -> None:
        b = host.v2()
        make_namespace(b)
        b.create_task(NS, TASK)
        write(os.path.join(b.task_dir(NS, TASK), "stray-file"), "")  # a plain fs refuses: ENOTEMPTY
        with pytest.raises(CgroupError, match="ENOTEMPTY"):
            b.remove_task(NS, TASK)


class TestProcesses:
    def test_pids_include_sub_cgroups(self, host: FakeHost) -> None:
        b = host.v1()
        make_namespace(b)
        task = b.task_dir(NS, TASK)
        write(os.path.join(task, "cgroup.procs"), "101\n102\n")
        write(os.path.join(task, "sub", "cgroup.procs"), "103\n")
        write(os.path.join(task, "sub", "deeper", "cgroup.procs"), "104\n")
        os.makedirs(os.path.join(task, "empty"))  # no cgroup.procs file: skipped, not an error
        assert sorted(b.pids(NS, TASK)) == [101, 102, 103, 104]

    def test_pids_of_a_missing_task(self, host: FakeHost) -> None:
        assert host.v2().pids(NS, "nope") == []

    def test_populated_v2_reads_cgroup_events(self, host: FakeHost) -> None:
        b = host.v2()
        task = b.task_dir(NS, TASK)
        write(os.path.join(task, "cgroup.procs"), "")
        write(os.path.join(task, "cgroup.events"), "populated 1\nfrozen 0\n")
        assert b.populated(NS, TASK) is True  # populated by a sub-cgroup: cgroup.procs alone would say no
        write(os.path.join(task, "cgroup.events"), "populated 0\nfrozen 0\n")
        write(os.path.join(task, "cgroup.procs"), "555\n")
        assert b.populated(NS, TASK) is False

    def test_populated_v2_without_events_file(self, host: FakeHost) -> None:
        assert host.v2().populated(NS, TASK) is False

    def test_populated_v1_reads_cgroup_procs(self, host: FakeHost) -> None:
        for b in (host.v1(), host.hybrid_named()):
            task = b.task_dir(NS, TASK)
            write(os.path.join(task, "cgroup.procs"), "")
            assert b.populated(NS, TASK) is False
            write(os.path.join(task, "child", "cgroup.procs"), "77\n")
            assert b.populated(NS, TASK) is True
            os.remove(os.path.join(task, "child", "cgroup.procs"))
            write(os.path.join(task, "cgroup.procs"), "78\n")
            assert b.populated(NS, TASK) is True
            os.remove(os.path.join(task, "cgroup.procs"))
            os.rmdir(os.path.join(task, "child"))

    def test_kill_uses_cgroup_kill_when_present(self, host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
        b = host.v2()
        task = b.task_dir(NS, TASK)
        write(os.path.join(task, "cgroup.procs"), "301\n")
        write(os.path.join(task, "cgroup.kill"), "")
        sent: list[int] = []
        monkeypatch.setattr(os, "kill", lambda pid, signum: sent.append(pid))
        b.kill(NS, TASK)
        assert read(os.path.join(task, "cgroup.kill")) == "1"
        assert sent == []

    def test_wait_empty_v2(self, host: FakeHost) -> None:
        b = host.v2()
        task = b.task_dir(NS, TASK)
        assert b.wait_empty(NS, TASK, 5.0) is True  # no events file: the cgroup is gone
        write(os.path.join(task, "cgroup.events"), "populated 0\nfrozen 0\n")
        assert b.wait_empty(NS, TASK, 5.0) is True
        write(os.path.join(task, "cgroup.events"), "populated 1\nfrozen 0\n")
        assert b.wait_empty(NS, TASK, 0.05) is False

    def test_wait_empty_v1(self, host: FakeHost) -> None:
        b = host.v1()
        task = b.task_dir(NS, TASK)
        write(os.path.join(task, "cgroup.procs"), "")
        assert b.wait_empty(NS, TASK, 5.0) is True
        write(os.path.join(task, "cgroup.procs"), "401\n")
        assert b.wait_empty(NS, TASK, 0.05) is False

    def test_wait_empty_v2_with_a_long_timeout(self, host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
        b = host.v2()
        events = os.path.join(b.task_dir(NS, TASK), "cgroup.events")
        write(events, "populated 1\nfrozen 0\n")
        timeouts: list[int] = []

        class KernelLikePoll:
            """Accepts what select.poll accepts; 'the task ends' as soon as somebody waits."""

            def register(self, fd: int, mask: int) -> None:
                pass

            def poll(self, timeout: int | None = None) -> list[tuple[int, int]]:
                timeouts.append(0 if timeout is None else timeout)
                if timeout is not None and timeout > 2**31 - 1:
                    raise OverflowError("timeout is too large")
                write(events, "populated 0\nfrozen 0\n")
                return []

        monkeypatch.setattr(select, "poll", KernelLikePoll)
        assert b.wait_empty(NS, TASK, 30 * 86400.0) is True
        assert timeouts and all(t <= 2**31 - 1 for t in timeouts)


def _v2_task_files(b: Backend) -> str:
    task = b.task_dir(NS, TASK)
    write(os.path.join(task, "cgroup.procs"), "7\n")
    write(os.path.join(task, "cpu.stat"), "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n")
    write(os.path.join(task, "memory.current"), "4096\n")
    write(os.path.join(task, "memory.peak"), "8192\n")
    write(os.path.join(task, "memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\noom_group_kill 0\n")
    return task


class TestFigures:
    def test_v2_figures(self, host: FakeHost) -> None:
        b = host.v2()
        write(os.path.join(b.ns_dir(NS), "cgroup.subtree_control"), "cpu io memory pids\n")
        _v2_task_files(b)
        assert b.figures(NS, TASK) == TaskFigures(cpu_usec=1500000, memory_bytes=4096, memory_peak_bytes=8192,
                                                  oom_kills=2, pids=[7])

    def test_v2_without_the_memory_controller(self, host: FakeHost) -> None:
        b = host.v2()
        write(os.path.join(b.ns_dir(NS), "cgroup.subtree_control"), "cpu pids\n")
        _v2_task_files(b)
        assert b.figures(NS, TASK) == TaskFigures(cpu_usec=1500000, pids=[7])

    def test_v2_stat_sources(self, host: FakeHost) -> None:
        b = host.v2()
        write(os.path.join(b.ns_dir(NS), "cgroup.subtree_control"), "memory\n")
        task = b.task_dir(NS, TASK)
        assert b.stat_sources(NS, TASK) == [
            StatSource("cpu_usec", os.path.join(task, "cpu.stat"), "usage_usec"),
            StatSource("memory_peak_bytes", os.path.join(task, "memory.peak"), "-"),
            StatSource("oom_kills", os.path.join(task, "memory.events"), "oom_kill"),
        ]

    def test_hybrid_figures_mix_the_v2_tracker_and_v1_memory(self, host: FakeHost) -> None:
        b = host.hybrid()
        write(os.path.join(b.task_dir(NS, TASK), "cgroup.procs"), "8\n")
        write(os.path.join(b.task_dir(NS, TASK), "cpu.stat"), "usage_usec 250\n")
        memory = b.task_dir(NS, TASK, host.memory)
        write(os.path.join(memory, "memory.usage_in_bytes"), "1048576\n")
        write(os.path.join(memory, "memory.max_usage_in_bytes"), "2097152\n")
        write(os.path.join(memory, "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
        write(os.path.join(b.task_dir(NS, TASK, host.cpu), "cpuacct.usage"), "999999999\n")  # not the source
        assert b.figures(NS, TASK) == TaskFigures(cpu_usec=250, memory_bytes=1048576, memory_peak_bytes=2097152,
                                                  oom_kills=1, pids=[8])

    def test_v1_figures_convert_nanoseconds(self, host: FakeHost) -> None:
        b = host.v1()
        write(os.path.join(b.task_dir(NS, TASK), "cgroup.procs"), "")
        write(os.path.join(b.task_dir(NS, TASK, host.cpu), "cpuacct.usage"), "2500001999\n")
        memory = b.task_dir(NS, TASK, host.memory)
        write(os.path.join(memory, "memory.usage_in_bytes"), "100\n")
        write(os.path.join(memory, "memory.max_usage_in_bytes"), "200\n")
        write(os.path.join(memory, "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
        assert b.figures(NS, TASK) == TaskFigures(cpu_usec=2500001, memory_bytes=100, memory_peak_bytes=200,
                                                  oom_kills=0, pids=[])

    def test_v1_stat_sources(self, host: FakeHost) -> None:
        b = host.v1()
        cpu, memory = b.task_dir(NS, TASK, host.cpu), b.task_dir(NS, TASK, host.memory)
        assert b.stat_sources(NS, TASK) == [
            StatSource("cpu_nsec", os.path.join(cpu, "cpuacct.usage"), "-"),
            StatSource("memory_peak_bytes", os.path.join(memory, "memory.max_usage_in_bytes"), "-"),
            StatSource("oom_kills", os.path.join(memory, "memory.oom_control"), "oom_kill"),
        ]

    def test_missing_or_garbled_files_give_none(self, host: FakeHost) -> None:
        b = host.v1()
        write(os.path.join(b.task_dir(NS, TASK, host.cpu), "cpuacct.usage"), "garbage\n")
        memory = b.task_dir(NS, TASK, host.memory)
        write(os.path.join(memory, "memory.oom_control"), "oom_kill x\n")
        assert b.figures(NS, TASK) == TaskFigures()

    def test_v1_without_cpuacct_or_memory(self, host: FakeHost) -> None:
        b = Backend("v1", BASE, host.named, {"pids": host.pids})
        assert b.stat_sources(NS, TASK) == []


class TestLimits:
    def test_enabled_controllers_v2_come_from_subtree_control(self, host: FakeHost) -> None:
        b = host.v2()
        assert b.enabled_controllers(NS) == set()
        write(os.path.join(b.ns_dir(NS), "cgroup.subtree_control"), "cpu io memory pids\n")
        assert b.enabled_controllers(NS) == {"cpu", "io", "memory", "pids"}

    def test_enabled_controllers_hybrid_are_the_v1_mounts(self, host: FakeHost) -> None:
        b = host.hybrid()
        write(os.path.join(b.ns_dir(NS), "cgroup.subtree_control"), "io\n")  # v2 controllers do not count
        assert b.enabled_controllers(NS) == {"memory", "cpu", "cpuacct", "pids", "freezer"}

    def test_require_passes_when_the_controller_is_there(self, host: FakeHost) -> None:
        host.hybrid().require(NS, "memory", "-m")
        b = host.v2()
        write(os.path.join(b.ns_dir(NS), "cgroup.subtree_control"), "memory\n")
        b.require(NS, "memory", "-m")

    def test_require_names_the_missing_controller(self, host: FakeHost) -> None:
        b = Backend("v1", BASE, host.named, {"cpu": host.cpu, "cpuacct": host.cpu, "pids": host.pids})
        make_namespace(b)
        with pytest.raises(LimitUnavailable) as caught:
            b.require(NS, "memory", "-m")
        message = caught.value.message
        assert "-m needs the memory controller" in message
        assert "cgroup mode v1" in message and f"namespace {NS}" in message
        assert message.endswith("(available: cpu cpuacct pids)")
        assert caught.value.exit_code == 1

    def test_require_with_nothing_available(self, host: FakeHost) -> None:
        b = host.v2()
        make_namespace(b)
        with pytest.raises(LimitUnavailable, match=r"memory controller.*\(available: none\)$"):
            b.require(NS, "memory", "--memory-max")

    def test_set_memory_max_v2(self, host: FakeHost) -> None:
        b = host.v2()
        task = b.task_dir(NS, TASK)
        # cgroupfs files take a write whole; a plain file would keep the tail of a longer old value: start empty.
        write(os.path.join(task, "memory.max"), "")
        write(os.path.join(task, "memory.oom.group"), "")
        b.apply_limits(NS, TASK, Limits(memory_max=64 << 20))
        assert read(os.path.join(task, "memory.max")) == "67108864"
        assert read(os.path.join(task, "memory.oom.group")) == "1"
        write(os.path.join(task, "memory.max"), "")
        b.apply_limits(NS, TASK, Limits(memory_max=MAX))
        assert read(os.path.join(task, "memory.max")) == "max"

    def test_set_memory_max_v1(self, host: FakeHost) -> None:
        for b in (host.v1(), host.hybrid()):
            memory = b.task_dir(NS, TASK, host.memory)
            write(os.path.join(memory, "memory.limit_in_bytes"), "")
            b.apply_limits(NS, TASK, Limits(memory_max=512 << 10))
            assert read(os.path.join(memory, "memory.limit_in_bytes")) == "524288"
            write(os.path.join(memory, "memory.limit_in_bytes"), "")
            b.apply_limits(NS, TASK, Limits(memory_max=MAX))
            assert read(os.path.join(memory, "memory.limit_in_bytes")) == "-1"
            # Nothing was written in the tracker's directory.
            assert not os.path.exists(os.path.join(b.task_dir(NS, TASK), "memory.max"))

    def test_set_memory_max_needs_the_kernel_file(self, host: FakeHost) -> None:
        b = host.v2()
        os.makedirs(b.task_dir(NS, TASK))
        with pytest.raises(CgroupError, match=r"cannot set memory.max to '1048576' for task first-task: .*ENOENT"):
            b.apply_limits(NS, TASK, Limits(memory_max=1 << 20))  # writes never create files: cgroupfs has them all
        assert not os.path.exists(os.path.join(b.task_dir(NS, TASK), "memory.max"))


class TestOpenBackend:
    def test_v2(self) -> None:
        b = open_backend("v2", "/lanco", "unified", parse_mountinfo(PURE_V2))
        assert (b.mode, b.tracker.path, b.controllers) == ("v2", "/sys/fs/cgroup", {})
        assert b.task_dir(NS, TASK) == "/sys/fs/cgroup/lanco/testns/first-task"

    def test_hybrid_for_root(self) -> None:
        b = open_backend("hybrid", "/lanco", "unified", parse_mountinfo(HYBRID))
        assert b.tracker.path == "/sys/fs/cgroup/unified"
        assert sorted(b.controllers) == ["blkio", "cpu", "cpuacct", "freezer", "memory", "pids"]
        assert b.controller_dir("cpuacct", NS, TASK) == "/sys/fs/cgroup/cpu,cpuacct/lanco/testns/first-task"

    def test_hybrid_for_a_user_tracks_in_the_named_hierarchy(self) -> None:
        text = HYBRID + "90 33 0:45 / /sys/fs/cgroup/lanco rw,relatime shared:40 - cgroup lanco rw,name=lanco\n"
        b = open_backend("hybrid", "/lanco", "named", parse_mountinfo(text))
        assert b.tracker.name == "lanco"
        assert b.events_file(NS, TASK) is None
        assert b.task_dirs(NS, TASK)[-1] == "/sys/fs/cgroup/lanco/lanco/testns/first-task"

    def test_v1(self) -> None:
        b = open_backend("v1", "/lanco", "named", parse_mountinfo(PURE_V1))
        assert b.tracker.path == "/sys/fs/cgroup/lanco"
        assert "memory" in b.controllers

    def test_container_root(self) -> None:
        b = open_backend("v2", "/system.slice/docker-4f1e2d.scope/lanco", "unified", parse_mountinfo(CONTAINER_V2))
        assert b.ns_dir(NS) == "/sys/fs/cgroup/lanco/testns"

    def test_unified_tracker_without_a_unified_mount(self) -> None:
        with pytest.raises(CgroupError, match=r"unified \(v2\) hierarchy, which is not mounted"):
            open_backend("hybrid", "/lanco", "unified", parse_mountinfo(PURE_V1))

    def test_named_tracker_without_the_named_mount_reads_as_gone(self) -> None:
        """As a boot leaves it, for a caller who may not mount it: views show the records, a run says what is
        missing (TestCgroupsMissing)."""
        b = open_backend("hybrid", "/lanco", "named", parse_mountinfo(HYBRID))
        assert (b.tracker.name, b.tracker.version) == ("lanco", 1)
        assert b.tracker.path in ("/sys/fs/cgroup/lanco", "/run/lanco/cgroup")  # where root would mount it
        assert not b.namespace_exists(NS) and b.task_names(NS) == [] and not b.task_exists(NS, TASK)

    @pytest.mark.parametrize("mode", ["hybrid", "v1"])
    def test_modes_that_need_v1_controllers(self, mode: str) -> None:
        text = PURE_V2 + "90 26 0:45 / /run/lanco/cgroup rw,relatime - cgroup lanco rw,name=lanco\n"
        with pytest.raises(CgroupError, match=rf"cgroup mode {mode} needs v1 controller hierarchies"):
            open_backend(mode, "/lanco", "named", parse_mountinfo(text))


class TestTrackers:
    """One manager per tracker version: the unified tree's in v2 and hybrid, the named hierarchy's in v1 and for
    an owner tracked there."""

    def test_each_mode_gets_its_trackers_manager(self, host: FakeHost) -> None:
        from lanco.cgroups.v1 import NamedTracker
        from lanco.cgroups.v2 import UnifiedTracker

        assert isinstance(host.v2().tracking, UnifiedTracker)
        assert isinstance(host.hybrid().tracking, UnifiedTracker)
        assert isinstance(host.hybrid_named().tracking, NamedTracker)
        assert isinstance(host.v1().tracking, NamedTracker)

    def test_what_each_version_offers(self, host: FakeHost) -> None:
        v2, v1 = host.v2(), host.v1()
        task = v2.task_dir(NS, TASK)
        assert v2.events_file(NS, TASK) == f"{task}/cgroup.events" and v1.events_file(NS, TASK) is None
        assert v2.freeze_control(NS, TASK) is None  # a kernel without cgroup.freeze (before 5.2)
        write(os.path.join(task, "cgroup.freeze"), "0\n")
        assert v2.freeze_control(NS, TASK) == (f"{task}/cgroup.freeze", "1", "0")
        freezer = v1.controller_dir("freezer", NS, TASK)
        assert v1.freeze_control(NS, TASK) == (f"{freezer}/freezer.state", "FROZEN", "THAWED")
        assert v2.pressure(NS, TASK) is not None and v1.pressure(NS, TASK) is None
        assert v2.tracking.cpu_source(NS, TASK) == ("cpu_usec", f"{task}/cpu.stat", "usage_usec")
        cpuacct = v1.controller_dir("cpuacct", NS, TASK)
        assert v1.tracking.cpu_source(NS, TASK) == ("cpu_nsec", f"{cpuacct}/cpuacct.usage", "-")
