"""The stand-ins that spare the hot commands modules of the standard library behave as those modules do."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import pytest

from lanco.cli import parser_for, terminal_columns
from lanco.spawn import which

# -- stand-ins for shutil ---------------------------------------------------------------------------------------

def make_executable(path: Path, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)
    return path


def test_which_finds_what_shutil_finds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_executable(tmp_path / "a" / "tool", 0o644)  # not executable: skipped
    (tmp_path / "b" / "tool").mkdir(parents=True)  # a directory: skipped
    make_executable(tmp_path / "c" / "tool")
    make_executable(tmp_path / "c" / "other")
    make_executable(tmp_path / "here" / "local")
    monkeypatch.chdir(tmp_path / "here")
    directories = [str(tmp_path / d) for d in ("a", "b", "c")]
    paths = [os.pathsep.join(directories), os.pathsep.join([directories[2], directories[2]]), "", os.pathsep,
             os.pathsep.join(["", *directories]), str(tmp_path / "missing"), "."]
    commands = ["tool", "other", "local", "absent", "./local", str(tmp_path / "c" / "tool"),
                str(tmp_path / "a" / "tool")]
    for path in paths:
        for command in commands:
            assert which(command, path=path) == shutil.which(command, path=path), (command, path)
    monkeypatch.setenv("PATH", directories[2])
    assert which("tool") == shutil.which("tool") == str(tmp_path / "c" / "tool")
    monkeypatch.delenv("PATH")
    assert which("sh") == shutil.which("sh")


@pytest.mark.parametrize("columns", [None, "100", "45", "0", "-3", "wide", ""])
def test_help_is_as_wide_as_with_argparse_own_formatter(monkeypatch: pytest.MonkeyPatch,
                                                        columns: str | None) -> None:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert terminal_columns() == shutil.get_terminal_size().columns
    ours = parser_for("stop")
    plain = argparse.ArgumentParser(prog="lanco NAMESPACE stop")
    for parser in (ours, plain):
        parser.add_argument("-t", "--timeout", help="grace between the stop signal and the kill (default: the "
                                                    "task's --stop-timeout, 10s) " * 3)
        parser.add_argument("task")
    assert ours.format_help() == plain.format_help()
