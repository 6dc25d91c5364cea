#!/usr/bin/python3
"""Runs lanco's guest suite in the qemu guest of run.py: a pure cgroup v2 Debian 12 with systemd as PID 1.

    /usr/bin/python3 tests/vm/guest_suite.py [PYTEST ARGS...]

By default the guest runs ``tests/guest`` (placement through systemd, the seed's daemon case, containers, the
benchmark) and ``tests/integration`` (the real-kernel suite, in the guest's one mode, v2) as root, from the work
tree (``PYTHONPATH=/src/src``). Arguments replace that selection. ``scripts/test`` runs this after the host's
suite; ``LANCO_TEST_VM=0`` skips it (quick local runs), CI never sets it. Exits with pytest's status in the guest,
or run.py's 124/125 when the guest timed out or the harness failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SELECTION = ["tests/guest", "tests/integration"]
TIMEOUT_S = 1080
"""Boot and suite together: 18 minutes at most (a cached run takes about 10), so CI stays under its 20."""


def main(args: list[str]) -> int:
    if os.environ.get("LANCO_TEST_VM", "1") == "0":
        print("guest suite skipped (LANCO_TEST_VM=0)")
        return 0
    selection = args or DEFAULT_SELECTION
    script = 'cd /src && PYTHONPATH=/src/src exec python3 -m pytest -p no:cacheprovider -q --durations=15 "$@"'
    command = [sys.executable, str(HERE / "run.py"), "--timeout", str(TIMEOUT_S), "--",
               "sh", "-c", script, "guest-suite", *selection]
    started = time.monotonic()
    status = subprocess.call(command)
    print(f"guest suite: exit status {status} after {time.monotonic() - started:.0f} s (boot included)",
          file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
