"""A side-by-side benchmark in the guest, in the same run: lanco against systemd's own tools for one command, as
the lingering user. The guest is emulated, so absolute times mean little: the ratios are the result, printed as a
table; nothing here asserts a time."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Sandbox
from tests.guest.conftest import HERE, as_user, run, user_env

ROUNDS = 3
PAIRS = (("run", "lanco run", "systemd-run --user"),
         ("check", "lanco check", "systemctl --user is-active"),
         ("stop", "lanco stop", "systemctl --user stop"))


def test_lanco_beside_systemd_run(sandbox: Sandbox, alice: str, capsys: pytest.CaptureFixture[str]) -> None:
    ns = sandbox.ns_name("bench")
    sandbox.ok(ns, "init", "-u", alice)
    import sys

    result = run(as_user(alice, [sys.executable, str(HERE / "bench_user.py"), ns, str(ROUNDS)],
                         {**sandbox.env, **user_env(alice)}), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    medians = json.loads(result.stdout.strip().splitlines()[-1])
    lines = [f"lanco beside systemd, as {alice}, median of {ROUNDS} rounds (qemu TCG guest):",
             f"{'operation':<12} {'lanco':>10} {'systemd':>10}  {'ratio':>6}  compared with",
             *(f"{name:<12} {medians[f'{key}/lanco'] * 1000:>8.0f}ms {medians[f'{key}/systemd'] * 1000:>8.0f}ms  "
               f"{medians[f'{key}/lanco'] / medians[f'{key}/systemd']:>6.2f}  {theirs}"
               for key, name, theirs in PAIRS)]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    (sandbox.root.parent / "lanco-guest-bench.txt").write_text("\n".join(lines) + "\n")
