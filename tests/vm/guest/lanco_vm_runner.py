#!/usr/bin/python3
"""Guest side of tests/vm/run.py: runs the host's command once at boot and reports it on /dev/ttyS1.

Installed in the image as /usr/local/sbin/lanco-vm-runner and started by lanco-vm-run.service after
multi-user.target. The host hands the command in on a second disk (/dev/vdb) holding ``run.json``
(argv and a per-run nonce) and ``src/`` (the repository's work tree), which is bind-mounted at /src.

/dev/ttyS1 carries only this script's output (the kernel and systemd talk on ttyS0), so the host can
stream the command's output verbatim between a begin and an end marker; the end marker carries the
exit status. The unit powers the guest off when this script ends, whatever happened.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import termios
import time
from pathlib import Path

OUT_TTY = "/dev/ttyS1"
RUN_DISK = "/dev/vdb"
RUN_MOUNT = Path("/mnt/lanco-run")
SRC = Path("/src")
USER_UID = "1000"
USER_MANAGER_TIMEOUT_S = "180"
BOOT_TIMEOUT_S = "300"
# After the command's main process exits, how long to keep copying output from children that
# still hold the pipe open (a leaked daemon must not stall the run until the host's timeout).
DRAIN_AFTER_EXIT_S = 2.0
MARKER_PREFIX = b"@@lanco-vm:"


class Channel:
    """The result channel: raw bytes to the host, tracking whether we are at the start of a line."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_NOCTTY)
        # No output post-processing: keep "\n" as "\n" (the tty default turns it into "\r\n").
        attrs = termios.tcgetattr(self.fd)
        attrs[1] &= ~termios.OPOST
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        self.at_line_start = True

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        if data:
            self.at_line_start = data.endswith(b"\n")

    def line(self, text: str) -> None:
        """Write one whole line, starting a new one first if the command left a partial line."""
        prefix = b"" if self.at_line_start else b"\n"
        self.write(prefix + text.encode() + b"\n")

    def say(self, text: str) -> None:
        self.line(f"[runner] {text}")


def mount_run_disk(out: Channel) -> dict[str, object]:
    RUN_MOUNT.mkdir(parents=True, exist_ok=True)
    SRC.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "ext4", RUN_DISK, str(RUN_MOUNT)], check=True)
    subprocess.run(["mount", "--bind", str(RUN_MOUNT / "src"), str(SRC)], check=True)
    spec: dict[str, object] = json.loads((RUN_MOUNT / "run.json").read_text())
    out.say(f"run disk mounted, work tree at {SRC}")
    return spec


def wait_user_manager(out: Channel) -> None:
    started = time.monotonic()
    result = subprocess.run(
        ["/usr/local/bin/wait-user-manager", USER_UID, USER_MANAGER_TIMEOUT_S],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    took = time.monotonic() - started
    message = result.stdout.decode(errors="replace").strip()
    if result.returncode == 0:
        out.say(f"{message} (waited {took:.1f} s)")
    else:
        # Go on anyway: the command may not need the user manager, and if it does, it fails visibly.
        out.say(f"WARNING: user manager of uid {USER_UID} not ready after {took:.1f} s: {message}")


def wait_boot_finished(out: Channel) -> None:
    """Waits until systemd's boot transaction is done, so the command sees a fully booted system."""
    started = time.monotonic()
    result = subprocess.run(
        ["timeout", BOOT_TIMEOUT_S, "systemctl", "is-system-running", "--wait"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    state = result.stdout.decode(errors="replace").strip()
    out.say(f"system is {state} (waited {time.monotonic() - started:.1f} s)")
    if state != "running":
        # Not fatal (a degraded guest can still run the command), but say what failed.
        failed = subprocess.run(
            ["systemctl", "--failed", "--no-legend", "--plain"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        for line in failed.stdout.decode(errors="replace").splitlines():
            out.say(f"failed unit: {line}")


def command_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HOME="/root",
        USER="root",
        LOGNAME="root",
        LANG="C.UTF-8",
        TERM="dumb",
        PYTHONUNBUFFERED="1",  # output should reach the host as it happens, not at exit
        LANCO_VM="1",  # lets a test tell that it runs in this guest
    )
    return env


def run_command(out: Channel, argv: list[str]) -> int:
    """Run argv with cwd /src, stdout+stderr copied to the channel; returns a shell-style status."""
    try:
        proc = subprocess.Popen(
            argv,
            cwd=SRC,
            env=command_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    except OSError as error:
        out.line(f"lanco-vm: cannot run {argv[0]!r}: {error}")
        return 127 if isinstance(error, FileNotFoundError) else 126
    assert proc.stdout is not None
    pipe = proc.stdout.fileno()
    os.set_blocking(pipe, False)
    selector = selectors.DefaultSelector()
    selector.register(pipe, selectors.EVENT_READ)
    drain_deadline: float | None = None
    while True:
        if drain_deadline is None and proc.poll() is not None:
            drain_deadline = time.monotonic() + DRAIN_AFTER_EXIT_S
        timeout = 0.5 if drain_deadline is None else max(0.0, drain_deadline - time.monotonic())
        if not selector.select(timeout):
            if drain_deadline is not None and time.monotonic() >= drain_deadline:
                break
            continue
        try:
            chunk = os.read(pipe, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            break
        out.write(chunk)
    selector.close()
    proc.stdout.close()
    status = proc.wait()
    return 128 - status if status < 0 else status


def main() -> int:
    out = Channel(OUT_TTY)
    try:
        spec = mount_run_disk(out)
        argv = spec["argv"]
        nonce = spec["nonce"]
        if not (isinstance(argv, list) and argv and all(isinstance(arg, str) for arg in argv)):
            raise ValueError(f"run.json: argv must be a non-empty list of strings, got {argv!r}")
        if not isinstance(nonce, str):
            raise ValueError("run.json: nonce must be a string")
        wait_boot_finished(out)
        wait_user_manager(out)
    except Exception as error:  # any setup failure: tell the host, which then sees no end marker
        out.say(f"setup failed: {error!r}")
        return 1
    out.line(f"{MARKER_PREFIX.decode()}begin:{nonce}@@")
    status = run_command(out, argv)
    out.line(f"{MARKER_PREFIX.decode()}end:{nonce}:rc={status}@@")
    return 0


if __name__ == "__main__":
    sys.exit(main())
