"""Fuzzing the command line: any argv gives a clear one-line error or a valid action, never a traceback.

The namespace named in the fuzzed argv exists (a saved configuration in the test's state root) but its
cgroups do not, and the caller is not root: nothing the fuzzer finds can create or start anything here.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lanco import cli
from lanco.state.config import NamespaceConfig, system_log_dir, system_state_dir

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d \[WARN/[\w.-]+\] [^\n]+$")
WORDS = ["init", "run", "check", "stop", "status", "wait", "ls", "release", "dump", "top", "logs", "freeze",
         "thaw", "kill", "set", "-f", "-L", "-l", "-c", "-m", "-t", "-n", "-s", "-u", "-g", "-d", "-D", "--json",
         "--all", "-l", "--cgroup-mode", "--cgroup-base", "v1", "v2", "hybrid", "512M", "0", "-1", "max", "2s",
         "SIGTERM", "TERM", "9", "K=V", "K", "=V", "../x", "a/b", ".x", "task", "fuzzns", "true", "--", "-",
         "--memory-max", "--timeout", "--restart", "always", "--env", "--cwd", "/nonexistent", "--pids-max",
         "--cpu-quota", "20", "--help-me", "\x00", "é", " ", ""]


@pytest.fixture
def fuzz_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    state = system_state_dir("fuzzns")
    os.makedirs(os.path.join(state, "tasks"))
    NamespaceConfig(name="fuzzns", owner_uid=4242, owner_gid=4242, group_access=False, mode="hybrid",
                    tracker="named", cgroup_base="/lanco-fuzz-nonexistent", state_dir=state,
                    log_dir=system_log_dir("fuzzns"), created=0.0).save()
    # Not root, not the owner: every command stops at the permission check or before it.
    monkeypatch.setattr(os, "geteuid", lambda: 4243)
    monkeypatch.setattr(os, "getegid", lambda: 4243)
    monkeypatch.setattr(os, "getgroups", lambda: [4243])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=12)), max_size=8))
def test_any_argv_is_an_action_or_one_clear_line(fuzz_namespace: None, argv: list[str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # --help and --version exit through argparse/SystemExit with 0
        assert exc.code in (0, None), argv
        capsys.readouterr()
        return
    captured = capsys.readouterr()
    assert isinstance(code, int)
    if code != 0:
        lines = captured.err.splitlines()
        assert len(lines) == 1 and LINE.match(lines[0]), (argv, captured.err)
        assert code in (1, 2, 126, 127), (argv, code)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rest=st.lists(st.sampled_from(WORDS), min_size=1, max_size=6))
def test_commands_of_the_namespace_are_refused_cleanly(fuzz_namespace: None, rest: list[str],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = cli.main(["fuzzns", *rest])
    except SystemExit as exc:
        assert exc.code in (0, None), rest
        capsys.readouterr()
        return
    err = capsys.readouterr().err
    if code != 0:
        lines = err.splitlines()
        assert len(lines) == 1 and LINE.match(lines[0]), (rest, err)


TIMEOUT_WORDS = ["-t", "--timeout", "--time", "-t5", "--timeout=5", "5", "2s", "t1", "task", "", " ", "-", "--",
                 "-5", "-x", "-h", "-x y", "a=b", "é"]


@settings(max_examples=400, deadline=None)
@given(args=st.lists(st.one_of(st.sampled_from(TIMEOUT_WORDS), st.text(max_size=6)), max_size=4))
def test_stop_and_wait_read_by_hand_only_what_argparse_reads_the_same(args: list[str]) -> None:
    from lanco.commands.lifecycle import plain_timeout_and_task, stop_parser, wait_parser
    from lanco.errors import UsageError

    plain = plain_timeout_and_task(args)
    if plain is None:
        return
    try:
        waits = wait_parser().parse_args(args)
        stops = stop_parser().parse_args(args)
    except (UsageError, SystemExit) as exc:
        raise AssertionError(f"{args}: read by hand as {plain}, refused by argparse: {exc}") from exc
    assert (plain[0], [plain[1]], False, False) == (waits.timeout, waits.tasks, waits.any, waits.all), args
    assert (plain[0], [plain[1]], False) == (stops.timeout, stops.tasks, stops.all), args


RUN_WORDS = ["t1", "job", "sh", "-c", "--", "-", "-f", "-m", "64M", "--timeout", "1s", "echo", "a b", "", "é", "-x",
             "--cpu", "--memory", "--pids-max", "-fm", "-m64M"]


@settings(max_examples=400, deadline=None)
@given(args=st.lists(st.one_of(st.sampled_from(RUN_WORDS), st.text(max_size=6)), max_size=5))
def test_run_reads_by_hand_only_what_argparse_reads_the_same(args: list[str]) -> None:
    from lanco.commands.lifecycle import parse_run, plain_run
    from lanco.errors import UsageError

    plain = plain_run(args)
    if plain is None:
        return
    try:
        opts, task, command = parse_run(args)
    except (UsageError, SystemExit) as exc:
        raise AssertionError(f"{args}: read by hand as {plain}, refused by argparse: {exc}") from exc
    assert plain == (task, command), args
    given = {k: v for k, v in vars(opts).items() if k not in ("task", "command")}
    assert not any(given.values()), (args, given)  # no option set: the hand-read run has none either


@settings(max_examples=400, deadline=None)
@given(options=st.lists(st.sampled_from([["-f"], ["-L"], ["-m", "64M"], ["-m64M"], ["-fm", "64M"], ["--timeout", "5s"],
                                         ["--env=A=B"], ["-e", "A=B"], ["--nice", "-5"], ["--"]]), max_size=4),
       command=st.lists(st.one_of(st.sampled_from(RUN_WORDS), st.text(max_size=6)), min_size=1, max_size=5))
def test_nothing_after_task_is_read_as_lanco_s(options: list[list[str]], command: list[str]) -> None:
    """Whatever lanco's options before TASK, the words after it are the task's command exactly (or, when its
    first word looks like an option, refused), never read as options of lanco's."""
    from lanco.commands.lifecycle import parse_run
    from lanco.errors import UsageError

    before = [word for option in options for word in option]
    if "--" in before:
        before = before[:before.index("--") + 1]  # after --, the next word is TASK
    try:
        _, task, parsed = parse_run([*before, "job", *command])
    except UsageError as exc:
        first = command[0]
        assert (first.startswith("-") and first not in ("-", "--")) or command == ["--"], (before, command, exc)
        return
    assert task == "job"
    assert parsed == (command[1:] if command[0] == "--" else command), (before, command)


VIEW_WORDS = ["-l", "--long", "--all", "--json", "-q", "--quiet", "-lq", "--js", "-h", "--", "-", "t1", "", "é", "-x",
              "-d", "--delay", "-n", "--iterations", "-s", "--sort", "1", "2s", "cpu", "name", "-1", "--delay=1"]


@settings(max_examples=400, deadline=None)
@given(args=st.lists(st.one_of(st.sampled_from(VIEW_WORDS), st.text(max_size=6)), max_size=5))
def test_views_read_by_hand_only_what_argparse_reads_the_same(args: list[str]) -> None:
    from lanco.commands import NotPlain, plain_flags
    from lanco.commands.view import (
        JSON_FLAG,
        LS_FLAGS,
        TOP_VALUED,
        ls_parser,
        namespaces_parser,
        status_parser,
        top_parser,
    )
    from lanco.errors import UsageError

    for flags, parser, positionals, valued in ((LS_FLAGS, ls_parser, 0, None), (JSON_FLAG, namespaces_parser, 0, None),
                                               (JSON_FLAG, status_parser, 1, None),
                                               (JSON_FLAG, top_parser, 0, TOP_VALUED)):
        try:
            given, words = plain_flags(args, flags, positionals, valued)
        except NotPlain:
            continue
        if parser is top_parser and given["sort"] not in ("cpu", "memory", "name", "pids"):
            continue  # cmd_top hands an unknown sort key to argparse for its usage error
        try:
            parsed = vars(parser().parse_args(args))
        except (UsageError, SystemExit) as exc:
            raise AssertionError(f"{args}: read by hand as {given} {words}, refused by argparse: {exc}") from exc
        if parser is ls_parser:
            # ls --label is read by argparse alone (a repeatable option): a plain form never carries one.
            assert parsed.pop("labels") is None, args
        assert parsed == ({**given, "task": words[0]} if words else given), args
