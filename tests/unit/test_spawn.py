"""The detached start (a double fork): what the started process gets, and no more than it was given.

util-linux's ``setsid --fork`` through ``posix_spawn`` was tried as a cheaper way (a vfork costs a big daemon no
page-table copies) and set aside: glibc's posix_spawn leaves its internal signals 32 and 33 ignored in the child,
for good, and no monitor started that way can be a child subreaper (bench/RESULTS.md)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from lanco.launch import spawn

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
        spawn.start_detached(["/bin/sh", "-c", FACTS], env, {0: devnull, 1: out, 2: devnull}, cwd, subreaper=True)
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


def test_a_detached_process_leads_its_session_and_is_no_child_of_ours(tmp_path: Path) -> None:
    _, ppid, sid = started_facts(tmp_path)["ids"][0].split()
    assert int(sid) != os.getsid(0)  # a session of its own: no terminal, no process group of the caller's
    assert int(ppid) != os.getpid()


def test_a_detached_process_gets_its_descriptors_defaults_and_environment_only(tmp_path: Path) -> None:
    facts = started_facts(tmp_path)
    assert facts["fd"] == ["0 1 2"]
    assert signals(facts["SigBlk:"][0]) == set()  # the caller's blocked SIGWINCH is not inherited
    assert signals(facts["SigIgn:"][0]) == set()  # nor its ignored SIGUSR2, nor anything of glibc's own
    env = {line.partition("=")[0] for line in facts["env"]}
    assert {"ONLY", "PATH"} <= env and not env & {"HOME", "USER", "PYTEST_CURRENT_TEST"}, env


def test_a_detached_process_runs_where_it_is_told(tmp_path: Path) -> None:
    assert started_facts(tmp_path)["cwd"] == [os.path.realpath(os.getcwd())]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert started_facts(tmp_path, str(elsewhere))["cwd"] == [str(elsewhere.resolve())]
