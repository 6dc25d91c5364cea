"""Bad input: one line in the original's form, a non-zero exit, and nothing created or changed."""

from __future__ import annotations

import os

import pytest

from tests.conftest import Sandbox
from tests.integration.conftest import make_namespace, unified_controllers
from tests.integration.test_lifecycle import one_warning


def snapshot(sandbox: Sandbox) -> list[str]:
    """Every cgroup directory and state file of the sandbox."""
    found: list[str] = []
    for top in [*sandbox.cgroup_dirs(), str(sandbox.root)]:
        for dirpath, _dirs, files in os.walk(top):
            found.append(dirpath)
            if not dirpath.startswith("/sys"):
                found.extend(os.path.join(dirpath, f) for f in files)
    return sorted(found)


@pytest.fixture
def hybrid_ns(sandbox: Sandbox) -> str:
    return make_namespace(sandbox)


@pytest.mark.parametrize("name", ["../x", "a/b", ".x", "-x", "", "x" * 65, "tâche", "a b", "x\n"])
def test_invalid_task_names(sandbox: Sandbox, hybrid_ns: str, name: str) -> None:
    before = snapshot(sandbox)
    for args in (["run", name, "true"], ["check", name], ["stop", name], ["status", name], ["wait", name]):
        result = sandbox.lanco(hybrid_ns, *args[:1], "--", *args[1:]) if name.startswith("-") \
            else sandbox.lanco(hybrid_ns, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "invalid task name" in one_warning(result.stderr, args[0])
    assert snapshot(sandbox) == before


def test_64_character_name_is_fine(sandbox: Sandbox, hybrid_ns: str) -> None:
    sandbox.ok(hybrid_ns, "run", "x" * 64, "true")
    assert sandbox.lanco(hybrid_ns, "wait", "x" * 64).returncode == 0


def test_unknown_namespace(sandbox: Sandbox) -> None:
    before = snapshot(sandbox)
    result = sandbox.lanco("nosuchns", "run", "t", "true")
    assert result.returncode == 1
    assert one_warning(result.stderr, "run") == "namespace nosuchns should be created with init command"
    assert snapshot(sandbox) == before


@pytest.mark.parametrize(("command", "code", "text"), [
    ("no-such-command-xyz", 127, "command no-such-command-xyz not found"),
    ("./no/such/path", 127, "command ./no/such/path not found"),
    ("/etc/passwd", 126, "command /etc/passwd is not executable"),
])
def test_command_not_found_leaves_nothing(sandbox: Sandbox, hybrid_ns: str, command: str, code: int,
                                          text: str) -> None:
    before = snapshot(sandbox)
    result = sandbox.lanco(hybrid_ns, "run", "t", command)
    assert result.returncode == code
    assert one_warning(result.stderr, "run") == text
    assert snapshot(sandbox) == before


def test_stop_and_wait_of_unknown_names(sandbox: Sandbox, hybrid_ns: str) -> None:
    for command in ("stop", "wait"):
        result = sandbox.lanco(hybrid_ns, command, "ghost")
        assert result.returncode == 1
        assert one_warning(result.stderr, command) == "task ghost is not running"


@pytest.mark.parametrize("args", [["run"], ["run", "t"], ["stop"], ["check"], ["frobnicate"],
                                  ["run", "-m", "lots", "t", "true"], ["run", "-m", "0", "t", "true"],
                                  ["run", "-m", "-5M", "t", "true"], ["stop", "-t", "soon", "t"]])
def test_usage_errors(sandbox: Sandbox, hybrid_ns: str, args: list[str]) -> None:
    before = snapshot(sandbox)
    result = sandbox.lanco(hybrid_ns, *args)
    assert result.returncode == 2, result.stderr
    # An unknown command is not a token of its own: the message names lanco.
    one_warning(result.stderr, "lanco" if args[0] == "frobnicate" else args[0])
    assert snapshot(sandbox) == before


def test_memory_limit_is_refused_where_no_memory_controller(sandbox: Sandbox) -> None:
    if "memory" in unified_controllers():
        pytest.skip("the unified tree has the memory controller here (tests/guest check that -m is enforced)")
    ns = make_namespace(sandbox, "v2")
    before = snapshot(sandbox)
    result = sandbox.lanco(ns, "run", "-m", "64M", "t", "true")
    assert result.returncode == 1
    assert "memory controller" in one_warning(result.stderr, "run")
    assert snapshot(sandbox) == before


@pytest.mark.parametrize("args", [[], ["--all", "t"]])
def test_stop_needs_tasks_all_or_labels(sandbox: Sandbox, hybrid_ns: str, args: list[str]) -> None:
    result = sandbox.lanco(hybrid_ns, "stop", *args)
    assert result.returncode == 2
    assert one_warning(result.stderr, "stop") == "stop: expected TASK..., --all or --label KEY=VALUE"


TASK_OPTIONS = ["--cpu", "1", "--memory", "1", "-f", "--pids-max", "5", "-m64M", "--timeout=1s", "--", "-e"]
"""Options of the task's own: abbreviations of lanco's (--cpu, --memory), lanco's own (-f, --pids-max), --."""


@pytest.mark.parametrize(("options", "controller"), [
    ([], None), (["--cpu-quota", "25"], "cpu"), (["-m", "64M"], "memory"), (["-L", "--timeout", "30s"], None),
    (["--"], None), (["-e", "A=B", "--"], None)], ids=["none", "cpu", "memory", "lifetime", "dashes", "env-dashes"])
def test_the_task_s_own_options_are_never_lanco_s(sandbox: Sandbox, mode: str, options: list[str],
                                                  controller: str | None) -> None:
    """The report: ``run --cpu-quota 25 cpu stress-ng --cpu 1`` failed with "ambiguous option: --cpu could
    match ..."; ``-m 64M t echo --memory 1`` too. Every word from the command on is the task's."""
    if mode == "v2" and controller and controller not in unified_controllers():
        pytest.skip(f"no {controller} controller in this host's unified hierarchy")
    ns = make_namespace(sandbox, mode)
    result = sandbox.ok(ns, "run", "-f", *options, "t", "echo", *TASK_OPTIONS)  # -f: the output on lanco's
    assert result.stdout == " ".join(TASK_OPTIONS) + "\n"


@pytest.mark.parametrize("args", [["t", "--pids-max", "5", "sleep", "1"], ["-f", "t", "--timeout=5s", "true"],
                                  ["t", "-m", "64M", "true"]])
def test_an_option_after_task_says_options_go_before_it(sandbox: Sandbox, hybrid_ns: str, args: list[str]) -> None:
    before = snapshot(sandbox)
    result = sandbox.lanco(hybrid_ns, "run", *args)
    assert result.returncode == 2
    option = args[args.index("t") + 1]
    assert one_warning(result.stderr, "run") == \
        f"run: option {option} after TASK t: lanco's options go before TASK, the task's own after its command"
    assert snapshot(sandbox) == before
