"""Unprivileged use after a root init, and the walls between users' namespaces."""

from __future__ import annotations

import json
import os
import pwd
import re
from pathlib import Path

import pytest

from tests.conftest import Sandbox
from tests.integration.conftest import make_namespace, no_process_left, record_dirs, task_pids, wait_until
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
    assert record_dirs(sandbox.state_dir(ns) / "tasks") == []
    assert sandbox.lanco(ns, "check", "t").returncode == 1


def test_other_users_namespace_is_refused_and_untouched(sandbox: Sandbox, test_user: str, other_user: str) -> None:
    ns = make_namespace(sandbox, user=test_user)
    sandbox.ok(ns, "run", "mine", "sleep", "300", user=test_user)
    before = sorted(record_dirs(sandbox.state_dir(ns) / "tasks"))
    for args in (["run", "theirs", "true"], ["stop", "mine"], ["check", "mine"], ["status", "mine"],
                 ["wait", "mine"], ["ls"], ["release", "mine"], ["release"]):
        result = sandbox.lanco(ns, *args, user=other_user)
        assert result.returncode == 1, args
        assert one_warning(result.stderr, args[0]) == f"namespace {ns} belongs to user {test_user}", args
    assert sorted(record_dirs(sandbox.state_dir(ns) / "tasks")) == before
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


# -- root never reads or writes a path a user's state files choose ---------------------------------------------

SECRET = "root-only-secret-4b7e1d"


def _plant(path: Path, text: str, uid: int) -> None:
    """What the owner can do in their own record directories: write any file there."""
    path.parent.mkdir(exist_ok=True)
    os.chown(path.parent, uid, uid)
    path.write_text(text)
    os.chown(path, uid, uid)


def _plant_link(path: Path, target: Path, uid: int) -> None:
    path.parent.mkdir(exist_ok=True)
    os.chown(path.parent, uid, uid)
    os.symlink(target, path)
    os.lchown(path, uid, uid)


def _root_owned_anywhere(*tops: Path) -> list[str]:
    found = []
    for top in tops:
        for dirpath, dirs, files in os.walk(top):
            for name in [*dirs, *files]:
                if os.lstat(os.path.join(dirpath, name)).st_uid == 0:
                    found.append(os.path.join(dirpath, name))
    return found


def test_root_reads_no_path_a_users_records_choose(sandbox: Sandbox, test_user: str, mode: str) -> None:
    ns = make_namespace(sandbox, mode, user=test_user)
    uid = pwd.getpwnam(test_user).pw_uid
    private = sandbox.root / "root-only"
    private.mkdir(mode=0o700)
    secret_log = private / "secret.log"
    secret_log.write_text(f"{SECRET} in a log\n")
    secret_spec = private / "spec.json"
    secret_spec.write_text(json.dumps({"run_id": "s", "argv": [SECRET], "log": str(secret_log)}))
    secret_result = private / "result"
    secret_result.write_text(f"run_id=s\nresult={SECRET}\nexit_code=3\nsignal=\n")
    for path in (secret_log, secret_spec, secret_result):
        path.chmod(0o600)
    with open("/etc/shadow") as f:
        shadow_line = f.readline().strip()
    assert shadow_line
    # Root-owned and world-readable in a directory only root may write: the owner cannot append to it.
    victim_dir = sandbox.root / "root-owned"
    victim_dir.mkdir(mode=0o755)
    victim = victim_dir / "victim.log"
    victim.write_text("untouched\n")
    victim.chmod(0o644)
    hook_dir = sandbox.root / "hook-out"
    hook_dir.mkdir()
    os.chown(hook_dir, uid, uid)
    hook_out = hook_dir / "out"
    tasks = sandbox.state_dir(ns) / "tasks"
    finished = "run_id=r1\nresult=exited\nexit_code=0\nsignal=\n"
    # The case: a finished record whose log is /etc/shadow; then a log only root may read.
    _plant(tasks / "shadow" / "spec.json", json.dumps({"run_id": "r1", "argv": ["true"], "log": "/etc/shadow"}),
           uid)
    _plant(tasks / "shadow" / "result", finished, uid)
    _plant(tasks / "secret" / "spec.json", json.dumps({"run_id": "r1", "argv": ["true"], "log": str(secret_log)}),
           uid)
    _plant(tasks / "secret" / "result", finished, uid)
    # Record files that are links to root-only files.
    _plant_link(tasks / "linked" / "spec.json", secret_spec, uid)
    _plant_link(tasks / "linked" / "result", secret_result, uid)
    _plant(tasks / "resultlink" / "spec.json", json.dumps({"run_id": "s", "argv": ["true"]}), uid)
    _plant_link(tasks / "resultlink" / "result", secret_result, uid)
    # A run that started (pid) and whose monitor is gone: the next command records it lost and runs its hook,
    # whose output the record sends to a root-owned file.
    _plant(tasks / "hooked" / "spec.json", json.dumps({
        "run_id": "r2", "argv": ["true"], "log": str(victim),
        "exit_command": f"id -u > {hook_out}; cat {secret_log} /etc/shadow >> {hook_out} 2>/dev/null; echo x"}), uid)
    _plant(tasks / "hooked" / "pid", "1\n", uid)

    outputs = []
    for args in (["logs", "shadow"], ["logs", "-n", "1", "shadow"], ["logs", "-f", "shadow"], ["logs", "secret"],
                 ["logs", "linked"], ["logs", "resultlink"], ["status", "shadow"], ["status", "--json", "secret"],
                 ["status", "linked"], ["status", "resultlink"], ["status", "hooked"], ["wait", "hooked"],
                 ["wait", "shadow"], ["wait", "linked"], ["stop", "shadow"], ["stop", "linked"],
                 ["stop", "shadow", "linked"], ["stop", "--all"], ["kill", "shadow"], ["ls"], ["ls", "--all"],
                 ["ls", "-l", "--all"], ["ls", "--all", "--json"], ["ls", "-q", "--all"], ["dump"],
                 ["top", "-n", "1", "-d", "0.1"], ["top", "-n", "1", "-d", "0.1", "--json"],
                 ["release", "-n", "linked"], ["release", "-n"]):
        result = sandbox.lanco(ns, *args, timeout=20)
        outputs.append((args, result))
        for text in (result.stdout, result.stderr):
            assert SECRET not in text and shadow_line not in text, (args, text)
    refusals = {tuple(args): result for args, result in outputs if args[0] == "logs"}
    for refused in (("logs", "shadow"), ("logs", "-n", "1", "shadow"), ("logs", "-f", "shadow")):
        assert refusals[refused].returncode == 1, refused
        assert one_warning(refusals[refused].stderr, "logs") == "cannot read log /etc/shadow: permission denied"
    assert one_warning(refusals[("logs", "secret")].stderr, "logs") == \
        f"cannot read log {secret_log}: permission denied"
    statuses = {tuple(args): result for args, result in outputs if args[0] == "status"}
    assert statuses[("status", "shadow")].returncode == 0
    assert statuses[("status", "linked")].returncode == 1
    assert one_warning(statuses[("status", "linked")].stderr, "status") == \
        f"cannot read the record of task linked: {tasks / 'linked' / 'spec.json'}: permission denied"
    assert statuses[("status", "resultlink")].returncode == 1
    assert wait_until(lambda: hook_out.exists() and hook_out.read_text() != "")
    assert wait_until(lambda: hook_out.read_text().startswith(f"{uid}\n"))
    assert victim.read_text() == "untouched\n" and victim.stat().st_uid == 0
    assert _root_owned_anywhere(tasks, sandbox.log_dir(ns)) == []
    sandbox.ok(ns, "release", "shadow")
    sandbox.ok(ns, "release", "secret")
    for linked in ("linked", "resultlink"):
        (tasks / linked / "result").unlink()
        (tasks / linked / "spec.json").unlink()
        sandbox.ok(ns, "release", linked)
    assert secret_spec.exists() and secret_result.exists() and secret_log.read_text() == f"{SECRET} in a log\n"
