"""A reboot simulated on the host: the test's own tasks die at once (monitors first, so none records a result or runs
a hook), their namespace's cgroups go in every hierarchy, the state stays; the next boot is a private mount
namespace (``unshare -m``) with a boot id of its own bind-mounted over /proc/sys/kernel/random/boot_id and lanco's
named hierarchy unmounted, so that the host's mounts are never touched. There a run by the owner says in one line
that the cgroups are missing and leaves nothing, ``lanco restore`` brings the namespace back, the runs of the
previous boot read ``lost`` with their hooks run once, and new runs work."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Sandbox
from tests.integration.conftest import make_namespace, no_process_left, task_pids, wait_until
from tests.integration.test_lifecycle import one_warning

BOOT_ID = "/proc/sys/kernel/random/boot_id"
INFO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d \[INFO/restore\] (.+)$")


def one_info(stderr: str) -> str:
    """The one line restore says of the test's one namespace."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    match = INFO.match(lines[0])
    assert match, stderr
    return match.group(1)


def power_off(sandbox: Sandbox) -> None:
    """What a boot does to the test's namespaces: every process in the test's own cgroup base is killed, the
    monitors first, then the base is gone in every hierarchy. Nothing outside the base is touched."""
    tops = sandbox.cgroup_dirs()

    def procs(monitors_only: bool) -> list[int]:
        found: list[int] = []
        for top in tops:
            for dirpath, _dirs, files in os.walk(top):
                if "cgroup.procs" in files and (not monitors_only or os.path.basename(dirpath) == ".monitors"):
                    with open(os.path.join(dirpath, "cgroup.procs"), encoding="ascii") as f:
                        found.extend(int(p) for p in f.read().split())
        return found

    for monitors_only in (True, False):
        deadline = time.monotonic() + 10
        while pids := procs(monitors_only):
            assert time.monotonic() < deadline, f"processes survive SIGKILL: {pids}"
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
    for top in tops:
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            assert wait_until(lambda d=dirpath: _rmdir(d), 5), dirpath  # type: ignore[misc]
    assert sandbox.cgroup_dirs() == []


def _rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


class NextBoot:
    """A private mount namespace standing for the machine's next boot, held by a process of the test's own; lanco
    runs in it through nsenter."""

    def __init__(self, sandbox: Sandbox, boot_id: Path, named: str | None) -> None:
        self.sandbox = sandbox
        self.boot_id = boot_id.read_text().strip()
        # --propagation private: what is mounted or unmounted in it stays in it.
        script = f"mount --bind {boot_id} {BOOT_ID} && " + (f"umount {named} && " if named else "") + \
            "echo ready && exec sleep 3600"
        self.holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                                       stdout=subprocess.PIPE, text=True)
        assert self.holder.stdout is not None and self.holder.stdout.readline() == "ready\n"

    def lanco(self, *args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = ["nsenter", "-t", str(self.holder.pid), "-m", "--", *self.sandbox.command(*args, user=user)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/", check=False)

    def ok(self, *args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        result = self.lanco(*args, user=user)
        assert result.returncode == 0, f"lanco {' '.join(args)} -> {result.returncode}: {result.stderr}"
        return result

    def mounted_named(self) -> bool:
        with open(f"/proc/{self.holder.pid}/mountinfo", encoding="utf-8") as f:
            return any(" - cgroup " in line and "name=lanco" in line for line in f)

    def boot_id_seen(self) -> str:
        argv = ["nsenter", "-t", str(self.holder.pid), "-m", "--", "cat", BOOT_ID]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()

    def end(self) -> None:
        self.holder.kill()
        self.holder.wait()


@pytest.fixture
def reboot(sandbox: Sandbox) -> Iterator[list[NextBoot]]:
    """Call ``power_off`` then append ``NextBoot``; the boot's holder is ended after the test."""
    boots: list[NextBoot] = []
    yield boots
    for boot in boots:
        boot.end()


def next_boot(sandbox: Sandbox, boots: list[NextBoot]) -> NextBoot:
    from lanco.cgroups.detect import named_mount, read_mounts

    power_off(sandbox)
    boot_id = sandbox.root / "next-boot-id"
    boot_id.write_text(f"{uuid.uuid4()}\n")
    named = named_mount(read_mounts())
    boot = NextBoot(sandbox, boot_id, None if named is None else named.path)
    boots.append(boot)
    assert boot.boot_id_seen() == boot.boot_id and boot.boot_id != Path(BOOT_ID).read_text().strip()
    assert not boot.mounted_named()
    return boot


def record_files(sandbox: Sandbox, ns: str, task: str) -> dict[str, bytes]:
    directory = sandbox.state_dir(ns) / "tasks" / task
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def hook_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_reboot_then_restore(sandbox: Sandbox, mode: str, owner: str | None, reboot: list[NextBoot]) -> None:
    ns = make_namespace(sandbox, mode, user=owner)
    config = json.loads((sandbox.state_dir(ns) / "config.json").read_text())
    hooks = sandbox.root / "hooks"
    hooks.mkdir(mode=0o777)
    hooks.chmod(0o777)  # the owner's hooks write here
    hook_file = hooks / "going"
    sandbox.ok(ns, "run", "done", "true", user=owner)
    assert sandbox.lanco(ns, "wait", "done", user=owner).returncode == 0
    sandbox.ok(ns, "run", "-c", f'echo "$LANCO_RESULT $LANCO_EXIT_CODE" >> {hook_file}', "going", "sleep", "300",
               user=owner)
    pids = task_pids(sandbox, ns, "going", user=owner)

    boot = next_boot(sandbox, reboot)
    assert no_process_left(pids)
    assert not hook_lines(hook_file)  # killed with the machine: nobody saw the end
    remedy = f"cgroups of namespace {ns} are missing (a reboot?): run lanco restore as root"

    # A run by the owner: one line with the remedy, and nothing left behind, for a new name or the old one.
    before = record_files(sandbox, ns, "going")
    for name in ("fresh", "going"):
        refused = boot.lanco(ns, "run", name, "sleep", "300", user=owner)
        assert refused.returncode == 1 and one_warning(refused.stderr, "run") == remedy, refused.stderr
        assert sandbox.cgroup_dirs() == []
    assert not (sandbox.state_dir(ns) / "tasks" / "fresh").exists()
    assert record_files(sandbox, ns, "going") == before
    # With limits, the same line (not a limit said to be unavailable).
    limited = boot.lanco(ns, "run", "-m", "64M", "fresh", "sleep", "300", user=owner)
    assert limited.returncode == 1 and one_warning(limited.stderr, "run") == remedy, limited.stderr
    # A finished task is still shown from its record.
    done = json.loads(boot.ok(ns, "status", "--json", "done", user=owner).stdout)
    assert (done["state"], done["exit_code"]) == ("exited", 0)
    assert boot.lanco(ns, "check", "going", user=owner).returncode == 1

    restored = one_info(boot.ok("restore").stderr)
    assert restored.startswith(f"namespace {ns} restored: ") and " cgroups" in restored
    # The named hierarchy is mounted again where the namespace tracks its tasks there (a command of root's before
    # restore mounts it too, as every command of root's does).
    assert config["tracker"] != "named" or owner is None or "mounted name=lanco on " in restored
    assert restored.endswith("; 1 run that ended unseen recorded lost (going)")
    assert config["tracker"] != "named" or boot.mounted_named()
    assert wait_until(lambda: hook_lines(hook_file) == ["lost "], 10), hook_lines(hook_file)
    for _ in range(2):
        going = json.loads(boot.ok(ns, "status", "--json", "going", user=owner).stdout)
        assert (going["state"], going["exit_code"]) == ("lost", None)
    assert "going (lost" in boot.ok(ns, "ls", "--all", user=owner).stdout
    assert one_info(boot.ok("restore").stderr) == f"namespace {ns} is in place: nothing to restore"

    # New runs work, the old name's too, and the hook ran once only.
    boot.ok(ns, "run", "going", "sleep", "300", user=owner)
    boot.ok(ns, "run", "fresh", "sleep", "300", user=owner)
    assert boot.lanco(ns, "check", "going", user=owner).returncode == 0
    new_pids = task_pids(sandbox, ns, "going", user=owner) + task_pids(sandbox, ns, "fresh", user=owner)
    boot.ok(ns, "stop", "going", "fresh", user=owner)
    assert no_process_left(new_pids)
    stopped = json.loads(boot.ok(ns, "status", "--json", "going", user=owner).stdout)
    assert stopped["state"] == "stopped"
    time.sleep(0.5)  # a second hook of the lost run would have fired by now
    assert hook_lines(hook_file) == ["lost "]


def test_restore_only_as_root(sandbox: Sandbox, test_user: str) -> None:
    refused = sandbox.lanco("restore", user=test_user)
    assert refused.returncode == 1
    assert one_warning(refused.stderr, "restore").startswith("restore needs root")


def test_records_read_before_restore_are_lost_once(sandbox: Sandbox, mode: str, owner: str | None,
                                                   reboot: list[NextBoot]) -> None:
    """Views read the records before restore ran: the run of the previous boot reads lost there already, its hook
    runs then, and restore neither records it again nor runs the hook a second time."""
    ns = make_namespace(sandbox, mode, user=owner)
    hooks = sandbox.root / "hooks"
    hooks.mkdir(mode=0o777)
    hooks.chmod(0o777)
    hook_file = hooks / "going"
    sandbox.ok(ns, "run", "-c", f'echo "$LANCO_RESULT" >> {hook_file}', "going", "sleep", "300", user=owner)
    boot = next_boot(sandbox, reboot)
    listing = boot.ok(ns, "ls", "--all", user=owner)
    assert listing.stdout.splitlines() == [ns, " ├ going (lost)"], listing.stdout
    assert json.loads(boot.ok(ns, "dump", user=owner).stdout)["count"] == 0
    assert wait_until(lambda: hook_lines(hook_file) == ["lost"], 10), hook_lines(hook_file)
    restored = one_info(boot.ok("restore").stderr)
    assert restored.startswith(f"namespace {ns} restored: ") and "recorded lost" not in restored
    time.sleep(0.5)  # a second hook would have fired by now
    assert hook_lines(hook_file) == ["lost"]
    assert json.loads(boot.ok(ns, "status", "--json", "going", user=owner).stdout)["state"] == "lost"
