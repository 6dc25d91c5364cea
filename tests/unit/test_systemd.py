"""The systemd tracker kind and its neighbours on a fake cgroupfs: unit-name escaping, where tasks are found,
which route a caller takes, limits against delegated controllers, the namespace view, and the take-over."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lanco.cgroups import nsview, systemd
from lanco.cgroups.detect import CgroupMount, parse_mountinfo
from lanco.cgroups.placement import prepare_base_parent, take_over_cgroup, tracker_kind
from lanco.cgroups.systemd import (
    UNIT_NAME_MAX,
    SystemdBackend,
    escape_unit_part,
    namespace_slice,
    scope_task_name,
    task_scope,
    unescape_unit_part,
    unit_name_problem,
)
from lanco.errors import LimitUnavailable, UsageError
from tests.unit.conftest import BASE, NS, FakeHost, write
from tests.unit.test_detect import HYBRID, PURE_V2

UID = os.geteuid() or 1000
"""The user whose manager the fake tree has (the real euid, so that the caller's own scopes are looked at)."""


def manager(host: FakeHost, uid: int = UID) -> Path:
    return host.root / "unified" / f"user.slice/user-{uid}.slice/user@{uid}.service"


def backend(host: FakeHost, group_access: bool = False, owner: int = UID) -> SystemdBackend:
    return SystemdBackend("v2", BASE, host.unified, owner_uid=owner, owner_gid=owner, group_access=group_access)


RUN = "0123456789abcdef"


def scope_task(host: FakeHost, task: str, uid: int = UID, ns: str = NS, run: str = RUN) -> Path:
    path = manager(host, uid) / "lanco.slice" / namespace_slice(ns) / task_scope(ns, task, run) / "task"
    path.mkdir(parents=True)
    return path


class TestNames:
    @pytest.mark.parametrize(("text", "escaped"), [("first-task", "first\\x2dtask"), ("a_b.c", "a_b.c"),
                                                   ("x\\y", "x\\x5cy"), (".hidden", "\\x2ehidden")])
    def test_escape_as_systemd_escape_does(self, text: str, escaped: str) -> None:
        assert escape_unit_part(text) == escaped
        assert unescape_unit_part(escaped) == text

    def test_dashes_keep_namespace_task_and_run_apart(self) -> None:
        assert task_scope("a-b", "c", RUN) != task_scope("a", "b-c", RUN)
        assert namespace_slice("my-ns") == "lanco-my\\x2dns.slice"
        assert task_scope("my-ns", "first-task", RUN) == f"lanco-my\\x2dns-first\\x2dtask-{RUN}.scope"
        assert scope_task_name("my-ns", task_scope("my-ns", "first-task", RUN)) == "first-task"
        # An older lanco's per-name scope and its hook scopes are no runs of this one's.
        for other in ("lanco-my\\x2dns-first\\x2dtask.scope", f"lanco-my\\x2dns-t-hook-{RUN}.scope",
                      "lanco-other-t-1.scope", f"lanco-my\\x2dns-t-{RUN}.service"):
            assert scope_task_name("my-ns", other) is None


class TestLookup:
    def test_scope_task_is_found_by_name_and_listed(self, host: FakeHost) -> None:
        found = scope_task(host, "first-task")
        scope_task(host, "first", run="fedcba9876543210")  # a prefix of the other's name
        (found.parent.parent / task_scope(NS, "first-task", "1111111111111111")).mkdir()  # an ended run's
        b = backend(host)
        assert b.task_dir(NS, "first-task") == str(found)
        assert b.task_exists(NS, "first-task")
        assert b.events_file(NS, "first-task") == str(found / "cgroup.events")
        assert b.task_names(NS) == ["first", "first-task"]

    def test_direct_task_is_found_first(self, host: FakeHost) -> None:
        scope_task(host, "t")
        direct = host.root / "unified/lanco" / NS / "t"
        direct.mkdir(parents=True)
        assert backend(host).task_dir(NS, "t") == str(direct)

    def test_other_scopes_of_the_slice_are_no_tasks(self, host: FakeHost) -> None:
        slice_dir = manager(host) / "lanco.slice" / namespace_slice(NS)
        (slice_dir / f"lanco-{NS}-t-hook-0123.scope").mkdir(parents=True)
        (slice_dir / task_scope(NS, "finishing", RUN)).mkdir()  # its task/ is gone: the run has ended
        assert backend(host).task_names(NS) == []

    @pytest.mark.skipif(os.geteuid() != 0, reason="looks up another user's scopes as root")
    def test_another_users_scopes_count_only_for_a_group_namespace(self, host: FakeHost) -> None:
        other = 4242
        scope_task(host, "theirs", uid=other)
        assert not backend(host, owner=UID).task_exists(NS, "theirs")
        assert backend(host, owner=other).task_exists(NS, "theirs")


class TestRoutes:
    def test_root_moves_directly(self, host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(os, "geteuid", lambda: 0)
        b = backend(host, owner=1000)
        assert b.placement_problem(NS) is None
        assert b.task_dir(NS, "t") == str(host.root / "unified/lanco" / NS / "t")

    def test_a_user_with_a_manager_goes_through_a_scope(self, host: FakeHost, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
        runtime = tmp_path / "run-user"
        write(runtime / "systemd" / "private", "")
        monkeypatch.setattr(systemd, "runtime_dir", lambda uid: str(runtime))
        b = backend(host, owner=1000)
        assert b.placement_problem(NS) is None
        b.create_task(NS, "t", run_id=RUN)  # makes nothing yet: the scope comes with the monitor
        assert b.task_dir(NS, "t").endswith(
            f"user@1000.service/lanco.slice/lanco-{NS}.slice/lanco-{NS}-t-{RUN}.scope/task")
        assert not (manager(host, 1000) / "lanco.slice").exists()

    def test_a_name_too_long_for_systemd_is_refused_before_any_scope(self, host: FakeHost, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
        write(tmp_path / "rt" / "systemd" / "private", "")
        monkeypatch.setattr(systemd, "runtime_dir", lambda uid: str(tmp_path / "rt"))
        dashed = "a" + "-" * 63  # 64 characters, 63 of them escaped to 4
        assert len(task_scope(NS, dashed, RUN)) > UNIT_NAME_MAX
        b = backend(host, owner=1000)
        with pytest.raises(UsageError, match=r"needs systemd unit names of up to \d+ characters, over systemd's 255"):
            b.create_task(NS, dashed, run_id=RUN)
        assert (NS, dashed) not in b._pending and not (manager(host, 1000) / "lanco.slice").exists()
        assert unit_name_problem(NS, "first-task") is None

    def test_without_a_manager_the_refusal_names_rule_and_remedies(self, host: FakeHost, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
        monkeypatch.setattr(systemd, "runtime_dir", lambda uid: str(tmp_path / "nothing"))
        problem = backend(host, owner=1000).placement_problem(NS)
        assert problem is not None
        for words in ("common ancestor", "loginctl enable-linger", "Delegate=yes", "as root", "systemd/private"):
            assert words in problem

    def test_limits_are_checked_against_the_delegated_controllers(self, host: FakeHost, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
        write(tmp_path / "rt" / "bus", "")
        monkeypatch.setattr(systemd, "runtime_dir", lambda uid: str(tmp_path / "rt"))
        write(manager(host, 1000) / "cgroup.controllers", "cpu memory pids\n")
        write(manager(host, 1000) / "memory.max", "max\n")
        b = backend(host, owner=1000)
        b.check_limit(NS, "memory_max", "-m")
        with pytest.raises(LimitUnavailable, match="cpuset controller, which systemd does not delegate"):
            b.check_limit(NS, "cpuset", "--cpuset")
        assert b.enabled_controllers(NS) == {"cpu", "memory", "pids"}


class TestTrackerKind:
    def test_systemd_kind_only_for_users_on_a_pure_v2_systemd_host(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from lanco.cgroups import placement

        monkeypatch.setattr(placement, "systemd_is_init", lambda: True)
        v2, hybrid = parse_mountinfo(PURE_V2), parse_mountinfo(HYBRID)
        assert tracker_kind("v2", 1000, v2) == "systemd"
        assert tracker_kind("v2", 0, v2) == "unified"
        assert tracker_kind("v2", 1000, hybrid) == "unified"  # forced v2 on a hybrid host
        assert tracker_kind("hybrid", 1000, hybrid) == "named"
        monkeypatch.setattr(placement, "systemd_is_init", lambda: False)
        assert tracker_kind("v2", 1000, v2) == "unified"


class TestContainers:
    def test_mount_from_outside_the_namespace_is_re_rooted(self, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
        root = tmp_path / "cg"
        write(root / "system.slice/other.scope/cgroup.procs", "1\n")
        write(root / "system.slice/mine.scope/init/cgroup.procs", f"{os.getpid()}\n")
        monkeypatch.setattr(nsview, "unified_cgroup", lambda: "/init")
        seen = nsview.namespace_view(CgroupMount(str(root), "/../..", 2, frozenset()))
        assert seen == CgroupMount(str(root / "system.slice/mine.scope"), "/", 2, frozenset())
        plain = CgroupMount(str(root), "/", 2, frozenset())
        assert nsview.namespace_view(plain) is plain

    def test_take_over_moves_everyone_into_init(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        from lanco.cgroups import cgroupfs

        top = tmp_path / "ct"
        (top / "init").mkdir(parents=True)
        (top / "init" / "cgroup.procs").write_text("")  # cgroupfs has it as soon as the cgroup is made
        # The kernel empties the source as processes move; a fake tree needs telling: two passes, one forks.
        passes = iter([[10, 11], [12], []])
        monkeypatch.setattr(cgroupfs, "pids", lambda directory: next(passes))
        assert take_over_cgroup(str(top)) == [10, 11, 12]
        assert (top / "init" / "cgroup.procs").read_text() == "12"

    def test_init_warns_when_others_hold_the_root(self, host: FakeHost, capsys: pytest.CaptureFixture[str]) -> None:
        parent = host.root / "unified"
        write(parent / "cgroup.events", "populated 1\n")
        write(parent / "cgroup.controllers", "cpu memory pids\n")
        write(parent / "cgroup.subtree_control", "")
        write(parent / "cgroup.procs", "1\n2\n")
        prepare_base_parent(host.v2(), take_over=False)
        err = capsys.readouterr().err
        assert "holds processes (1 2)" in err and "--take-over" in err
        assert (parent / "cgroup.subtree_control").read_text() == ""
