"""ls, status, dump, top and logs against live tasks on the real kernel, in every cgroup mode; the curses screen
of top driven through tmux; the bash completion against a real namespace; the debug messages of -d/-D."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanco.namespace import Namespace
from tests.conftest import Sandbox
from tests.integration.conftest import make_namespace, task_pids, unified_controllers, wait_until
from tests.integration.test_lifecycle import one_warning

# Five processes that stay put: the shell, two sleeps, a subshell and its sleep (a grandchild).
FORKER = "sleep 600 & sleep 600 & (sleep 601;:)& wait"  # with "sh -c ", 49 characters: ls shows it whole
FORKER_COMMANDS = sorted([f"sh -c {FORKER}", "sleep 600", "sleep 600", f"sh -c {FORKER}", "sleep 601"])
BUSY = "while :; do :; done"


def cgroup_members(sandbox: Sandbox, ns: str, task: str) -> set[int]:
    """Every process whose /proc/PID/cgroup puts it in the task's cgroup: the kernel's own answer."""
    suffix = f"{sandbox.base}/{ns}/{task}"
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cgroup") as f:
                if any(line.rstrip("\n").endswith(suffix) for line in f):
                    found.add(int(entry))
        except OSError:
            continue
    return found


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().rstrip(b"\0").replace(b"\0", b" ").decode()


@pytest.fixture
def forking(sandbox: Sandbox, ns: str) -> Iterator[str]:
    sandbox.ok(ns, "run", "forker", "sh", "-c", FORKER)
    assert wait_until(lambda: len(cgroup_members(sandbox, ns, "forker")) == 5)
    yield ns


def tree_processes(tree: str, task: str) -> list[tuple[int, str]]:
    lines = tree.splitlines()
    start = lines.index(f" ├ {task}")
    found = []
    for line in lines[start + 1:]:
        match = re.fullmatch(r" │  → (\d+) (.*)", line)
        if match is None:
            break
        found.append((int(match[1]), match[2]))
    return found


def test_ls_shows_every_process_of_a_forking_task(sandbox: Sandbox, forking: str) -> None:
    ns = forking
    sandbox.ok(ns, "run", "single", "sleep", "300")
    tree = sandbox.ok(ns, "ls").stdout
    assert tree.splitlines()[0] == ns
    assert [line for line in tree.splitlines() if line.startswith(" ├ ")] == [" ├ forker", " ├ single"]
    processes = tree_processes(tree, "forker")
    assert {pid for pid, _ in processes} == cgroup_members(sandbox, ns, "forker")
    assert sorted(command for _, command in processes) == FORKER_COMMANDS
    (single,) = tree_processes(tree, "single")
    assert single[1] == "sleep 300" and {single[0]} == cgroup_members(sandbox, ns, "single")
    data = json.loads(sandbox.ok(ns, "ls", "--json").stdout)
    assert [t["name"] for t in data["tasks"]] == ["forker", "single"]
    forker = data["tasks"][0]
    assert {p["pid"] for p in forker["processes"]} == cgroup_members(sandbox, ns, "forker")
    assert sorted(p["cmdline"] for p in forker["processes"]) == FORKER_COMMANDS
    assert forker["process_count"] == 5 and forker["state"] == "running"
    assert sandbox.ok(ns, "ls", "-q").stdout == "forker\nsingle\n"


def test_ls_all_and_long(sandbox: Sandbox, ns: str) -> None:
    sandbox.ok(ns, "run", "fails", "sh", "-c", "exit 3")
    sandbox.lanco(ns, "wait", "fails")
    # Two commands, so that the shell stays (a lone last command would be exec'd in its place).
    script = "sleep 300; true # " + " ".join(["long"] * 12)
    sandbox.ok(ns, "run", "long", "sh", "-c", script)
    running = sandbox.ok(ns, "ls").stdout
    assert " ├ fails" not in running
    line = next(x for x in running.splitlines() if " sh -c " in x)
    command = line.split(" ", 5)[5]
    assert command == f"sh -c {script}"[:49] + "…" and len(command) == 50
    assert f" sh -c {script}\n" in sandbox.ok(ns, "ls", "-l").stdout
    everything = sandbox.ok(ns, "ls", "--all").stdout
    assert " ├ fails (exited, code 3)\n" in everything and " ├ long\n" in everything
    assert sandbox.ok(ns, "ls", "-q", "--all").stdout == "fails\nlong\n"


def test_status_of_a_live_and_a_finished_task(sandbox: Sandbox, mode: str, forking: str) -> None:
    ns = forking
    text = sandbox.ok(ns, "status", "forker").stdout
    assert re.search(r"^\s+state: running$", text, re.MULTILINE)
    assert re.search(r"^\s+processes: 5$", text, re.MULTILINE)
    assert re.search(r"^\s+started: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$", text, re.MULTILINE)
    for pid in cgroup_members(sandbox, ns, "forker"):
        assert re.search(rf"^\s+{pid} {re.escape(cmdline(pid))}$", text, re.MULTILINE)
    data = json.loads(sandbox.ok(ns, "status", "--json", "forker").stdout)
    assert data["state"] == "running" and data["process_count"] == 5
    assert data["cpu_usage_usec"] is not None and data["cpu_usage_usec"] >= 0
    assert data["log"] == str(sandbox.log_dir(ns) / "task-forker.log")
    if mode == "v1":
        assert data["pressure"] is None  # tracked in v1: the kernel has no PSI there
    else:
        assert set(data["pressure"]) >= {"cpu_some_avg10_percent", "memory_some_avg10_percent",
                                         "io_some_avg10_percent"}
    if mode == "v2" and "memory" not in unified_controllers():
        assert data["memory_current_bytes"] is None  # this machine's unified tree has no memory controller
    else:
        assert data["memory_current_bytes"] > 0 and data["memory_peak_bytes"] >= data["memory_current_bytes"]

    sandbox.ok(ns, "run", "-c", "true", "fails", "sh", "-c", "exit 3")
    sandbox.lanco(ns, "wait", "fails")
    text = sandbox.ok(ns, "status", "fails").stdout
    for row in (r"state: exited, code 3", r"exit code: 3", r"signal: -", r"processes: 0",
                r"ended: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", r"exit command: true", r"run time: \d"):
        assert re.search(rf"^\s*{row}", text, re.MULTILINE), row
    done = json.loads(sandbox.ok(ns, "status", "--json", "fails").stdout)
    assert (done["state"], done["exit_code"], done["processes"], done["pressure"]) == ("exited", 3, [], None)
    assert done["ended_epoch_s"] >= done["started_epoch_s"]


@pytest.mark.parametrize("mode", ["hybrid", "v1"])
def test_status_shows_the_limits_in_force(sandbox: Sandbox, mode: str) -> None:
    ns = make_namespace(sandbox, mode)
    sandbox.ok(ns, "run", "-m", "64M", "capped", "sleep", "300")
    text = sandbox.ok(ns, "status", "capped").stdout
    assert re.search(r"^\s+limits: memory max 64\.0M$", text, re.MULTILINE), text
    assert re.search(r"^\s+memory: [\d.]+[KM] of 64\.0M$", text, re.MULTILINE), text
    data = json.loads(sandbox.ok(ns, "status", "--json", "capped").stdout)
    assert data["limits_in_force"]["memory_max_bytes"] == 64 << 20
    assert data["limits"]["memory_max_bytes"] == 64 << 20
    dump = json.loads(sandbox.ok(ns, "dump").stdout)
    assert dump["tasks"]["capped"]["memory_max_bytes"] == 64 << 20


def test_dump(sandbox: Sandbox, mode: str, forking: str) -> None:
    ns = forking
    before_ms = time.monotonic() * 1000
    data = json.loads(sandbox.ok(ns, "dump").stdout)
    after_ms = time.monotonic() * 1000
    assert data["schema_version"] == 1 and data["namespace"] == ns and data["count"] == 1
    assert before_ms - 1 <= data["timestamp"] <= after_ms + 1  # CLOCK_MONOTONIC, milliseconds
    assert data["nbcpus"] == os.sysconf("SC_NPROCESSORS_ONLN")
    assert abs(data["timestamp_epoch_s"] - time.time()) < 60
    forker = data["tasks"]["forker"]
    assert forker["count"] == 5
    assert {p["pid"] for p in forker["processes"]} == cgroup_members(sandbox, ns, "forker")
    assert isinstance(data["cpu"], int) and data["cpu"] == data["cpu_usage_usec"] * 1000
    assert forker["cpu"] == forker["cpu_usage_usec"] * 1000
    if mode == "v2" and "memory" not in unified_controllers():
        assert "memory" not in forker  # no figure: left out, as the original did
    else:
        assert forker["memory"] == forker["memory_current_bytes"] > 0


def test_top_text_and_json_frames(sandbox: Sandbox, mode: str, forking: str) -> None:
    ns = forking
    sandbox.ok(ns, "run", "busy", "sh", "-c", BUSY)
    frames = sandbox.ok(ns, "top", "-n", "2", "-d", "0.5").stdout.split("\n\n")
    assert len(frames) == 2
    for frame in frames:
        lines = frame.splitlines()
        assert lines[0].startswith(f"{ns}  2 tasks  6 processes  cpu ")
        assert lines[1].split()[:4] == ["TASK", "STATE", "PIDS", "CPU%"]
        rows = {line.split()[0]: line.split() for line in lines[2:]}
        assert set(rows) == {"busy", "forker"}
        assert rows["forker"][1:3] == ["running", "5"] and rows["busy"][1:3] == ["running", "1"]
        assert float(rows["busy"][3]) > 10  # a busy loop, measured over the interval
        assert lines[2].startswith("busy ")  # sorted by CPU
    lines = sandbox.ok(ns, "top", "--json", "-n", "2", "-d", "0.3", "-s", "name").stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        frame = json.loads(line)
        assert [t["name"] for t in frame["tasks"]] == ["busy", "forker"]
        busy, forker = frame["tasks"]
        assert busy["cpu_percent"] > 10 and forker["process_count"] == 5
        assert busy["command"] == f"sh -c {BUSY}"
        assert (forker["pressure"] is None) == (mode == "v1")
    assert len(json.loads(lines[1])["tasks"][0]["cpu_history_percent"]) == 2


def test_frozen_tasks_show_as_frozen(sandbox: Sandbox, mode: str, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.ok(ns, "run", "cold", "sleep", "300")
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    backend = Namespace(ns).backend
    if not backend.freezable(ns, "cold"):
        pytest.skip(f"no freezer in mode {mode}")
    backend.set_frozen(ns, "cold", True)
    try:
        assert wait_until(lambda: backend.frozen(ns, "cold"))
        assert " ├ cold (frozen)\n" in sandbox.ok(ns, "ls").stdout
        assert json.loads(sandbox.ok(ns, "status", "--json", "cold").stdout)["state"] == "frozen"
        frame = json.loads(sandbox.ok(ns, "top", "--json", "-n", "1", "-d", "0.1").stdout)
        assert frame["tasks"][0]["state"] == "frozen"
        assert json.loads(sandbox.ok(ns, "dump").stdout)["tasks"]["cold"]["state"] == "frozen"
    finally:
        backend.set_frozen(ns, "cold", False)


# -- top's curses screen, in tmux -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tmux() -> str:
    path = shutil.which("tmux")
    if path is None:
        pytest.skip("tmux is not installed (scripts/test installs it)")
    return path


class Pane:
    def __init__(self, tmux: str, command: list[str], width: int, height: int) -> None:
        self.tmux = [tmux, "-L", f"lanco-test-{uuid.uuid4().hex[:8]}", "-f", "/dev/null"]
        wrapped = f"{shlex.join(command)}; echo \"lanco exited with $?\"; sleep 60"
        self.run("new-session", "-d", "-s", "top", "-x", str(width), "-y", str(height), wrapped)

    def run(self, *args: str) -> str:
        # CI has no terminal and maybe no TERM: the pane gets tmux's own terminal type either way.
        env = {**os.environ, "TERM": os.environ.get("TERM") or "xterm"}
        return subprocess.run([*self.tmux, *args], capture_output=True, text=True, check=True, timeout=10,
                              env=env).stdout

    def screen(self) -> list[str]:
        return self.run("capture-pane", "-p", "-t", "top").splitlines()

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "top", *keys)

    def resize(self, width: int, height: int) -> None:
        self.run("resize-window", "-t", "top", "-x", str(width), "-y", str(height))

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True, check=False, timeout=10)


def rows(screen: list[str]) -> list[str]:
    """The task names of a top screen, in order (the rows between the column header and the footer)."""
    header = next((i for i, line in enumerate(screen) if line.startswith("TASK ")), None)
    if header is None:
        return []  # not drawn yet
    return [line.split()[0] for line in screen[header + 1:] if line.strip() and not line.startswith("q quit")
            and not line.startswith("rows ")]


def test_top_in_a_terminal(sandbox: Sandbox, tmux: str, forking: str) -> None:
    ns = forking
    sandbox.ok(ns, "run", "busy", "sh", "-c", BUSY)
    sandbox.ok(ns, "run", "idle", "sleep", "300")
    pane = Pane(tmux, sandbox.command(ns, "top", "-d", "0.5"), 140, 20)
    try:
        assert wait_until(lambda: rows(pane.screen()) == ["busy", "forker", "idle"]
                          and "-" not in pane.screen()[2].split()[3], timeout=10), pane.screen()
        screen = pane.screen()
        assert screen[0].startswith(f"{ns}  3 tasks  7 processes")
        forker = next(line for line in screen if line.startswith("forker "))
        assert forker.split()[1:3] == ["running", "5"]
        assert screen[-1].startswith("q quit")
        pane.keys("n")
        assert wait_until(lambda: "sort name" in pane.screen()[0]), pane.screen()
        assert rows(pane.screen()) == ["busy", "forker", "idle"]
        pane.keys("p")
        assert wait_until(lambda: rows(pane.screen()) == ["forker", "busy", "idle"]), pane.screen()
        pane.resize(60, 6)  # narrower: columns go, rows stay
        assert wait_until(lambda: rows(pane.screen()) == ["forker", "busy", "idle"]
                          and pane.screen()[1].startswith("TASK ") and len(pane.screen()[1]) < 60), pane.screen()
        pane.resize(60, 5)  # two lines for rows: one task scrolls out of sight, and the footer says so
        assert wait_until(lambda: pane.screen()[-1].startswith("rows 1-2 of 3")), pane.screen()
        assert rows(pane.screen()) == ["forker", "busy"]
        pane.keys("Down")
        assert wait_until(lambda: rows(pane.screen()) == ["busy", "idle"]), pane.screen()
        pane.resize(140, 20)
        assert wait_until(lambda: rows(pane.screen()) == ["forker", "busy", "idle"]), pane.screen()
        assert not any("Traceback" in line for line in pane.screen())
        pane.keys("q")
        assert wait_until(lambda: "lanco exited with 0" in pane.screen(), timeout=5), pane.screen()
    finally:
        pane.close()


# -- logs -------------------------------------------------------------------------------------------------------


def test_logs_and_follow_across_a_new_run(sandbox: Sandbox, ns: str) -> None:
    sandbox.ok(ns, "run", "talk", "sh", "-c", "for i in 1 2 3 4 5; do echo first $i; done")
    sandbox.lanco(ns, "wait", "talk")
    assert sandbox.ok(ns, "logs", "talk").stdout == "".join(f"first {i}\n" for i in range(1, 6))
    assert sandbox.ok(ns, "logs", "-n", "2", "talk").stdout == "first 4\nfirst 5\n"
    follower = subprocess.Popen(sandbox.command(ns, "logs", "-f", "-n", "1", "talk"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        sandbox.ok(ns, "run", "talk", "sh", "-c", "echo second 1; sleep 0.5; echo second 2")
        sandbox.lanco(ns, "wait", "talk")
        log = sandbox.log_dir(ns) / "task-talk.log"
        assert Path(f"{log}.1").read_text().endswith("first 5\n")  # the new run rotated the log
        time.sleep(1.0)  # several polls of the follower
    finally:
        follower.terminate()
        out, err = follower.communicate(timeout=10)
    assert out == "first 5\nsecond 1\nsecond 2\n", err


def test_logs_of_a_released_task_remain_readable(sandbox: Sandbox, ns: str) -> None:
    sandbox.ok(ns, "run", "gone", "echo", "still here")
    sandbox.lanco(ns, "wait", "gone")
    sandbox.ok(ns, "release", "gone")
    assert sandbox.ok(ns, "logs", "gone").stdout == "still here\n"


# -- errors -----------------------------------------------------------------------------------------------------

VIEW_COMMANDS = [["ls"], ["ls", "--json"], ["status", "t"], ["dump"], ["top", "-n", "1"], ["logs", "t"]]


@pytest.mark.parametrize("command", VIEW_COMMANDS)
def test_unknown_namespace_is_one_warning(sandbox: Sandbox, command: list[str]) -> None:
    result = sandbox.lanco("nosuchns", *command)
    assert result.returncode == 1 and result.stdout == ""
    assert one_warning(result.stderr, command[0]) == "namespace nosuchns should be created with init command"


@pytest.mark.parametrize("command", [["status", "nosuch"], ["status", "--json", "nosuch"], ["logs", "nosuch"]])
def test_unknown_task_is_one_warning(sandbox: Sandbox, command: list[str]) -> None:
    ns = make_namespace(sandbox)
    result = sandbox.lanco(ns, *command)
    assert result.returncode == 1 and result.stdout == ""
    assert one_warning(result.stderr, command[0]) == "task nosuch is not known"


def test_another_users_namespace_is_refused(sandbox: Sandbox, test_user: str) -> None:
    ns = make_namespace(sandbox)
    sandbox.ok(ns, "run", "t", "sleep", "300")
    for command in [*VIEW_COMMANDS, ["ls", "-q"]]:
        result = sandbox.lanco(ns, *command, user=test_user)
        assert result.returncode == 1 and result.stdout == "", command
        assert one_warning(result.stderr, command[0]) == f"namespace {ns} belongs to user root", command


def test_ls_lists_the_namespaces_each_user_may_use(sandbox: Sandbox, test_user: str, other_user: str) -> None:
    import grp
    import pwd

    group = grp.getgrgid(pwd.getpwnam(test_user).pw_gid).gr_name
    mine = make_namespace(sandbox, user=test_user)
    shared = make_namespace(sandbox, user=other_user, group=group)
    private = make_namespace(sandbox, user=other_user)
    roots = make_namespace(sandbox)
    as_user = sandbox.ok("ls", user=test_user).stdout.splitlines()
    assert as_user == sorted([mine, shared])
    data = json.loads(sandbox.ok("ls", "--json", user=test_user).stdout)
    assert [(n["name"], n["owner"]) for n in data["namespaces"]] == sorted([(mine, test_user),
                                                                             (shared, other_user)])
    assert set(sandbox.ok("ls").stdout.splitlines()) >= {mine, shared, private, roots}


# -- completion and debug messages ------------------------------------------------------------------------------


def test_bash_completion_against_a_real_namespace(sandbox: Sandbox, ns: str) -> None:
    sandbox.ok(ns, "run", "alive", "sleep", "300")
    sandbox.ok(ns, "run", "ended", "true")
    sandbox.lanco(ns, "wait", "ended")
    completion = Path(__file__).resolve().parents[2] / "completion" / "lanco.bash"
    real = shlex.join(sandbox.command())
    script = f"""
lanco() {{ {real} "$@"; }}
source {completion}
complete_words() {{ COMP_WORDS=("$@"); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _lanco; echo "${{COMPREPLY[*]}}"; }}
complete_words lanco ''
complete_words lanco {ns} stop ''
complete_words lanco {ns} status ''
"""
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    namespaces, running, known = result.stdout.splitlines()
    assert ns in namespaces.split() and "ls" in namespaces.split()
    assert running.split() == ["alive"]
    assert known.split() == ["alive", "ended"]


def test_debug_messages_are_filtered_by_token(sandbox: Sandbox, ns: str) -> None:
    started = sandbox.ok("-dd", ns, "run", "chatty", "sleep", "300")
    debug = [line for line in started.stderr.splitlines() if "[DEBUG/" in line]
    assert any("[DEBUG/run] task chatty: cgroups created: " in line for line in debug), started.stderr
    assert any(re.search(r"\[DEBUG/run\] task chatty: monitor reported 'started \d+'", line) for line in debug)
    quiet = sandbox.ok(ns, "run", "-f", "other", "true")
    assert "DEBUG" not in quiet.stderr
    stopped = sandbox.ok("-dd", "-D", "stop", ns, "stop", "chatty")
    lines = stopped.stderr.splitlines()
    assert lines and all("[DEBUG/stop] " in line for line in lines), stopped.stderr
    assert any("task chatty: signal 15 sent to 1 processes" in line for line in lines)
    filtered = sandbox.ok("-dd", "-D", "stop", ns, "run", "again", "true")
    assert "DEBUG" not in filtered.stderr
    assert task_pids(sandbox, ns, "chatty") == []


FORGED = "x\n │  → 1 /sbin/init"
"""The report's argument: shown raw, a process line of its own."""


def test_control_characters_in_argv_forge_no_line(sandbox: Sandbox, ns: str) -> None:
    sandbox.ok(ns, "run", "t", "sh", "-c", "sleep 300; exit 0", FORGED)
    assert wait_until(lambda: len(sandbox.ok(ns, "ls").stdout.splitlines()) >= 4)
    for args in (["ls"], ["ls", "-l"], ["ls", "-l", "--all"], ["status", "t"], ["top", "-n", "1", "-d", "0.1"]):
        text = sandbox.ok(ns, *args).stdout
        lines = text.splitlines()
        assert not any(line.strip().endswith("→ 1 /sbin/init") and "\\n" not in line for line in lines), (args, text)
        assert "x\\n │  → 1 /sbin/init" in text, (args, text)
    tree = sandbox.ok(ns, "ls", "-l").stdout.splitlines()
    assert len(tree) == 4, tree  # the namespace, the task, sh and its sleep
    assert json.loads(sandbox.ok(ns, "status", "--json", "t").stdout)["argv"][-1] == FORGED  # JSON keeps it whole
