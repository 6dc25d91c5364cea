"""The detached start, both ways (util-linux's setsid spawned, and the double fork it falls back to): what the
started process gets is the same, and no more than it was given."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from lanco import spawn

FACTS = """
read -r pid comm state ppid pgrp sid rest < /proc/self/stat
echo "ids $pid $ppid $sid"
while read -r key value; do
    case $key in SigIgn:|SigBlk:) echo "$key $value" ;; esac
done < /proc/$$/status
echo "cwd $(pwd -P)"
env | sort | sed 's/^/env /'
exec "$LISTER" -I -S -c "$LIST_FDS"
"""
# Python rather than ls, whose shell keeps descriptors of its own (dash saves one at 10 around a redirection).
LIST_FDS = """
import os
fds = []
for entry in os.listdir("/proc/self/fd"):
    try:
        os.readlink(f"/proc/self/fd/{entry}")
    except OSError:
        continue  # the listing's own descriptor
    fds.append(entry)
print("fd", *sorted(fds, key=int))
print("done")
"""


@pytest.fixture(params=["setsid", "double fork"])
def detach_way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "double fork":
        monkeypatch.setattr(spawn, "_setsid", "")
    elif not spawn._forking_setsid():
        pytest.skip("no setsid of util-linux here")
    return str(request.param)


def started_facts(tmp_path: Path, cwd: str | None = None) -> dict[str, list[str]]:
    facts = tmp_path / "facts"
    out = os.open(facts, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    devnull = os.open(os.devnull, os.O_RDWR)
    leak = os.open(tmp_path / "leak", os.O_WRONLY | os.O_CREAT, 0o644)
    os.set_inheritable(leak, True)  # a caller's inheritable descriptor: not the started process's business
    ignored = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGWINCH})
    try:
        env = {"PATH": "/usr/bin:/bin", "ONLY": "this", "LISTER": sys.executable, "LIST_FDS": LIST_FDS}
        spawn.start_detached(["/bin/sh", "-c", FACTS], env, {0: devnull, 1: out, 2: devnull}, cwd)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGWINCH})
        signal.signal(signal.SIGUSR2, ignored)
        for fd in (out, devnull, leak):
            os.close(fd)
    deadline = time.monotonic() + 20
    while not facts.read_text().endswith("done\n"):
        assert time.monotonic() < deadline, facts.read_text()
        time.sleep(0.01)
    found: dict[str, list[str]] = {}
    for line in facts.read_text().splitlines():
        key, _, value = line.partition(" ")
        found.setdefault(key, []).append(value)
    return found


def signals(mask: str) -> set[int]:
    bits = int(mask, 16)
    return {n + 1 for n in range(64) if bits >> n & 1}


def test_a_detached_process_leads_its_session_and_is_no_child_of_ours(tmp_path: Path, detach_way: str) -> None:
    _, ppid, sid = started_facts(tmp_path)["ids"][0].split()
    assert int(sid) != os.getsid(0)  # a session of its own: no terminal, no process group of the caller's
    assert int(ppid) != os.getpid()


def test_a_detached_process_gets_its_descriptors_defaults_and_environment_only(tmp_path: Path,
                                                                               detach_way: str) -> None:
    facts = started_facts(tmp_path)
    assert facts["fd"] == ["0 1 2"]
    assert signals(facts["SigBlk:"][0]) == set()  # the caller's blocked SIGWINCH is not inherited
    # Nor its ignored SIGUSR2. glibc's posix_spawn leaves its two internal signals ignored in the child, and no
    # one can set them back (glibc refuses them to sigaction): every glibc program installs its handlers for them
    # at start, and musl sets its own back to the default before it uses them.
    internal = {32, 33} if detach_way == "setsid" else set()
    assert signals(facts["SigIgn:"][0]) <= internal
    env = {line.partition("=")[0] for line in facts["env"]}
    assert {"ONLY", "PATH"} <= env and not env & {"HOME", "USER", "PYTEST_CURRENT_TEST"}, env


def test_a_detached_process_runs_where_it_is_told(tmp_path: Path, detach_way: str) -> None:
    assert started_facts(tmp_path)["cwd"] == [os.path.realpath(os.getcwd())]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert started_facts(tmp_path, str(elsewhere))["cwd"] == [str(elsewhere.resolve())]


def test_the_setsid_found_is_one_that_forks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """busybox's setsid forks only a process-group leader: a process spawned by us is none, so it would stay our
    child. The double fork serves where setsid is busybox's, or missing."""
    box = tmp_path / "bin" / "busybox"
    box.parent.mkdir()
    box.write_text("#!/bin/sh\n")
    box.chmod(0o755)
    (tmp_path / "bin" / "setsid").symlink_to("busybox")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setattr(spawn, "_setsid", None)
    assert spawn._forking_setsid() == ""
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    monkeypatch.setattr(spawn, "_setsid", None)
    assert spawn._forking_setsid() == ""
