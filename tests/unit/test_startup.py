"""What the hot commands load at start-up, and the stand-ins that spare them modules of the standard library.

check, stop and run are called by scripts and daemons, often in loops: their imports cost more than their work
(issue 6). What is asserted here is structural, not timed: the modules they must not import, and that the
stand-ins for shutil behave as shutil does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lanco
from lanco.commands import parser_for, terminal_columns
from lanco.launch.spawn import which
from tests.unit.test_cli import existing_namespace

# typing, dataclasses and inspect (with ast, dis, tokenize) cost more than everything check does; argparse and
# shutil (with gettext, locale, bz2, lzma) more than what is left of stop; re and json (with enum) a third of check.
NEVER = ("typing", "dataclasses", "inspect", "asyncio")
"""asyncio (with its dozens of modules) is lanco.waiting_async's alone: the awaitables load it, nothing else does."""
LIGHT = ("contextlib", "functools", "collections")
CODECS = ("encodings.ascii", "encodings.latin_1")
"""A text open() with any encoding but utf-8 (loaded at start-up) imports a codec module for it."""
PARSERS = ("lanco.options.runopts", "lanco.options.limits", "lanco.options.signals")
"""What run takes to parse its options; stop, wait and the views read a record with lanco.options.lifetime and
lanco.options.limittable alone."""
"""contextlib and functools load collections (lanco.contexts stands in for them): as much again as check does.
Parsing a duration (re) or an unknown option (argparse) loads them anyway."""
PROBE = """
import sys
from lanco.cli import main
code = main(sys.argv[1:])
print(code, " ".join(sorted(sys.modules)))
"""

QUIET_PROBE = """
import os, sys
from lanco.cli import main
shown = os.dup(1)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
code = main(sys.argv[1:])
sys.stdout.flush()
os.dup2(shown, 1)
print(code, " ".join(sorted(sys.modules)))
"""
"""The probe for a command that prints: what it prints is not the probe's to read."""


def loaded_by(argv: list[str], code: str = PROBE) -> tuple[int, set[str]]:
    """Run the command line in a fresh interpreter (isolated, like the installed script); its exit code and the
    modules it had loaded by the end."""
    package_parent = os.path.dirname(os.path.dirname(lanco.__file__))
    program = f"import sys; sys.path.insert(0, {package_parent!r})\n{code}"
    result = subprocess.run([sys.executable, "-I", "-c", program, *argv], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    exit_code, _, modules = result.stdout.strip().partition(" ")
    return int(exit_code), set(modules.split())


STEPS = ("lanco.taskstart", "lanco.taskstop", "lanco.waiting", "lanco.waiting_async", "lanco.taskcontrol",
         "lanco.tasklog", "lanco.taskrecovery", "lanco.state.recorddir", "lanco.launch.monitorcontract",
         "lanco.launch.spawn", "lanco.state.logfile")
"""A task's steps beyond its queries (lanco.task loads each only for the methods that take it): check takes none."""


@pytest.mark.parametrize(("argv", "exit_code", "also_never"), [
    (["testns", "check", "t"], 1, ("argparse", "shutil", "signal", "re", "json", "enum", *LIGHT, *STEPS, *CODECS,
                                   *PARSERS, "lanco.remote", "lanco.remote.ssh")),
    (["testns", "stop", "t"], 1, ("argparse", "shutil", "re", "json", "signal", "enum", *LIGHT, *CODECS, *PARSERS,
                                  "lanco.taskstart", "lanco.tasklog", "lanco.launch.spawn", "lanco.state.logfile")),
    (["testns", "stop", "-t", "5s", "t"], 1, ("argparse", "shutil", "json", "re", "enum")),
    (["testns", "wait", "t"], 1, ("argparse", "shutil", *LIGHT)),
    (["testns", "wait", "--any", "t", "u"], 1, ("shutil", "lanco.waiting_async")),
    (["testns", "run", "t", "lanco-no-such-command"], 127, ("shutil", *LIGHT)),
    (["testns", "run", "--bogus", "t", "true"], 2, ("shutil",)),
])
def test_hot_commands_leave_heavy_modules_unloaded(argv: list[str], exit_code: int,
                                                   also_never: tuple[str, ...]) -> None:
    existing_namespace()
    code, modules = loaded_by(argv)
    assert code == exit_code
    assert "lanco.task" in modules or "run" in argv  # the path was walked, not cut short
    assert not modules & {*NEVER, *also_never}, sorted(modules & {*NEVER, *also_never})


@pytest.mark.parametrize(("argv", "exit_code"), [
    (["testns", "ls", "--json"], 0), (["testns", "ls", "-l", "--all"], 0), (["testns", "status", "t"], 1),
    (["testns", "status", "--json", "t"], 1), (["testns", "dump"], 0), (["ls", "--json"], 0),
    (["testns", "top", "-n", "1", "-d", "10ms", "--json"], 0), (["testns", "top", "-n", "2", "-d", "0.01"], 0),
])
def test_views_leave_argparse_json_and_re_unloaded(argv: list[str], exit_code: int) -> None:
    """Views are what monitoring polls: read by hand in their plain forms, written by json's C encoder alone."""
    existing_namespace()
    code, modules = loaded_by(argv, QUIET_PROBE)
    assert code == exit_code
    assert "lanco.state.config" in modules and "lanco.views.render" in modules  # the path was walked, not cut short
    heavy = {*NEVER, *LIGHT, *CODECS, *PARSERS, "argparse", "json", "re", "enum", "shutil", "signal"}
    assert not modules & heavy, sorted(modules & heavy)


def test_the_installed_command_adds_nothing_to_check() -> None:
    """bin/lanco, the script pip installs, imports no more than the command line itself (pip's wrapper for an
    entry point would import re)."""
    existing_namespace()
    script = Path(__file__).resolve().parents[2] / "bin" / "lanco"
    probe = ("import os, sys\n"
             "def leave(code):\n"  # the script ends in os._exit, which would leave before the probe reports
             "    raise SystemExit(code)\n"
             "os._exit = leave\n"
             f"sys.argv = [{str(script)!r}, 'testns', 'check', 't']\n"
             "try:\n"
             f"    with open({str(script)!r}) as f:\n"
             f"        exec(compile(f.read(), {str(script)!r}, 'exec'), {{'__name__': '__main__'}})\n"
             "except SystemExit as exc:\n"
             "    print(exc.code, ' '.join(sorted(sys.modules)))\n")
    code, modules = loaded_by([], probe)
    assert code == 1 and "lanco.task" in modules
    assert not modules & {*NEVER, "re", "json", "enum"}, sorted(modules & {*NEVER, "re", "json", "enum"})


def test_the_command_leaves_without_finalizing_yet_delivers_its_output() -> None:
    """entry() skips the interpreter's teardown (os._exit): what the command printed still arrives whole, a reader
    that stops early (head) is not an error, and output that cannot be written is one line and exit code 1."""
    package_parent = os.path.dirname(os.path.dirname(lanco.__file__))
    program = (f"import sys; sys.path.insert(0, {package_parent!r}); sys.argv[0] = 'lanco'\n"
               "from lanco.cli import entry\nentry()")
    whole = subprocess.run([sys.executable, "-I", "-c", program, "anyns", "run", "-h"], capture_output=True,
                           text=True, check=False, timeout=60)
    assert whole.returncode == 0 and whole.stderr == ""
    assert whole.stdout.startswith("usage: lanco") and whole.stdout.endswith("\n")
    assert "--memory-max" in whole.stdout and len(whole.stdout) < 8192  # all of it in the buffer entry() flushed
    head = subprocess.run(f"{sys.executable} -I -c \"$PROGRAM\" anyns run -h | head -c 5", shell=True,
                          env={**os.environ, "PROGRAM": program}, capture_output=True, text=True, check=False,
                          timeout=60)
    assert head.stdout == "usage" and head.stderr == ""
    with open("/dev/full", "w") as full:
        failed = subprocess.run([sys.executable, "-I", "-c", program, "--version"], stdout=full,
                                stderr=subprocess.PIPE, text=True, check=False, timeout=60)
    assert failed.returncode == 1
    assert len(failed.stderr.splitlines()) == 1 and "No space left on device" in failed.stderr


def test_the_api_loads_without_typing_or_dataclasses() -> None:
    _, modules = loaded_by([], "import sys\nfrom lanco import Namespace, Task, TaskRecord, UsageError\n"
                               "from lanco.options.runopts import RunPlan\nprint(0, ' '.join(sorted(sys.modules)))")
    assert not modules & set(NEVER), sorted(modules & set(NEVER))


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


@pytest.mark.parametrize("argv", [["testns", "ls", "-l", "--all"], ["testns", "status", "t"],
                                  ["testns", "status", "--json", "t"]])
def test_labelled_records_keep_the_views_light(argv: list[str]) -> None:
    """A record with labels and a description is read and shown without re, json or argparse: the views read
    labels by hand (lanco.options.labels matches and checks them without re)."""
    from lanco.state.record import write_spec

    config = existing_namespace()
    state = os.path.join(config.tasks_dir, "t")
    os.makedirs(state)
    write_spec(state, {"run_id": "r", "namespace": "testns", "name": "t", "argv": ["true"], "started": 1.0,
                       "labels": {"app": "shop", "example.com/tier": "front"}, "description": "the shop"})
    with open(os.path.join(state, "result"), "w", encoding="utf-8") as f:
        f.write("run_id=r\nresult=exited\nexit_code=0\nsignal=\n")
    code, modules = loaded_by(argv, QUIET_PROBE)
    assert code == 0 and "lanco.options.labels" in modules  # the labels were read, not skipped
    heavy = {*NEVER, *LIGHT, *CODECS, *PARSERS, "argparse", "json", "re", "enum", "shutil", "signal"}
    assert not modules & heavy, sorted(modules & heavy)
