"""The only module that starts processes: the detached monitor, a lost task's exit hook, and ``mount``."""

from __future__ import annotations

import fcntl
import os

from lanco import signums
from lanco.cgroups import cgroupfs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MONITOR_SCRIPT = "monitor.sh"
WAITER_SCRIPT = "waitempty.py"


def package_file(name: str) -> str:
    # The monitor is run by /bin/sh, so the package is a directory on disk (no zip import): a plain path
    # serves, without importlib.resources, whose import costs every command several milliseconds.
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), name)


def monitor_shell() -> str:
    """The POSIX shell that runs monitors; ``LANCO_SHELL`` picks another (tests run dash, bash and ash)."""
    return os.environ.get("LANCO_SHELL") or "/bin/sh"


def which(command: str, path: str | None = None) -> str | None:
    """What ``shutil.which(command, path=path)`` finds on Linux, without importing shutil: it imports bz2, lzma
    and fnmatch (about 2 ms), and run looks its command up every time."""
    if os.path.dirname(command):
        return command if _is_executable_file(command) else None
    if path is None:
        path = os.environ.get("PATH")
        if path is None:
            try:
                path = os.confstr("CS_PATH") or os.defpath
            except (AttributeError, ValueError):
                path = os.defpath
    if not path:
        return None
    for directory in dict.fromkeys(path.split(os.pathsep)):
        candidate = os.path.join(directory, command)
        if _is_executable_file(candidate):
            return candidate
    return None


def _is_executable_file(path: str) -> bool:
    return os.path.exists(path) and os.access(path, os.F_OK | os.X_OK) and not os.path.isdir(path)


_PR_SET_CHILD_SUBREAPER = 36
_libc: Any = None


def _prctl() -> Any:
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc.prctl


def start_detached(argv: list[str], env: dict[str, str], fds: dict[int, int], cwd: str | None = None,
                   *, subreaper: bool = False, root_joins: list[str] | None = None) -> None:
    """Start ``argv`` as a grandchild in a session of its own, so that it belongs to no launcher.

    ``fds`` maps the child's descriptor numbers to ours; every other descriptor is closed. The intermediate
    child is reaped here, so a long-lived caller (a daemon using the API) never collects zombies from us.
    With ``subreaper``, orphans below the grandchild are re-parented to it rather than to PID 1 (the flag
    survives execve): a monitor then reaps the processes a killed task leaves, instead of an init that
    may take its time.
    """
    reap_intermediate(begin_detached(argv, env, fds, cwd, subreaper=subreaper, root_joins=root_joins), argv[0])


def begin_detached(argv: list[str], env: dict[str, str], fds: dict[int, int], cwd: str | None = None,
                   *, subreaper: bool = False, root_joins: list[str] | None = None, pid_fd: int = -1) -> int:
    """:func:`start_detached` without the wait: returns the intermediate child's pid, which the caller must pass
    to :func:`reap_intermediate`. A caller that waits for word from the grandchild anyway (``run`` waits for the
    monitor's report) reaps after that word, so that the two waits overlap instead of adding up. With ``pid_fd``
    (a pipe's write end) the intermediate child writes the grandchild's pid there before it exits."""
    prctl = _prctl() if subreaper else None
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 127
        try:
            os.setsid()
            grandchild = os.fork()
            if grandchild == 0:
                if pid_fd >= 0:
                    os.close(pid_fd)
                if prctl is not None:
                    prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
                if os.getuid() == 0 and os.geteuid() != 0:
                    _settle_as_owner(root_joins)
                _exec_with_fds(argv, env, fds, cwd)
            if pid_fd >= 0:
                os.write(pid_fd, str(grandchild).encode())
            code = 0
        except BaseException:
            code = 126
        finally:
            os._exit(code)
    return pid


def reap_intermediate(pid: int, program: str) -> None:
    """Collect the intermediate child of :func:`begin_detached`; raises when it could not fork the grandchild."""
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise OSError(f"cannot start {program}: the detaching child failed")


class WaitingMonitor:
    """A monitor started detached that waits on a pipe before it does anything (``LANCO_MON_GO``): systemd's
    scope must be made around it, and split, before it may start the task."""

    __slots__ = ("_go", "_pidfd", "pid")

    def __init__(self, pid: int, go: int) -> None:
        self.pid = pid
        self._go = go
        try:
            self._pidfd = os.pidfd_open(pid)
        except OSError:
            self._pidfd = -1

    def go(self) -> None:
        """Let it go on: it joins nothing more and starts the task."""
        try:
            os.write(self._go, b"go\n")
        finally:
            self._close()

    def abandon(self, timeout: float = 2.0) -> None:
        """End it: the pipe's end makes it exit before it has done anything. Returns once it has, so that a scope
        made around it is empty (and collected by systemd)."""
        os.close(self._go)
        self._go = -1
        if self._pidfd >= 0:
            import select

            poller = select.poll()
            poller.register(self._pidfd, select.POLLIN)
            poller.poll(int(timeout * 1000))
        self._close()

    def _close(self) -> None:
        for fd in (self._go, self._pidfd):
            if fd >= 0:
                os.close(fd)
        self._go = self._pidfd = -1


def spawn_waiting(argv: list[str], env: dict[str, str], fds: dict[int, int], cwd: str | None,
                  go_fd: int) -> WaitingMonitor:
    """Start ``argv`` detached (as :func:`start_detached`) with the read end of a fresh pipe on ``go_fd``, and
    return as soon as its pid is known: the intermediate child reports it before it exits."""
    go_r, go_w = os.pipe()
    pid_r, pid_w = os.pipe()
    try:
        try:
            intermediate = begin_detached(argv, env, {**fds, go_fd: go_r}, cwd, pid_fd=pid_w)
        finally:
            os.close(pid_w)
        text = b""
        while chunk := os.read(pid_r, 32):
            text += chunk
        reap_intermediate(intermediate, argv[0])
        if not text.isdigit():
            raise OSError(f"cannot start {argv[0]}: the detaching child did not report its pid")
    except BaseException:
        os.close(go_w)
        raise
    finally:
        os.close(go_r)
        os.close(pid_r)
    return WaitingMonitor(int(text), go_w)


def read_line(fd: int, timeout: float) -> str | None:
    """The first line a started process writes on ``fd`` (a pipe or a socket): without its newline, or what came
    before the writer closed its end; None when nothing complete came within ``timeout`` seconds."""
    import select
    import time

    deadline = time.monotonic() + timeout
    buffer = b""
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 512)
        if not chunk:
            break
        buffer += chunk
    return buffer.split(b"\n", 1)[0].decode(errors="replace")


def _settle_as_owner(root_joins: list[str] | None) -> None:  # pragma: no cover - runs in the child
    """Root acting as a namespace's owner: join ``root_joins`` with root's rights (cgroup v2 lets only root
    move a process across the root-owned common ancestor), then become the owner for good."""
    from lanco.privileges import become_owner_for_good

    owner = (os.geteuid(), os.getegid())
    os.seteuid(0)
    for path in root_joins or ():
        cgroupfs.write(path, "0")
    become_owner_for_good(owner)


def _exec_with_fds(argv: list[str], env: dict[str, str], fds: dict[int, int],
                   cwd: str | None) -> None:  # pragma: no cover - runs in the child
    try:
        # Park every source above the targets first, so that mapping one cannot clobber another.
        parked = {target: fcntl.fcntl(source, fcntl.F_DUPFD, 1000) for target, source in fds.items()}
        for target, high in parked.items():
            os.dup2(high, target, inheritable=True)
        os.closerange(max(fds) + 1 if fds else 0, 65536)
        if cwd is not None:
            os.chdir(cwd)
        signums.reset_dispositions()
        os.execve(argv[0], argv, env)
    finally:
        os._exit(127)


def hook_runner(owner_uid: int, owner_gid: int) -> list[str]:
    """The argv prefix that runs an exit hook as the namespace's owner when root acts for someone else."""
    if os.geteuid() != 0 or owner_uid == 0:
        return []
    setpriv = which("setpriv")
    if setpriv:
        return [setpriv, f"--reuid={owner_uid}", f"--regid={owner_gid}", "--init-groups", "--"]
    import pwd

    runuser = which("runuser") or "runuser"
    return [runuser, "-u", pwd.getpwuid(owner_uid).pw_name, "--"]


def run_hook_detached(command: str, env: dict[str, str], runner: list[str], log_path: str | None) -> None:
    """Run a lost task's exit hook the way its monitor would have, without waiting for it."""
    devnull = os.open(os.devnull, os.O_RDWR)
    out = devnull
    if log_path:
        try:
            out = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            out = devnull
    try:
        start_detached([*runner, "/bin/sh", "-c", command] if runner else ["/bin/sh", "-c", command],
                       env, {0: devnull, 1: out, 2: out})
    finally:
        if out != devnull:
            os.close(out)
        os.close(devnull)


def mount_named_hierarchy(name: str, target: str) -> str:
    """Mount a controller-less named v1 hierarchy; returns an error text, empty on success."""
    import subprocess

    result = subprocess.run(["mount", "-t", "cgroup", "-o", f"none,name={name}", "cgroup", target],
                            capture_output=True, text=True, check=False)
    return "" if result.returncode == 0 else (result.stderr.strip() or f"mount exited {result.returncode}")
