#!/usr/bin/python3
"""Runs lanco's guest suite in the qemu guest of run.py: a pure cgroup v2 Debian 12 with systemd as PID 1.

    /usr/bin/python3 tests/vm/guest_suite.py [PYTEST ARGS...]

By default the guest runs ``tests/guest`` (placement through systemd, the seed's daemon case, containers, the
benchmark) and ``tests/integration`` (the real-kernel suite, in the guest's one mode, v2; tests marked slow are
left out) as root, from the work tree (``PYTHONPATH=/src/src``). Arguments replace that selection and run in one
pytest. After the suite, without arguments, ``tests/guest/reboot_scenario.py`` runs in a guest of its own booted
twice on one disk (a real reboot). ``scripts/test`` runs this after the host's suite; ``LANCO_TEST_VM=0`` skips it
(quick local runs), CI never sets it. Exits with pytest's status in the guest (else the reboot scenario's), or
run.py's 124/125 when the guest timed out or the harness failed.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 2700
"""Boot and suite together: 45 minutes at most. A cached run took 27 minutes in this round's CI-like run (its lanes
25 and 16, on a host busy with other tests), the host's suite about 16 more, and CI allows 90 for both."""
REBOOT_TIMEOUT_S = 900
"""Each of the reboot scenario's two boots: about a minute to boot and one or two for the scenario."""
COMMON = ["-p", "no:cacheprovider", "-q", "--durations=10", "-m", "not slow"]
"""Tests marked slow stay on the host: they are calibrated for native speed (a launcher killed within 120 ms of
its start, 5000 run/stop cycles) or need the network (pip install); emulation is 20 to 40 times slower."""
# Emulation keeps one vCPU busy per pytest (each lanco command is mostly an interpreter starting), and the guest has
# two: the suite runs in two lanes side by side, then the benchmark alone, so that nothing disturbs its figures.
# The lanes are balanced by their measured time (main 25, side 16 minutes before test_damage and test_escape moved).
SIDE_LANE = ["tests/guest", "--ignore=tests/guest/test_bench.py", "tests/integration/test_resources.py",
             "tests/integration/test_views.py", "tests/integration/test_damage.py", "tests/integration/test_escape.py"]
MAIN_LANE = ["tests/integration", "--ignore=tests/integration/test_resources.py",
             "--ignore=tests/integration/test_views.py", "--ignore=tests/integration/test_damage.py",
             "--ignore=tests/integration/test_escape.py"]
LAST = ["tests/guest/test_bench.py"]
PREPARE = [
    # Compiled once as root: the test users cannot write /src and would compile lanco at every command.
    "python3 -m compileall -q src tests bench >/dev/null",
    # Importable under -I too, as if installed (PYTHONPATH serves the rest): python -m bench runs the CLI that way.
    "ln -sfn /src/src/lanco /usr/lib/python3/dist-packages/lanco",
    "python3 -c 'from tests.conftest import prepare_test_users; prepare_test_users()'",
]


# A job started with & from sh ignores SIGINT and SIGQUIT, and lanco's tasks would inherit that (tests stop some
# with SIGINT): the side lane starts through an interpreter that restores both first (and the two CPython ignores).
DEFAULT_SIGNALS = ("import os, signal, sys\n"
                   "for number in (signal.SIGINT, signal.SIGQUIT, signal.SIGPIPE, signal.SIGXFSZ):\n"
                   "    signal.signal(number, signal.SIG_DFL)\n"
                   "os.execvp(sys.argv[1], sys.argv[1:])\n")


def guest_script(args: list[str]) -> str:
    pytest = "python3 -m pytest " + shlex.join(COMMON)
    background = shlex.join(["python3", "-c", DEFAULT_SIGNALS]) + " " + pytest
    lines = ["cd /src || exit 125", "export PYTHONPATH=/src/src", *(f"{line} || exit 125" for line in PREPARE)]
    if args:
        return "\n".join([*lines, f"exec python3 -m pytest -p no:cacheprovider {shlex.join(args)}"])
    return "\n".join([
        *lines,
        f"{background} {shlex.join(SIDE_LANE)} > /tmp/side-lane.log 2>&1 &",
        "side=$!",
        # Unbuffered: through tee, a lane that the timeout ends would lose what pytest had not flushed yet.
        f"(PYTHONUNBUFFERED=1 {pytest} {shlex.join(MAIN_LANE)}; echo $? > /tmp/main-lane.status) 2>&1"
        " | tee /tmp/main-lane.log",
        "main=$(cat /tmp/main-lane.status)",
        "wait $side; side=$?",
        "echo '----- side lane (tests/guest, test_resources, test_views) -----'; cat /tmp/side-lane.log",
        f"{pytest} {shlex.join(LAST)}; last=$?",
        # CI keeps the output's end only: what failed in either lane is said again there.
        "echo '----- failures of both lanes -----'",
        "grep -hE '^(FAILED|ERROR) ' /tmp/main-lane.log /tmp/side-lane.log || echo none",
        'echo "guest suite lanes: main $main, side $side, benchmark $last"',
        '[ "$main" = 0 ] && [ "$side" = 0 ] && [ "$last" = 0 ]',
    ])


def main(args: list[str]) -> int:
    if os.environ.get("LANCO_TEST_VM", "1") == "0":
        print("guest suite skipped (LANCO_TEST_VM=0)")
        return 0
    command = [sys.executable, str(HERE / "run.py"), "--timeout", str(TIMEOUT_S), "--",
               "sh", "-c", guest_script(args)]
    started = time.monotonic()
    status = subprocess.call(command)
    print(f"guest suite: exit status {status} after {time.monotonic() - started:.0f} s (boot included)",
          file=sys.stderr)
    if args:
        return status
    # A reboot cannot happen inside the suite's guest: a guest of its own, booted twice on one disk.
    started = time.monotonic()
    reboot = subprocess.call([sys.executable, str(HERE / "run.py"), "--boots", "2", "--timeout", str(REBOOT_TIMEOUT_S),
                              "--", "python3", "tests/guest/reboot_scenario.py"])
    print(f"guest reboot scenario: exit status {reboot} after {time.monotonic() - started:.0f} s (two boots)",
          file=sys.stderr)
    return status or reboot


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
