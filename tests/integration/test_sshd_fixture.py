"""The ssh test hosts themselves (tests/sshd.py): two real sshds, root and the test user logging in, a dropped
connection, and nothing of theirs left once stopped."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.integration.conftest import alive, wait_until
from tests.sshd import SSH_KEYGEN, SSHD, SshServer

pytestmark = pytest.mark.skipif(not (os.path.exists(SSHD) and os.path.exists(SSH_KEYGEN)),
                                reason="OpenSSH's server is not installed (scripts/test installs openssh-server)")


def ssh(server: SshServer, user: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*server.ssh_command, "-l", user, "127.0.0.1", "--", *command], capture_output=True,
                          text=True, timeout=30, check=False, stdin=subprocess.DEVNULL)


def test_two_hosts_on_two_ports_take_root_and_the_test_user(sshd: SshServer, sshd2: SshServer,
                                                            ssh_test_user: str) -> None:
    assert sshd.port != sshd2.port
    for server in (sshd, sshd2):
        assert ssh(server, "root", "id", "-u").stdout == "0\n"
        assert ssh(server, ssh_test_user, "id", "-un").stdout == f"{ssh_test_user}\n"
    assert ssh(sshd, "root", "exit", "7").returncode == 7


def test_a_killed_connection_child_drops_the_session(sshd: SshServer) -> None:
    session = subprocess.Popen([*sshd.ssh_command, "root@127.0.0.1", "sleep", "60"], stdin=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: bool(sshd.connection_pids()))
        time.sleep(0.3)  # past authentication: the session runs
        assert sshd.kill_connections()
        assert session.wait(timeout=10) == 255
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()


def test_stop_ends_the_server_and_removes_its_dir() -> None:
    server = SshServer("short").start()
    pid = server.process.pid if server.process else 0
    assert alive(pid) and server.dir.is_dir()
    server.stop()
    assert not alive(pid) and not os.path.exists(server.dir)
