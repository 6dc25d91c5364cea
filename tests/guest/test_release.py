"""release on a systemd host: a user releases the namespace of their own, root one it made for a user; either way
the namespace's slice unit in the user's manager goes with it, and the logs stay."""

from __future__ import annotations

import os
import pwd

from lanco.cgroups.systemd import namespace_slice
from tests.conftest import Sandbox
from tests.guest.conftest import shared_dir, systemctl_user
from tests.integration.test_lifecycle import one_warning


def slice_active(user: str, ns: str) -> bool:
    return systemctl_user(user, "is-active", namespace_slice(ns), check=False).stdout.strip() == "active"


def test_a_user_releases_the_namespace_of_their_own(sandbox: Sandbox, alice: str) -> None:
    ns = sandbox.ns_name("mine")
    home = shared_dir(sandbox) / "state-release"
    home.mkdir()
    entry = pwd.getpwnam(alice)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    env = {"XDG_STATE_HOME": str(home)}
    sandbox.ok(ns, "init", user=alice, extra_env=env)
    sandbox.ok(ns, "run", "job", "sh", "-c", "echo hello; sleep 300", user=alice, extra_env=env)
    assert slice_active(alice, ns)
    refused = sandbox.lanco(ns, "release", user=alice, extra_env=env)
    assert refused.returncode == 1 and one_warning(refused.stderr, "release") == \
        f"namespace {ns} has running tasks: job"
    sandbox.ok(ns, "stop", "job", user=alice, extra_env=env)
    planned = sandbox.ok(ns, "release", "-n", user=alice, extra_env=env).stdout
    assert f"would remove {home / 'lanco' / ns}\n" in planned and f"/{namespace_slice(ns)}\n" in planned
    sandbox.ok(ns, "release", user=alice, extra_env=env)
    assert not slice_active(alice, ns)
    state = home / "lanco" / ns
    assert sorted(os.listdir(state)) == ["log"]
    assert (state / "log" / "task-job.log").read_text() == "hello\n"
    gone = sandbox.lanco(ns, "ls", user=alice, extra_env=env)
    assert gone.returncode == 1 and "should be created with init" in gone.stderr
    # The name can be made again.
    sandbox.ok(ns, "init", user=alice, extra_env=env)
    sandbox.ok(ns, "release", user=alice, extra_env=env)


def test_root_releases_a_users_namespace_and_its_slice(sandbox: Sandbox, alice: str) -> None:
    ns = sandbox.ns_name("theirs")
    sandbox.ok(ns, "init", "-u", alice)
    sandbox.ok(ns, "run", "job", "true", user=alice)
    sandbox.ok(ns, "wait", "job", user=alice)
    assert slice_active(alice, ns)  # alice's run went through a scope of her manager, in the namespace's slice
    refused = sandbox.lanco(ns, "release", user=alice)
    assert refused.returncode == 1 and one_warning(refused.stderr, "release") == \
        f"release of namespace {ns} needs root"
    sandbox.ok(ns, "release")
    assert not slice_active(alice, ns)
    assert not sandbox.state_dir(ns).exists()
