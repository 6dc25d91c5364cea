"""Unprivileged use after a root init, and the walls between users' namespaces."""

from __future__ import annotations

import json
import os
import pwd
import re

import pytest

from tests.conftest import Sandbox
from tests.integration.conftest import make_namespace, no_process_left, task_pids, wait_until
from tests.integration.test_lifecycle import one_warning


@pytest.mark.parametrize("mode", [None, "v1"])
def test_quick_tour_as_the_namespace_user(sandbox: Sandbox, test_user: str, mode: str | None) -> None:
    ns = make_namespace(sandbox, mode, user=test_user, group=test_user)
    sandbox.ok(ns, "run", "first-task", "openssl", "speed", "aes", user=test_user)
    assert sandbox.lanco(ns, "check", "first-task", user=test_user).returncode == 0
    tree = sandbox.ok(ns, "ls", user=test_user).stdout.splitlines()
    assert tree[:2] == [ns, " ├ first-task"] and re.fullmatch(r" │  → \d+ openssl speed aes", tree[2])
    (pid,) = task_pids(sandbox, ns, "first-task", user=test_user)
    assert os.stat(f"/proc/{pid}").st_uid == pwd.getpwnam(test_user).pw_uid
    log = sandbox.log_dir(ns) / "task-first-task.log"
    assert wait_until(lambda: log.exists() and "Doing aes" in log.read_text())
    assert log.stat().st_uid != 0
    refused = sandbox.lanco(ns, "run", "first-task", "openssl", "speed", "aes", user=test_user)
    assert refused.returncode == 1
    assert one_warning(refused.stderr, "run") == "task first-task is already running"
    sandbox.ok(ns, "stop", "first-task", user=test_user)
    sandbox.ok(ns, "run", "second-task", "sh", "-c", "while true; do (sleep 30 &)& sleep 1; done", user=test_user)
    assert wait_until(lambda: len(task_pids(sandbox, ns, "second-task", user=test_user)) >= 4)
    pids = task_pids(sandbox, ns, "second-task", user=test_user)
    sandbox.ok(ns, "stop", "second-task", user=test_user)
    assert sandbox.lanco(ns, "check", "second-task", user=test_user).returncode == 1
    assert no_process_left(pids, timeout=0.5)


def test_v2_without_delegation_is_refused_with_the_rule_and_remedies(sandbox: Sandbox, unmanaged_user: str) -> None:
    # Without a systemd user manager (where one would place the task) and outside any delegated cgroup.
    ns = make_namespace(sandbox, "v2", user=unmanaged_user)
    result = sandbox.lanco(ns, "run", "t", "sleep", "30", user=unmanaged_user)
    assert result.returncode == 1
    message = one_warning(result.stderr, "run")
    assert "common ancestor" in message and "Delegate=yes" in message and "root" in message
    assert os.listdir(sandbox.state_dir(ns) / "tasks") == []
    assert sandbox.lanco(ns, "check", "t").returncode == 1


def test_other_users_namespace_is_refused_and_untouched(sandbox: Sandbox, test_user: str, other_user: str) -> None:
    ns = make_namespace(sandbox, user=test_user)
    sandbox.ok(ns, "run", "mine", "sleep", "300", user=test_user)
    before = sorted(os.listdir(sandbox.state_dir(ns) / "tasks"))
    for args in (["run", "theirs", "true"], ["stop", "mine"], ["check", "mine"], ["status", "mine"],
                 ["wait", "mine"], ["ls"], ["release", "mine"], ["release"]):
        result = sandbox.lanco(ns, *args, user=other_user)
        assert result.returncode == 1, args
        assert one_warning(result.stderr, args[0]) == f"namespace {ns} belongs to user {test_user}", args
    assert sorted(os.listdir(sandbox.state_dir(ns) / "tasks")) == before
    assert sandbox.lanco(ns, "check", "mine", user=test_user).returncode == 0
    sandbox.ok(ns, "stop", "mine", user=test_user)


def test_second_init_for_another_owner_is_refused(sandbox: Sandbox, test_user: str, other_user: str) -> None:
    ns = make_namespace(sandbox, user=test_user)
    sandbox.ok(ns, "init", "-u", test_user)  # idempotent for the same owner
    result = sandbox.lanco(ns, "init", "-u", other_user)
    assert result.returncode == 1
    assert one_warning(result.stderr, "init") == f"namespace {ns} is already initialised for user {test_user}"


def test_init_needs_root(sandbox: Sandbox, unmanaged_user: str) -> None:
    # A user with a systemd user manager on a v2 host may create a namespace of their own (tests/guest).
    ns = sandbox.ns_name()
    result = sandbox.lanco(ns, "init", user=unmanaged_user)
    assert result.returncode == 1 and one_warning(result.stderr, "init") == f"init of namespace {ns} needs root"
    assert not sandbox.state_dir(ns).exists()


def test_root_task_in_a_users_namespace_runs_the_hook_as_the_user(sandbox: Sandbox, test_user: str) -> None:
    ns = make_namespace(sandbox, user=test_user)
    writable = sandbox.root / "user-writable"
    writable.mkdir()
    os.chown(writable, pwd.getpwnam(test_user).pw_uid, -1)
    out = writable / "hook-user"
    sandbox.ok(ns, "run", "-c", f"id -un > {out}", "byroot", "sh", "-c", "exit 0")
    sandbox.lanco(ns, "wait", "byroot")
    assert wait_until(lambda: out.exists() and out.read_text() != "")
    assert out.read_text() == f"{test_user}\n"
    # A task root starts in a user's namespace runs as that user, who can stop it.
    sandbox.ok(ns, "run", "rootstarted", "sleep", "300")
    (pid,) = task_pids(sandbox, ns, "rootstarted")
    assert os.stat(f"/proc/{pid}").st_uid == pwd.getpwnam(test_user).pw_uid
    monitor = int((sandbox.state_dir(ns) / "tasks" / "rootstarted" / "monitor").read_text().split()[0])
    assert os.stat(f"/proc/{monitor}").st_uid == pwd.getpwnam(test_user).pw_uid
    assert all(p.stat().st_uid != 0 for p in (sandbox.state_dir(ns) / "tasks" / "rootstarted").iterdir())
    sandbox.ok(ns, "stop", "rootstarted", user=test_user)
    state = json.loads(sandbox.ok(ns, "status", "--json", "rootstarted", user=test_user).stdout)["state"]
    assert state == "stopped"


@pytest.mark.parametrize("mode", [None, "v1", "v2"])
def test_root_in_a_users_namespace_follows_no_planted_symlink(sandbox: Sandbox, test_user: str,
                                                              mode: str | None) -> None:
    ns = make_namespace(sandbox, mode, user=test_user)
    victim_dir = sandbox.root / "root-only"
    victim_dir.mkdir(mode=0o755)
    victim = victim_dir / "precious"
    victim.write_text("precious\n")
    uid = pwd.getpwnam(test_user).pw_uid
    # The owner replaces the task's record directory and its log by links to files only root may write.
    record = sandbox.state_dir(ns) / "tasks" / "planted"
    os.symlink(victim_dir, record)
    os.lchown(record, uid, uid)
    log = sandbox.log_dir(ns) / "task-planted.log"
    os.symlink(victim, log)
    os.lchown(log, uid, uid)
    result = sandbox.lanco(ns, "run", "planted", "sh", "-c", "echo pwned")
    assert result.returncode != 0
    one_warning(result.stderr, "run")
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in victim_dir.iterdir()) == ["precious"]
    assert victim.stat().st_uid == 0 and victim_dir.stat().st_uid == 0
    assert sandbox.lanco(ns, "check", "planted").returncode == 1
    os.unlink(record)
    os.unlink(log)


def test_root_cannot_run_a_users_namespace_task_as_a_third_account(sandbox: Sandbox, test_user: str,
                                                                   other_user: str) -> None:
    ns = make_namespace(sandbox, user=test_user)
    result = sandbox.lanco(ns, "run", "--user", other_user, "t", "true")
    assert result.returncode == 1
    assert "runs as" in one_warning(result.stderr, "run")
    assert sandbox.lanco(ns, "check", "t").returncode == 1
