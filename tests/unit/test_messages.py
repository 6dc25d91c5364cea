"""lanco.messages: one line per message on stderr, in the original lanĉo's form, with debug filtering."""

from __future__ import annotations

import re

import pytest

from lanco import messages
from lanco.cli import main

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err.splitlines()


def emit_all() -> None:
    messages.warn("run", "w-run")
    messages.info("run", "i-run")
    messages.debug("run", "d-run")
    messages.debug("stop", "d-stop")


def test_warn_format(capsys: pytest.CaptureFixture[str]) -> None:
    messages.warn("run", "task first-task is already running")
    err = capsys.readouterr().err
    assert re.fullmatch(rf"{STAMP} \[WARN/run\] task first-task is already running\n", err)


def test_default_shows_warnings_only(capsys: pytest.CaptureFixture[str]) -> None:
    messages.configure(0, [])
    emit_all()
    assert [line.split(" ", 1)[1] for line in lines(capsys)] == ["[WARN/run] w-run"]


def test_one_d_adds_info(capsys: pytest.CaptureFixture[str]) -> None:
    messages.configure(1, [])
    emit_all()
    assert [line.split(" ", 1)[1] for line in lines(capsys)] == ["[WARN/run] w-run", "[INFO/run] i-run"]


def test_two_d_add_every_debug(capsys: pytest.CaptureFixture[str]) -> None:
    messages.configure(2, [])
    emit_all()
    got = lines(capsys)
    assert [line.split(" ", 1)[1] for line in got] == ["[WARN/run] w-run", "[INFO/run] i-run",
                                                        "[DEBUG/run] d-run", "[DEBUG/stop] d-stop"]
    assert all(re.match(rf"{STAMP} \[", line) for line in got)


def test_tokens_filter_debug_only(capsys: pytest.CaptureFixture[str]) -> None:
    messages.configure(2, ["stop"])
    emit_all()
    assert [line.split(" ", 1)[1] for line in lines(capsys)] == ["[WARN/run] w-run", "[INFO/run] i-run",
                                                                  "[DEBUG/stop] d-stop"]


@pytest.mark.parametrize(("argv", "shown"), [
    (["-d", "-d"], ["d-run", "d-stop"]),
    (["-dd"], ["d-run", "d-stop"]),
    (["-d", "-d", "-D", "stop"], ["d-stop"]),
    (["-dd", "-D", "run", "-D", "stop"], ["d-run", "d-stop"]),
    (["-d"], []),
])
def test_cli_debug_options(capsys: pytest.CaptureFixture[str], argv: list[str], shown: list[str]) -> None:
    assert main([*argv, "testns", "no-such-command"]) == 2  # configures messages before failing
    capsys.readouterr()
    emit_all()
    debug = [line.rsplit(" ", 1)[1] for line in lines(capsys) if "[DEBUG/" in line]
    assert debug == shown
