"""lanco inside a container-like delegated cgroup: a cgroup namespace (``unshare --cgroup``) over a systemd scope
with ``Delegate=yes``, whose root holds processes. ``init --take-over`` moves them into a leaf and then manages
the subtree; alone there, lanco does it by itself; otherwise init says what is missing and tasks get no limits."""

from __future__ import annotations

import json
import shlex
import sys

from tests.conftest import Sandbox
from tests.guest.conftest import HERE, run

MIB = 1 << 20


def in_cgroup_namespace(sandbox: Sandbox, unit: str, command: list[str],
                        fork: bool = True) -> tuple[int, str, str]:
    """Runs ``command`` in a new cgroup namespace over a delegated scope; returns (status, stdout, stderr)."""
    argv = ["systemd-run", "--scope", "--quiet", "-p", "Delegate=yes", f"--unit={unit}",
            "env", *(f"{k}={v}" for k, v in sandbox.env.items()),
            "unshare", "--cgroup", *(["--fork"] if fork else []), *command]
    result = run(argv, timeout=300)
    return result.returncode, result.stdout, result.stderr


def lanco(*args: str) -> str:
    return shlex.join([sys.executable, "-m", "lanco", *args])


def test_take_over_of_a_namespace_root_that_holds_processes(sandbox: Sandbox) -> None:
    ns = sandbox.ns_name()
    unit = f"lanco-ct-{ns}.scope"
    task_dir = f"/sys/fs/cgroup/system.slice/{unit}{sandbox.base}/{ns}/t"
    script = "\n".join([
        "set -e",
        lanco(ns, "init", "--take-over"),
        'echo "lanco-cgroup $(cut -d: -f3 /proc/self/cgroup)"',
        lanco(ns, "run", "-m", "32M", "t", "sleep", "300"),
        lanco(ns, "check", "t"),
        f'echo "memory-max $(cat {task_dir}/memory.max)"',
        f'echo "task-cgroup $(cut -d: -f3 /proc/$(head -n1 {task_dir}/cgroup.procs)/cgroup)"',
        lanco(ns, "stop", "t"),
        f"! {lanco(ns, 'check', 't')}",
        lanco(ns, "release"),
        "echo done",
    ])
    code, output, errors = in_cgroup_namespace(sandbox, unit, ["sh", "-c", script])
    assert code == 0, output + errors
    lines = dict(line.split(" ", 1) for line in output.splitlines() if " " in line)
    assert lines["lanco-cgroup"] == "/init", output
    assert lines["memory-max"] == str(32 * MIB), output
    assert lines["task-cgroup"] == f"{sandbox.base}/{ns}/t", output
    assert output.rstrip().endswith("done")


def test_without_take_over_init_warns_and_limits_are_refused(sandbox: Sandbox) -> None:
    ns = sandbox.ns_name()
    script = "\n".join([
        lanco(ns, "init"),
        f"{lanco(ns, 'run', '-m', '32M', 'limited', 'sleep', '300')} || echo refused $?",
        lanco(ns, "run", "t", "sleep", "300"),
        lanco(ns, "check", "t"),
        lanco(ns, "stop", "t"),
        lanco(ns, "release"),
        "echo done",
    ])
    code, output, errors = in_cgroup_namespace(sandbox, f"lanco-ct-{ns}.scope", ["sh", "-c", script])
    assert code == 0, output + errors
    assert "holds processes" in errors and "--take-over" in errors, errors
    assert "refused 1" in output and "memory controller" in errors, output + errors
    assert output.rstrip().endswith("done"), output + errors


def test_alone_in_the_namespace_lanco_takes_it_over_by_itself(sandbox: Sandbox) -> None:
    ns = sandbox.ns_name()
    code, output, errors = in_cgroup_namespace(sandbox, f"lanco-ct-{ns}.scope",
                                               [sys.executable, str(HERE / "container_api.py"), ns], fork=False)
    assert code == 0, output + errors
    report = json.loads(output.strip().splitlines()[-1])
    assert report["before"] == "/" and report["after_init"] == "/init", report
    assert report["running"] is True and report["stopped"] == "stopped", report
    assert report["task_cgroup"] == f"{sandbox.base}/{ns}/t", report
    assert report["limits"] == {"memory_max_bytes": 32 * MIB}, report
