"""The man page, the shell completions and docs/json.md against the code: every command, option, exit code,
environment variable and JSON key the code has must be in them, and the page must render cleanly."""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lanco.cli import COMMANDS
from lanco.commands.events import event_json
from lanco.eventlog.stream import Event
from lanco.state.record import TaskRecord
from lanco.views.render import (
    LiveDetail,
    NamespaceInfo,
    dump_json,
    dump_task,
    namespaces_json,
    records_json,
    status_json,
)
from lanco.views.top import Sample, TaskSample, build_frame, frame_data

ROOT = Path(__file__).resolve().parents[2]
MAN = ROOT / "man" / "lanco.8"
BASH = ROOT / "completion" / "lanco.bash"
ZSH = ROOT / "completion" / "_lanco"
JSON_DOC = ROOT / "docs" / "json.md"
GLOBAL_OPTIONS = ["-H", "--host", "-d", "-D", "--cgroup-mode", "--cgroup-base", "--version", "--help"]
EXIT_CODES = ["0", "1", "2", "126", "127", "130", "255"]


class Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


def command_options(command: str) -> list[str]:
    """The option strings of ``command``'s parser, read by stopping its handler at parse_args."""
    module, function = COMMANDS[command]
    handler = getattr(importlib.import_module(module), function)

    def capture(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        raise Captured(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", capture)
        try:
            # --help: stop and wait read a plain TASK by hand, and build their parser only for anything else.
            handler("testns", ["--help"], {"mode": None, "base": None})
        except Captured as caught:
            return sorted(o for action in caught.parser._actions for o in action.option_strings
                          if o not in ("-h", "--help"))
        except Exception:
            pass  # check parses by hand: it has no option
    return []


ALL_OPTIONS = {command: command_options(command) for command in COMMANDS}


def man_text() -> str:
    """The page's source with roff's escapes undone: ``\\-`` is ``-``, fonts are dropped."""
    text = MAN.read_text(encoding="utf-8")
    return re.sub(r"\\f[BIRP]", "", text).replace("\\-", "-").replace("\\&", "")


def mentions(text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def test_the_parsers_were_read() -> None:
    assert "--json" in ALL_OPTIONS["status"] and "--memory-max" in ALL_OPTIONS["run"]
    assert "--follow" in ALL_OPTIONS["logs"] and "--iterations" in ALL_OPTIONS["top"]
    assert "--timeout" in ALL_OPTIONS["stop"] and "--timeout" in ALL_OPTIONS["wait"]


# -- man page ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_man_page_documents_every_command_and_its_options(command: str) -> None:
    text = man_text()
    assert re.search(rf'^\.SS "?{command}\b', text, re.MULTILINE), f"no section for {command}"
    missing = [o for o in ALL_OPTIONS[command] if not mentions(text, o)]
    assert not missing, f"{command}: options missing from the man page: {missing}"


def test_man_page_documents_globals_exit_codes_files_and_environment() -> None:
    text = man_text()
    for option in GLOBAL_OPTIONS:
        assert mentions(text, option), option
    status = text.split(".SH EXIT STATUS", 1)[1].split(".SH", 1)[0]
    for code in EXIT_CODES:
        assert re.search(rf"^\.B {code}\b", status, re.MULTILINE), code
    sources = [*(ROOT / "src").rglob("*.py"), *(ROOT / "src").rglob("*.sh")]
    used = set(re.findall(r"LANCO_[A-Z_]+", "".join(p.read_text() for p in sources)))
    used = {name for name in used if not name.startswith("LANCO_MON_")}
    assert {"LANCO_CGROUP_MODE", "LANCO_CGROUP_BASE", "LANCO_STATE_DIR", "LANCO_LOG_DIR", "LANCO_SHELL"} <= used
    for name in sorted(used):
        assert name in text, f"{name} is read by lanco but not in the man page"
    for path in ("/var/lib/lanco/NAMESPACE/config.json", "/var/log/lanco-NAMESPACE/task-TASK.log",
                 "$XDG_STATE_HOME/lanco/NAMESPACE/"):
        assert path in text, path


def test_man_page_renders_without_warnings() -> None:
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed (scripts/test installs groff-base)")
    result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(MAN)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_man_reads_the_page() -> None:
    if shutil.which("man") is None:
        pytest.skip("man is not installed (scripts/test installs man-db)")
    result = subprocess.run(["man", "-l", str(MAN)], capture_output=True, text=True, check=False,
                            env={"MANWIDTH": "100", "MANPAGER": "cat", "PAGER": "cat", "PATH": "/usr/bin:/bin",
                                 "LANG": "C.UTF-8"})
    assert result.returncode == 0, result.stderr
    page = result.stdout
    assert page.startswith("LANCO(8)")
    for heading in ("NAME", "SYNOPSIS", "COMMANDS", "EXIT STATUS", "ENVIRONMENT", "FILES"):
        assert f"\n{heading}\n" in page, heading
    assert " ├ first-task\n" in page and " │  → 28456 openssl speed aes\n" in page


def test_the_package_installs_the_page_and_the_completions() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data_files = project["tool"]["setuptools"]["data-files"]
    assert data_files["share/man/man8"] == ["man/lanco.8"]
    assert data_files["share/bash-completion/completions"] == ["completion/lanco.bash"]
    assert data_files["share/zsh/site-functions"] == ["completion/_lanco"]
    for files in data_files.values():
        for name in files:
            assert (ROOT / name).is_file(), name


# -- completions ------------------------------------------------------------------------------------------------

FAKE_LANCO = r"""
lanco() {  # stands in for lanco: records its arguments, prints canned listings
    printf '%s\n' "$*" >> "$CALLS"
    case " $* " in
        *" ls -q --all ") printf 'done\nweb\nworker\n' ;;
        *" ls -q ") printf 'web\nworker\n' ;;
        *" ls ") printf 'alpha\nbeta\n' ;;
    esac
}
"""


def complete(tmp_path: Path, *words: str) -> tuple[list[str], list[str]]:
    """Run the bash completion function on ``lanco WORDS...`` (the last word is the one being completed)."""
    calls = tmp_path / "calls"
    calls.write_text("")
    script = FAKE_LANCO + f"""
source {BASH}
COMP_WORDS=({' '.join(_quote(w) for w in ("lanco", *words))})
COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
_lanco
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True,
                            env={"CALLS": str(calls), "PATH": "/usr/bin:/bin"}, check=False)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return [w for w in result.stdout.split("\n") if w], calls.read_text().splitlines()


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


@pytest.mark.parametrize(("words", "expected", "listing"), [
    ([""], ["ls", "restore", "alpha", "beta"], ["ls"]),
    (["b"], ["beta"], ["ls"]),
    (["--cg"], ["--cgroup-mode", "--cgroup-base"], []),
    (["--cgroup-mode", "h"], ["hybrid"], []),
    (["-dd", "-D", "run", "al"], ["alpha"], ["ls"]),
    (["--cgroup-base", "/x", "al"], ["alpha"], ["--cgroup-base /x ls"]),
    (["alpha", "st"], ["stop", "status"], []),
    (["alpha", "stop", ""], ["web", "worker"], ["alpha ls -q"]),
    (["alpha", "stop", "-t", "5", "w"], ["web", "worker"], ["alpha ls -q"]),
    (["alpha", "stop", "web", ""], ["web", "worker"], ["alpha ls -q"]),
    (["alpha", "freeze", "web", ""], [], []),
    (["alpha", "status", ""], ["done", "web", "worker"], ["alpha ls -q --all"]),
    (["alpha", "logs", "-n", "3", "d"], ["done"], ["alpha ls -q --all"]),
    (["--cgroup-mode=v1", "alpha", "freeze", ""], ["web", "worker"], ["--cgroup-mode=v1 alpha ls -q"]),
    (["alpha", "top", "-s", "m"], ["memory"], []),
    (["alpha", "top", "--"], ["--delay", "--iterations", "--sort", "--json"], []),
    (["alpha", "run", "--restart", "o"], ["on-failure"], []),
    (["alpha", "run", "--memory-max", "64M", "job", "basenam"], ["basename"], []),
    (["alpha", "kill", "-s", "HU"], ["HUP"], []),
    (["alpha", "ls", "--a"], ["--all"], []),
])
def test_bash_completion(tmp_path: Path, words: list[str], expected: list[str], listing: list[str]) -> None:
    found, calls = complete(tmp_path, *words)
    assert sorted(set(found)) == sorted(expected)
    assert calls == listing


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bash_completion_knows_every_command_and_option(tmp_path: Path, command: str) -> None:
    found, _ = complete(tmp_path, "alpha", command[:1])
    assert command in found
    options, _ = complete(tmp_path, "alpha", command, "-")
    assert sorted(set(options)) == ALL_OPTIONS[command], command


def test_zsh_completion_knows_every_command_and_option() -> None:
    text = ZSH.read_text()
    for command in COMMANDS:
        assert f"    '{command}:" in text, command
    for command, options in ALL_OPTIONS.items():
        for option in options:
            assert mentions(text, option), f"{command} {option}"
    for option in GLOBAL_OPTIONS:
        assert mentions(text, option), option


def test_zsh_completion_parses() -> None:
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed (scripts/test installs it)")
    result = subprocess.run(["zsh", "-n", str(ZSH)], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stderr == "", result.stderr


# -- docs/json.md -----------------------------------------------------------------------------------------------


def keys(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield key
            if key == "tasks" and isinstance(value, dict):  # dump keys its tasks by their names: data
                for task in value.values():
                    yield from keys(task)
            else:
                yield from keys(value)
    elif isinstance(data, list):
        for item in data:
            yield from keys(item)


def every_document() -> list[Any]:
    import json

    record = TaskRecord("n", "t", "running", run_id="r", argv=["a"], pids=[1], main_pid=1, started=1.0,
                        cpu_usec=1, memory_bytes=2, memory_peak_bytes=3, oom_kills=0, limits={"memory_max": 5})
    live = LiveDetail(limits_in_force={"memory_max_bytes": 1, "memory_high_bytes": 1, "memory_swap_max_bytes": 1,
                                       "pids_max": 1, "cpu_quota_usec": 1, "cpu_period_usec": 1},
                      pressure={"cpu_some": 1.0}, memory_max_bytes=5)
    info = NamespaceInfo("n", "u", 1, "g", 1, False, "v2", "/s", "/l", 1.0)
    sample = Sample("n", 1.0, 1.0, 1, 1, (TaskSample("t", "running", 1, "a", 1, 1, 1, {"cpu_some": 1.0}),))
    return [
        json.loads(status_json(record, live, cmdlines={1: "a"})),
        json.loads(records_json("n", [record], cmdlines={1: "a"})),
        json.loads(dump_json("n", {"t": dump_task(record, live, cmdlines={1: "a"})}, namespace_cpu_usec=1,
                             nbcpus=1, monotonic_ms=1, epoch_s=1.0)),
        json.loads(namespaces_json([info])),
        frame_data(build_frame(sample, sample)),
        *(json.loads(event_json(Event("n", "0" * 16, {"seq": 1, "kind": "ended", "record": record})))
          for record in (_ended_record(record), {"state": "running", "argv": ["a"], "main_pid": 1, "labels": {},
                                                 "description": None, "started_epoch_s": 1.0, "log": None})),
    ]


def _ended_record(record: TaskRecord) -> dict[str, Any]:
    from lanco.views.render import record_data

    return {**record_data(record), "restarts": 0, "labels": {}, "description": None}


def test_every_json_key_is_documented() -> None:
    documented = set(re.findall(r"`([a-z][a-z0-9_]*)`", JSON_DOC.read_text()))
    missing = sorted({k for document in every_document() for k in keys(document)} - documented)
    assert not missing, f"keys missing from docs/json.md: {missing}"


ZSH_DRIVER = r"""
# Types each line of $LINES_FILE followed by <TAB> into an interactive zsh and prints what the completion shows.
zmodload zsh/zpty
zpty -b z 'zsh -f -i'
zpty -w z 'PS1="> "; fpath=($FUNCTIONS $fpath); autoload -Uz compinit; compinit -u -D; rehash'
zpty -w z 'lanco() { print -r -- "$*" >> $CALLS; case "$*" in (ls) print -l alpha beta;;
  (*"ls -q --all") print -l done web worker;; (*"ls -q") print -l web worker;; esac }'
zpty -w z 'zstyle ":completion:*" menu no; LISTMAX=1000'
sleep 1; while zpty -r -t z line; do :; done
for typed in "${(@f)$(<$LINES_FILE)}"; do
  zpty -w -n z "$typed"$'\t'
  sleep $PAUSE
  out=""
  while zpty -r -t z line; do out+="$line"; done
  print -r -- "== $typed"
  print -r -- "${${out//$'\e'\[[0-9;?]#[a-zA-Z]/}//$'\r'/}"
  zpty -w z $'\C-u'
  sleep 0.2; while zpty -r -t z line; do :; done
done
zpty -d z
"""


def test_zsh_completion_in_a_real_shell(tmp_path: Path) -> None:
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed (scripts/test installs it)")
    cases = {
        "lanco ": ["alpha", "beta", "the namespaces you may use"],
        "lanco alpha ": ["freeze", "status", "top", "live CPU, memory, pids and pressure per task"],
        "lanco alpha status ": ["done", "web", "worker"],
        "lanco --cgroup-base /x alpha logs -n 3 ": ["done", "web", "worker"],
        "lanco alpha top -s ": ["cpu", "memory", "name", "pids"],
        "lanco alpha run --restart ": ["always", "no", "on-failure"],
        "lanco alpha run -m 1G job slee": ["lanco alpha run -m 1G job sleep"],
    }
    (tmp_path / "lines").write_text("".join(f"{typed}\n" for typed in cases))
    (tmp_path / "calls").write_text("")
    (tmp_path / "driver.zsh").write_text(ZSH_DRIVER)
    result = subprocess.run([zsh, "-f", str(tmp_path / "driver.zsh")], capture_output=True, text=True, timeout=120,
                            check=False, env={"PATH": "/usr/bin:/bin", "TERM": "xterm", "FUNCTIONS": str(ZSH.parent),
                                              "CALLS": str(tmp_path / "calls"), "LINES_FILE": str(tmp_path / "lines"),
                                              "PAUSE": "1"})
    shown = dict(re.findall(r"^== (.*)\n((?:(?!== ).*\n?)*)", result.stdout, re.MULTILINE))
    for typed, expected in cases.items():
        for word in expected:
            assert word in shown.get(typed, ""), (typed, word, result.stdout)
    calls = (tmp_path / "calls").read_text().splitlines()
    assert "ls" in calls and "alpha ls -q --all" in calls and "--cgroup-base /x alpha ls -q --all" in calls
