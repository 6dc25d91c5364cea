"""The local half of ``lanco -H``: quoting for the remote shell (checked against real shells), the host's syntax,
the ssh command line, and the mapping of a remote message back to the exception a local call raises."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanco import errors
from lanco.cli import _take_host
from lanco.remote.api import run_options
from lanco.remote.errormap import remote_error
from lanco.remote.ssh import END_MARK, START_MARK, Target, quote, remote_line, ssh_argv

SHELLS = [s for s in ("/bin/sh", "/bin/bash", "/bin/dash", "/usr/bin/zsh", "/bin/busybox") if shutil.which(s)]

WORDS = st.lists(st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")), max_size=8)


def through_shell(shell: str, line: str) -> subprocess.CompletedProcess[bytes]:
    argv = [shell, "sh", "-c", line] if shell.endswith("busybox") else [shell, "-c", line]
    return subprocess.run(argv, capture_output=True, timeout=30, check=False)


@pytest.mark.parametrize("shell", SHELLS)
@settings(max_examples=30, deadline=None)
@given(words=WORDS)
def test_quoted_words_reach_a_posix_shell_unchanged(shell: str, words: list[str]) -> None:
    result = through_shell(shell, " ".join(["printf '%s\\0'", *map(quote, words)]) if words else "true")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"".join(w.encode() + b"\0" for w in words)


@pytest.mark.parametrize("word", ["", "'", "''", "a'b", "$HOME", "`id`", "\\", "\n", "-n", "!", "*", "~"])
def test_awkward_words(word: str) -> None:
    result = through_shell("/bin/sh", f"printf '%s' {quote(word)}")
    assert result.stdout == word.encode()


def test_plain_words_stay_readable() -> None:
    assert quote("first-task") == "first-task" and quote("64M") == "64M" and quote("a b") == "'a b'"
    assert quote("it's") == "'it'\\''s'" and quote("") == "''"


def test_the_remote_line_marks_the_start_and_the_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANCO_REMOTE_LANCO", "printf '%s|'")
    line = remote_line(["a b", "c"], marked=True)
    result = through_shell("/bin/sh", line.replace("exit \"$s\"", "exit 3"))
    assert result.stdout == b"a b|c|"
    assert result.stderr.decode().split("\n") == [START_MARK, f"{END_MARK}0", ""]  # splitlines() splits at 0x1e
    monkeypatch.setenv("LANCO_REMOTE_LANCO", "sh -c 'exit 255' --")
    result = through_shell("/bin/sh", remote_line(["x"], marked=True))
    assert result.returncode == 255 and result.stderr.decode().split("\n")[-2] == f"{END_MARK}255"
    assert remote_line(["x y"], marked=False) == "sh -c 'exit 255' -- 'x y'"


@pytest.mark.parametrize(("text", "user", "host", "port"), [
    ("web1", None, "web1", None), ("alice@web1", "alice", "web1", None), ("alice@web1:2222", "alice", "web1", "2222"),
    ("10.0.0.5:22", None, "10.0.0.5", "22"), ("[::1]:2200", None, "::1", "2200"), ("bob@[fe80::1]", "bob", "fe80::1",
                                                                                    None),
    ("fe80::1", None, "fe80::1", None), ("a@b@host", "a@b", "host", None),
])
def test_hosts(text: str, user: str | None, host: str, port: str | None) -> None:
    target = Target(text)
    assert (target.user, target.host, target.port) == (user, host, port)


@pytest.mark.parametrize("text", ["", "-oProxyCommand=x", "@host", "-l@host", "host:", "host:0", "host:65536",
                                  "host:2x", "[::1", "[::1]x", "a b", "host\n"])
def test_bad_hosts(text: str) -> None:
    with pytest.raises(errors.UsageError):
        Target(text)


def test_the_ssh_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANCO_SSH", "ssh -F '/tmp/my cfg'")
    monkeypatch.delenv("LANCO_REMOTE_LANCO", raising=False)
    argv = ssh_argv(Target("alice@web1:2222"), ["ns", "check", "t"], tty=False, marked=False)
    assert argv == ["ssh", "-F", "/tmp/my cfg", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-T", "-p", "2222",
                    "-l", "alice", "web1", "--", "lanco ns check t"]
    monkeypatch.setenv("LANCO_SSH", "ssh 'unclosed")
    with pytest.raises(errors.UsageError, match="invalid LANCO_SSH"):
        ssh_argv(Target("web1"), ["ls"], tty=True, marked=False)


def test_labels_and_descriptions_go_along_as_the_command_line_takes_them() -> None:
    assert run_options({"labels": {"app": "shop", "tier": "a b"}, "description": "it's"}) == [
        "--label", "app=shop", "--label", "tier=a b", "--description", "it's"]
    assert run_options({"labels": ["app=shop"]}) == ["--label", "app=shop"]


@pytest.mark.parametrize(("words", "options"), [
    (["ns", "top"], {"top"}), (["-d", "ns", "status", "--json", "t"], {"status", "--json"}),
    (["ls", "--json"], {"ls", "--json"}), (["ns", "dump"], {"dump"}),
    (["-D", "run", "ns", "run", "t", "tool", "--json"], {"run"}),
    (["ns", "run", "-m", "1G", "t", "dump"], {"run", "-m"}),
])
def test_the_terminal_rule_reads_the_command_and_its_options_only(words: list[str], options: set[str]) -> None:
    from lanco.remote.ssh import _command_options

    assert _command_options(words) == options


@pytest.mark.parametrize(("argv", "host", "rest"), [
    (["-H", "web1", "ns", "ls"], "web1", ["ns", "ls"]),
    (["-Hweb1", "ns", "ls"], "web1", ["ns", "ls"]),
    (["--host=a@b:2", "-d", "ns", "ls"], "a@b:2", ["-d", "ns", "ls"]),
    (["-dd", "-D", "run", "--host", "web1", "ns", "ls"], "web1", ["-dd", "-D", "run", "ns", "ls"]),
    (["-D", "-H", "ns", "ls"], None, ["-D", "-H", "ns", "ls"]),  # -D's value, not the option
    (["ns", "run", "t", "cmd", "-H", "x"], None, ["ns", "run", "t", "cmd", "-H", "x"]),  # the task's own argv
])
def test_the_host_option_is_taken_from_the_global_options_only(argv: list[str], host: str | None,
                                                               rest: list[str]) -> None:
    assert _take_host(argv) == (host, rest)


def test_the_host_option_needs_a_value() -> None:
    with pytest.raises(errors.UsageError, match="option -H needs a value"):
        _take_host(["-H"])


STAMP = "2026-11-28T17:15:14"


@pytest.mark.parametrize(("code", "message", "kind"), [
    (1, "[WARN/run] task web is already running", errors.AlreadyRunning),
    (2, "[WARN/events] unknown cursor 'x': a cursor is JOURNAL-ID:SEQ, as events prints it", errors.UnknownCursor),
    (3, "[WARN/events] cursor j:3 is older than the oldest event kept (j:40)", errors.StaleCursor),
    (4, "[WARN/events] cursor j:3 is of another journal", errors.UnlinkedCursor),
    (1, "[WARN/run] task web is already running (it is waiting to restart)", errors.AlreadyRunning),
    (1, "[WARN/stop] task web is not running", errors.NotRunning),
    (1, "[WARN/wait] task web is not known", errors.NotRunning),
    (1, "[WARN/release] task web is running", errors.StillRunning),
    (1, "[WARN/release] namespace ns has running tasks: a, b", errors.StillRunning),
    (1, "[WARN/ls] namespace ns should be created with init command", errors.NamespaceMissing),
    (1, "[WARN/init] namespace ns is already initialised for user alice", errors.NamespaceExists),
    (1, "[WARN/run] namespace ns belongs to user alice", errors.PermissionDenied),
    (1, "[WARN/init] init of namespace ns needs root", errors.PermissionDenied),
    (1, "[WARN/run] cgroups of namespace ns are missing (a reboot?): run lanco restore as root",
     errors.CgroupsMissing),
    (1, "[WARN/run] --memory-high needs memory.high, which the v1 memory controller does not have",
     errors.LimitUnavailable),
    (1, "[WARN/status] the record of task web is damaged: /x/spec.json: not an object", errors.StateError),
    (1, "[WARN/run] cannot create the cgroups of task web: EBUSY", errors.CgroupError),
    (1, "[WARN/run] No space left on device: /var/log/x", errors.SystemFailure),
    (2, "[WARN/run] invalid task name 'a/b': letters", errors.InvalidName),
    (2, "[WARN/lanco] unknown command 'x' (see lanco --help)", errors.UsageError),
    (126, "[WARN/run] cannot execute ./x: Permission denied", errors.CommandNotExecutable),
    (127, "[WARN/run] command not found: x", errors.CommandNotFound),
    (70, "[WARN/ls] internal error: KeyError: 'x' (lanco -dd shows where)", errors.InternalError),
])
def test_remote_messages_become_the_local_exceptions(code: int, message: str, kind: type[errors.LancoError]) -> None:
    failure = remote_error(code, f"{STAMP} {message}")
    assert type(failure) is kind
    assert failure.message == message.partition("] ")[2]
    assert failure.exit_code == code


def test_run_options_become_the_command_lines() -> None:
    assert run_options({"memory_max": "64M", "keep_log": True, "log": None, "extra_env": {"K": "a b"},
                        "restart": "on-failure", "io_read_bps": {"/dev/sda": "1M"}}) == [
        "--memory-max", "64M", "-L", "-e", "K=a b", "--restart", "on-failure", "--io-read-bps", "/dev/sda=1M"]
    with pytest.raises(errors.UsageError, match="env cannot be given"):
        run_options({"env": {"PATH": "/bin"}})


def test_a_follower_sees_its_reader_go_without_writing() -> None:
    import io
    import os

    from lanco.state.logfile import reader_gone

    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as out:
        assert not reader_gone(out)
        os.close(read_end)
        assert reader_gone(out)
    assert not reader_gone(io.BytesIO())
