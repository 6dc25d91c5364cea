"""The lanco.lanco Ansible collection end to end: the collection built and installed with ansible-galaxy, then
playbooks run by ansible-playbook against localhost (local connection) and, over ssh, against the two sshd "hosts"
of tests/sshd.py. Each host drives its own lanco (a wrapper with a sandbox of its own: cgroup base, state and
logs), so a fan-out really starts one task per host.

Everything Ansible writes stays in the test's temp dir (ANSIBLE_HOME, local and remote temp, no ssh control
masters left running), and results are read from the json callback, not from text."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Sandbox, sandbox_context
from tests.sshd import SshServer

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "ansible" / "ansible_collections" / "lanco" / "lanco"
BIN = Path(sys.executable).parent
NODE_PYTHON = "/usr/bin/python3"
"""The managed nodes' interpreter: Debian's, not the test venv's, as on a real node (the modules need no package)."""

pytestmark = [pytest.mark.cgroup, pytest.mark.slow]


def ansible_tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed (scripts/test installs the pinned ansible-core)")
    return str(path)


def ansible_env(tmp: Path, collections: Path) -> dict[str, str]:
    """Hermetic: no ansible.cfg, ~/.ansible or known_hosts of the machine is read or written."""
    (tmp / "ansible.cfg").write_text("[defaults]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update({
        "ANSIBLE_CONFIG": str(tmp / "ansible.cfg"),
        "ANSIBLE_HOME": str(tmp / "home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "local-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(tmp / "remote-tmp"),
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        # No ControlPersist: a control master would outlive the playbook.
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=no",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp / "cp"),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_GATHERING": "explicit",
        "ANSIBLE_CALLBACK_PLUGINS": str(Path(__file__).parent / "ansible_plugins" / "callback"),
        "ANSIBLE_STDOUT_CALLBACK": "lanco_results",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_SYSTEM_WARNINGS": "False",
        "ANSIBLE_FORKS": "2",
    })
    return env


@pytest.fixture(scope="module")
def installed_collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collection as a user gets it: `ansible-galaxy collection build`, then `install` into a temp path."""
    galaxy = ansible_tool("ansible-galaxy")
    tmp = tmp_path_factory.mktemp("galaxy")
    env = ansible_env(tmp, tmp / "collections")
    built = subprocess.run([galaxy, "collection", "build", "--output-path", str(tmp), str(COLLECTION)],
                           capture_output=True, text=True, env=env, timeout=120, check=False)
    assert built.returncode == 0, built.stderr
    tarball = tmp / "lanco-lanco-0.1.0.tar.gz"
    assert tarball.exists(), built.stdout
    installed = subprocess.run([galaxy, "collection", "install", "-p", str(tmp / "collections"), str(tarball)],
                               capture_output=True, text=True, env=env, timeout=120, check=False)
    assert installed.returncode == 0, installed.stderr
    assert (tmp / "collections" / "ansible_collections" / "lanco" / "lanco" / "plugins" / "modules"
            / "lanco_task.py").exists()
    return tmp / "collections"


def test_the_installed_collection_documents_every_module(installed_collection: Path, tmp_path: Path) -> None:
    doc = ansible_tool("ansible-doc")
    for module in ("lanco_namespace", "lanco_task", "lanco_info"):
        shown = subprocess.run([doc, "--json", f"lanco.lanco.{module}"], capture_output=True, text=True,
                               env=ansible_env(tmp_path, installed_collection), timeout=120, check=False)
        assert shown.returncode == 0, shown.stderr
        entry = json.loads(shown.stdout)[f"lanco.lanco.{module}"]
        assert entry["doc"]["module"] == module
        assert entry["examples"] and entry["return"]


class Host:
    """One managed node: its inventory name and variables, and the lanco it drives (a wrapper on its sandbox)."""

    def __init__(self, name: str, box: Sandbox, variables: dict[str, str]) -> None:
        self.name = name
        self.box = box
        self.lanco_path = box.root / "bin" / "lanco"
        self.lanco_path.parent.mkdir(exist_ok=True)  # two hosts may be two logins to one sandbox
        # The wrapper is the node's `lanco`: the tree's, with the sandbox's cgroup base, state and logs.
        self.lanco_path.write_text("#!/bin/sh\nexec " + " ".join(f"'{w}'" for w in box.command()) + ' "$@"\n')
        self.lanco_path.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        self.variables = {**variables, "lanco_path": str(self.lanco_path),
                          "ansible_python_interpreter": NODE_PYTHON}

    def lanco_json(self, *args: str) -> Any:
        return json.loads(self.box.ok(*args).stdout)


class Play:
    """ansible-playbook over an inventory of hosts, results read from the json callback."""

    def __init__(self, tmp: Path, collections: Path, hosts: list[Host]) -> None:
        self.tmp = tmp
        self.hosts = hosts
        self.env = ansible_env(tmp, collections)
        self.inventory = tmp / "inventory.json"
        self.inventory.write_text(json.dumps({"all": {"hosts": {h.name: h.variables for h in hosts}}}))

    def run(self, playbook: str, *options: str, expect_rc: int = 0, **extra_vars: Any) -> dict[str, Any]:
        path = self.tmp / "play.yml"
        path.write_text(playbook)
        result = subprocess.run([ansible_tool("ansible-playbook"), "-i", str(self.inventory), str(path),
                                 "-e", json.dumps(extra_vars), *options],
                                capture_output=True, text=True, env=self.env, timeout=300, check=False, cwd=self.tmp)
        assert result.returncode == expect_rc, f"{result.returncode}: {result.stdout[-4000:]} {result.stderr[-2000:]}"
        return dict(json.loads(result.stdout))

    def changed(self, output: dict[str, Any]) -> dict[str, int]:
        return {host: stats["changed"] for host, stats in output["stats"].items()}

    def results(self, output: dict[str, Any], task: str) -> dict[str, dict[str, Any]]:
        """The per-host results of the task named ``task`` in the play."""
        for entry in output["plays"][0]["tasks"]:
            if entry["task"]["name"] == task:
                return dict(entry["hosts"])
        raise AssertionError(f"no task {task!r} in {[e['task']['name'] for e in output['plays'][0]['tasks']]}")


NS = "ansiblens"

START = """
- hosts: all
  tasks:
    - name: namespace
      lanco.lanco.lanco_namespace: {name: "@NS@", lanco_path: "{{ lanco_path }}"}
    - name: task
      lanco.lanco.lanco_task:
        namespace: "@NS@"
        name: web
        command: "{{ command | default(['sleep', '300']) }}"
        limits: "{{ limits | default({'memory_max': '64M', 'cpu_quota': 50, 'pids_max': 20}) }}"
        labels: "{{ labels | default(omit) }}"
        description: "{{ description | default(omit) }}"
        state: "{{ wanted | default('started') }}"
        lanco_path: "{{ lanco_path }}"
""".replace("@NS@", NS)

INFO = """
- hosts: all
  module_defaults:
    group/lanco.lanco.lanco: {lanco_path: "{{ lanco_path }}"}
  tasks:
    - name: info
      lanco.lanco.lanco_info: {namespace: "@NS@"}
    - name: fact
      ansible.builtin.assert:
        that: ["ansible_facts.lanco.tasks.web.name == 'web'"]
""".replace("@NS@", NS)


@pytest.fixture(params=["local", "ssh"])
def play(request: pytest.FixtureRequest, installed_collection: Path, tmp_path: Path) -> Iterator[Play]:
    """localhost over the local connection, or the two sshd hosts over ssh, each with a lanco sandbox of its own."""
    with ExitStack() as stack:
        if request.param == "local":
            box = stack.enter_context(sandbox_context())
            hosts = [Host("localhost", box, {"ansible_connection": "local"})]
        else:
            servers: list[SshServer] = [request.getfixturevalue("sshd"), request.getfixturevalue("sshd2")]
            hosts = []
            for server in servers:
                box = stack.enter_context(sandbox_context())
                hosts.append(Host(server.name, box, {
                    "ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": str(server.port),
                    "ansible_user": "root", "ansible_ssh_private_key_file": str(server.client_key),
                    "ansible_ssh_common_args": f"-F {server.client_config}"}))
        for host in hosts:
            host.box.namespaces.append(NS)  # the sandbox's teardown stops its tasks and releases it
        yield Play(tmp_path, installed_collection, hosts)


def test_a_fan_out_starts_once_then_changes_nothing(play: Play) -> None:
    first = play.run(START)
    assert play.changed(first) == {h.name: 2 for h in play.hosts}
    records = play.results(first, "task")
    pids = {}
    for host in play.hosts:
        record = records[host.name]["task"]
        status = host.lanco_json(NS, "status", "--json", "web")
        assert record["state"] == status["state"] == "running"
        assert record["main_pid"] == status["main_pid"]
        assert status["limits"] == {"cpu_quota_percent": 50.0, "memory_max_bytes": 64 << 20, "pids_max": 20}
        pids[host.name] = status["main_pid"]
    assert len(set(pids.values())) == len(play.hosts), "each host runs a task of its own"

    again = play.run(START, "--diff")
    assert play.changed(again) == {h.name: 0 for h in play.hosts}

    # The same limits written another way are the same spec.
    same = play.run(START, limits={"memory_max": 67108864, "cpu_quota": "50%", "pids_max": "20"})
    assert play.changed(same) == {h.name: 0 for h in play.hosts}

    # Another spec while it runs: refused with the reason, the task left alone.
    other = play.run(START, expect_rc=2, command=["sleep", "301"])
    for host in play.hosts:
        failed = play.results(other, "task")[host.name]
        assert failed["failed"]
        assert failed["msg"] == ("task web is running with a different command; use state=restarted to run it "
                                 "anew")
        assert host.lanco_json(NS, "status", "--json", "web")["main_pid"] == pids[host.name]

    # Check mode: a restart and a stop are reported, and nothing changes.
    for wanted in ("restarted", "stopped", "absent"):
        checked = play.run(START, "--check", "--diff", wanted=wanted, command=["sleep", "302"])
        assert play.changed(checked) == {h.name: 1 for h in play.hosts}, wanted
    for host in play.hosts:
        status = host.lanco_json(NS, "status", "--json", "web")
        assert (status["state"], status["main_pid"], status["argv"]) == ("running", pids[host.name],
                                                                         ["sleep", "300"])

    restarted = play.run(START, wanted="restarted", command=["sleep", "302"], limits={"memory_max": "32M"})
    assert play.changed(restarted) == {h.name: 1 for h in play.hosts}
    for host in play.hosts:
        status = host.lanco_json(NS, "status", "--json", "web")
        assert status["argv"] == ["sleep", "302"] and status["main_pid"] != pids[host.name]
        assert status["limits"] == {"memory_max_bytes": 32 << 20}

    stopped = play.run(START, wanted="stopped")
    assert play.changed(stopped) == {h.name: 1 for h in play.hosts}
    for host in play.hosts:
        assert host.lanco_json(NS, "status", "--json", "web")["state"] == "stopped"
        assert play.results(stopped, "task")[host.name]["task"]["state"] == "stopped"
    assert play.changed(play.run(START, wanted="stopped")) == {h.name: 0 for h in play.hosts}

    absent = play.run(START, wanted="absent")
    assert play.changed(absent) == {h.name: 1 for h in play.hosts}
    for host in play.hosts:
        assert host.lanco_json(NS, "ls", "--json", "--all")["tasks"] == []


def test_info_facts_are_lanco_status_json(play: Play) -> None:
    play.run(START)
    output = play.run(INFO)
    assert play.changed(output) == {h.name: 0 for h in play.hosts}
    # Figures that move between two reads (CPU, memory, pressure) aside, the facts are status --json's document.
    moving = {"cpu_usage_usec", "memory_current_bytes", "memory_peak_bytes", "pressure"}
    for host in play.hosts:
        info = play.results(output, "info")[host.name]
        status = host.lanco_json(NS, "status", "--json", "web")
        assert set(info["tasks"]) == {"web"}
        fact = info["ansible_facts"]["lanco"]["tasks"]["web"]
        assert {k: v for k, v in fact.items() if k not in moving} == {k: v for k, v in status.items()
                                                                      if k not in moving}
        assert [ns["name"] for ns in info["namespaces"]] == [NS]
        assert info["namespaces"] == host.lanco_json("ls", "--json")["namespaces"]


def test_a_bad_limit_fails_with_lancos_one_line(play: Play) -> None:
    output = play.run(START, expect_rc=2, limits={"memory_max": "64X"})
    for host in play.hosts:
        failed = play.results(output, "task")[host.name]
        assert failed["rc"] == 2
        assert failed["msg"].endswith("[WARN/run] invalid memory limit '64X': expected a number of bytes with K, M, "
                                      "G or T, or max"), failed["msg"]
        assert "\n" not in failed["msg"]
        assert host.lanco_json(NS, "ls", "--json", "--all")["tasks"] == []


def test_check_mode_creates_no_namespace(play: Play) -> None:
    output = play.run(START, "--check")
    assert play.changed(output) == {h.name: 2 for h in play.hosts}
    for host in play.hosts:
        assert host.lanco_json("ls", "--json")["namespaces"] == []


def labels_supported(host: Host) -> bool:
    shown = host.box.lanco("somens", "run", "--help")
    return "--label" in shown.stdout


def test_labels_are_passed_and_compared(play: Play) -> None:
    if not labels_supported(play.hosts[0]):
        pytest.skip("this tree's lanco run has no --label")
    first = play.run(START, labels={"role": "web"}, description="the web server")
    assert play.changed(first) == {h.name: 2 for h in play.hosts}
    for host in play.hosts:
        status = host.lanco_json(NS, "status", "--json", "web")
        assert (status["labels"], status["description"]) == ({"role": "web"}, "the web server")
    assert play.changed(play.run(START, labels={"role": "web"})) == {h.name: 0 for h in play.hosts}
    other = play.run(START, expect_rc=2, labels={"role": "db"})
    assert "different labels" in play.results(other, "task")[play.hosts[0].name]["msg"]


def test_a_namespace_for_another_user(installed_collection: Path, tmp_path: Path, test_user: str) -> None:
    """Root initialises a namespace for the test user; asking again for another owner is refused, not changed."""
    with sandbox_context() as box:
        host = Host("localhost", box, {"ansible_connection": "local"})
        box.namespaces.append(NS)
        play = Play(tmp_path, installed_collection, [host])
        playbook = """
- hosts: all
  tasks:
    - name: namespace
      lanco.lanco.lanco_namespace: {name: "@NS@", user: "{{ owner }}", lanco_path: "{{ lanco_path }}"}
""".replace("@NS@", NS)
        assert play.changed(play.run(playbook, owner=test_user)) == {"localhost": 1}
        listed = host.lanco_json("ls", "--json")["namespaces"]
        assert [(ns["name"], ns["owner"]) for ns in listed] == [(NS, test_user)]
        assert play.changed(play.run(playbook, owner=test_user)) == {"localhost": 0}
        refused = play.run(playbook, expect_rc=2, owner="root")
        assert play.results(refused, "namespace")["localhost"]["msg"] == (
            f"namespace {NS} exists with owner {test_user}, not root; release it first")
        gone = play.run(playbook.replace("user:", "state: absent, user:"), owner=test_user)
        assert play.changed(gone) == {"localhost": 1}
        assert host.lanco_json("ls", "--json")["namespaces"] == []


def test_ansible_tools_are_the_pinned_ones(tmp_path: Path) -> None:
    pins = dict(line.split("==") for line in (REPO / "scripts" / "dev-constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    shown = subprocess.run([ansible_tool("ansible-playbook"), "--version"], capture_output=True, text=True,
                           env=ansible_env(tmp_path, tmp_path / "collections"), timeout=60, check=False)
    assert f"[core {pins['ansible-core']}]" in shown.stdout
    assert shutil.which(NODE_PYTHON) is not None


def test_a_user_runs_tasks_in_the_namespace_root_made_for_them(installed_collection: Path, tmp_path: Path,
                                                               sshd: SshServer, ssh_test_user: str) -> None:
    """Root makes the namespace for the test user (become-less, as root over ssh); the user then logs in over ssh
    and runs a task in it: the record says whose it is."""
    with sandbox_context() as box:
        user_tmp = box.root / "remote-tmp"
        user_tmp.mkdir()
        user_tmp.chmod(0o1777)  # the user's Ansible temp dir, kept inside the sandbox
        ssh = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": str(sshd.port),
               "ansible_ssh_private_key_file": str(sshd.client_key),
               "ansible_ssh_common_args": f"-F {sshd.client_config}", "ansible_remote_tmp": str(user_tmp)}
        as_root = Host("asroot", box, {**ssh, "ansible_user": "root"})
        as_user = Host("asuser", box, {**ssh, "ansible_user": ssh_test_user})
        box.namespaces.append(NS)
        play = Play(tmp_path, installed_collection, [as_root, as_user])
        playbook = """
- hosts: asroot
  tasks:
    - name: namespace
      lanco.lanco.lanco_namespace: {name: "@NS@", user: "@USER@", lanco_path: "{{ lanco_path }}"}
- hosts: asuser
  tasks:
    - name: task
      lanco.lanco.lanco_task:
        namespace: "@NS@"
        name: mine
        command: [sleep, "300"]
        limits: {pids_max: 10}
        lanco_path: "{{ lanco_path }}"
""".replace("@NS@", NS).replace("@USER@", ssh_test_user)
        first = play.run(playbook)
        assert play.changed(first) == {"asroot": 1, "asuser": 1}
        assert play.changed(play.run(playbook)) == {"asroot": 0, "asuser": 0}
        status = as_root.lanco_json(NS, "status", "--json", "mine")
        assert status["state"] == "running" and status["limits"] == {"pids_max": 10}
        with open(f"/proc/{status['main_pid']}/status") as f:
            uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
        assert uid == pwd.getpwnam(ssh_test_user).pw_uid
