"""The resource options and commands on the command line, in-process: each bad value is one line and exit code 2,
refused before the namespace is even opened (none exists here)."""

from __future__ import annotations

import re

import pytest

from lanco.cli import USAGE, main

LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d \[WARN/(?P<token>[^\]]+)\] (?P<text>.*)")


@pytest.mark.parametrize(("argv", "text"), [
    (["run", "--memory-high", "0", "t", "true"], "invalid memory high limit '0': must be greater than zero"),
    (["run", "--memory-swap-max", "lots", "t", "true"], "invalid swap limit 'lots'"),
    (["run", "--cpu-quota", "0", "t", "true"], "invalid CPU quota '0': must be from 1 to 100000"),
    (["run", "--cpu-weight", "-3", "t", "true"], "invalid CPU weight '-3': must be from 1 to 10000"),
    (["run", "--cpuset", "x", "t", "true"], "invalid cpuset 'x': expected a list of CPUs such as 0-3,6"),
    (["run", "--pids-max", "0", "t", "true"], "invalid pids limit '0': must be from 1 to 4194304"),
    (["run", "--io-weight", "0", "t", "true"], "invalid IO weight '0': must be from 1 to 10000"),
    (["run", "--io-read-bps", "8:0", "t", "true"], "invalid IO read rate '8:0': expected DEVICE=RATE"),
    (["run", "--timeout", "5parsecs", "t", "true"], "invalid timeout '5parsecs'"),
    (["run", "--stop-signal", "SIGNOPE", "t", "true"], "invalid stop signal 'SIGNOPE'"),
    (["run", "--stop-timeout", "0", "t", "true"], "invalid stop timeout '0': must be greater than zero"),
    (["run", "--restart-max", "3", "t", "true"], "--restart-max needs --restart on-failure or always"),
    (["run", "--restart", "always", "--restart-delay", "x", "t", "true"], "invalid restart delay 'x'"),
    (["run", "-e", "NOVALUE", "t", "true"], "invalid environment assignment 'NOVALUE': expected KEY=VALUE"),
    (["run", "--env-file", "/no/such/file", "t", "true"], "cannot read environment file /no/such/file"),
    (["run", "--cwd", "/no/such/dir", "t", "true"], "working directory /no/such/dir does not exist"),
    (["run", "--umask", "8", "t", "true"], "invalid umask '8'"),
    (["run", "--nice", "-30", "t", "true"], "invalid niceness '-30': must be from -20 to 19"),
    (["run", "--user", "no-such-user-here", "t", "true"], "unknown user 'no-such-user-here'"),
    (["kill", "-s", "NOPE", "t"], "invalid signal 'NOPE'"),
    (["kill", "-s", "0", "t"], "invalid signal '0'"),
    (["set", "t"], "set: no limit given"),
    (["set", "--pids-max", "0", "t"], "invalid pids limit '0'"),
    (["freeze"], "freeze: the following arguments are required: TASK"),
    (["thaw", "a", "b"], "thaw: unrecognized arguments: b"),
])
def test_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str], text: str) -> None:
    assert main(["nosuchns", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    match = LINE.fullmatch(lines[0])
    assert match is not None and match["token"] == argv[0]
    assert match["text"].startswith(text), match["text"]


def test_valid_values_reach_the_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    # Everything parses: what stops the run is the missing namespace (exit 1), not a value.
    argv = ["nosuchns", "run", "-m", "64M", "--memory-swap-max", "0", "--cpu-quota", "20%", "--cpu-weight", "50",
            "--pids-max", "max", "--io-weight", "100", "--timeout", "500ms", "--stop-signal", "INT",
            "--stop-timeout", "2m", "--restart", "on-failure", "--restart-max", "3", "--restart-delay", "0",
            "-e", "A=1", "--cwd", "/", "--umask", "027", "--nice", "5", "t", "true"]
    assert main(argv) == 1
    assert "namespace nosuchns should be created with init command" in capsys.readouterr().err


def test_usage_lists_the_new_commands() -> None:
    for word in ("freeze TASK", "kill [-s SIG] TASK", "set [LIMITS] TASK", "--cpu-quota PERCENT", "--restart"):
        assert word in USAGE
