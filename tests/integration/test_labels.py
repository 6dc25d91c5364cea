"""Labels and descriptions on the real kernel: kept with a run and across its restarts, the same in every view,
selecting tasks for ls, stop and wait, and refused in one line with nothing made when they break a rule."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.conftest import Sandbox
from tests.integration.conftest import make_namespace, no_process_left, task_pids, wait_until

LINE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d \[WARN/(\w+)\] (.*)$"


def one_usage_line(result: subprocess.CompletedProcess[str], command: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    match = re.match(LINE, lines[0])
    assert match and match[1] == command, lines[0]
    return match[2]


def labels_everywhere(sandbox: Sandbox, ns: str, task: str, user: str | None = None) -> list[tuple[object, object]]:
    """(labels, description) of ``task`` as status --json, ls --json, dump and top --json show them."""
    status = json.loads(sandbox.ok(ns, "status", "--json", task, user=user).stdout)
    listed = {t["name"]: t for t in json.loads(sandbox.ok(ns, "ls", "--json", user=user).stdout)["tasks"]}
    dumped = json.loads(sandbox.ok(ns, "dump", user=user).stdout)["tasks"]
    frame = json.loads(sandbox.ok(ns, "top", "-n", "1", "-d", "10ms", "--json", user=user).stdout)
    framed = {t["name"]: t for t in frame["tasks"]}
    return [(d["labels"], d["description"]) for d in (status, listed[task], dumped[task], framed[task])]


@pytest.mark.parametrize("mode", ["hybrid", "v1", "v2"])
def test_labels_are_kept_and_shown_alike_everywhere(sandbox: Sandbox, mode: str) -> None:
    ns = make_namespace(sandbox, mode)
    sandbox.ok(ns, "run", "--label", "app=shop", "--label", "example.com/tier=front", "--label", "empty=",
               "--description", "the shop's web server", "web", "sleep", "300")
    sandbox.ok(ns, "run", "plain", "sleep", "300")
    try:
        wanted = {"app": "shop", "empty": "", "example.com/tier": "front"}
        assert labels_everywhere(sandbox, ns, "web") == [(wanted, "the shop's web server")] * 4
        assert labels_everywhere(sandbox, ns, "plain") == [({}, None)] * 4
        spec = json.loads((sandbox.state_dir(ns) / "tasks" / "web" / "spec.json").read_text())
        assert spec["labels"] == wanted and spec["description"] == "the shop's web server"
        status = sandbox.ok(ns, "status", "web").stdout
        assert " description: the shop's web server\n" in status
        assert "      labels: app=shop,empty=,example.com/tier=front\n" in status
        tree = sandbox.ok(ns, "ls", "-l").stdout.splitlines()
        assert " ├ web  app=shop,empty=,example.com/tier=front" in tree and " ├ plain" in tree
    finally:
        sandbox.ok(ns, "stop", "--all")


def test_ls_stop_and_wait_select_by_label(sandbox: Sandbox) -> None:
    ns = make_namespace(sandbox)
    for name, tier in (("front1", "front"), ("front2", "front"), ("back", "back")):
        sandbox.ok(ns, "run", "--label", "app=shop", "--label", f"tier={tier}", name, "sleep", "300")
    sandbox.ok(ns, "run", "other", "sleep", "300")
    try:
        assert sandbox.ok(ns, "ls", "-q", "--label", "app=shop").stdout == "back\nfront1\nfront2\n"
        assert sandbox.ok(ns, "ls", "-q", "--label", "app=shop", "--label", "tier=front").stdout == "front1\nfront2\n"
        pids = task_pids(sandbox, ns, "front1") + task_pids(sandbox, ns, "front2")
        sandbox.ok(ns, "stop", "--label", "tier=front")
        assert no_process_left(pids)
        assert sandbox.ok(ns, "ls", "-q").stdout == "back\nother\n"
        states = {t["name"]: t["state"] for t in json.loads(sandbox.ok(ns, "ls", "--all", "--json").stdout)["tasks"]}
        assert states == {"back": "running", "front1": "stopped", "front2": "stopped", "other": "running"}
        # Nothing running has the labels: nothing to stop, and no failure.
        assert sandbox.lanco(ns, "stop", "--label", "tier=front").returncode == 0
        # wait --label: every task with the labels, the finished ones with their result; the greatest code.
        sandbox.ok(ns, "run", "--label", "batch=1", "fails", "sh", "-c", "exit 3")
        sandbox.ok(ns, "run", "--label", "batch=1", "slow", "sh", "-c", "sleep 0.5; exit 7")
        sandbox.ok(ns, "run", "--label", "batch=1", "fine", "true")
        waited = sandbox.lanco(ns, "wait", "--label", "batch=1", timeout=30)
        assert waited.returncode == 7 and waited.stderr == "", waited.stderr
        still = sandbox.lanco(ns, "wait", "-t", "200ms", "--label", "app=shop")
        assert still.returncode == 1 and "task back is still running after 200ms" in still.stderr
        # With --any or --all, --label chooses the tasks they wait for: their lines, their exit codes.
        all_of = sandbox.lanco(ns, "wait", "--all", "--label", "batch=1", timeout=30)
        assert all_of.returncode == 3, all_of.stderr
        assert sorted(all_of.stdout.splitlines()) == ["fails exited 3", "fine exited 0", "slow exited 7"]
        sandbox.ok(ns, "run", "--label", "batch=2", "soon", "sh", "-c", "sleep 0.3; exit 4")
        sandbox.ok(ns, "run", "--label", "batch=2", "late", "sleep", "300")
        any_of = sandbox.lanco(ns, "wait", "--any", "--label", "batch=2", timeout=30)
        assert (any_of.returncode, any_of.stdout) == (4, "soon exited 4\n"), any_of.stderr
        none = sandbox.lanco(ns, "wait", "--any", "--label", "batch=9")
        assert none.returncode == 1 and "no task has those labels" in none.stderr
    finally:
        sandbox.ok(ns, "stop", "--all")


def test_labels_survive_the_restarts_of_a_run(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = make_namespace(sandbox)
    marker = sandbox.root / "flaky-failed-twice"
    # Fails twice (restarted each time by its monitor), then runs on: the third run is the one looked at.
    script = f"n=$(cat {marker}.n 2>/dev/null || echo 0); echo $((n + 1)) > {marker}.n; " \
             f"if [ $n -ge 2 ]; then touch {marker}; exec sleep 300; fi; exit 1"
    sandbox.ok(ns, "run", "--restart", "on-failure", "--restart-delay", "50ms", "--label", "app=flaky",
               "--description", "fails, then restarts", "flaky", "sh", "-c", script)
    try:
        assert wait_until(marker.exists, timeout=20)
        runs = sandbox.state_dir(ns) / "tasks" / "flaky" / "runs.jsonl"
        assert len(runs.read_text().splitlines()) == 2  # two runs ended, each followed by a restart
        assert wait_until(lambda: sandbox.ok(ns, "ls", "-q").stdout == "flaky\n")
        assert labels_everywhere(sandbox, ns, "flaky") == [({"app": "flaky"}, "fails, then restarts")] * 4
        assert sandbox.ok(ns, "ls", "-q", "--label", "app=flaky").stdout == "flaky\n"
        assert api_task_names(sandbox, ns, {"app": "flaky"}, monkeypatch) == ["flaky"]
        assert api_task_names(sandbox, ns, {"app": "other"}, monkeypatch) == []
    finally:
        sandbox.ok(ns, "stop", "--label", "app=flaky")
    record = json.loads(sandbox.ok(ns, "status", "--json", "flaky").stdout)
    assert record["state"] == "stopped" and record["labels"] == {"app": "flaky"}


def api_task_names(sandbox: Sandbox, ns: str, labels: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``Namespace.tasks(labels=...)`` in this process, with the sandbox's environment."""
    from lanco import Namespace

    with monkeypatch.context() as patch:
        for key, value in sandbox.env.items():
            patch.setenv(key, value)
        return [t.name for t in Namespace(ns).tasks(labels=labels)]


@pytest.mark.parametrize(("options", "said"), [
    (["--label", "bad key=1"], "invalid label 'bad key': a key is 1 to 63 characters"),
    (["--label", "a=1", "--label", "a=2"], "invalid label a: given twice"),
    (["--label", "a=" + "v" * 256], "invalid label a: a value is 0 to 255 characters"),
    (["--label", "a=x\ty"], "(this one has \\t)"),
    (["--label", "a=x\udcffy"], "(this one has the byte \\xff, which is not UTF-8)"),  # the raw byte 0xff
    (["--description", "x\udcfe"], "(this one has the byte \\xfe, which is not UTF-8)"),
    (["--description", "x" * 257], "invalid description: at most 256 characters"),
    (["--description", "two\nlines"], "invalid description: UTF-8 text, no control characters"),
    ([f"--label=k{i}=v" for i in range(33)], "too many labels: at most 32"),
])
def test_a_bad_label_is_one_line_and_nothing_is_made(sandbox: Sandbox, options: list[str], said: str) -> None:
    ns = make_namespace(sandbox)
    token = f"{os.getpid()}{len(options)}"
    result = sandbox.lanco(ns, "run", *options, "refused", "sleep", token)
    assert said in one_usage_line(result, "run")
    assert not (sandbox.state_dir(ns) / "tasks" / "refused").exists()
    assert sandbox.ok(ns, "ls", "--all", "-q").stdout == ""
    made = [os.path.join(top, d) for base in sandbox.cgroup_dirs() for top, dirs, _ in os.walk(base) for d in dirs]
    assert not [d for d in made if os.path.basename(d) == "refused"], made


def test_an_unprivileged_owner_labels_and_selects_its_tasks(sandbox: Sandbox, test_user: str) -> None:
    ns = make_namespace(sandbox, "v1", user=test_user, group=test_user)
    sandbox.ok(ns, "run", "--label", "owner=me", "--description", "mine", "mine", "sleep", "300", user=test_user)
    try:
        assert labels_everywhere(sandbox, ns, "mine", user=test_user) == [({"owner": "me"}, "mine")] * 4
        # Root reads the user's records with the user's ids, and sees the same.
        assert labels_everywhere(sandbox, ns, "mine") == [({"owner": "me"}, "mine")] * 4
        assert sandbox.ok(ns, "ls", "-q", "--label", "owner=me", user=test_user).stdout == "mine\n"
    finally:
        sandbox.ok(ns, "stop", "--label", "owner=me", user=test_user)
    assert sandbox.lanco(ns, "check", "mine", user=test_user).returncode == 1
