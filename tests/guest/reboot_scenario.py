"""A real reboot of the guest: ``tests/vm/run.py --boots 2 -- python3 tests/guest/reboot_scenario.py``.

The guest suite (tests/vm/guest_suite.py) runs this after its lanes, on a disk of its own booted twice. At the first
boot (``LANCO_VM_BOOT=1``) lanco is installed as an administrator would (the package under /usr/local, the boot
unit through ``scripts/install-boot``), and root and alice start tasks with exit hooks: in a namespace of root's,
in one root made for alice, and in alice's own (systemd's delegation). The guest then shuts down with them running.
At the second boot the boot unit has run ``lanco restore``: root's namespaces have their cgroups again, every run
the shutdown ended reads ``lost`` with its hook run once, and new runs work in all three.

A plain script rather than a pytest module: a test cannot span two boots, and the suite's pytest never collects it.
Exits 0 when all holds, 1 with the failed checks listed.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
USER = "alice"
LANCO = "/usr/local/bin/lanco"
HOOKS = Path("/var/tmp/lanco-reboot-hooks")
# (namespace, who runs in it, who initialises it): root's own, root's for alice, alice's own (systemd delegates).
NAMESPACES = (("rbroot", "root", "root"), ("rbalice", USER, "root"), ("rbown", USER, USER))
failures: list[str] = []


def check(ok: bool, what: str) -> None:
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def user_env(user: str) -> dict[str, str]:
    if user == "root":
        return {"PATH": PATH, "LANG": "C.UTF-8"}
    entry = pwd.getpwnam(user)
    runtime = f"/run/user/{entry.pw_uid}"
    return {"PATH": PATH, "LANG": "C.UTF-8", "HOME": entry.pw_dir, "USER": user, "XDG_RUNTIME_DIR": runtime,
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={runtime}/bus"}


def lanco(user: str, *args: str) -> subprocess.CompletedProcess[str]:
    prefix = [] if user == "root" else ["runuser", "-u", user, "--", "env", *(f"{k}={v}" for k, v in
                                                                        user_env(user).items())]
    return subprocess.run([*prefix, LANCO, *args], capture_output=True, text=True, timeout=300, cwd="/",
                          env=user_env("root"), check=False)


def install() -> None:
    """lanco as an administrator installs it: its package where Debian's interpreter finds it, its command on the
    PATH, its boot unit enabled. Not from /src: the run disk is mounted only after the boot unit has run."""
    target = Path("/usr/local/lib/python3.11/dist-packages/lanco")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(ROOT / "src" / "lanco", target, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(target)], check=True, stdout=subprocess.DEVNULL)
    script = (ROOT / "bin" / "lanco").read_text().replace("#!python", "#!/usr/bin/python3", 1)
    Path(LANCO).write_text(script)
    os.chmod(LANCO, 0o755)
    result = subprocess.run(["scripts/install-boot"], cwd=ROOT, env={**user_env("root"), "PREFIX": "/usr/local"},
                            capture_output=True, text=True, check=False)
    check(result.returncode == 0 and "enabled" in result.stdout, f"install-boot: {result.stdout}{result.stderr}")


def first_boot() -> None:
    install()
    HOOKS.mkdir(mode=0o777, exist_ok=True)
    HOOKS.chmod(0o777)
    for ns, runner, initialiser in NAMESPACES:
        owner = [] if initialiser == runner else ["-u", runner]
        result = lanco(initialiser, ns, "init", *owner)
        check(result.returncode == 0, f"{ns}: init by {initialiser}: {result.stderr.strip()}")
        hook = f'echo "$LANCO_RESULT" >> {HOOKS}/{ns}'
        result = lanco(runner, ns, "run", "-c", hook, "t", "sleep", "3600")
        check(result.returncode == 0, f"{ns}: run by {runner}: {result.stderr.strip()}")
        check(lanco(runner, ns, "check", "t").returncode == 0, f"{ns}: t runs before the reboot")
    # The guest now powers off with the tasks running: their ends are seen by nobody.


def hook_lines(ns: str) -> list[str]:
    try:
        return (HOOKS / ns).read_text().splitlines()
    except FileNotFoundError:
        return []


def second_boot() -> None:
    unit = subprocess.run(["systemctl", "show", "-p", "ActiveState,Result", "lanco-restore.service"],
                          capture_output=True, text=True, check=False).stdout.split()
    check(sorted(unit) == ["ActiveState=active", "Result=success"], f"the boot unit ran: {unit}")
    journal = subprocess.run(["journalctl", "-b", "-o", "cat", "-u", "lanco-restore.service"], capture_output=True,
                             text=True, check=False).stdout
    print(journal, flush=True)
    for ns, runner, initialiser in NAMESPACES:
        if initialiser == "root":
            check(f"namespace {ns}" in journal, f"{ns}: the boot unit's restore names it")
        status = lanco(runner, ns, "status", "--json", "t")
        state = json.loads(status.stdout).get("state") if status.returncode == 0 else status.stderr.strip()
        check(state == "lost", f"{ns}: the run the reboot ended reads lost: {state}")
        deadline = time.monotonic() + 30
        while not hook_lines(ns) and time.monotonic() < deadline:
            time.sleep(0.2)
        check(hook_lines(ns) == ["lost"], f"{ns}: its hook ran once, for lost: {hook_lines(ns)}")
        result = lanco(runner, ns, "run", "-f", "t", "sh", "-c", "exit 7")
        check(result.returncode == 7, f"{ns}: a new run of the name works: {result.returncode} {result.stderr}")
        result = lanco(runner, ns, "run", "fresh", "sleep", "600")
        check(result.returncode == 0 and lanco(runner, ns, "check", "fresh").returncode == 0,
              f"{ns}: a new task runs: {result.stderr.strip()}")
        lanco(runner, ns, "stop", "fresh")
        time.sleep(0.5)  # a second hook of the lost run would have come by now
        check(hook_lines(ns) == ["lost"], f"{ns}: no hook ran twice: {hook_lines(ns)}")
    for ns, _runner, initialiser in NAMESPACES:
        result = lanco(initialiser, ns, "release")
        check(result.returncode == 0, f"{ns}: release: {result.stderr.strip()}")


def main() -> int:
    boot = os.environ.get("LANCO_VM_BOOT")
    if boot == "1":
        first_boot()
    elif boot == "2":
        second_boot()
    else:
        print(f"reboot_scenario: run by tests/vm/run.py --boots 2 (LANCO_VM_BOOT is {boot!r})", file=sys.stderr)
        return 2
    print(f"boot {boot}: {len(failures)} failed check(s)" + "".join(f"\n  {f}" for f in failures), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
