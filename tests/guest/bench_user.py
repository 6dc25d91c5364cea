"""Side-by-side timings for the guest benchmark, run as an ordinary user: ``python3 bench_user.py NS ROUNDS [--check]``.

The five rows of the systemd path, lanco against systemd's own tools for the same command (``sleep 600``), in one
run, alternating which goes first:

- ``cli-run``: ``lanco NS run T`` against ``systemd-run --user --unit=S`` (a transient service, which returns once
  the service runs);
- ``api-run``: ``Namespace.run`` against ``subprocess.run(["systemd-run", "--user", ...])``, both from this very
  process, as a daemon would call either;
- ``check``: ``lanco NS check T`` against ``systemctl --user is-active``;
- ``stop``: ``lanco NS stop T`` against ``systemctl --user stop``;
- ``rerun``: ``lanco NS run`` of the name stopped just before, against ``systemd-run`` of the unit stopped just
  before.

The command line runs as an installed ``lanco`` script does (``python3 bin/lanco``, the package on PYTHONPATH).
Prints one JSON object: the median seconds of each side of each row, their ratios, the targets and the rows that
missed them. With ``--check`` it exits 1 when a ratio misses its target."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

TARGETS = {"api-run": 0.8, "cli-run": 2.0, "check": 2.0, "stop": 1.5, "rerun": 2.0}
"""lanco's median over systemd's, at most (issue "The systemd path")."""
SCRIPT = Path(__file__).resolve().parents[2] / "bin" / "lanco"


def timed(argv: list[str], expect: int = 0) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != expect:
        raise SystemExit(f"{' '.join(argv)} -> {result.returncode}: {result.stderr}")
    return elapsed


def timed_call(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main(ns: str, rounds: int, check: bool) -> int:
    import lanco

    namespace = lanco.Namespace(ns)
    cli = [sys.executable, str(SCRIPT), ns]
    samples: dict[str, list[float]] = {}

    def pair(row: str, index: int, ours: Callable[[], float], theirs: Callable[[], float]) -> None:
        first, second = (ours, theirs) if index % 2 == 0 else (theirs, ours)
        a, b = first(), second()
        lanco_s, systemd_s = (a, b) if index % 2 == 0 else (b, a)
        samples.setdefault(f"{row}/lanco", []).append(lanco_s)
        samples.setdefault(f"{row}/systemd", []).append(systemd_s)

    def one_round(index: int) -> None:
        task, unit = f"bench-{index}", f"lanco-bench-{ns}-{index}"
        api_task, api_unit = f"api-{index}", f"lanco-bench-{ns}-api-{index}"
        systemd_run = ["systemd-run", "--user", "--quiet", f"--unit={unit}", "sleep", "600"]
        pair("cli-run", index, lambda: timed([*cli, "run", task, "sleep", "600"]), lambda: timed(systemd_run))
        pair("api-run", index, lambda: timed_call(lambda: namespace.run(api_task, ["sleep", "600"])),
             lambda: timed_call(lambda: subprocess.run(
                 ["systemd-run", "--user", "--quiet", f"--unit={api_unit}", "sleep", "600"], check=True)))
        pair("check", index, lambda: timed([*cli, "check", task]),
             lambda: timed(["systemctl", "--user", "is-active", "--quiet", unit]))
        pair("stop", index, lambda: timed([*cli, "stop", task]), lambda: timed(["systemctl", "--user", "stop", unit]))
        pair("rerun", index, lambda: timed([*cli, "run", task, "sleep", "600"]), lambda: timed(systemd_run))
        for argv in ([*cli, "stop", task, api_task], ["systemctl", "--user", "stop", unit, api_unit]):
            subprocess.run(argv, capture_output=True, check=False)

    for index in range(rounds):
        one_round(index)
    medians = {key: statistics.median(values) for key, values in samples.items()}
    ratios = {row: medians[f"{row}/lanco"] / medians[f"{row}/systemd"] for row in TARGETS}
    missed = sorted(row for row, ratio in ratios.items() if ratio > TARGETS[row])
    print(json.dumps({"medians": medians, "ratios": ratios, "targets": TARGETS, "missed": missed,
                      "rounds": rounds, "load": os.getloadavg()}))
    return 1 if check and missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), "--check" in sys.argv[3:]))
