"""Waiting for many tasks on the real kernel: ``wait --any``/``--all``, their timeouts, a monitor killed mid-wait, a
``--restart`` task, the asyncio awaitables in one thread with bounded descriptors, and examples/daemon.py killed and
restarted without a task launched twice or an end handled twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import Sandbox
from tests.integration.conftest import make_namespace, slack, wait_until

ROOT = Path(__file__).resolve().parents[2]
DAEMON = ROOT / "examples" / "daemon.py"


def monitor_of(sandbox: Sandbox, ns: str, task: str) -> int:
    path = sandbox.state_dir(ns) / "tasks" / task / "monitor"
    assert wait_until(lambda: path.exists() and path.read_text().strip() != "")
    return int(path.read_text().split()[0])


def test_wait_any_returns_the_first_to_end_with_its_code(sandbox: Sandbox) -> None:
    ns = make_namespace(sandbox)
    sandbox.ok(ns, "run", "slow", "sleep", "30")
    sandbox.ok(ns, "run", "fast", "sh", "-c", "sleep 0.3; exit 3")
    started = time.monotonic()
    result = sandbox.lanco(ns, "wait", "--any", "slow", "fast")
    assert (result.returncode, result.stdout, result.stderr) == (3, "fast exited 3\n", "")
    assert time.monotonic() - started < slack(10)
    assert sandbox.lanco(ns, "check", "slow").returncode == 0
    # Already ended: at once, and every one that has.
    sandbox.ok(ns, "stop", "-t", "1", "slow")
    result = sandbox.lanco(ns, "wait", "--any", "fast", "slow")
    assert (result.returncode, result.stdout) == (3, "fast exited 3\nslow stopped 143\n")


def test_wait_all_waits_for_every_task_and_exits_with_the_first_failure(sandbox: Sandbox) -> None:
    ns = make_namespace(sandbox)
    # Spaced by more than a launch takes (seconds each under the guest's emulation): the order they end in.
    sandbox.ok(ns, "run", "a", "sh", "-c", f"sleep {slack(2.5)}; exit 0")
    sandbox.ok(ns, "run", "b", "sh", "-c", f"sleep {slack(0.2)}; exit 5")
    sandbox.ok(ns, "run", "c", "sh", "-c", f"sleep {slack(1.2)}; kill -9 $$")
    result = sandbox.lanco(ns, "wait", "--all", "a", "b", "c")
    assert result.returncode == 5, result.stderr
    assert result.stdout.splitlines() == ["b exited 5", "c killed 137", "a exited 0"]  # as they ended
    for name in ("a", "b", "c"):
        assert sandbox.lanco(ns, "check", name).returncode == 1
    # Without a task: the namespace's running ones (none now).
    assert sandbox.lanco(ns, "wait", "--all").returncode == 0
    assert sandbox.lanco(ns, "wait", "--any").returncode == 1


def test_timeouts_and_unknown_tasks(sandbox: Sandbox) -> None:
    ns = make_namespace(sandbox)
    sandbox.ok(ns, "run", "slow", "sleep", "30")
    sandbox.ok(ns, "run", "fast", "true")
    result = sandbox.lanco(ns, "wait", "--any", "-t", "0.3", "slow")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.endswith("[WARN/wait] task slow is still running after 0.3\n")
    result = sandbox.lanco(ns, "wait", "--all", "-t", "0.5", "fast", "slow")
    assert (result.returncode, result.stdout) == (1, "fast exited 0\n")
    assert "task slow is still running after 0.5" in result.stderr
    result = sandbox.lanco(ns, "wait", "--any", "slow", "nosuch")
    assert result.returncode == 1 and "task nosuch is not running" in result.stderr
    assert sandbox.lanco(ns, "wait", "slow", "fast").returncode == 2


def test_a_monitor_killed_mid_wait_is_recorded_lost_once(sandbox: Sandbox, tmp_path: Path) -> None:
    ns = make_namespace(sandbox)
    hooked = tmp_path / "hooked"
    sandbox.ok(ns, "run", "-c", f"echo $LANCO_RESULT >> {hooked}", "orphan", "sleep", str(slack(1)))
    sandbox.ok(ns, "run", "other", "sleep", "300")
    waiter = subprocess.Popen(sandbox.command(ns, "wait", "--any", "orphan", "other"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd="/")
    try:
        time.sleep(slack(0.2))
        os.kill(monitor_of(sandbox, ns, "orphan"), signal.SIGKILL)
        out, err = waiter.communicate(timeout=slack(30))
    finally:
        if waiter.poll() is None:
            waiter.kill()
        waiter.communicate()  # reaped: no zombie of this test's is left for the next ones
    assert (waiter.returncode, out) == (255, "orphan lost 255\n"), err
    assert wait_until(lambda: hooked.exists() and hooked.read_text() == "lost\n")
    assert sandbox.lanco(ns, "wait", "orphan").returncode == 255
    time.sleep(0.3)
    assert hooked.read_text() == "lost\n"


def test_a_restarting_task_ends_when_its_monitor_stops_restarting(sandbox: Sandbox) -> None:
    ns = make_namespace(sandbox)
    sandbox.ok(ns, "run", "--restart", "always", "--restart-max", "2", "--restart-delay", "100ms", "again",
               "sh", "-c", "sleep 0.2; exit 4")
    result = sandbox.lanco(ns, "wait", "--any", "again")
    assert (result.returncode, result.stdout) == (4, "again exited 4\n")
    import json

    assert json.loads(sandbox.ok(ns, "status", "--json", "again").stdout)["state"] == "exited"
    runs = (sandbox.state_dir(ns) / "tasks" / "again" / "runs.jsonl").read_text().splitlines()
    assert len(runs) == 3


def run_daemon(sandbox: Sandbox, ns: str, journal: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, **sandbox.env, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, str(DAEMON), ns, str(journal), *args], env=env, cwd="/",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def test_the_example_daemon_killed_and_restarted_launches_nothing_twice(sandbox: Sandbox, tmp_path: Path) -> None:
    ns = make_namespace(sandbox)
    journal = tmp_path / "journal"
    args = ("--jobs", "12", "--parallel", "4", "--seconds", "0.4")
    daemon = run_daemon(sandbox, ns, journal, *args)
    try:
        assert wait_until(lambda: len(lines(journal)) >= 3, timeout=slack(60))
    finally:
        daemon.kill()
        daemon.wait(10)
    assert len(lines(journal)) < 12  # killed mid-way: some ends not handled yet
    again = run_daemon(sandbox, ns, journal, *args)
    _, err = again.communicate(timeout=slack(120))
    assert again.returncode == 0, err
    handled = lines(journal)
    names = [f"job-{i:03d}" for i in range(12)]
    assert sorted(line[0] for line in handled) == names  # every end handled, each once
    assert len({line[1] for line in handled}) == 12
    assert all(line[2:] == ["exited", "0"] for line in handled), handled
    # Its tasks carry its labels, and it kept the cursor of the events it read at its restart.
    assert sandbox.ok(ns, "ls", "-q", "--all", "--label", "owner=example-daemon").stdout.split() == names
    assert sandbox.ok(ns, "ls", "-q", "--all", "--label", "job=job-003").stdout.split() == ["job-003"]
    assert (tmp_path / "journal.cursor").read_text().strip().partition(":")[2].isdigit()
    # Each job's command ran once: a launch the kill cut short never started its command (lanco's promise), and
    # left at most an empty log, which the launch after the restart rotated.
    for name in names:
        said = "".join(log.read_text() for log in sandbox.log_dir(ns).glob(f"task-{name}.log*"))
        assert said == f"{name} started\n", (name, said)


def test_the_example_daemon_awaits_100_tasks_in_one_thread_with_bounded_descriptors(
        sandbox: Sandbox, tmp_path: Path) -> None:
    ns = make_namespace(sandbox)
    journal = tmp_path / "journal"
    daemon = run_daemon(sandbox, ns, journal, "--jobs", "100", "--parallel", "100", "--seconds", str(slack(8)))
    try:
        states = sandbox.state_dir(ns) / "tasks"
        assert wait_until(lambda: states.is_dir() and len([d for d in states.iterdir() if (d / "monitor").exists()])
                          == 100, timeout=slack(90))
        # The last launch, then the daemon's wait_any_async: one pidfd per task once it awaits them all.
        assert wait_until(lambda: len(os.listdir(f"/proc/{daemon.pid}/fd")) >= 100, timeout=slack(10))
        status = Path(f"/proc/{daemon.pid}/status").read_text()
        threads = int(status.split("Threads:")[1].split()[0])
        descriptors = len(os.listdir(f"/proc/{daemon.pid}/fd"))
        assert lines(journal) == []  # still awaiting all of them
        assert threads == 1
        # One pidfd per task awaited, the loop's epoll and self-pipe, stdio: never more than one per task and a few.
        assert 100 <= descriptors <= 100 + 12, descriptors
        _, err = daemon.communicate(timeout=slack(120))
        assert daemon.returncode == 0, err
        assert len(lines(journal)) == 100
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
