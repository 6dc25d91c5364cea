"""Long runs and exhausted resources: thousands of cycles leak nothing; a full log file system is reported."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time

import pytest

from tests.conftest import Sandbox
from tests.integration.conftest import make_namespace, wait_until


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
def test_five_thousand_run_stop_cycles_leak_nothing(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = make_namespace(sandbox)
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    import lanco

    namespace = lanco.Namespace(ns)
    rng = random.Random(5000)
    fds_before = open_fds()
    state_sizes = []
    def stop_if_running(task: lanco.Task) -> None:
        try:
            task.stop(timeout=1)
        except lanco.NotRunning:
            pass  # it ended by itself meanwhile

    for cycle in range(5000):
        name = f"cycle{cycle % 7}"
        task = namespace.task(name)
        stop_if_running(task)
        namespace.run(name, ["sh", "-c", "sleep 5 & exec sleep 5"] if cycle % 3 else ["true"])
        pause = rng.choice([0.0, 0.0, 0.0005, 0.002])
        if pause:
            time.sleep(pause)
        if rng.random() < 0.7:
            stop_if_running(task)
        if cycle % 1000 == 999:
            state_sizes.append(sum(len(files) for _, _, files in os.walk(sandbox.state_dir(ns))))
    for name in {f"cycle{i}" for i in range(7)}:
        task = namespace.task(name)
        stop_if_running(task)
        task.wait(timeout=10)
    assert open_fds() <= fds_before + 2
    # A record directory per name, a bounded number of files in each: the state does not grow with cycles.
    assert max(state_sizes) <= 7 * 12, state_sizes
    tasks_dir = sandbox.state_dir(ns) / "tasks"
    assert sorted(n for n in os.listdir(tasks_dir) if not n.startswith(".")) == sorted(f"cycle{i}" for i in range(7))
    # Beside them the namespace's event journal (docs/events.md), held to its bound: 10000 events once compacted,
    # twice that at most before its writer compacts it, and never over 16 MiB.
    assert sorted(n for n in os.listdir(tasks_dir) if n.startswith(".")) == [".events.jsonl", ".events.lock"]
    journal = (tasks_dir / ".events.jsonl").read_bytes()
    assert journal.count(b"\n") <= 2 * 10000 + 1 and len(journal) <= 16 << 20
    ns_dir = namespace.backend.ns_dir(ns)

    def task_cgroups() -> list[str]:
        return [d for d in os.listdir(ns_dir) if not d.startswith(".") and os.path.isdir(os.path.join(ns_dir, d))]

    # A result is written just before the monitor removes the cgroups: give the last monitor its moment.
    assert wait_until(lambda: task_cgroups() == [], 5.0), task_cgroups()


def test_full_log_file_system_is_reported_and_records_stay_intact(sandbox: Sandbox) -> None:
    ns = make_namespace(sandbox)
    log_fs = sandbox.root / "tiny"
    log_fs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(log_fs)], check=True)
    try:
        filler = log_fs / "filler"
        with open(filler, "wb") as f:
            try:
                f.write(b"x" * 128 * 1024)
            except OSError:
                pass
        result = sandbox.lanco(ns, "run", "-l", str(log_fs / "task.log"), "noisy", "sh", "-c",
                               "echo hello; exit 4")
        if result.returncode == 0:
            assert "no space left" in result.stderr.lower(), result.stderr
            assert sandbox.lanco(ns, "wait", "noisy").returncode == 4
            record = json.loads(sandbox.ok(ns, "status", "--json", "noisy").stdout)
            assert (record["state"], record["exit_code"]) == ("exited", 4)
        else:
            assert result.returncode == 1 and "no space" in result.stderr.lower(), result.stderr
            assert sandbox.lanco(ns, "check", "noisy").returncode == 1
        filler.unlink()
        sandbox.ok(ns, "run", "-l", str(log_fs / "task.log"), "noisy", "sh", "-c", "echo fine")
        assert sandbox.lanco(ns, "wait", "noisy").returncode == 0
        assert wait_until(lambda: (log_fs / "task.log").read_text().endswith("fine\n"))
    finally:
        subprocess.run(["umount", "-l", str(log_fs)], check=False)
