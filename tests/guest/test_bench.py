"""The guest benchmark of the systemd path, in the same run: lanco against systemd's own tools for one command, as
the lingering user (tests/guest/bench_user.py has the five rows). The guest is emulated, so absolute times mean
little: the ratios are the result, printed as a table with their targets. Timings decide nothing in the test
suite: ``LANCO_BENCH_CHECK=1`` makes a missed target fail it (``bench_user.py --check``)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from tests.conftest import Sandbox
from tests.guest.conftest import HERE, as_user, run, user_env

ROUNDS = 5
ROWS = (("cli-run", "lanco run", "systemd-run --user"),
        ("api-run", "Namespace.run", "subprocess.run(systemd-run --user)"),
        ("check", "lanco check", "systemctl --user is-active"),
        ("stop", "lanco stop", "systemctl --user stop"),
        ("rerun", "lanco run (just stopped)", "systemd-run --user (just stopped)"))


def test_lanco_beside_systemd_run(sandbox: Sandbox, alice: str, capsys: pytest.CaptureFixture[str]) -> None:
    ns = sandbox.ns_name("bench")
    sandbox.ok(ns, "init", "-u", alice)
    check = ["--check"] if os.environ.get("LANCO_BENCH_CHECK") == "1" else []
    result = run(as_user(alice, [sys.executable, str(HERE / "bench_user.py"), ns, str(ROUNDS), *check],
                         {**sandbox.env, **user_env(alice)}), timeout=1200)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    medians, ratios, targets = report["medians"], report["ratios"], report["targets"]
    lines = [f"lanco beside systemd, as {alice}, median of {ROUNDS} rounds (qemu TCG guest, load "
             f"{report['load'][0]:.1f}):",
             f"{'row':<26} {'lanco':>8} {'systemd':>8}  {'ratio':>5}  {'target':>6}  compared with",
             *(f"{name:<26} {medians[f'{key}/lanco'] * 1000:>6.0f}ms {medians[f'{key}/systemd'] * 1000:>6.0f}ms  "
               f"{ratios[key]:>5.2f}  {'<= ' + format(targets[key], 'g'):>6}  {theirs}"
               f"{'  MISSED' if key in report['missed'] else ''}"
               for key, name, theirs in ROWS)]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    (sandbox.root.parent / "lanco-guest-bench.txt").write_text("\n".join(lines) + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
