#!/usr/bin/python3
"""Run a command inside a throw-away Debian 12 guest with systemd and pure cgroup v2, under qemu.

    python3 tests/vm/run.py [--rebuild] [--prune] [--timeout SECONDS] [--boots N] -- CMD...

Needs root (debootstrap, chroot, apt-get) and only the Python standard library. The guest image is
built once with debootstrap and cached under /var/cache/lanco-vm/<sha256 of the recipe>/; each run
boots a copy-on-write overlay of it plus a small per-run disk holding the repository's work tree
(mounted at /src), runs CMD there as root through a systemd unit, streams its output between marker
lines and exits with its exit status. See tests/vm/README.md.

Exit status: CMD's own status; 124 when the run hit --timeout; 125 when the harness itself failed
(image build, boot, guest runner); 130/143 when interrupted.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import hashlib
import json
import os
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import BinaryIO, Final

HERE: Final = Path(__file__).resolve().parent
REPO_ROOT: Final = HERE.parent.parent
GUEST_DIR: Final = HERE / "guest"
CACHE_ROOT: Final = Path("/var/cache/lanco-vm")

EXIT_TIMEOUT: Final = 124
EXIT_HARNESS: Final = 125

# ---------------------------------------------------------------------------------------------
# The recipe. Everything here that shapes the image goes into the cache key (recipe_digest), so
# changing it rebuilds the image on the next run. Bump RECIPE_VERSION for changes in the build
# code below that the constants do not show.
# ---------------------------------------------------------------------------------------------
RECIPE_VERSION: Final = 1
SUITE: Final = "bookworm"
VARIANT: Final = "minbase"
HOST_PACKAGES: Final = ("qemu-system-x86", "qemu-utils", "debootstrap", "linux-image-amd64")
# Host tools the harness calls, with the package that brings each.
HOST_TOOLS: Final = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "debootstrap": "debootstrap",
    "mkfs.ext4": "e2fsprogs",
}
GUEST_PACKAGES: Final = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "dbus-user-session",
    "libpam-systemd",
    "udev",
    "kmod",  # the host kernel's modules are copied in; udev loads them with kmod
    "e2fsprogs",
    "python3",
    "python3-venv",
    "python3-pytest",
    "python3-hypothesis",  # in the project's dev extras, so tests may use it
    "stress-ng",  # the OOM tests' memory hog, as on the host (scripts/test installs it there)
    "python3-jeepney",  # the reference D-Bus client: guest tests ask systemd what lanco's units look like
    "procps",
    "util-linux",
    "iproute2",
    "openssl",
    "busybox",
    "dash",
    "bash",
)
GUEST_USER: Final = "alice"
GUEST_UID: Final = 1000
ROOT_IMAGE_BYTES: Final = 4 * 1024**3  # sparse; the guest root file system's size
# Units that would only cost boot time or write to the disk in a throw-away guest.
MASKED_UNITS: Final = (
    "serial-getty@ttyS0.service",  # ttyS0 is the console: keep it free of a login prompt
    "getty@tty1.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
)
# Guest files taken from tests/vm/guest/: source name -> (path in the guest, mode).
GUEST_FILES: Final = {
    "lanco_vm_runner.py": ("/usr/local/sbin/lanco-vm-runner", 0o755),
    "wait-user-manager": ("/usr/local/bin/wait-user-manager", 0o755),
    "lanco-vm-run.service": ("/etc/systemd/system/lanco-vm-run.service", 0o644),
}
# Small guest files written inline: path in the guest -> content.
GUEST_INLINE_FILES: Final = {
    "/etc/fstab": "/dev/vda / ext4 defaults 0 0\n",
    "/etc/hostname": "lanco-vm\n",
    "/etc/hosts": "127.0.0.1 localhost\n127.0.1.1 lanco-vm\n::1 localhost ip6-localhost\n",
    # Lingering, as `loginctl enable-linger alice` would record it: logind starts user@1000 at boot.
    f"/var/lib/systemd/linger/{GUEST_USER}": "",
    # The journal in memory only: nothing of it outlives a run, and disk writes are slow under TCG.
    "/etc/systemd/journald.conf.d/lanco-vm.conf": "[Journal]\nStorage=volatile\n",
}

# ---------------------------------------------------------------------------------------------
# Per-run settings; these do not change the image.
# ---------------------------------------------------------------------------------------------
DEFAULT_TIMEOUT_S: Final = 1500.0
QEMU_MEMORY_MIB: Final = 2048
QEMU_CPUS: Final = 2
KERNEL_CMDLINE: Final = " ".join(
    (
        "root=/dev/vda rw rootfstype=ext4",
        "console=ttyS0",
        "quiet",
        "systemd.show_status=0",  # no "A start job is running..." lines during a long command
        "fsck.mode=skip",  # the root is a fresh overlay of a clean image
        "mitigations=off",  # a throw-away test guest; spectre mitigations are slow under TCG
        # Drivers for emulated hardware nothing here uses: probing them only costs boot time (and
        # nested KVM under TCG is useless).
        "module_blacklist=floppy,kvm,kvm_amd,kvm_intel,pcspkr",
        "panic=-1",  # a panic reboots, which -no-reboot turns into a qemu exit, not a hang
    )
)
# Never copied into the guest: VCS data, virtualenvs, caches and build artefacts.
EXCLUDED_NAMES: Final = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".tox",
        ".nox",
        "node_modules",
    }
)
EXCLUDED_TOP_LEVEL: Final = frozenset({"build", "dist"})  # setuptools output, at the repository root only
EXCLUDED_SUFFIXES: Final = (".pyc", ".pyo", ".egg-info")
# After the end marker the guest powers itself off; past this grace we just kill qemu (the disks
# are thrown away, so nothing is lost).
POWEROFF_GRACE_S: Final = 30.0
MARKER_PREFIX: Final = b"@@lanco-vm:"
WORKDIR_PREFIX: Final = "lanco-vm-run-"  # per-run directories in /tmp
CONSOLE_TAIL_LINES: Final = 60


class HarnessError(Exception):
    """A failure of the harness (not of the command): reported and turned into EXIT_HARNESS."""


def log(message: str) -> None:
    print(f"[lanco-vm] {message}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = CONSOLE_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").replace("\r", "")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def run_logged(argv: Sequence[str | os.PathLike[str]], logfile: Path, what: str) -> None:
    """Run argv with its output appended to logfile; on failure raise with the log's tail."""
    with logfile.open("ab") as sink:
        sink.write(f"\n$ {' '.join(map(str, argv))}\n".encode())
        sink.flush()
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, check=False)
    if result.returncode != 0:
        raise HarnessError(f"{what} failed (exit {result.returncode}); last lines of {logfile}:\n{tail(logfile)}")


# ---------------------------------------------------------------------------------------------
# Host preparation
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kernel:
    version: str
    vmlinuz: Path
    initrd: Path
    modules: Path


def version_key(version: str) -> list[tuple[int, str]]:
    """Orders kernel versions like 6.1.0-9 < 6.1.0-10 (numeric parts compared as numbers)."""
    return [(int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"(\d+)", version) if part]


def find_host_kernel() -> Kernel | None:
    """The newest kernel from the host's Debian kernel packages that has an initrd and its modules."""
    candidates = []
    for vmlinuz in Path("/boot").glob("vmlinuz-*"):
        version = vmlinuz.name.removeprefix("vmlinuz-")
        kernel = Kernel(
            version=version,
            vmlinuz=vmlinuz,
            initrd=Path("/boot") / f"initrd.img-{version}",
            modules=Path("/lib/modules") / version,
        )
        if kernel.initrd.is_file() and (kernel.modules / "modules.dep").is_file():
            candidates.append(kernel)
    return max(candidates, key=lambda kernel: version_key(kernel.version), default=None)


def ensure_host_packages() -> None:
    missing = sorted({package for tool, package in HOST_TOOLS.items() if shutil.which(tool) is None})
    if find_host_kernel() is None:
        missing.append("linux-image-amd64")
    if not missing:
        return
    log(f"installing host packages (missing: {', '.join(missing)})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # The package lists may be absent or stale on a fresh machine. Not checked: one unreachable
    # third-party source makes it fail although Debian's lists were fetched; install tells.
    subprocess.run(["apt-get", "update"], check=False, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", *HOST_PACKAGES, "e2fsprogs"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    if find_host_kernel() is None:
        raise HarnessError("linux-image-amd64 is installed but no /boot/vmlinuz-* with initrd and modules")


# ---------------------------------------------------------------------------------------------
# The cached base image
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BaseImage:
    directory: Path

    @property
    def root_image(self) -> Path:
        return self.directory / "root.img"

    @property
    def vmlinuz(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def complete_marker(self) -> Path:
        return self.directory / "build.json"

    def is_complete(self) -> bool:
        return self.complete_marker.is_file()


def recipe() -> dict[str, object]:
    """The recipe as data: the cache key is its digest."""
    guest_sources = {name: (GUEST_DIR / name).read_text() for name in sorted(GUEST_FILES)}
    return {
        "recipe_version": RECIPE_VERSION,
        "suite": SUITE,
        "variant": VARIANT,
        "host_packages": list(HOST_PACKAGES),
        "guest_packages": list(GUEST_PACKAGES),
        "guest_user": [GUEST_USER, GUEST_UID],
        "root_image_bytes": ROOT_IMAGE_BYTES,
        "masked_units": list(MASKED_UNITS),
        "guest_files": {name: [path, mode] for name, (path, mode) in GUEST_FILES.items()},
        "guest_file_sources": guest_sources,
        "guest_inline_files": dict(GUEST_INLINE_FILES),
    }


def recipe_digest(recipe_data: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(recipe_data, sort_keys=True).encode()).hexdigest()


@contextmanager
def cache_lock() -> Iterator[None]:
    """Serialises image builds, so concurrent runs do not build (or delete) the same image twice."""
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with (CACHE_ROOT / ".lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def mounts_below(path: Path) -> list[Path]:
    """Mount points at or below path, deepest first (debootstrap mounts /proc etc. in the chroot)."""
    found = []
    prefix = str(path.resolve())
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            # Field 5 is the mount point, with spaces and the like octal-escaped.
            mount_point = line.split()[4].encode().decode("unicode_escape")
            if mount_point == prefix or mount_point.startswith(prefix + "/"):
                found.append(Path(mount_point))
    return sorted(found, key=lambda mount: len(mount.parts), reverse=True)


def remove_tree(path: Path) -> None:
    """rm -rf that first unmounts anything mounted below path, and refuses if that fails."""
    if not path.exists():
        return
    for mount_point in mounts_below(path):
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False)
    left = mounts_below(path)
    if left:
        raise HarnessError(f"not deleting {path}: still mounted below it: {', '.join(map(str, left))}")
    shutil.rmtree(path)


def chroot(rootfs: Path, argv: Sequence[str], logfile: Path) -> None:
    run_logged(["chroot", str(rootfs), *argv], logfile, f"chroot {' '.join(argv)}")


def build_base_image(target: BaseImage, recipe_data: dict[str, object]) -> None:
    kernel = find_host_kernel()
    if kernel is None:
        raise HarnessError("no host kernel in /boot; install linux-image-amd64")
    staging = target.directory.with_name(f"{target.directory.name}.build-{os.getpid()}")
    remove_tree(staging)
    staging.mkdir(parents=True)
    logfile = staging / "build.log"
    rootfs = staging / "rootfs"
    started = time.monotonic()
    try:
        log(f"building the guest image in {staging} (log: {logfile}); this takes a few minutes")
        # Without a mirror argument debootstrap uses Debian's default mirror; LANCO_VM_MIRROR overrides.
        mirror = [os.environ["LANCO_VM_MIRROR"]] if os.environ.get("LANCO_VM_MIRROR") else []
        run_logged(
            [
                "debootstrap",
                f"--variant={VARIANT}",
                f"--include={','.join(GUEST_PACKAGES)}",
                SUITE,
                str(rootfs),
                *mirror,
            ],
            logfile,
            "debootstrap",
        )
        log(f"debootstrap done after {time.monotonic() - started:.0f} s; configuring the guest")

        # The kernel runs from outside the image, but its modules must be inside for udev and modprobe.
        shutil.copytree(kernel.modules, rootfs / "lib/modules" / kernel.version, symlinks=True)
        shutil.copy2(kernel.vmlinuz, staging / "vmlinuz")
        shutil.copy2(kernel.initrd, staging / "initrd.img")

        for name, (guest_path, mode) in GUEST_FILES.items():
            destination = rootfs / guest_path.lstrip("/")
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(GUEST_DIR / name, destination)
            destination.chmod(mode)
        for guest_path, content in GUEST_INLINE_FILES.items():
            destination = rootfs / guest_path.lstrip("/")
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_text(content)

        chroot(
            rootfs,
            ["useradd", "--create-home", "--uid", str(GUEST_UID), "--shell", "/bin/bash", GUEST_USER],
            logfile,
        )
        chroot(rootfs, ["systemctl", "enable", "lanco-vm-run.service"], logfile)
        chroot(rootfs, ["systemctl", "mask", *MASKED_UNITS], logfile)
        chroot(rootfs, ["apt-get", "clean"], logfile)
        for lists_entry in (rootfs / "var/lib/apt/lists").glob("*_*"):
            lists_entry.unlink()

        # lazy_itable_init=0: otherwise every boot's kernel zeroes inode tables in the background,
        # writing into the run's overlay and costing emulated CPU time.
        image = staging / "root.img"
        with image.open("wb") as sparse:
            sparse.truncate(ROOT_IMAGE_BYTES)
        run_logged(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-L",
                "lanco-root",
                "-E",
                "lazy_itable_init=0,lazy_journal_init=0",
                "-d",
                str(rootfs),
                str(image),
            ],
            logfile,
            "mkfs.ext4 of the root image",
        )
        remove_tree(rootfs)
        (staging / "recipe.json").write_text(json.dumps(recipe_data, indent=2, sort_keys=True) + "\n")
        build_info = {
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(time.monotonic() - started, 1),
            "kernel": kernel.version,
        }
        # Written last: its presence marks a complete image.
        (staging / "build.json").write_text(json.dumps(build_info, indent=2) + "\n")
        staging.rename(target.directory)
    except BaseException:
        remove_tree(staging)
        raise
    log(f"guest image built in {time.monotonic() - started:.0f} s: {target.directory}")


def ensure_base_image(rebuild: bool, prune: bool) -> BaseImage:
    recipe_data = recipe()
    image = BaseImage(CACHE_ROOT / recipe_digest(recipe_data))
    with cache_lock():
        # Leftovers of builds that were killed: nobody else builds while we hold the lock.
        for leftover in CACHE_ROOT.glob("*.build-*"):
            remove_tree(leftover)
        if prune:
            # Images of other recipes (older versions of this script, other checkouts). A qemu that
            # still runs on one keeps its open backing file, so deleting is safe for it.
            for other in CACHE_ROOT.iterdir():
                if other.is_dir() and other != image.directory:
                    log(f"pruning {other}")
                    remove_tree(other)
        if rebuild or not image.is_complete():
            remove_tree(image.directory)
            build_base_image(image, recipe_data)
        else:
            log(f"using cached guest image {image.directory}")
    return image


# ---------------------------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------------------------
def ignore_excluded(directory: str, names: list[str]) -> set[str]:
    at_top = Path(directory) == REPO_ROOT
    return {
        name
        for name in names
        if name in EXCLUDED_NAMES or name.endswith(EXCLUDED_SUFFIXES) or (at_top and name in EXCLUDED_TOP_LEVEL)
    }


def tree_bytes(path: Path) -> int:
    total = 0
    for parent, _dirs, files in os.walk(path):
        # 4 KiB per entry on top of the data: ext4 blocks are never shared between files.
        total += 4096 * (len(files) + 1)
        for name in files:
            total += os.lstat(os.path.join(parent, name)).st_size
    return total


def make_run_disk(workdir: Path, argv: Sequence[str], nonce: str) -> Path:
    """An ext4 image holding run.json (the command) and src/ (the repository's work tree)."""
    stage = workdir / "stage"
    stage.mkdir()
    # 0755 on both: the image's root directory takes stage's mode, and alice must be able to read /src.
    stage.chmod(0o755)
    shutil.copytree(REPO_ROOT, stage / "src", symlinks=True, ignore=ignore_excluded)
    (stage / "src").chmod(0o755)
    (stage / "run.json").write_text(json.dumps({"argv": list(argv), "nonce": nonce}) + "\n")
    disk = workdir / "run.img"
    with disk.open("wb") as sparse:
        # Room for what the command writes below /src (caches, build output); sparse, so cheap.
        sparse.truncate(tree_bytes(stage) * 2 + 512 * 1024**2)
    run_logged(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "lanco-run",
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0",
            "-d",
            str(stage),
            str(disk),
        ],
        workdir / "prepare.log",
        "mkfs.ext4 of the run disk",
    )
    shutil.rmtree(stage)
    return disk


def make_overlay(workdir: Path, base: BaseImage) -> Path:
    overlay = workdir / "root.qcow2"
    run_logged(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base.root_image), str(overlay)],
        workdir / "prepare.log",
        "qemu-img create",
    )
    return overlay


def qemu_argv(base: BaseImage, overlay: Path, run_disk: Path, console_log: Path) -> list[str]:
    return [
        "qemu-system-x86_64",
        "-nodefaults",
        "-no-user-config",
        "-accel",
        "tcg,thread=multi",  # /dev/kvm is not usable on these machines
        "-cpu",
        "max",
        "-m",
        str(QEMU_MEMORY_MIB),
        "-smp",
        str(QEMU_CPUS),
        "-display",
        "none",
        "-no-reboot",
        "-kernel",
        str(base.vmlinuz),
        "-initrd",
        str(base.initrd),
        "-append",
        KERNEL_CMDLINE,
        # cache=unsafe: both disks are deleted after the run, so flushes buy nothing.
        "-drive",
        f"file={overlay},format=qcow2,if=virtio,cache=unsafe",
        "-drive",
        f"file={run_disk},format=raw,if=virtio,cache=unsafe",
        # ttyS0: kernel and systemd console, kept in a file; ttyS1: only the runner's output.
        "-serial",
        f"file:{console_log}",
        "-serial",
        "stdio",
        "-device",
        "virtio-rng-pci",
        "-nic",
        "none",
    ]


def die_with_parent() -> None:
    """In the qemu child before exec: SIGKILL it if this script dies, even by SIGKILL."""
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def stop_qemu(proc: subprocess.Popen[bytes]) -> None:
    """Ends the qemu we started (by its pid, through proc) and reaps it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class RunResult:
    status: int | None = None  # the command's exit status, from the end marker
    timed_out: bool = False
    qemu_started: float = 0.0
    command_started: float | None = None
    command_ended: float | None = None
    qemu_ended: float | None = None


class GuestStream:
    """Splits the guest's ttyS1 stream: runner chatter before the begin marker goes to stderr, the
    command's output between the markers goes to stdout as it arrives, the end marker gives the status."""

    def __init__(self, nonce: str, result: RunResult, stdout: BinaryIO) -> None:
        self.begin = MARKER_PREFIX + f"begin:{nonce}@@".encode()
        self.end_pattern = re.compile(re.escape(MARKER_PREFIX + f"end:{nonce}:rc=".encode()) + rb"(\d+)@@")
        self.result = result
        self.stdout = stdout
        self.pending = b""
        self.in_command = False
        self.at_line_start = True  # of the command's output as passed on to stdout
        self.done = False

    def feed(self, data: bytes) -> None:
        self.pending += data.replace(b"\r", b"")
        while self.pending and not self.done:
            newline = self.pending.find(b"\n")
            if newline < 0:
                # A partial line: in the command's output pass it on now (progress dots) unless it
                # could still become a marker line; the guest starts every marker on a new line.
                if self.in_command and not self.could_be_marker(self.pending):
                    self.emit_partial(self.pending)
                    self.pending = b""
                return
            line, self.pending = self.pending[: newline + 1], self.pending[newline + 1 :]
            self.handle_line(line)

    def could_be_marker(self, partial: bytes) -> bool:
        return self.at_line_start and (partial.startswith(MARKER_PREFIX) or MARKER_PREFIX.startswith(partial))

    def emit_partial(self, data: bytes) -> None:
        self.stdout.write(data)
        self.stdout.flush()
        self.at_line_start = data.endswith(b"\n")

    def handle_line(self, line: bytes) -> None:
        stripped = line.rstrip(b"\n")
        if not self.in_command:
            if stripped == self.begin:
                self.in_command = True
                self.at_line_start = True
                self.result.command_started = time.monotonic()
                boot = self.result.command_started - self.result.qemu_started
                log(f"guest booted and ready in {boot:.1f} s; command output follows")
                print("===== lanco-vm: command output begin =====", flush=True)
            else:
                log(f"guest: {stripped.decode(errors='replace')}")
            return
        match = self.end_pattern.fullmatch(stripped) if self.at_line_start else None
        if match:
            self.result.status = int(match.group(1))
            self.result.command_ended = time.monotonic()
            self.done = True
            print(f"===== lanco-vm: command output end (exit status {self.result.status}) =====", flush=True)
            return
        self.emit_partial(line)


def boot_and_run(base: BaseImage, workdir: Path, argv: Sequence[str], timeout_s: float, boot: int = 1,
                 overlay: Path | None = None) -> RunResult:
    """Boot the guest once and run ``argv`` in it. Later boots of one run (``boot`` > 1) reuse the root
    ``overlay`` of the first, so that the guest finds what the earlier boots left on its disk; a fresh run disk
    tells the command which boot this is (``LANCO_VM_BOOT``)."""
    nonce = secrets.token_hex(8)
    preparing = time.monotonic()
    # Given to the command through env(1): the runner in the image stays as it is.
    run_disk = make_run_disk(workdir, ["env", f"LANCO_VM_BOOT={boot}", *argv], nonce)
    if overlay is None:
        overlay = make_overlay(workdir, base)
    log(f"boot {boot}: run disk with the work tree of {REPO_ROOT} and root overlay ready in "
        f"{time.monotonic() - preparing:.1f} s")
    console_log = workdir / "console.log"
    qemu_log = workdir / "qemu.log"
    result = RunResult()
    stream = GuestStream(nonce, result, sys.stdout.buffer)
    result.qemu_started = time.monotonic()
    deadline = result.qemu_started + timeout_s
    with qemu_log.open("wb") as qemu_stderr:
        proc = subprocess.Popen(
            qemu_argv(base, overlay, run_disk, console_log),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=qemu_stderr,
            preexec_fn=die_with_parent,
        )
    log(f"qemu started (pid {proc.pid}), timeout {timeout_s:.0f} s")
    try:
        assert proc.stdout is not None
        pipe = proc.stdout.fileno()
        os.set_blocking(pipe, False)
        with selectors.DefaultSelector() as selector:
            selector.register(pipe, selectors.EVENT_READ)
            eof = False
            while not eof:
                now = time.monotonic()
                if now >= deadline:
                    result.timed_out = True
                    break
                if stream.done and now >= (result.command_ended or now) + POWEROFF_GRACE_S:
                    log(f"guest did not power off within {POWEROFF_GRACE_S:.0f} s of the end; killing qemu")
                    break
                for _key, _events in selector.select(timeout=min(1.0, deadline - now)):
                    try:
                        chunk = os.read(pipe, 65536)
                    except BlockingIOError:
                        continue
                    if chunk:
                        stream.feed(chunk)
                    else:
                        eof = True
        if not result.timed_out:
            # stdout closed: qemu is exiting (the guest powered off, or qemu failed).
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(1.0, min(POWEROFF_GRACE_S, deadline - time.monotonic())))
    finally:
        stop_qemu(proc)
        result.qemu_ended = time.monotonic()
    if result.status is None and not result.timed_out:
        raise HarnessError(
            f"the guest stopped without reporting an exit status (qemu exit {proc.returncode}).\n"
            f"qemu stderr:\n{tail(qemu_log)}\nlast lines of the guest console:\n{tail(console_log)}"
        )
    if result.timed_out:
        if stream.in_command:
            print(f"===== lanco-vm: command output end (TIMEOUT after {timeout_s:.0f} s) =====", flush=True)
        log(f"last lines of the guest console:\n{tail(console_log)}")
    return result


def make_workdir() -> Path:
    """A fresh /tmp directory for this run's disks and logs, tagged with our pid."""
    # Directories of runs that were SIGKILLed (their finally never ran); qemu died with them.
    for stale in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            owner = int((stale / "owner.pid").read_text())
            os.kill(owner, 0)
        except (OSError, ValueError):  # no pid file yet/any more, or its process is gone
            if (stale / "owner.pid").exists() or time.time() - stale.stat().st_mtime > 3600:
                shutil.rmtree(stale, ignore_errors=True)
    workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
    (workdir / "owner.pid").write_text(f"{os.getpid()}\n")
    return workdir


def raise_on_termination(signum: int, _frame: FrameType | None) -> None:
    # Turn SIGTERM/SIGHUP into an exception so that the finally blocks stop qemu and delete the disks.
    raise SystemExit(128 + signum)


def parse_args(args: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="tests/vm/run.py",
        usage="%(prog)s [--rebuild] [--prune] [--timeout SECONDS] [--boots N] -- CMD...",
        description="Run CMD as root in /src of a Debian 12 guest (systemd, pure cgroup v2) under qemu.",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached guest image first")
    parser.add_argument("--prune", action="store_true", help=f"delete the images of other recipes from {CACHE_ROOT}")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"kill the guest after this long from qemu's start (default {DEFAULT_TIMEOUT_S:.0f})",
    )
    parser.add_argument(
        "--boots",
        type=int,
        default=1,
        metavar="N",
        help="boot N times on one root disk, running CMD at each boot (LANCO_VM_BOOT=1..N tells which); "
        "stops after a boot whose CMD failed",
    )
    if "--" not in args:
        parser.parse_args(args)  # answers --help and rejects unknown options first
        parser.error("the command must follow '--'")
    split = list(args).index("--")
    options = parser.parse_args(args[:split])
    command = list(args[split + 1 :])
    if not command:
        parser.error("no command after '--'")
    if options.timeout <= 0:
        parser.error("--timeout must be positive")
    if options.boots < 1:
        parser.error("--boots must be at least 1")
    return options, command


def main(args: Sequence[str]) -> int:
    options, command = parse_args(args)
    if os.geteuid() != 0:
        log("must run as root (debootstrap, chroot, apt-get)")
        return EXIT_HARNESS
    signal.signal(signal.SIGTERM, raise_on_termination)
    signal.signal(signal.SIGHUP, raise_on_termination)
    started = time.monotonic()
    workdir: Path | None = None
    try:
        ensure_host_packages()
        base = ensure_base_image(options.rebuild, options.prune)
        workdir = make_workdir()
        result = boot_and_run(base, workdir, command, options.timeout)
        for boot in range(2, options.boots + 1):
            if result.timed_out or result.status != 0:
                break
            # The same root disk again: what the earlier boot left in /var and /etc is there, cgroupfs and /run
            # are new, as after a reboot. The timeout counts each boot on its own.
            result = boot_and_run(base, workdir, command, options.timeout, boot, workdir / "root.qcow2")
    except HarnessError as error:
        log(f"ERROR: {error}")
        return EXIT_HARNESS
    except subprocess.CalledProcessError as error:
        log(f"ERROR: {error}")
        return EXIT_HARNESS
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    total = time.monotonic() - started
    if result.timed_out:
        log(f"TIMEOUT: no result within {options.timeout:.0f} s; qemu killed (total {total:.1f} s)")
        return EXIT_TIMEOUT
    assert result.status is not None and result.command_started is not None
    command_s = (result.command_ended or result.command_started) - result.command_started
    boot_s = result.command_started - result.qemu_started
    poweroff_s = (result.qemu_ended or 0.0) - (result.command_ended or 0.0)
    log(
        f"exit status {result.status}; boot-to-command {boot_s:.1f} s, command {command_s:.1f} s, "
        f"power-off {poweroff_s:.1f} s, total {total:.1f} s"
    )
    return result.status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
