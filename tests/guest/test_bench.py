"""The guest benchmark of the systemd path: ``python -m bench --only systemd`` as root, for the lingering user
(bench/beside_systemd.py has the five rows: lanco against systemd's own tools for one command, in one run). The
guest is emulated, so absolute times mean little: the ratios are the result, printed as the benchmark's table with
their targets. Timings decide nothing in the test suite: ``LANCO_BENCH_CHECK=1`` makes a missed target fail it
(``python -m bench --check``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Sandbox

ROOT = Path(__file__).resolve().parents[2]


def test_lanco_beside_systemd_run(sandbox: Sandbox, alice: str, capsys: pytest.CaptureFixture[str]) -> None:
    check = ["--check"] if os.environ.get("LANCO_BENCH_CHECK") == "1" else []
    env = {**os.environ, "LANCO_BENCH_USER": alice,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "bench", "--only", "systemd", *check], capture_output=True,
                            text=True, timeout=1800, cwd=ROOT, env=env, check=False)
    with capsys.disabled():
        print("\n" + result.stdout)
    (sandbox.root.parent / "lanco-guest-bench.txt").write_text(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ratio" in result.stdout and "n/a" not in result.stdout, result.stdout
