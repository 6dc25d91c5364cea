"""An unprivileged user cannot see into, run in or stop another user's namespace: neither through lanco nor
around it (cgroup files, records, the other user's scopes)."""

from __future__ import annotations

import os
import pwd
import subprocess

from tests.conftest import Sandbox
from tests.guest.conftest import as_user, cgroup_of, run, run_api, shared_dir, status
from tests.integration.test_lifecycle import one_warning


def test_another_users_namespace_is_closed(sandbox: Sandbox, alice: str, other_user: str) -> None:
    ns = sandbox.ns_name()
    sandbox.ok(ns, "init", "-u", alice)
    sandbox.ok(ns, "run", "mine", "sleep", "300", user=alice)
    (pid,) = [int(p["pid"]) for p in status(sandbox, ns, "mine", alice)["processes"]]  # type: ignore[attr-defined]
    for args in (["run", "theirs", "true"], ["stop", "mine"], ["check", "mine"], ["status", "mine"],
                 ["wait", "mine"], ["ls"], ["logs", "mine"], ["release", "mine"], ["release"]):
        result = sandbox.lanco(ns, *args, user=other_user)
        assert result.returncode == 1, (args, result.stderr)
        assert one_warning(result.stderr, args[0]) == f"namespace {ns} belongs to user {alice}", args
    program = ("import lanco, sys\n"
               "try:\n"
               f"    lanco.Namespace({ns!r}).task('mine').stop()\n"
               "except lanco.PermissionDenied as exc:\n"
               "    print(exc.message); sys.exit(3)\n")
    refused = run_api(sandbox, program, user=other_user)
    assert refused.returncode == 3 and "belongs to user" in refused.stdout, refused.stderr
    # Around lanco: the task's cgroup and records are the owner's alone.
    task_cgroup = f"/sys/fs/cgroup{cgroup_of(pid)}"
    for attempt in ([f"echo 1 > {task_cgroup}/cgroup.kill"], [f"echo max > {task_cgroup}/memory.max"],
                    [f"ls {sandbox.state_dir(ns)}/tasks/mine"], [f"kill {pid}"]):
        result = run(as_user(other_user, ["sh", "-c", *attempt]))
        assert result.returncode != 0, attempt
    assert sandbox.lanco(ns, "check", "mine", user=alice).returncode == 0
    sandbox.ok(ns, "stop", "mine", user=alice)


def test_users_own_namespaces_of_one_name_stay_apart(sandbox: Sandbox, alice: str, other_user: str) -> None:
    """Two users each create, unprivileged, a namespace of the same name: each sees and stops only their own."""
    ns = sandbox.ns_name("own")
    homes = {}
    for user in (alice, other_user):
        home = shared_dir(sandbox) / f"state-{user}"
        home.mkdir()
        entry = pwd.getpwnam(user)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        homes[user] = {"XDG_STATE_HOME": str(home)}
    sandbox.ok(ns, "init", user=alice, extra_env=homes[alice])
    missing = sandbox.lanco(ns, "ls", user=other_user, extra_env=homes[other_user])
    assert missing.returncode == 1 and "should be created with init" in missing.stderr
    sandbox.ok(ns, "init", user=other_user, extra_env=homes[other_user])
    for user in (alice, other_user):
        sandbox.ok(ns, "run", "mine", "sleep", "300", user=user, extra_env=homes[user])
    pids = {}
    for user in (alice, other_user):
        listing = sandbox.ok(ns, "status", "--json", "mine", user=user, extra_env=homes[user]).stdout
        import json

        (pid,) = [p["pid"] for p in json.loads(listing)["processes"]]
        assert os.stat(f"/proc/{pid}").st_uid == pwd.getpwnam(user).pw_uid
        pids[user] = pid
    assert pids[alice] != pids[other_user]
    sandbox.ok(ns, "stop", "mine", user=other_user, extra_env=homes[other_user])
    assert sandbox.lanco(ns, "check", "mine", user=alice, extra_env=homes[alice]).returncode == 0
    assert sandbox.lanco(ns, "check", "mine", user=other_user, extra_env=homes[other_user]).returncode == 1
    sandbox.ok(ns, "stop", "mine", user=alice, extra_env=homes[alice])
    subprocess.run(["rm", "-rf", *(h["XDG_STATE_HOME"] for h in homes.values())], check=False)
