"""lanco.cli in-process: usage errors are one line with exit code 2, --help and --version exit 0, and a
namespace nobody initialised is refused. No test here reaches a cgroup: each stops at a usage or state error."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

import lanco
from lanco.cli import main
from lanco.state.config import NamespaceConfig

LINE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d \[(?P<level>[A-Z]+)/(?P<token>[^\]]+)\] (?P<text>.*)"


def one_line(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """The token and text of the single message on stderr; nothing on stdout."""
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.endswith("\n") and captured.err.count("\n") == 1, captured.err
    match = re.fullmatch(LINE, captured.err[:-1])
    assert match is not None, captured.err
    assert match["level"] == "WARN"
    return match["token"], match["text"]


def existing_namespace(name: str = "testns", mode: str = "v2") -> NamespaceConfig:
    """A config as init leaves it, owned by the caller, under the test's LANCO_STATE_DIR."""
    state = os.path.join(os.environ["LANCO_STATE_DIR"], name)
    os.makedirs(os.path.join(state, "tasks"))
    config = NamespaceConfig(name=name, owner_uid=os.geteuid(), owner_gid=os.getegid(), group_access=False,
                             mode=mode, tracker="unified", cgroup_base="/lanco-unit-test-never-used",
                             state_dir=state, log_dir=os.path.join(state, "log"), created=time.time())
    config.save()
    return config


@pytest.mark.parametrize(("argv", "token", "text"), [
    ([], "lanco", "expected NAMESPACE COMMAND (see lanco --help)"),
    (["testns"], "lanco", "expected NAMESPACE COMMAND (see lanco --help)"),
    (["run"], "lanco", "expected NAMESPACE COMMAND (see lanco --help)"),
    (["testns", "launch", "t"], "lanco", "unknown command 'launch' (see lanco --help)"),
    (["--bogus", "testns", "check", "t"], "lanco", "unknown option '--bogus'"),
    (["-x", "testns", "ls"], "lanco", "unknown option '-x'"),
    (["-D"], "lanco", "option -D needs a value"),
    (["--cgroup-mode"], "lanco", "option --cgroup-mode needs a value"),
    (["testns", "run"], "run", "run: the following arguments are required: TASK, COMMAND"),
    (["testns", "run", "t"], "run", "run: no command given"),
    (["testns", "run", "--nope", "t", "true"], "run", "run: unrecognized arguments: --nope"),
    (["testns", "run", "-m", "0", "t", "true"], "run", "invalid memory limit '0': must be greater than zero"),
    (["testns", "run", "-m", "lots", "t", "true"], "run",
     "invalid memory limit 'lots': expected a number of bytes with K, M, G or T, or max"),
    (["testns", "stop"], "stop", "stop: expected TASK..., --all or --label KEY=VALUE"),
    (["testns", "stop", "-a", "t"], "stop", "stop: expected TASK..., --all or --label KEY=VALUE"),
    (["testns", "stop", "-t", "soon", "t"], "stop",
     "invalid timeout 'soon': expected a number with ms, s, m, h or d"),
    (["testns", "wait", "-t", "-1", "t"], "wait", "invalid timeout '-1': expected a number with ms, s, m, h or d"),
    (["testns", "wait", "-t", "0", "t"], "wait", "invalid timeout '0': must be greater than zero"),
    (["testns", "status"], "status", "status: the following arguments are required: TASK"),
    (["testns", "check"], "check", "check: expected one TASK"),
    (["testns", "check", "a", "b"], "check", "check: expected one TASK"),
    (["testns", "check", "--json"], "check", "check: unknown option --json"),
    (["testns", "check", "--"], "check", "check: expected one TASK"),
    (["testns", "ls", "--bogus"], "ls", "ls: unrecognized arguments: --bogus"),
    (["testns", "run", "t", "--pids-max", "5", "sleep", "1"], "run",
     "run: option --pids-max after TASK t: lanco's options go before TASK, the task's own after its command"),
    (["testns", "run", "-f", "t", "--timeout=5s", "sleep", "1"], "run",
     "run: option --timeout=5s after TASK t: lanco's options go before TASK, the task's own after its command"),
    (["testns", "run", "t", "-x"], "run",
     "run: command -x looks like an option: lanco's options go before TASK; a command of that name is given as "
     "./-x or after --"),
    (["testns", "run", "-f", "t", "--"], "run", "run: no command given"),
    (["../x", "check", "t"], "check",
     "invalid namespace name '../x': 1-64 characters of [A-Za-z0-9_.-], not starting with '.' or '-'"),
])
def test_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str], token: str, text: str) -> None:
    assert main(argv) == 2
    assert one_line(capsys) == (token, text)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr() == (f"lanco {lanco.__version__}\n", "")


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(capsys: pytest.CaptureFixture[str], flag: str) -> None:
    with pytest.raises(SystemExit) as caught:
        main([flag])
    assert caught.value.code == 0
    out, err = capsys.readouterr()
    assert out.startswith("usage: lanco ") and err == ""
    for command in ("init", "run", "check", "stop", "status", "wait", "ls", "release"):
        assert f"\n  {command} " in out


@pytest.mark.parametrize("argv", [
    ["testns", "check", "t"],
    ["testns", "status", "t"],
    ["testns", "ls"],
    ["testns", "stop", "t"],
    ["testns", "run", "t", "true"],
    ["testns", "release"],
])
def test_unknown_namespace(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 1
    assert one_line(capsys) == (argv[1], "namespace testns should be created with init command")


def test_unknown_namespace_ignores_other_users_state(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # A namespace under a state root other than the two lanco looks in does not exist for it.
    (tmp_path / "elsewhere" / "testns").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["testns", "check", "t"]) == 1
    assert one_line(capsys)[1] == "namespace testns should be created with init command"


@pytest.mark.parametrize("argv", [
    ["testns", "check", "../x"],
    ["testns", "run", "../x", "true"],
    ["testns", "status", "a/b"],
    ["testns", "stop", ".x"],
    ["testns", "check", "tâche"],
])
def test_invalid_task_name_in_an_existing_namespace(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    existing_namespace()
    assert main(argv) == 2
    token, text = one_line(capsys)
    assert token == argv[1]
    name = argv[-2] if argv[1] == "run" else argv[-1]
    assert text.startswith(f"invalid task name {name!r}: ")


def test_bad_cgroup_mode_in_an_existing_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    existing_namespace()
    assert main(["--cgroup-mode", "v3", "testns", "check", "t"]) == 2
    assert one_line(capsys) == ("lanco", "invalid cgroup mode 'v3': expected one of v2, hybrid, v1")


def test_cgroup_mode_must_match_the_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    existing_namespace(mode="v2")
    assert main(["--cgroup-mode=hybrid", "testns", "check", "t"]) == 2
    assert one_line(capsys) == ("check", "namespace testns was initialised in cgroup mode v2, not hybrid")


@pytest.mark.parametrize("given", [["--cgroup-base", "/elsewhere"], ["--cgroup-base=/elsewhere/"], []])
def test_cgroup_base_must_match_the_namespace(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                              given: list[str]) -> None:
    existing_namespace()
    if not given:
        monkeypatch.setenv("LANCO_CGROUP_BASE", "/elsewhere")
    for command in (["check", "t"], ["ls"], ["status", "t"], ["run", "t", "true"], ["stop", "t"]):
        assert main([*given, "testns", *command]) == 2
        assert one_line(capsys) == (command[0], "namespace testns was initialised with cgroup base "
                                                "/lanco-unit-test-never-used, not /elsewhere")


def test_the_recorded_cgroup_base_given_again_is_accepted(capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    existing_namespace()
    monkeypatch.setenv("LANCO_CGROUP_BASE", "/lanco-unit-test-never-used/")
    from lanco.namespace import Namespace

    assert Namespace("testns").config.cgroup_base == "/lanco-unit-test-never-used"
    assert Namespace("testns", cgroup_base="/lanco-unit-test-never-used").name == "testns"


def test_cgroup_mode_from_the_environment(capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    existing_namespace()
    monkeypatch.setenv("LANCO_CGROUP_MODE", "v4")
    assert main(["testns", "check", "t"]) == 2
    assert "invalid cgroup mode 'v4'" in one_line(capsys)[1]


def test_bad_cgroup_mode_is_a_usage_error_even_without_the_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cgroup-mode", "v3", "testns", "check", "t"]) == 2
    assert "'v3'" in one_line(capsys)[1]


def test_invalid_task_name_is_a_usage_error_even_without_the_namespace(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["testns", "run", "../x", "true"]) == 2
    assert "'../x'" in one_line(capsys)[1]


@pytest.mark.parametrize("argv", [["--bad\noption", "testns", "ls"], ["testns", "bad\ncommand"]])
def test_usage_errors_stay_on_one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 2
    one_line(capsys)


def test_ls_without_namespace_lists_namespaces(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["ls"]) == 0
    assert capsys.readouterr() == ("", "")
    existing_namespace("beta")
    existing_namespace("alpha")
    assert main(["ls"]) == 0
    assert capsys.readouterr() == ("alpha\nbeta\n", "")


def test_a_fault_of_lanco_s_own_is_one_line_and_exit_70(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever escapes every check (here a TypeError planted in check): one line, not a traceback."""
    from lanco import task

    def broken(self: object) -> bool:
        raise TypeError("'int' object is not iterable")

    existing_namespace()
    monkeypatch.setattr(task.Task, "is_running", broken)
    assert main(["testns", "check", "t"]) == 70
    assert one_line(capsys) == ("check", "internal error: TypeError: 'int' object is not iterable "
                                         "(lanco -dd shows where)")


def test_a_fault_of_lanco_s_own_shows_its_traceback_at_dd(capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from lanco import task

    def broken(self: object) -> bool:
        raise TypeError("planted")

    existing_namespace()
    monkeypatch.setattr(task.Task, "is_running", broken)
    assert main(["-dd", "testns", "check", "t"]) == 70
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n") and "in broken" in err
    assert err.splitlines()[-1].endswith("[WARN/check] internal error: TypeError: planted (lanco -dd shows where)")


@pytest.mark.parametrize(("argv", "abbreviated"), [
    (["run", "--fore", "t"], "--fore"),
    (["run", "--memory", "64M", "t", "true"], "--memory"),
    (["run", "--cpu", "25", "t", "true"], "--cpu"),
    (["set", "--memory", "64M", "t"], "--memory"),
    (["stop", "--time", "5", "t"], "--time"),
    (["stop", "--al"], "--al"),
    (["wait", "--time", "5", "t"], "--time"),
    (["kill", "--sig", "9", "t"], "--sig"),
    (["status", "--js", "t"], "--js"),
    (["ls", "--lo"], "--lo"),
    (["ls", "--qu"], "--qu"),
    (["dump", "--j"], "--j"),
    (["top", "--iter", "1"], "--iter"),
    (["logs", "--lin", "3", "t"], "--lin"),
    (["release", "--dry", "t"], "--dry"),
    (["init", "--take", "extra"], "--take"),
    (["init", "--us"], "--us"),
])
def test_no_option_is_read_by_an_abbreviation(capsys: pytest.CaptureFixture[str], argv: list[str],
                                              abbreviated: str) -> None:
    """An option is read only by its whole name: a task's own --cpu is not lanco's --cpu-quota, and an option
    added later cannot change what an old command line means. (Each argv here does nothing, and ends at once,
    even if read with abbreviations: no run, init or follow.)"""
    existing_namespace()
    assert main(["testns", *argv]) == 2
    token, text = one_line(capsys)
    assert token == argv[0]
    assert text.startswith(f"{argv[0]}: unrecognized arguments: {abbreviated}"), text


def test_ls_of_namespaces_reads_no_abbreviation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "--js"]) == 2
    assert one_line(capsys) == ("ls", "ls: unrecognized arguments: --js")
