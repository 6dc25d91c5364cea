"""The favordynmods phase on the real kernel, in --quick mode: it runs, reports its figures, and leaves no mount,
no hierarchy, no cgroup and no mount point behind. On a kernel where favordynmods is a one-way switch (Linux 6.18
and later) it measures the host as it is, unless LANCO_BENCH_FAVORDYNMODS=latch is set in the environment."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def leftovers() -> set[str]:
    """Everything the phase could leave: its mounts, its named hierarchies, its cgroups and its mount points."""
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        found = {f"mount {line.split()[4]}" for line in f if "name=lanco_fdm_" in line}
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        found |= {f"hierarchy {line.strip()}" for line in f if "name=lanco_fdm_" in line}
    found |= {f"cgroup {p}" for p in glob.glob("/sys/fs/cgroup/lanco-fdm-*")}
    found |= {f"cgroup {p}" for p in glob.glob("/sys/fs/cgroup/*/lanco-fdm-*")}
    found |= {f"folder {p}" for p in glob.glob("/tmp/lanco-fdm-*")}
    return found


def remove(items: set[str]) -> None:
    """Clean up after a phase that was killed before its own cleanup ran (only what that run added)."""
    for item in sorted(items, key=lambda i: not i.startswith("mount ")):
        kind, _, path = item.partition(" ")
        if kind == "mount":
            subprocess.run(["umount", path], check=False)
        elif kind in ("cgroup", "folder"):
            for directory in sorted((d for d, _, _ in os.walk(path)), key=lambda d: -d.count("/")):
                with contextlib.suppress(OSError):
                    os.rmdir(directory)


@pytest.mark.cgroup
def test_the_quick_phase_runs_and_leaves_nothing(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the benchmark needs root")
    before = leftovers()
    out = tmp_path / "fdm.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT),
                                                                       os.environ.get("PYTHONPATH")]))}
    try:
        result = subprocess.run([sys.executable, "-m", "bench", "--only", "favordynmods", "--quick", "--json",
                                 str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
                                check=False)
    finally:
        added = leftovers() - before
        remove(added)
    assert not added, f"left behind: {sorted(added)}"
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(out.read_text())
    assert not document["errors"]
    figures = {f["key"]: f for f in document["figures"]}
    assert figures["fdm.off.cold_write"]["n"] >= 4 and figures["fdm.off.warm_write"]["n"] >= 40
    assert figures["fdm.off.spawn"]["median"] > 0 and figures["fdm.off.cold_api"]["n"] >= 2
    measured_on = "fdm.on.cold_write" in figures
    assert measured_on or figures["fdm.on"]["available"] is False
    if measured_on:
        assert figures["fdm.on.cold_write"]["n"] >= 4 and "fdm.ratio.cold_write" in figures
