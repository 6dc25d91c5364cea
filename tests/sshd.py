"""A real OpenSSH server on 127.0.0.1 for the tests of lanco beyond one machine (`lanco -H`, the Python API's
``host=``, the Ansible collection): each :class:`SshServer` is one "host", Debian's own sshd running as a child of
the test process on a free port, with host and client keys, its own sshd_config and a client config in a temp dir of
its own. Nothing of the machine's ssh setup is read or changed (no /etc/ssh host keys, no ~/.ssh, no known_hosts).

Usable without pytest (the Ansible tests write an inventory from :attr:`SshServer.ssh_command`)::

    with SshServer() as host:
        subprocess.run([*host.ssh_command, "root@127.0.0.1", "true"])

The pytest fixtures ``sshd`` and ``sshd2`` (imported by tests/integration/conftest.py) are two such hosts,
session-scoped: the tests need two hosts, not one per test. ``ssh_test_user`` is the project's test user, able to
log in. Stopping ends only the sshd this object started (by its pid) and the per-connection children it forked, then
removes the temp dir, also when the test failed or the server did not come up.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "/usr/bin/ssh-keygen"
PRIVILEGE_SEPARATION_DIR = "/run/sshd"
"""Debian's sshd refuses to start without it; its init script (not run here: PID 1 is no init system) makes it."""


def sshd_available() -> bool:
    return os.path.exists(SSHD) and os.path.exists(SSH_KEYGEN) and shutil.which("ssh") is not None


def free_port() -> int:
    """A TCP port nobody listens on right now; sshd may still lose it to a race, which :meth:`start` retries."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def allow_login(user: str) -> None:
    """Let a test user log in by key: useradd leaves the password field ``!`` (locked), and sshd without PAM refuses
    locked accounts. ``*`` is an unusable password that is not a lock; only the test users created by
    tests/conftest.py are given to this."""
    with open("/etc/shadow") as f:
        fields = next((line.split(":") for line in f if line.startswith(f"{user}:")), None)
    if fields is not None and fields[1].startswith("!"):
        subprocess.run(["usermod", "-p", "*", user], check=True)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


class SshServer:
    """One sshd on 127.0.0.1, its keys and configs in :attr:`dir`. Any local user may log in with the client key
    (root included, ``PermitRootLogin prohibit-password``): the authorized_keys file is shared and world-readable,
    since sshd reads it with the user's own rights."""

    def __init__(self, name: str = "host") -> None:
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"lanco-sshd-{name}-"))
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    # Paths of the temp dir, for the tests that want to look (logs) or reuse them (an Ansible inventory).
    @property
    def client_key(self) -> Path:
        return self.dir / "client_key"

    @property
    def client_config(self) -> Path:
        return self.dir / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def log(self) -> Path:
        return self.dir / "sshd.log"

    @property
    def ssh_command(self) -> list[str]:
        """The client command line for this host, what ``LANCO_SSH`` gets (as :attr:`lanco_ssh`)."""
        return ["ssh", "-F", str(self.client_config)]

    @property
    def lanco_ssh(self) -> str:
        return shlex.join(self.ssh_command)

    def target(self, user: str = "root") -> str:
        """``USER@HOST:PORT`` as ``lanco -H`` takes it (the client config also names the port)."""
        return f"{user}@127.0.0.1:{self.port}"

    def start(self, attempts: int = 5) -> SshServer:
        try:
            self._generate_keys()
            for _ in range(attempts):
                self.port = free_port()
                self._write_configs()
                if self._launch():
                    return self
            raise RuntimeError(f"sshd {self.name} did not start: {self.log.read_text(errors='replace')[-2000:]}")
        except BaseException:
            self.stop()
            raise

    def _generate_keys(self) -> None:
        self.dir.chmod(0o755)  # the test user's sshd child reads authorized_keys from here with the user's rights
        for key in (self.dir / "host_key", self.client_key):
            subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", f"lanco-test-{self.name}",
                            "-f", str(key)], check=True, stdin=subprocess.DEVNULL)
        authorized = self.dir / "authorized_keys"
        shutil.copyfile(self.dir / "client_key.pub", authorized)
        authorized.chmod(0o644)

    def _write_configs(self) -> None:
        (self.dir / "sshd_config").write_text(f"""\
ListenAddress 127.0.0.1
Port {self.port}
HostKey {self.dir / 'host_key'}
PidFile {self.dir / 'sshd.pid'}
AuthorizedKeysFile {self.dir / 'authorized_keys'}
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitUserEnvironment no
X11Forwarding no
AllowTcpForwarding no
UseDNS no
PrintMotd no
PrintLastLog no
LogLevel VERBOSE
Subsystem sftp internal-sftp
""")
        self.client_config.write_text(f"""\
Host *
  HostName 127.0.0.1
  Port {self.port}
  IdentityFile {self.client_key}
  IdentitiesOnly yes
  BatchMode yes
  StrictHostKeyChecking no
  UserKnownHostsFile {self.known_hosts}
  GlobalKnownHostsFile /dev/null
  LogLevel ERROR
  ConnectTimeout 10
  ServerAliveInterval 2
  ServerAliveCountMax 3
""")

    def _launch(self, timeout: float = 10.0) -> bool:
        os.makedirs(PRIVILEGE_SEPARATION_DIR, mode=0o755, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None  # the port was taken between free_port() and the bind: try another
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    if conn.recv(64).startswith(b"SSH-2.0-"):
                        return True
            except OSError:
                time.sleep(0.02)
        self._end_server()
        return False

    def connection_pids(self) -> list[int]:
        """The per-connection sshd children alive now: what a test kills to drop a connection."""
        return _children(self.process.pid) if self.process is not None else []

    def kill_connections(self) -> list[int]:
        pids = self.connection_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def _end_server(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        children = _children(process.pid)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        # sshd leaves its running sessions alone on SIGTERM; they are ours too.
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        try:
            self._end_server()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SshServer:
        return self.start() if self.process is None else self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def _serve(name: str) -> Iterator[SshServer]:
    if os.geteuid() != 0:
        pytest.skip("the ssh tests run sshd as root (any user may then log in)")
    if not sshd_available():
        pytest.skip("OpenSSH's server is not installed (scripts/test installs openssh-server)")
    with SshServer(name) as server:
        yield server


@pytest.fixture(scope="session")
def sshd() -> Iterator[SshServer]:
    """The first "host": a real sshd on 127.0.0.1."""
    yield from _serve("one")


@pytest.fixture(scope="session")
def sshd2() -> Iterator[SshServer]:
    """The second "host", another sshd on another port."""
    yield from _serve("two")


@pytest.fixture(scope="session")
def ssh_test_user(test_user: str) -> str:
    """The project's test user (tests/conftest.py), able to log in to the ssh hosts."""
    allow_login(test_user)
    return test_user


__all__ = ["SshServer", "allow_login", "free_port", "ssh_test_user", "sshd", "sshd2", "sshd_available"]
