"""lanco beyond one machine: ``lanco -H`` and ``Namespace(name, host=...)`` over real OpenSSH servers on 127.0.0.1
(tests/sshd.py), two of them as two hosts. The remote lanco is this checkout's, with the test's sandbox (its cgroup
base, state and log roots) given on its command line through LANCO_REMOTE_LANCO."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lanco
from lanco import errors
from tests.conftest import Sandbox
from tests.integration.conftest import make_namespace, no_process_left, task_pids, wait_until
from tests.integration.test_lifecycle import MESSAGE, one_warning
from tests.sshd import SshServer

HOST_MESSAGE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d \[WARN/-H\] (.+)$")
PRINT_ARGV = ["python3", "-c", "import json, sys; print(json.dumps(sys.argv[1:]))"]


def remote_env(sandbox: Sandbox, server: SshServer) -> dict[str, str]:
    """LANCO_SSH for this host, LANCO_REMOTE_LANCO for this checkout's lanco in the sandbox."""
    return {"LANCO_SSH": server.lanco_ssh, "LANCO_REMOTE_LANCO": shlex.join(sandbox.command())}


def via(sandbox: Sandbox, server: SshServer, *args: str, user: str = "root", timeout: float = 60,
        extra_env: dict[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """``lanco -H USER@127.0.0.1:PORT ARGS...`` run locally, without the sandbox's environment: it reaches the
    remote lanco only through the remote command line."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LANCO_")}, **remote_env(sandbox, server),
           **(extra_env or {})}
    argv = [*sandbox.command()[-3:], "-H", server.target(user), *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, input=input,
                          cwd="/", check=False)


def ok(sandbox: Sandbox, server: SshServer, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = via(sandbox, server, *args, **kwargs)  # type: ignore[arg-type]
    assert result.returncode == 0, f"lanco -H {' '.join(args)} -> {result.returncode}: {result.stderr}"
    return result


def remote_lancos(marker: str) -> list[int]:
    """Processes of lanco's (ssh clients, remote shells, remote lancos) whose command line or environment names
    ``marker`` (a task's monitor and processes are the sandbox's to check, not these)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    command = f.read()
                with open(f"/proc/{entry}/environ", "rb") as f:
                    environment = f.read()
            except OSError:
                continue
            if b"LANCO_MON_" in environment or b"LANCO_TASK" in environment:
                continue
            if marker.encode() in command or marker.encode() in environment:
                found.append(int(entry))
    return found


@pytest.fixture(autouse=True)
def nothing_left_on_the_hosts(sshd: SshServer, sshd2: SshServer, sandbox: Sandbox) -> Iterator[None]:
    """After each test: no ssh session open on either host, no ssh client, no lanco of the sandbox's left."""
    yield
    assert wait_until(lambda: not sshd.connection_pids() and not sshd2.connection_pids()), "an ssh session is left"
    markers = (str(sshd.client_config), str(sshd2.client_config), str(sandbox.root))
    assert wait_until(lambda: not any(remote_lancos(m) for m in markers)), \
        f"processes left: {[_described(p) for m in markers for p in remote_lancos(m)]}"


def test_quick_tour_on_two_hosts(sandbox: Sandbox, sshd: SshServer, sshd2: SshServer) -> None:
    for server in (sshd, sshd2):
        ns = sandbox.ns_name(f"rt{server.name}")
        ok(sandbox, server, ns, "init")
        ok(sandbox, server, ns, "run", "first-task", "openssl", "speed", "aes")
        assert via(sandbox, server, ns, "check", "first-task").returncode == 0
        tree = ok(sandbox, server, ns, "ls").stdout.splitlines()
        assert tree[:2] == [ns, " ├ first-task"] and re.fullmatch(r" │  → \d+ openssl speed aes", tree[2])
        log = sandbox.log_dir(ns) / "task-first-task.log"
        assert wait_until(partial(_says, log, "Doing aes"))
        refused = via(sandbox, server, ns, "run", "first-task", "openssl", "speed", "aes")
        assert refused.returncode == 1 and one_warning(refused.stderr, "run") == "task first-task is already running"
        refused = via(sandbox, server, ns, "stop", "second-task")
        assert refused.returncode == 1 and one_warning(refused.stderr, "stop") == "task second-task is not running"
        ok(sandbox, server, ns, "stop", "first-task")
        assert via(sandbox, server, ns, "check", "first-task").returncode == 1
        ok(sandbox, server, ns, "run", "second-task", "sh", "-c", "while true; do (sleep 30 &)& sleep 1; done")
        assert wait_until(partial(_processes_at_least, sandbox, ns, "second-task", 4))
        pids = task_pids(sandbox, ns, "second-task")
        ok(sandbox, server, ns, "stop", "second-task")
        assert via(sandbox, server, ns, "check", "second-task").returncode == 1
        assert no_process_left(pids)
        status = json.loads(ok(sandbox, server, ns, "status", "--json", "second-task").stdout)
        assert status["state"] == "stopped" and status["namespace"] == ns
        listing = json.loads(ok(sandbox, server, "ls", "--json").stdout)  # the namespace-less command
        assert ns in [n["name"] for n in listing["namespaces"]]
    # Each host's namespace is its own: the local view (the same machine here) sees both, each with its tasks.
    assert len([n for n in sandbox.namespaces if n.startswith("rt")]) == 2


def test_json_and_streams_arrive_unchanged(sandbox: Sandbox, sshd: SshServer) -> None:
    ns = sandbox.ns_name("rtj")
    ok(sandbox, sshd, ns, "init")
    ok(sandbox, sshd, ns, "run", "busy", "sleep", "300")
    assert ok(sandbox, sshd, "ls", "--json").stdout == sandbox.ok("ls", "--json").stdout
    assert ok(sandbox, sshd, ns, "ls", "-q", "--all").stdout == sandbox.ok(ns, "ls", "-q", "--all").stdout
    frames = ok(sandbox, sshd, ns, "top", "--json", "-n", "2", "-d", "0.2").stdout.split("\n")
    assert frames[2:] == [""] and [json.loads(f)["tasks"][0]["name"] for f in frames[:2]] == ["busy", "busy"]
    piped = ok(sandbox, sshd, ns, "run", "-f", "cat", "--", "sh", "-c", "cat; echo end", input="in\0put\n")
    assert piped.stdout == "in\0put\nend\n"
    sandbox.ok(ns, "stop", "busy")


def test_a_terminal_is_asked_for_when_there_is_one(sandbox: Sandbox, sshd: SshServer) -> None:
    """With a terminal on both ends here, the remote task sees one (ssh -t); with --json or without, none."""
    import pty

    ns = sandbox.ns_name("rtt")
    ok(sandbox, sshd, ns, "init")
    probe = ["sh", "-c", "if [ -t 0 ]; then echo tty; else echo none; fi"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LANCO_")}, **remote_env(sandbox, sshd)}
    seen = []
    for name in ("with", "without"):
        controller, terminal = pty.openpty()
        try:
            stdin = terminal if name == "with" else subprocess.DEVNULL
            process = subprocess.Popen([*sandbox.command()[-3:], "-H", sshd.target(), ns, "run", "-f", name, "--",
                                        *probe], env=env, stdin=stdin, stdout=terminal, stderr=terminal)
            os.close(terminal)
            output = b""
            while True:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # EIO: every holder of the terminal closed it
                    break
                if not chunk:
                    break
                output += chunk
            assert process.wait(timeout=60) == 0, output
            seen.append(output.decode(errors="replace").split())
        finally:
            os.close(controller)
    assert seen == [["tty"], ["none"]]
    assert via(sandbox, sshd, ns, "run", "-f", "piped", "--", *probe).stdout == "none\n"


def _says(log: Path, text: str) -> bool:
    return log.exists() and text in log.read_text()


def _processes_at_least(sandbox: Sandbox, ns: str, task: str, count: int) -> bool:
    return len(task_pids(sandbox, ns, task)) >= count


def test_global_options_go_along(sandbox: Sandbox, sshd: SshServer) -> None:
    ns = sandbox.ns_name("rtg")
    ok(sandbox, sshd, ns, "init")
    debug = via(sandbox, sshd, "-dd", "-D", "run", ns, "run", "-f", "dbg", "true")
    assert debug.returncode == 0
    assert any("[DEBUG/run]" in line for line in debug.stderr.splitlines()), debug.stderr
    refused = via(sandbox, sshd, "--cgroup-mode", "v1" if _mode_of(sandbox, ns) != "v1" else "v2", ns, "ls")
    assert refused.returncode == 2 and "was initialised in cgroup mode" in one_warning(refused.stderr, "ls")


def _mode_of(sandbox: Sandbox, ns: str) -> str:
    mode: str = json.loads((sandbox.state_dir(ns) / "config.json").read_text())["mode"]
    return mode


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12),
    st.sampled_from(["", " ", "'", '"', "$HOME", "`id`", "\\", "\\'", "a b", "\n", "-x", "--", "*", "~", "!",
                     "$(echo hi)", ";exit 3", "'\"'\"'", "\t", "é✓"])), max_size=6))
def test_every_argument_arrives_unchanged(sandbox: Sandbox, sshd: SshServer, words: list[str]) -> None:
    ns = _fuzz_namespace(sandbox, sshd)
    result = via(sandbox, sshd, ns, "run", "-f", "argv", "--", *PRINT_ARGV, *words)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == words


_FUZZ_NS: dict[str, str] = {}


def _fuzz_namespace(sandbox: Sandbox, server: SshServer) -> str:
    """One namespace for every example of a fuzz run (the sandbox is the test's, made once)."""
    if sandbox.base not in _FUZZ_NS:
        ns = sandbox.ns_name("rtq")
        ok(sandbox, server, ns, "init")
        _FUZZ_NS[sandbox.base] = ns
    return _FUZZ_NS[sandbox.base]


def test_exit_codes_pass_through(sandbox: Sandbox, sshd: SshServer) -> None:
    ns = sandbox.ns_name("rtx")
    ok(sandbox, sshd, ns, "init")
    assert via(sandbox, sshd, ns, "run", "-f", "seven", "sh", "-c", "exit 7").returncode == 7
    # 255 of the task's own, through wait and run -f: not taken for ssh's failure.
    ok(sandbox, sshd, ns, "run", "late", "sh", "-c", "sleep 0.5; exit 255")
    waited = via(sandbox, sshd, ns, "wait", "late")
    assert waited.returncode == 255 and waited.stderr == ""
    ok(sandbox, sshd, ns, "run", "three", "sh", "-c", "exit 3")
    assert via(sandbox, sshd, ns, "wait", "three").returncode == 3
    assert via(sandbox, sshd, ns, "run", "-f", "ff", "sh", "-c", "exit 255").returncode == 255
    usage = via(sandbox, sshd, ns, "frobnicate")
    assert usage.returncode == 2 and one_warning(usage.stderr, "lanco").startswith("unknown command")
    missing = via(sandbox, sshd, ns, "run", "nope", "lanco-no-such-command")
    assert missing.returncode == 127
    assert via(sandbox, sshd, sandbox.ns_name("rtnone"), "check", "t").returncode == 1


def test_ssh_failure_is_one_line_and_255(sandbox: Sandbox, sshd: SshServer) -> None:
    from tests.sshd import free_port

    port = free_port()  # nobody listens there
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LANCO_")},
           "LANCO_SSH": sshd.lanco_ssh}
    result = subprocess.run([*sandbox.command()[-3:], "-H", f"root@127.0.0.1:{port}", "x", "check", "t"],
                            env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 255
    (line,) = result.stderr.splitlines()
    said = HOST_MESSAGE.match(line)
    assert said, line
    assert said.group(1).startswith(f"cannot reach root@127.0.0.1:{port}: ssh exited 255: ")
    assert "Connection refused" in said.group(1)
    refused = via(sandbox, sshd, "nosuchuser-lanco", "check", "t", user="lanco-no-such-user")
    assert refused.returncode == 255
    assert "Permission denied" in HOST_MESSAGE.match(refused.stderr.strip()).group(1)  # type: ignore[union-attr]
    bad = via(sandbox, sshd, "x", "check", "t", extra_env={"LANCO_SSH": "lanco-no-such-ssh"})
    assert bad.returncode == 255 and "cannot run lanco-no-such-ssh" in bad.stderr


def test_bad_hosts_are_usage_errors(sandbox: Sandbox, sshd: SshServer) -> None:
    for host in ("-oProxyCommand=id", "root@", "host:0", "host:99999", "[::1", "a b"):
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("LANCO_")}, "LANCO_SSH": sshd.lanco_ssh}
        result = subprocess.run([*sandbox.command()[-3:], "-H", host, "ns", "check", "t"], env=env,
                                capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 2, host
        (line,) = result.stderr.splitlines()
        said = HOST_MESSAGE.match(line)
        assert said and said.group(1).startswith(("invalid host", "invalid user", "invalid port")), line


@pytest.mark.parametrize("drop", ["connection", "server"])
def test_logs_follow_over_a_dropped_connection_ends_with_a_clear_line(sandbox: Sandbox, sshd: SshServer,
                                                                      drop: str) -> None:
    ns = sandbox.ns_name("rtl")
    server = sshd if drop == "connection" else SshServer("dropped").start()
    try:
        ok(sandbox, server, ns, "init")
        # Two lines, then a quiet log: the remote logs -f has nothing to write when its connection drops.
        ok(sandbox, server, ns, "run", "ticker", "sh", "-c", "echo tick 1; sleep 0.3; echo tick 2; exec sleep 300")
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("LANCO_")}, **remote_env(sandbox, server)}
        follower = subprocess.Popen([*sandbox.command()[-3:], "-H", server.target(), ns, "logs", "-f", "ticker"],
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    stdin=subprocess.DEVNULL)
        try:
            assert follower.stdout is not None
            assert follower.stdout.readline().startswith("tick ")  # streaming: the first line before any end
            assert follower.stdout.readline().startswith("tick ")
            if drop == "connection":
                assert server.kill_connections()
            else:
                server.stop()
            assert follower.wait(timeout=30) == 255
            assert follower.stderr is not None
            (line,) = follower.stderr.read().splitlines()
            said = HOST_MESSAGE.match(line)
            assert said and said.group(1).startswith(f"lost the connection to {server.target()}: ssh exited 255"), line
        finally:
            if follower.poll() is None:
                follower.kill()
                follower.wait()
        # The remote logs -f ends once its reader is gone, though the log stays quiet: nothing stays behind.
        assert wait_until(lambda: not [p for p in remote_lancos(str(sandbox.root)) if _is_logs(p)], timeout=10)
        sandbox.ok(ns, "stop", "ticker")
    finally:
        if server is not sshd:
            server.stop()


def test_ctrl_c_ends_a_remote_follow_here_and_there(sandbox: Sandbox, sshd: SshServer) -> None:
    import signal

    ns = sandbox.ns_name("rtc")
    ok(sandbox, sshd, ns, "init")
    ok(sandbox, sshd, ns, "run", "quiet", "sh", "-c", "echo one; exec sleep 300")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LANCO_")}, **remote_env(sandbox, sshd)}
    # A session of its own, as a terminal's foreground job: Ctrl-C reaches lanco and its ssh together.
    follower = subprocess.Popen([*sandbox.command()[-3:], "-H", sshd.target(), ns, "logs", "-f", "quiet"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        assert follower.stdout is not None and follower.stdout.readline() == b"one\n"
        os.killpg(follower.pid, signal.SIGINT)
        assert follower.wait(timeout=30) == 130
        assert follower.stderr is not None and follower.stderr.read() == b""
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert wait_until(lambda: not [p for p in remote_lancos(str(sandbox.root)) if _is_logs(p, "quiet")],
                      timeout=10)
    sandbox.ok(ns, "stop", "quiet")


def _described(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read().replace(b"\0", b" ").decode(errors="replace")
        with open(f"/proc/{pid}/stat") as f:
            parent = f.read().rpartition(")")[2].split()[1]
        with open(f"/proc/{pid}/wchan") as f:
            waits = f.read()
        fds = {fd: os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        with open(f"/proc/{pid}/status") as f:
            masks = [line.strip() for line in f if line.startswith(("SigIgn", "SigBlk", "State"))]
        return f"{pid} (parent {parent}, {waits}, {fds}, {masks}): {command[:100]}"
    except OSError:
        return f"{pid} (gone)"


def _is_logs(pid: int, task: str = "ticker") -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f"\0logs\0-f\0{task}\0".encode() in f.read()
    except OSError:
        return False


def test_the_test_user_on_the_remote_side(sandbox: Sandbox, sshd: SshServer, ssh_test_user: str) -> None:
    ns = make_namespace(sandbox, user=ssh_test_user, group=ssh_test_user)
    user = ssh_test_user
    ok(sandbox, sshd, ns, "run", "mine", "sleep", "300", user=user)
    assert via(sandbox, sshd, ns, "check", "mine", user=user).returncode == 0
    (pid,) = task_pids(sandbox, ns, "mine", user=user)
    import pwd

    assert os.stat(f"/proc/{pid}").st_uid == pwd.getpwnam(user).pw_uid
    assert json.loads(ok(sandbox, sshd, ns, "status", "--json", "mine", user=user).stdout)["state"] == "running"
    ok(sandbox, sshd, ns, "stop", "mine", user=user)
    assert via(sandbox, sshd, ns, "check", "mine", user=user).returncode == 1
    refused = via(sandbox, sshd, ns, "release", user=user)
    assert refused.returncode == 1 and MESSAGE.match(refused.stderr.strip())


def test_the_api_with_a_host(sandbox: Sandbox, sshd: SshServer, sshd2: SshServer, ssh_test_user: str,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    from lanco.remote.api import RemoteNamespace

    monkeypatch.setenv("LANCO_SSH", sshd.lanco_ssh)
    monkeypatch.setenv("LANCO_REMOTE_LANCO", shlex.join(sandbox.command()))
    host = sshd.target()
    name = sandbox.ns_name("rta")
    with pytest.raises(errors.NamespaceMissing):
        lanco.Namespace(name, host=host)
    RemoteNamespace.init(name, host=host)
    ns = lanco.Namespace(name, host=host)
    assert isinstance(ns, RemoteNamespace)
    task = ns.run("web", ["sh", "-c", "echo 'it''s $HOME'; sleep 300"], memory_max="64M", extra_env={"K": "a b"})
    assert task.is_running()
    record = task.record()
    assert record.state == "running" and record.argv == ["sh", "-c", "echo 'it''s $HOME'; sleep 300"]
    assert record.limits.get("memory_max_bytes") == 64 << 20 and record.pids
    with pytest.raises(errors.AlreadyRunning, match="task web is already running"):
        ns.run("web", ["true"])
    with pytest.raises(errors.NotRunning):
        ns.task("absent").stop()
    with pytest.raises(errors.InvalidName):
        ns.task("bad/name")
    with pytest.raises(errors.UsageError):
        ns.run("x", ["true"], memory_max="lots")
    with pytest.raises(errors.CommandNotFound):
        ns.run("x", ["lanco-no-such-command"])
    with pytest.raises(errors.StillRunning):
        ns.release()
    assert [t.name for t in ns.running_tasks()] == ["web"]
    stopped = task.stop(timeout=5)
    assert stopped.state == "stopped" and not task.is_running()
    done = ns.run("done", ["sh", "-c", "sleep 0.3; exit 4"]).wait()
    assert done.state == "exited" and done.exit_code == 4
    pending = ns.run("slow", ["sleep", "300"]).wait(timeout=0.2)
    assert pending.state == "running"
    assert set(ns.stop_tasks(timeout=5)) == {"slow"}
    assert sorted(t.name for t in ns.tasks()) == ["done", "slow", "web"]

    import io

    out = io.BytesIO()
    ns.task("web").show_log(out)
    assert out.getvalue() == b"its $HOME\n"

    with pytest.raises(errors.PermissionDenied, match="belongs to user root"):
        lanco.Namespace(name, host=sshd.target(ssh_test_user))
    from tests.sshd import free_port

    with pytest.raises(errors.HostUnreachable, match="cannot reach"):
        lanco.Namespace(name, host=f"root@127.0.0.1:{free_port()}")
    monkeypatch.setenv("LANCO_SSH", sshd2.lanco_ssh)
    other = lanco.Namespace(name, host=sshd2.target())  # the same sandbox through the other host
    assert sorted(t.name for t in other.tasks()) == ["done", "slow", "web"]
    monkeypatch.setenv("LANCO_SSH", sshd.lanco_ssh)
    assert ns.release(dry_run=True)
    ns.release()
    with pytest.raises(errors.NamespaceMissing):
        lanco.Namespace(name, host=host)


def test_the_api_with_a_host_has_labels_events_and_the_waits(sandbox: Sandbox, sshd: SshServer,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue-15 methods of a namespace are those of a remote one too: labels and descriptions through run and
    the records, tasks(labels=), events from a cursor and followed, wait_any/wait_all and their asyncio forms."""
    import asyncio

    from lanco.remote.api import RemoteNamespace

    monkeypatch.setenv("LANCO_SSH", sshd.lanco_ssh)
    monkeypatch.setenv("LANCO_REMOTE_LANCO", shlex.join(sandbox.command()))
    host = sshd.target()
    name = sandbox.ns_name("rte")
    ns = RemoteNamespace.init(name, host=host)
    try:
        fast = ns.run("fast", ["sh", "-c", "sleep 0.3; exit 3"], labels={"batch": "1"}, description="the quick one")
        slow = ns.run("slow", ["sh", "-c", "sleep 4; exit 0"], labels=["batch=1", "tier=b"])
        ns.run("other", ["sleep", "300"])
        assert fast.record().labels == {"batch": "1"} and fast.record().description == "the quick one"
        assert sorted(t.name for t in ns.tasks(labels={"batch": "1"})) == ["fast", "slow"]
        assert ns.task("other").is_active() and not ns.task("absent").is_active()
        first = ns.wait_any([fast, "slow"], timeout=30)
        assert [(t.name, r.state, r.exit_code) for t, r in first] == [("fast", "exited", 3)]  # slow sleeps on
        seen: list[str] = []
        every = ns.wait_all([fast, slow], timeout=30, on_end=lambda batch: seen.extend(t.name for t, _ in batch))
        assert sorted(t.name for t, _ in every) == ["fast", "slow"] and sorted(seen) == ["fast", "slow"]
        assert ns.wait_any(["other"], timeout=0.3) == []  # a timeout: what had ended, nothing
        events = list(ns.events(labels={"batch": "1"}))
        kinds = sorted((e.kind, e.task) for e in events)
        assert kinds == [("ended", "fast"), ("ended", "slow"), ("started", "fast"), ("started", "slow")]
        ended = {e.task: e.record for e in events if e.kind == "ended"}
        assert ended["fast"]["exit_code"] == 3 and ended["fast"]["labels"] == {"batch": "1"}
        everything = list(ns.events())
        since = list(ns.events(since=everything[0].cursor))
        assert [e.seq for e in since] == [e.seq for e in everything[1:]]
        with pytest.raises(errors.UsageError):
            list(ns.events(since="garbled"))

        async def follow_and_wait() -> tuple[list[str], list[tuple[str, int | None]]]:
            stream = ns.events_async(since=everything[-1].cursor)
            late = ns.run("late", ["sh", "-c", "sleep 0.3; exit 5"])
            kinds = [(await stream.__anext__()).kind, (await stream.__anext__()).kind]
            await stream.aclose()  # type: ignore[attr-defined]
            record = await late.wait_async(timeout=30)
            ended = await ns.wait_any_async(["late"], timeout=30)
            return kinds, [(record.state, record.exit_code), *((r.state, r.exit_code) for _, r in ended)]

        kinds_followed, waited = asyncio.run(follow_and_wait())
        assert kinds_followed == ["started", "ended"]
        assert waited == [("exited", 5), ("exited", 5)]
    finally:
        ns.stop_tasks(timeout=5)
        ns.release()
