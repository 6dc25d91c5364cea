"""Side-by-side timings for the guest benchmark, run as the user: ``python3 bench_user.py NS ROUNDS``.

For the same command (``sleep 300``): ``lanco run`` against ``systemd-run --user`` (a transient service, which
returns once the service runs), ``lanco check`` against ``systemctl --user is-active``, ``lanco stop`` against
``systemctl --user stop``. Prints the median seconds of each as JSON."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time


def timed(argv: list[str], expect: int = 0) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != expect:
        raise SystemExit(f"{' '.join(argv)} -> {result.returncode}: {result.stderr}")
    return elapsed


def main(ns: str, rounds: int) -> int:
    lanco = [sys.executable, "-m", "lanco", ns]
    samples: dict[str, list[float]] = {}
    for index in range(rounds):
        task, unit = f"bench-{index}", f"lanco-bench-{ns}-{index}"
        pairs = {
            "run": ([*lanco, "run", task, "sleep", "300"],
                    ["systemd-run", "--user", "--quiet", f"--unit={unit}", "sleep", "300"]),
            "check": ([*lanco, "check", task], ["systemctl", "--user", "is-active", "--quiet", unit]),
            "stop": ([*lanco, "stop", task], ["systemctl", "--user", "stop", unit]),
        }
        for operation, (ours, theirs) in pairs.items():
            # Alternate which goes first, so that neither always meets a warm cache.
            first, second = (ours, theirs) if index % 2 == 0 else (theirs, ours)
            a, b = timed(first), timed(second)
            lanco_s, systemd_s = (a, b) if index % 2 == 0 else (b, a)
            samples.setdefault(f"{operation}/lanco", []).append(lanco_s)
            samples.setdefault(f"{operation}/systemd", []).append(systemd_s)
    print(json.dumps({key: statistics.median(values) for key, values in samples.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
