"""ls, status, dump, top and logs end to end through lanco.cli.main, on a fixed fake cgroupfs.

The namespace's backend is pointed at the fake mounts of tests.unit.conftest; the files a kernel would show
are written by hand, command lines come from a table instead of /proc, and the clocks are pinned, so every
output is compared whole against a golden text."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lanco import procfs
from lanco.cgroups.backend import Backend
from lanco.cli import main
from lanco.commands import view
from lanco.state.config import NamespaceConfig, load_config
from lanco.state.record import write_spec
from lanco.views import stats
from tests.unit.conftest import NS, FakeHost, make_namespace, write
from tests.unit.test_render import assert_units_in_keys

NOW = 1700003725.0  # 2023-11-14T23:15:25 UTC
STARTED = 1700000000.0
PSI_TEXT = {
    "cpu": "some avg10=12.50 avg60=3.00 avg300=1.00 total=99\nfull avg10=2.00 avg60=0.00 avg300=0.00 total=9\n",
    "memory": "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    "io": "some avg10=1.25 avg60=0.00 avg300=0.00 total=5\nfull avg10=0.50 avg60=0.00 avg300=0.00 total=1\n",
}
V1_UNLIMITED = "9223372036854771712"
CMDLINES = {101: "httpd -X", 102: "httpd -X worker", 103: "httpd -X worker", 201: "sh -c while :; do :; done",
            301: "sleep 1000"}
MIB = 1 << 20


@dataclass
class FakeTask:
    name: str
    pids: list[int]
    cpu_usec: int
    memory: int
    peak: int
    memory_max: int | None = None
    pids_max: int | None = None
    cpu_quota_usec: int | None = None
    frozen: bool = False
    argv: list[str] = field(default_factory=lambda: ["sleep", "1000"])


TASKS = [
    FakeTask("web", [101, 102, 103], 2_250_000, 3 * MIB, 5 * MIB, memory_max=64 * MIB, pids_max=100,
             cpu_quota_usec=50_000, argv=["httpd", "-X"]),
    FakeTask("busy", [201], 9_000_000, 512 << 10, 1 * MIB, argv=["sh", "-c", "while :; do :; done"]),
    FakeTask("cold", [301], 1_000, 256 << 10, 256 << 10, frozen=True),
]


@dataclass
class FakeNamespace:
    host: FakeHost
    backend: Backend
    mode: str
    config: NamespaceConfig

    def task_dir(self, task: str, controller: str | None = None) -> Path:
        if controller is None:
            return Path(self.backend.task_dir(NS, task))
        directory = self.backend.controller_dir(controller, NS, task)
        return Path(directory if directory is not None else self.backend.task_dir(NS, task))

    def set_cpu(self, task: str, usec: int) -> None:
        if self.backend.tracker.version == 2:
            write(self.task_dir(task) / "cpu.stat", f"usage_usec {usec}\nuser_usec {usec}\nsystem_usec 0\n")
        else:
            write(self.task_dir(task, "cpuacct") / "cpuacct.usage", f"{usec * 1000}\n")

    def add(self, task: FakeTask) -> None:
        backend, v2 = self.backend, self.mode == "v2"
        for directory in backend.task_dirs(NS, task.name):
            write(Path(directory) / "cgroup.procs", "".join(f"{p}\n" for p in task.pids))
        tracker = self.task_dir(task.name)
        if backend.tracker.version == 2:
            write(tracker / "cgroup.events", f"populated 1\nfrozen {int(task.frozen)}\n")
            write(tracker / "cgroup.freeze", f"{int(task.frozen)}\n")
            for resource, text in PSI_TEXT.items():
                write(tracker / f"{resource}.pressure", text)
        self.set_cpu(task.name, task.cpu_usec)
        if v2:
            write(tracker / "memory.current", f"{task.memory}\n")
            write(tracker / "memory.peak", f"{task.peak}\n")
            write(tracker / "memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
            write(tracker / "memory.max", f"{task.memory_max or 'max'}\n")
            write(tracker / "memory.high", "max\n")
            write(tracker / "pids.max", f"{task.pids_max or 'max'}\n")
            write(tracker / "cpu.max", f"{task.cpu_quota_usec or 'max'} 100000\n")
        else:
            memory = self.task_dir(task.name, "memory")
            write(memory / "memory.usage_in_bytes", f"{task.memory}\n")
            write(memory / "memory.max_usage_in_bytes", f"{task.peak}\n")
            write(memory / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
            write(memory / "memory.limit_in_bytes", f"{task.memory_max or V1_UNLIMITED}\n")
            write(self.task_dir(task.name, "pids") / "pids.max", f"{task.pids_max or 'max'}\n")
            cpu = self.task_dir(task.name, "cpu")
            write(cpu / "cpu.cfs_quota_us", f"{task.cpu_quota_usec or -1}\n")
            write(cpu / "cpu.cfs_period_us", "100000\n")
            write(self.task_dir(task.name, "freezer") / "freezer.state", "FROZEN\n" if task.frozen else "THAWED\n")
        state = Path(self.config.task_state_dir(task.name))
        state.mkdir(parents=True, exist_ok=True)
        write_spec(str(state), {"run_id": f"run-{task.name}", "namespace": NS, "name": task.name,
                                "argv": task.argv, "log": self.config.default_log(task.name),
                                "exit_command": None, "limits": {"memory_max": task.memory_max}
                                if task.memory_max else {}, "started": STARTED})
        write(state / "pid", f"{task.pids[0]}\n")

    def set_oom_kills(self, task: str, count: int) -> None:
        """The kernel's OOM kill counter of the task's memory cgroup, in the file the mode keeps it in."""
        if self.mode == "v2":
            write(self.task_dir(task) / "memory.events", f"low 0\nhigh 0\nmax 9\noom 9\noom_kill {count}\n")
        else:
            write(self.task_dir(task, "memory") / "memory.oom_control",
                  f"oom_kill_disable 0\nunder_oom 1\noom_kill {count}\n")

    def add_finished(self, name: str, result: str, exit_code: str, signal: str = "") -> None:
        state = Path(self.config.task_state_dir(name))
        state.mkdir(parents=True)
        write_spec(str(state), {"run_id": f"run-{name}", "namespace": NS, "name": name, "argv": ["make"],
                                "log": self.config.default_log(name), "exit_command": "echo done",
                                "limits": {}, "started": STARTED})
        write(state / "result", f"run_id=run-{name}\nresult={result}\nexit_code={exit_code}\nsignal={signal}\n"
                                "cpu_usec=1500000\nmemory_peak_bytes=67108864\noom_kills=0\n")
        os.utime(state / "result", (STARTED + 65, STARTED + 65))


def fake_namespace(host: FakeHost, mode: str, monkeypatch: pytest.MonkeyPatch) -> FakeNamespace:
    backend = {"hybrid": host.hybrid, "v1": host.v1, "v2": host.v2}[mode]()
    make_namespace(backend)
    if mode == "v2":
        write(os.path.join(backend.ns_dir(NS), "cgroup.subtree_control"), "cpu memory pids\n")
    if backend.tracker.version == 2:
        write(os.path.join(backend.ns_dir(NS), "cpu.stat"), "usage_usec 20000000\n")
    else:
        write(os.path.join(backend.ns_dir(NS, host.cpu), "cpuacct.usage"), "20000000000\n")
    state = os.path.join(os.environ["LANCO_STATE_DIR"], NS)
    os.makedirs(os.path.join(state, "tasks"))
    config = NamespaceConfig(name=NS, owner_uid=os.geteuid(), owner_gid=os.getegid(), group_access=False,
                             mode=mode, tracker="unified" if backend.tracker.version == 2 else "named",
                             cgroup_base="/lanco", state_dir=state, log_dir=os.path.join(state, "log"),
                             created=STARTED)
    config.save()
    os.makedirs(config.log_dir)
    monkeypatch.setattr("lanco.namespace.open_namespace_backend", lambda *a, **k: backend)
    return FakeNamespace(host, backend, mode, config)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr(time, "time", lambda: NOW)
    monkeypatch.setattr(time, "monotonic", lambda: 5000.0)
    monkeypatch.setattr(procfs, "cmdline", lambda pid: CMDLINES.get(pid, ""))
    monkeypatch.setattr(stats, "online_cpus", lambda: 2)
    monkeypatch.setattr(stats, "host_memory_bytes", lambda meminfo="": 1024 * MIB)
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture(params=["hybrid", "v1", "v2"])
def fake(request: pytest.FixtureRequest, host: FakeHost, monkeypatch: pytest.MonkeyPatch,
         frozen_clock: None) -> FakeNamespace:
    ns = fake_namespace(host, str(request.param), monkeypatch)
    for task in TASKS:
        ns.add(task)
    ns.add_finished("build", "exited", "3")
    ns.add_finished("oomed", "oom", "137", "9")
    return ns


@pytest.fixture
def hybrid(host: FakeHost, monkeypatch: pytest.MonkeyPatch, frozen_clock: None) -> FakeNamespace:
    ns = fake_namespace(host, "hybrid", monkeypatch)
    for task in TASKS:
        ns.add(task)
    ns.add_finished("build", "exited", "3")
    return ns


def run(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> str:
    assert main(list(argv)) == code
    out, err = capsys.readouterr()
    assert err == ""
    return out


def warning(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, str]:
    """The (token, text) of the one warning a refused command prints, exit code 1 and nothing on stdout."""
    assert main(list(argv)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    match = re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d \[WARN/(\w+)\] (.*)\n", err)
    assert match is not None, err
    return match[1], match[2]


# -- ls ---------------------------------------------------------------------------------------------------------

TREE = (
    "testns\n"
    " ├ busy\n"
    " │  → 201 sh -c while :; do :; done\n"
    " ├ cold (frozen)\n"
    " │  → 301 sleep 1000\n"
    " ├ web\n"
    " │  → 101 httpd -X\n"
    " │  → 102 httpd -X worker\n"
    " │  → 103 httpd -X worker\n"
)


def test_ls_tree_golden(fake: FakeNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, NS, "ls") == TREE


def test_ls_all_adds_finished_tasks_with_their_result(fake: FakeNamespace,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, NS, "ls", "--all") == (
        "testns\n"
        " ├ build (exited, code 3)\n"
        " ├ busy\n"
        " │  → 201 sh -c while :; do :; done\n"
        " ├ cold (frozen)\n"
        " │  → 301 sleep 1000\n"
        " ├ oomed (oom, signal 9)\n"
        " ├ web\n"
        " │  → 101 httpd -X\n"
        " │  → 102 httpd -X worker\n"
        " │  → 103 httpd -X worker\n"
    )


def test_ls_quiet_lists_names(fake: FakeNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, NS, "ls", "-q") == "busy\ncold\nweb\n"
    assert run(capsys, NS, "ls", "-q", "--all") == "build\nbusy\ncold\noomed\nweb\n"


def test_ls_long_and_cut_commands(hybrid: FakeNamespace, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    long = "python3 -m http.server --bind 127.0.0.1 --directory /srv/www/htdocs 8080"
    monkeypatch.setattr(procfs, "cmdline", lambda pid: long)
    assert " │  → 201 python3 -m http.server --bind 127.0.0.1 --directo…\n" in run(capsys, NS, "ls")
    assert f" │  → 201 {long}\n" in run(capsys, NS, "ls", "-l")


def test_ls_json_is_the_tree_as_data(fake: FakeNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(run(capsys, NS, "ls", "--json"))
    assert data["schema_version"] == 1 and data["namespace"] == NS
    assert [(t["name"], t["state"], [p["pid"] for p in t["processes"]]) for t in data["tasks"]] == [
        ("busy", "running", [201]), ("cold", "frozen", [301]), ("web", "running", [101, 102, 103])]
    web = data["tasks"][2]
    assert web["processes"][1] == {"pid": 102, "cmdline": "httpd -X worker"}
    assert (web["main_pid"], web["cpu_usage_usec"], web["started_epoch_s"]) == (101, 2_250_000, STARTED)
    assert web["memory_current_bytes"] == 3 * MIB
    assert_units_in_keys(data)
    everything = json.loads(run(capsys, NS, "ls", "--all", "--json"))
    build = next(t for t in everything["tasks"] if t["name"] == "build")
    assert (build["state"], build["exit_code"], build["ended_epoch_s"], build["processes"]) == \
        ("exited", 3, STARTED + 65, [])


def oom_kills_shown(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    """web's OOM kills as every view of a running task shows them."""
    status = run(capsys, NS, "status", "web")
    long_tree = run(capsys, NS, "ls", "-l")
    top = json.loads(run(capsys, NS, "top", "--json", "-n", "1"))
    top_lines = run(capsys, NS, "top", "-n", "1").splitlines()
    end = top_lines[1].index("OOM") + len("OOM")  # the column is right-aligned under its header
    return {
        "status": re.findall(r"^   oom kills: (.*)$", status, re.M),
        "status_json": json.loads(run(capsys, NS, "status", "--json", "web"))["oom_kills"],
        "ls -l": [line for line in long_tree.splitlines() if line.startswith(" ├ web")],
        "ls_json": [t["oom_kills"] for t in json.loads(run(capsys, NS, "ls", "--json"))["tasks"]
                    if t["name"] == "web"],
        "dump": json.loads(run(capsys, NS, "dump"))["tasks"]["web"]["oom_kills"],
        "top": [t["oom_kills"] for t in top["tasks"] if t["name"] == "web"],
        "top_text": [line[end - 4:end].strip() for line in top_lines[2:] if line.startswith("web ")],
    }


def test_oom_kills_of_a_running_task_show_in_every_view(fake: FakeNamespace, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_sleep(fake, monkeypatch)
    fake.set_oom_kills("web", 3)
    assert oom_kills_shown(capsys) == {"status": ["3"], "status_json": 3, "ls -l": [" ├ web (3 OOM kills)"],
                                       "ls_json": [3], "dump": 3, "top": [3], "top_text": ["3"]}
    # The plain tree keeps the original's form; -l names one kill in the singular.
    assert " ├ web\n" in run(capsys, NS, "ls")
    fake.set_oom_kills("web", 1)
    assert " ├ web (1 OOM kill)\n" in run(capsys, NS, "ls", "-l")


def test_a_restarted_run_shows_its_own_oom_kills(fake: FakeNamespace, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # The cgroup (and its counter) outlives a run of run --restart: the monitor writes the counter it found at the
    # start of the current run to oom_base, and every view counts from there.
    scripted_sleep(fake, monkeypatch)
    fake.set_oom_kills("web", 5)
    write(Path(fake.config.task_state_dir("web")) / "oom_base", "5\n")
    shown = oom_kills_shown(capsys)
    assert shown == {"status": ["0"], "status_json": 0, "ls -l": [" ├ web"], "ls_json": [0], "dump": 0, "top": [0],
                     "top_text": ["0"]}
    fake.set_oom_kills("web", 7)
    shown = oom_kills_shown(capsys)
    assert (shown["status_json"], shown["ls -l"], shown["dump"], shown["top"], shown["top_text"]) == \
        (2, [" ├ web (2 OOM kills)"], 2, [2], ["2"])


def test_a_finished_tasks_oom_kills_are_its_results(fake: FakeNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    state = Path(fake.config.task_state_dir("oomed"))
    (state / "result").write_text((state / "result").read_text().replace("oom_kills=0", "oom_kills=4"))
    assert " ├ oomed (oom, signal 9, 4 OOM kills)\n" in run(capsys, NS, "ls", "--all", "-l")
    assert " ├ oomed (oom, signal 9)\n" in run(capsys, NS, "ls", "--all")
    assert json.loads(run(capsys, NS, "status", "--json", "oomed"))["oom_kills"] == 4
    assert "   oom kills: 4\n" in run(capsys, NS, "status", "oomed")


# -- status -----------------------------------------------------------------------------------------------------


def test_status_running_golden(hybrid: FakeNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, NS, "status", "web") == (
        "        task: testns/web\n"
        "       state: running\n"
        "     command: httpd -X\n"
        "     started: 2023-11-14T22:13:20\n"
        "    run time: 1h02m\n"
        "   processes: 3\n"
        "              101 httpd -X\n"
        "              102 httpd -X worker\n"
        "              103 httpd -X worker\n"
        "         cpu: 2.250s\n"
        "      memory: 3.0M of 64.0M\n"
        " memory peak: 5.0M\n"
        "   oom kills: 0\n"
        "    pressure: cpu 12.50%, memory 0.00%, io 1.25% (some, avg10)\n"
        f"         log: {hybrid.config.log_dir}/task-web.log\n"
        "exit command: -\n"
        "      limits: memory max 64.0M, pids max 100, cpu 50%\n"
    )


def test_status_finished_golden(hybrid: FakeNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, NS, "status", "build") == (
        "        task: testns/build\n"
        "       state: exited, code 3\n"
        "     command: make\n"
        "     started: 2023-11-14T22:13:20\n"
        "       ended: 2023-11-14T22:14:25\n"
        "   exit code: 3\n"
        "      signal: -\n"
        "    run time: 1m05s\n"
        "   processes: 0\n"
        "         cpu: 1.500s\n"
        "      memory: -\n"
        " memory peak: 64.0M\n"
        "   oom kills: 0\n"
        f"         log: {hybrid.config.log_dir}/task-build.log\n"
        "exit command: echo done\n"
    )


def test_status_json_in_every_mode(fake: FakeNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(run(capsys, NS, "status", "--json", "web"))
    assert (data["state"], data["process_count"], data["cpu_usage_usec"]) == ("running", 3, 2_250_000)
    assert (data["memory_current_bytes"], data["memory_peak_bytes"], data["oom_kills"]) == (3 * MIB, 5 * MIB, 0)
    assert data["limits"] == {"memory_max_bytes": 64 * MIB}
    assert data["limits_in_force"] == {"memory_max_bytes": 64 * MIB, "pids_max": 100,
                                       "cpu_quota_usec": 50_000, "cpu_period_usec": 100_000}
    if fake.backend.tracker.version == 2:
        assert data["pressure"]["cpu_some_avg10_percent"] == 12.5
        assert data["pressure"]["io_full_avg10_percent"] == 0.5
    else:
        assert data["pressure"] is None  # no PSI for a task tracked in v1
    assert json.loads(run(capsys, NS, "status", "--json", "cold"))["state"] == "frozen"
    busy = json.loads(run(capsys, NS, "status", "--json", "busy"))
    assert busy["limits_in_force"] == {}  # unlimited everywhere: v1's huge number reads as no limit
    assert_units_in_keys(data)


# -- dump -------------------------------------------------------------------------------------------------------


def test_dump_golden(hybrid: FakeNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    text = run(capsys, NS, "dump")
    assert text.startswith(
        '{\n "schema_version": 1,\n "namespace": "testns",\n "count": 3,\n "cpu": 20000000000,\n "nbcpus": 2,\n'
        ' "timestamp": 5000000,\n "timestamp_epoch_s": 1700003725.0,\n "cpu_usage_usec": 20000000,\n'
        ' "tasks": {\n  "busy": {\n   "count": 1,\n   "processes": [\n    {\n     "pid": 201,\n'
        '     "cmdline": "sh -c while :; do :; done"\n    }\n   ],\n   "cpu": 9000000000,\n'
        '   "memory": 524288,\n   "namespace": "testns",\n')
    data = json.loads(text)
    assert list(data["tasks"]) == ["busy", "cold", "web"]
    web = data["tasks"]["web"]
    assert (web["count"], web["cpu"], web["memory"], web["memory_max_bytes"]) == (3, 2_250_000_000, 3 * MIB,
                                                                                   64 * MIB)
    assert web["processes"] == [{"pid": 101, "cmdline": "httpd -X"}, {"pid": 102, "cmdline": "httpd -X worker"},
                                {"pid": 103, "cmdline": "httpd -X worker"}]
    assert data["tasks"]["cold"]["state"] == "frozen"
    assert_units_in_keys(data, allowed={"cpu", "memory", "timestamp"})


def test_dump_in_every_mode_keeps_the_original_units(fake: FakeNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(run(capsys, NS, "dump"))
    assert (data["count"], data["cpu"], data["nbcpus"]) == (3, 20_000_000_000, 2)
    assert data["tasks"]["busy"]["cpu"] == 9_000_000_000 and data["tasks"]["busy"]["memory"] == 512 << 10


# -- top --------------------------------------------------------------------------------------------------------


def scripted_sleep(fake: FakeNamespace, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """time.sleep that advances the pinned monotonic clock and lets the fake tasks use CPU meanwhile."""
    slept: list[float] = []
    clock = [5000.0]
    used = {t.name: t.cpu_usec for t in TASKS}
    rates = {"busy": 1.0, "web": 0.25, "cold": 0.0}  # CPUs each task keeps busy

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds
        for name, rate in rates.items():
            used[name] += int(seconds * rate * 1e6)
            fake.set_cpu(name, used[name])

    monkeypatch.setattr(time, "sleep", sleep)
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(time, "time", lambda: NOW + clock[0] - 5000.0)
    return slept


def test_top_frames_as_text_golden(hybrid: FakeNamespace, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    slept = scripted_sleep(hybrid, monkeypatch)
    assert run(capsys, NS, "top", "-n", "2", "-d", "2") == (
        "testns  3 tasks  5 processes  cpu 125.0% of 200%  memory 3.8M  sort cpu  23:15:25\n"
        "TASK STATE    PIDS   CPU% CPU HISTORY   MEMORY  MEM%         OOM P.CPU P.MEM  P.IO COMMAND\n"
        "busy running     1  100.0            █  512.0K   0.0 ▏         0  12.5   0.0   1.2 sh -c while :; do :; done\n"
        "web  running     3   25.0            ▃    3.0M   4.7 ▎         0  12.5   0.0   1.2 httpd -X\n"
        "cold frozen      1    0.0            ▁  256.0K   0.0 ▏         0  12.5   0.0   1.2 sleep 1000\n"
        "\n"
        "testns  3 tasks  5 processes  cpu 125.0% of 200%  memory 3.8M  sort cpu  23:15:27\n"
        "TASK STATE    PIDS   CPU% CPU HISTORY   MEMORY  MEM%         OOM P.CPU P.MEM  P.IO COMMAND\n"
        "busy running     1  100.0           ██  512.0K   0.0 ▏         0  12.5   0.0   1.2 sh -c while :; do :; done\n"
        "web  running     3   25.0           ▃▃    3.0M   4.7 ▎         0  12.5   0.0   1.2 httpd -X\n"
        "cold frozen      1    0.0           ▁▁  256.0K   0.0 ▏         0  12.5   0.0   1.2 sleep 1000\n"
    )
    assert slept == [0.5, 2.0]  # a priming interval, then the delay between the two frames


def test_top_json_lines_and_sort(fake: FakeNamespace, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_sleep(fake, monkeypatch)
    lines = run(capsys, NS, "top", "--json", "-n", "3", "-d", "0.5", "-s", "name").splitlines()
    assert len(lines) == 3
    frames = [json.loads(line) for line in lines]
    assert [t["name"] for t in frames[0]["tasks"]] == ["busy", "cold", "web"]
    busy = frames[2]["tasks"][0]
    assert (busy["cpu_percent"], busy["cpu_history_percent"], busy["process_count"]) == (100.0, [100.0] * 3, 1)
    assert frames[2]["interval_s"] == 0.5 and frames[2]["sort"] == "name" and frames[2]["process_count"] == 5
    assert (frames[2]["tasks"][1]["state"], frames[2]["tasks"][2]["memory_max_bytes"]) == ("frozen", 64 * MIB)
    for frame in frames:
        assert_units_in_keys(frame)


@pytest.mark.parametrize(("argv", "text"), [
    (["top", "-n", "0"], "invalid number of frames '0': a whole number from 1"),
    (["top", "-n", "x"], "invalid number of frames 'x': a whole number from 1"),
    (["top", "-d", "0"], "invalid delay '0': must be greater than zero"),
    (["top", "-s", "size"], "top: argument -s/--sort: invalid choice: 'size' (choose from 'cpu', 'memory', "
                            "'name', 'pids')"),
    (["logs", "-n", "-3", "t"], "invalid number of lines '-3': a whole number"),
    (["dump", "extra"], "dump: unrecognized arguments: extra"),
])
def test_usage_errors(hybrid: FakeNamespace, capsys: pytest.CaptureFixture[str], argv: list[str], text: str) -> None:
    assert main([NS, *argv]) == 2
    err = capsys.readouterr().err
    assert err.endswith(f"] {text}\n"), err


# -- errors -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["status", "nosuch"], ["logs", "nosuch"]])
def test_unknown_task(hybrid: FakeNamespace, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    assert warning(capsys, NS, *command) == (command[0], "task nosuch is not known")


@pytest.mark.parametrize("command", [["ls"], ["ls", "--json"], ["status", "t"], ["dump"], ["top", "-n", "1"],
                                     ["logs", "t"]])
def test_unknown_namespace(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    assert warning(capsys, "nons", *command) == (command[0], "namespace nons should be created with init command")


@pytest.mark.parametrize("command", [["ls"], ["ls", "-q"], ["ls", "--json"], ["status", "web"], ["dump"],
                                     ["top", "-n", "1"], ["logs", "web"]])
def test_another_users_namespace_is_refused(hybrid: FakeNamespace, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    monkeypatch.setattr(os, "getegid", lambda: 4242)
    monkeypatch.setattr(os, "getgroups", lambda: [4242])
    token, text = warning(capsys, NS, *command)
    assert token == command[0] and re.fullmatch(r"namespace testns belongs to user \S+", text)


# -- lanco ls: the namespaces -----------------------------------------------------------------------------------


def make_config(name: str, uid: int, gid: int, group_access: bool) -> None:
    state = os.path.join(os.environ["LANCO_STATE_DIR"], name)
    os.makedirs(state)
    NamespaceConfig(name=name, owner_uid=uid, owner_gid=gid, group_access=group_access, mode="hybrid",
                    tracker="named", cgroup_base="/lanco", state_dir=state, log_dir=f"/var/log/lanco-{name}",
                    created=STARTED).save()


def test_namespaces_visible_to_their_owner_and_group(capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    make_config("mine", 1000, 1000, False)
    make_config("ours", 2000, 50, True)
    make_config("group-closed", 2000, 50, False)
    make_config("theirs", 2000, 2000, True)
    assert run(capsys, "ls") == "group-closed\nmine\nours\ntheirs\n"  # root sees them all
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getegid", lambda: 1000)
    monkeypatch.setattr(os, "getgroups", lambda: [1000, 50])
    assert run(capsys, "ls") == "mine\nours\n"
    data = json.loads(run(capsys, "ls", "--json"))
    assert [n["name"] for n in data["namespaces"]] == ["mine", "ours"]
    assert data["namespaces"][1] | {"owner": "", "group": ""} == {
        "name": "ours", "owner": "", "owner_uid": 2000, "group": "", "owner_gid": 50, "group_access": True,
        "cgroup_mode": "hybrid", "state_dir": str(Path(os.environ["LANCO_STATE_DIR"]) / "ours"),
        "log_dir": "/var/log/lanco-ours", "created_epoch_s": STARTED}
    assert_units_in_keys(data)


def test_ls_with_a_namespace_named_ls_is_still_its_tree(capsys: pytest.CaptureFixture[str]) -> None:
    token, text = warning(capsys, "ls", "ls")
    assert (token, text) == ("ls", "namespace ls should be created with init command")
    assert main(["ls", "--bogus"]) == 2
    assert "ls: unrecognized arguments: --bogus" in capsys.readouterr().err


# -- logs -------------------------------------------------------------------------------------------------------


def log_of(fake: FakeNamespace, task: str) -> Path:
    return Path(fake.config.default_log(task))


def test_logs_prints_the_log_or_its_last_lines(hybrid: FakeNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    log_of(hybrid, "web").write_text("".join(f"line {i}\n" for i in range(1, 8)))
    assert run(capsys, NS, "logs", "web") == "".join(f"line {i}\n" for i in range(1, 8))
    assert run(capsys, NS, "logs", "-n", "2", "web") == "line 6\nline 7\n"
    assert run(capsys, NS, "logs", "-n", "0", "web") == ""
    assert run(capsys, NS, "logs", "-n", "99", "web") == "".join(f"line {i}\n" for i in range(1, 8))
    log_of(hybrid, "web").write_text("a\nb\nno newline at the end")
    assert run(capsys, NS, "logs", "-n", "2", "web") == "b\nno newline at the end"


def test_logs_of_a_known_task_without_a_log(hybrid: FakeNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    assert warning(capsys, NS, "logs", "busy") == ("logs", f"task busy has no log: {log_of(hybrid, 'busy')} "
                                                           "does not exist")


@pytest.mark.parametrize("lines", [1, 2, 3, 5000, 70000])
def test_tail_start_across_blocks(tmp_path: Path, lines: int) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"".join(b"%d %s\n" % (i, b"x" * (i % 50)) for i in range(100000)))
    with open(path, "rb") as f:
        f.seek(view._tail_start(f, lines))
        assert f.read().splitlines() == path.read_bytes().splitlines()[-lines:]


def test_logs_follow_across_rotation_truncation_and_a_new_log(hybrid: FakeNamespace,
                                                              capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    log = log_of(hybrid, "web")
    log.write_text("first run 1\n")
    elsewhere = Path(hybrid.config.log_dir) / "elsewhere.log"
    state = hybrid.config.task_state_dir("web")

    def append(path: Path, text: str) -> Callable[[], None]:
        def step() -> None:
            with open(path, "a") as f:
                f.write(text)
        return step

    def replace(path: Path, text: str) -> Callable[[], None]:
        def step() -> None:
            path.write_text(text)
        return step

    def rotate() -> None:
        append(log, "first run 3\n")()  # written after the last read, just before the rotation
        os.replace(log, f"{log}.1")

    def log_elsewhere() -> None:
        write_spec(state, {"run_id": "r3", "log": str(elsewhere)})
        elsewhere.write_text("third run\n")

    def nothing() -> None:
        pass

    steps: list[Callable[[], None]] = [
        append(log, "first run 2\n"),
        nothing,
        rotate,
        nothing,  # rotated away, not created yet: keep waiting
        replace(log, "second run 1\n"),
        replace(log, "x\n"),  # truncated and rewritten shorter: start over
        log_elsewhere,  # a new run logging elsewhere: follow it there
    ]

    def sleep(seconds: float) -> None:
        assert seconds == view.LOG_POLL_S
        if not steps:
            raise KeyboardInterrupt
        steps.pop(0)()

    monkeypatch.setattr(time, "sleep", sleep)
    assert main([NS, "logs", "-f", "web"]) == 130
    out, err = capsys.readouterr()
    assert err == ""
    assert out == "first run 1\nfirst run 2\nfirst run 3\nsecond run 1\nx\nthird run\n"


# -- the backend's views on their own ---------------------------------------------------------------------------


def test_limits_and_pressure_of_a_task_without_files(host: FakeHost) -> None:
    backend = host.hybrid()
    assert backend.limits_in_force(NS, "absent") == {}
    assert backend.pressure(NS, "absent") == {k: None for k in ("cpu_some", "cpu_full", "memory_some",
                                                                 "memory_full", "io_some", "io_full")}
    assert host.v1().pressure(NS, "absent") is None
    assert backend.cpu_usage_usec(NS, "absent") is None
    assert backend.memory_current_bytes(NS, "absent") is None
    assert host.v2().memory_limit_bytes(NS, "absent") is None


def test_malformed_pressure_and_limits_read_as_unknown(host: FakeHost) -> None:
    backend = host.v2()
    task_dir = Path(backend.task_dir(NS, "t"))
    write(task_dir / "cpu.pressure", "some avg10=oops avg60=0.00\ngarbage\n")
    write(task_dir / "memory.max", "lots\n")
    write(task_dir / "pids.max", "max\n")
    write(task_dir / "cpu.max", "max 100000\n")
    assert backend.pressure(NS, "t")["cpu_some"] is None  # type: ignore[index]
    assert backend.limits_in_force(NS, "t") == {}


def test_a_load_of_the_real_config_matches(hybrid: FakeNamespace) -> None:
    assert load_config(NS) == hybrid.config  # the fixture writes what init writes


def test_sample_reads_each_running_task_once(hybrid: FakeNamespace) -> None:
    from lanco.namespace import Namespace

    sample = stats.sample_namespace(Namespace(NS))
    assert [(t.name, t.state, t.process_count, t.command) for t in sample.tasks] == [
        ("busy", "running", 1, "sh -c while :; do :; done"), ("cold", "frozen", 1, "sleep 1000"),
        ("web", "running", 3, "httpd -X")]
    assert (sample.nbcpus, sample.memory_total_bytes, sample.monotonic_s) == (2, 1024 * MIB, 5000.0)
