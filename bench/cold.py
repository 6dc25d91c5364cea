"""Launches the way a daemon makes them: spaced out, each after the machine has been idle a while.

The kernel makes the first ``cgroup.procs`` write after an idle moment wait for an RCU grace period, which
back-to-back launches never see. Each round launches, in an order that turns from round to round, a shell that
makes the same cgroups and moves itself into them before it execs the same detached sleep (the floor: no
launcher does less), lanco's API, lanco's CLI and a bare interpreter, each after ``COLD_GAP_S`` of quiet.
The original lanĉo (C, cgroup v1) is not packaged anywhere this bench can install from, so the floor stands in
for it in the targets, as issue 13 allows.

A second row launches from a daemon that holds 1 GiB, beside the same daemon holding nothing: a launch that
forks the caller pays for its page tables.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import time

from bench.phases import SLEEP, Settings, _finish, _ms, bare_argv, lanco_argv, log
from bench.probes import run_command
from bench.sandbox import Sandbox, remove_cgroup
from bench.stats import Figure, median

COLD_GAP_S = 0.3
"""Quiet before every cold launch: issue 13 measured the grace-period wait from 0.3 s apart."""
SETTLE_S = 1.0
FLOOR_TARGET = 1.5
"""A cold API launch within 1.5 times the floor's; a cold CLI run within the bare interpreter plus as much."""


def _floor_argv(directories: list[str], joins: list[str], log_file: str) -> list[str]:
    moves = " && ".join(f"echo $$ > {shlex.quote(j)}" for j in joins)
    script = (f"mkdir {' '.join(shlex.quote(d) for d in directories)} && {moves} && "
              f"exec setsid -f {shlex.join(SLEEP)} </dev/null >>{shlex.quote(log_file)} 2>&1")
    return ["/bin/sh", "-c", script]


def _floor_dirs(sandbox: Sandbox, name: str) -> tuple[list[str], list[str]]:
    """The directories a task of ``name`` would have in the hierarchies every task joins, and their procs files."""
    backend = sandbox.ns.backend
    directories = [backend.task_dir(sandbox.ns_name, name, mount) for mount in backend.hierarchies]
    return directories, [os.path.join(d, "cgroup.procs") for d in directories]


def _remove_floor(sandbox: Sandbox, name: str) -> None:
    backend = sandbox.ns.backend
    directories, _ = _floor_dirs(sandbox, name)
    with contextlib.suppress(Exception):
        backend.kill(sandbox.ns_name, name)
    for directory in reversed(directories):
        remove_cgroup(directory, attempts=200, pause=0.005)


def cold_launches(settings: Settings, sandbox: Sandbox) -> list[Figure]:
    rounds = 3 if settings.quick else 15
    floor = Figure("cold.floor", "cold: sh makes the cgroups, moves itself in, execs setsid -f sleep (floor)", "ms")
    api = Figure("cold.api", "cold: API Namespace.run", "ms")
    cli = Figure("cold.cli", "cold: CLI run (wall)", "ms")
    bare = Figure("cold.bare", "cold: python -I -c pass", "ms")
    log_file = os.path.join(sandbox.root, "floor.log")
    log(f"cold: {rounds} rounds of floor/API/CLI/bare, {COLD_GAP_S} s of quiet before each launch")
    time.sleep(SETTLE_S)

    def launch_floor(index: int) -> None:
        directories, joins = _floor_dirs(sandbox, f"coldfloor{index}")
        floor.samples.append(run_command(_floor_argv(directories, joins, log_file))[0])

    def launch_api(index: int) -> None:
        start = time.perf_counter()
        sandbox.ns.run(f"coldapi{index}", SLEEP)
        api.samples.append(_ms(start))

    def launch_cli(index: int) -> None:
        cli.samples.append(run_command(lanco_argv(settings, sandbox, "run", f"coldcli{index}", *SLEEP))[0])

    def launch_bare(index: int) -> None:
        bare.samples.append(run_command(bare_argv(settings))[0])

    launches = [launch_floor, launch_api, launch_cli, launch_bare]
    try:
        for index in range(rounds):
            turn = index % len(launches)
            for launch in launches[turn:] + launches[:turn]:
                time.sleep(COLD_GAP_S)
                launch(index)
            _remove_floor(sandbox, f"coldfloor{index}")
            _finish(sandbox)
    finally:
        for index in range(rounds):
            _remove_floor(sandbox, f"coldfloor{index}")
        _finish(sandbox)
    floor_ms, bare_ms = median(floor.samples), median(bare.samples)
    return [
        floor, api, cli, bare,
        Figure("cold.api_ratio", "cold API launch / cold floor", "ratio", samples=[median(api.samples) / floor_ms],
               target=FLOOR_TARGET, target_text=f"<= {FLOOR_TARGET:g} (medians)"),
        Figure("cold.cli_over_bare", "cold CLI run minus bare python, / cold floor", "ratio",
               samples=[(median(cli.samples) - bare_ms) / floor_ms], target=FLOOR_TARGET,
               target_text=f"<= {FLOOR_TARGET:g} (medians)"),
    ]


# -- a big daemon --------------------------------------------------------------------------------------------

_DAEMON = """
import json, sys, time
from lanco.namespace import Namespace
hold = b"\\x01" * int(sys.argv[3])  # written, so resident
ns = Namespace(sys.argv[1])
samples = []
for i in range(int(sys.argv[4])):
    time.sleep(float(sys.argv[5]))
    start = time.perf_counter()
    ns.run(f"{sys.argv[2]}{i}", ["sleep", "3600"])
    samples.append((time.perf_counter() - start) * 1000)
print(json.dumps(samples))
"""
BIG_DAEMON_BYTES = 1 << 30
BIG_DAEMON_TARGET = 1.25


def _daemon_launches(sandbox: Sandbox, prefix: str, holding: int, count: int) -> list[float]:
    result = subprocess.run([sys.executable, "-c", _DAEMON, sandbox.ns_name, prefix, str(holding), str(count),
                             str(COLD_GAP_S / 3)], capture_output=True, text=True, check=False, env=os.environ)
    if result.returncode != 0:
        raise RuntimeError(f"the daemon holding {holding} bytes failed: {result.stderr.strip()[-400:]}")
    samples: list[float] = json.loads(result.stdout)
    return samples


def big_daemon(settings: Settings, sandbox: Sandbox) -> list[Figure]:
    count = 5 if settings.quick else 20
    holding = BIG_DAEMON_BYTES // 4 if settings.quick else BIG_DAEMON_BYTES
    label = f"{holding >> 20} MiB"
    log(f"daemon: {count} API launches from a daemon holding {label}, and from one holding nothing, alternately")
    small = Figure("daemon.small", "API Namespace.run from a daemon holding nothing", "ms")
    big = Figure("daemon.big", f"API Namespace.run from a daemon holding {label}", "ms")
    try:
        for turn in range(2):  # twice each, alternating, so that a busy moment falls on both
            for figure, size in ((small, 0), (big, holding))[::1 if turn == 0 else -1]:
                figure.samples.extend(_daemon_launches(sandbox, f"d{size >> 20}x{turn}-", size, count // 2 or 1))
                _finish(sandbox)
    finally:
        _finish(sandbox)
    return [small, big, Figure("daemon.ratio", f"API launch from {label} / from nothing", "ratio",
                               samples=[median(big.samples) / median(small.samples)], target=BIG_DAEMON_TARGET,
                               target_text=f"<= {BIG_DAEMON_TARGET:g} (medians)")]
