"""lanco beside systemd on its own ground (pure cgroup v2, systemd, an ordinary user): the ``systemd`` phase of
``python -m bench``, which runs this module as that user: ``python3 -m bench.beside_systemd NS ROUNDS [--check]``.

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
Prints one JSON object: the samples and median seconds of each side of each row, their ratios, the targets and the
rows that missed them. With ``--check`` it exits 1 when a ratio misses its target. Run as root, :func:`phase`
initialises a namespace for the user named by ``LANCO_BENCH_USER`` (lingering, with a running user manager),
runs this module as that user and turns the ratios into the benchmark's figures."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.stats import Figure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bench.phases import Settings
    from bench.sandbox import Sandbox

TARGETS = {"api-run": 0.8, "cli-run": 2.0, "check": 2.0, "stop": 1.5, "rerun": 2.0}
"""lanco's median over systemd's, at most (issue "The systemd path")."""
SCRIPT = Path(__file__).resolve().parents[1] / "bin" / "lanco"
ROWS = {"cli-run": ("lanco run", "systemd-run --user"),
        "api-run": ("Namespace.run", "subprocess.run(systemd-run --user)"),
        "check": ("lanco check", "systemctl --user is-active"),
        "stop": ("lanco stop", "systemctl --user stop"),
        "rerun": ("lanco run of a name stopped just before", "systemd-run --user of a unit stopped just before")}


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
    print(json.dumps({"samples": samples, "medians": medians, "ratios": ratios, "targets": TARGETS,
                      "missed": missed, "rounds": rounds, "load": os.getloadavg()}))
    return 1 if check and missed else 0


def phase(settings: Settings, sandbox: Sandbox) -> list[Figure]:
    """The side-by-side rows as figures: one ratio per row (its target on it), and each side's median."""
    from lanco.cgroups.detect import read_mounts
    from lanco.cgroups.placement import systemd_delegates

    user = os.environ.get("LANCO_BENCH_USER", "")
    where = None if systemd_delegates(read_mounts()) else "needs systemd as PID 1 on pure cgroup v2 (the guest)"
    if where is None and not user:
        where = "needs LANCO_BENCH_USER, a lingering user"
    if where is not None:
        return [Figure(f"systemd.{row}", f"{ours} / {theirs}", "ratio", target=TARGETS[row],
                       target_text=f"<= {TARGETS[row]:g}", available=False, note=where)
                for row, (ours, theirs) in ROWS.items()]
    import pwd

    entry = pwd.getpwnam(user)
    ns = f"{sandbox.ns_name}u"
    rounds = 3 if settings.quick else 7
    env = {**sandbox.env, "XDG_RUNTIME_DIR": f"/run/user/{entry.pw_uid}",
           "DBUS_SESSION_BUS_ADDRESS": f"unix:path=/run/user/{entry.pw_uid}/bus",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(SCRIPT.parents[1]), os.environ.get("PYTHONPATH")]))}
    lanco_root = [settings.python, str(SCRIPT), ns]
    subprocess.run([*lanco_root, "init", "-u", user], check=True, capture_output=True, env={**os.environ, **env})
    try:
        result = subprocess.run(["runuser", "-u", user, "--", "env", *(f"{k}={v}" for k, v in env.items()),
                                 settings.python, "-m", "bench.beside_systemd", ns, str(rounds)],
                                capture_output=True, text=True, check=False, cwd=str(SCRIPT.parents[1]), timeout=1800)
        if result.returncode != 0:
            raise RuntimeError(f"bench.beside_systemd as {user} -> {result.returncode}: {result.stderr.strip()}")
        report = json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run([*lanco_root, "release"], capture_output=True, env={**os.environ, **env}, check=False)
    figures = []
    for row, (ours, theirs) in ROWS.items():
        figures.append(Figure(f"systemd.{row}", f"{ours} / {theirs}", "ratio", [report["ratios"][row]],
                              target=TARGETS[row], target_text=f"<= {TARGETS[row]:g} (medians, as {user})"))
        for side, label in (("lanco", ours), ("systemd", theirs)):
            figures.append(Figure(f"systemd.{row}.{side}", f"  {label}", "s", report["samples"][f"{row}/{side}"]))
    return figures


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), "--check" in sys.argv[3:]))
