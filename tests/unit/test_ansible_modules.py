"""The logic of the lanco.lanco Ansible modules (their module_utils), without Ansible: options to `lanco run`
arguments, the wanted spec in the record's form (held to lanco's own parsers), the comparison with a running task,
and the plan of lanco commands for each state. The playbooks themselves run in tests/integration/test_ansible.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lanco.options.limits import Limits
from lanco.options.limittable import SPECS

COLLECTIONS = Path(__file__).resolve().parents[2] / "ansible"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.lanco.lanco.plugins.module_utils import lanco_cli  # noqa: E402


def task_params(**overrides: Any) -> dict[str, Any]:
    return {"name": "web", "namespace": "apps", "command": ["sleep", "300"], "limits": None, "labels": None,
            **overrides}


def running(**overrides: Any) -> dict[str, Any]:
    return {"name": "web", "state": "running", "argv": ["sleep", "300"], "limits": {}, **overrides}


def test_the_limits_are_lancos() -> None:
    """Every limit of lanco's table, with its option, record key and kind: a new limit of lanco fails here until
    the collection knows it."""
    lancos = {key: (spec.option.rpartition("/")[2], spec.record_key, spec.kind) for key, spec in SPECS.items()}
    assert lancos == lanco_cli.LIMITS


def test_every_option_passed_to_run_is_one_of_lancos() -> None:
    shown = subprocess.run([sys.executable, "-m", "lanco", "anyns", "run", "--help"], capture_output=True,
                           text=True, check=True, timeout=60)
    options = [*lanco_cli.RUN_OPTIONS.values(), *(o for o, _, _ in lanco_cli.LIMITS.values()), "--keep-log",
               "--env"]
    missing = [option for option in options if f"{option} " not in shown.stdout and f"{option}," not in shown.stdout]
    assert not missing


def test_run_argv_maps_each_option() -> None:
    argv = lanco_cli.run_argv(task_params(
        command=["python3", "-m", "http.server", 8080],
        limits={"memory_max": "64M", "cpu_quota": 50.0, "pids_max": 20, "cpuset": "0-1",
                "io_read_bps": {"8:0": "1M"}, "io_write_bps": ["8:0=2M", "8:16=3M"]},
        labels={"role": "web", "tier": 1}, description="the web server", log="/tmp/web.log", keep_log=True,
        restart="on-failure", restart_max=3, env={"B": "2", "A": "1"}, stop_timeout="5s"))
    assert argv == ["run", "--memory-max", "64M", "--cpu-quota", "50", "--cpuset", "0-1", "--pids-max", "20",
                    "--io-read-bps", "8:0=1M", "--io-write-bps", "8:0=2M", "--io-write-bps", "8:16=3M",
                    "--description", "the web server", "--log", "/tmp/web.log", "--stop-timeout", "5s",
                    "--restart", "on-failure", "--restart-max", "3",
                    "--keep-log", "--env", "A=1", "--env", "B=2", "--label", "role=web", "--label", "tier=1",
                    "web", "python3", "-m", "http.server", "8080"]


def test_a_bare_task_is_run_name_and_command() -> None:
    assert lanco_cli.run_argv(task_params()) == ["run", "web", "sleep", "300"]


@pytest.mark.parametrize(("key", "value"), [
    ("memory_max", "64M"), ("memory_max", "1g"), ("memory_max", 1048576), ("memory_max", "max"),
    ("memory_max", "512KiB"), ("memory_swap_max", "0"), ("memory_swap_max", 0), ("memory_high", "2G"),
    ("cpu_quota", 50), ("cpu_quota", "150%"), ("cpu_quota", "12.5"), ("cpu_quota", "max"),
    ("pids_max", "20"), ("pids_max", 7), ("pids_max", "max"), ("cpu_weight", 200), ("io_weight", "50"),
    ("cpuset", "0"), ("cpuset", "0,0"),
    ("io_read_bps", {"DEV": "10M"}), ("io_write_bps", ["DEV=1G"]),
])
def test_the_wanted_limits_read_as_lanco_records_them(key: str, value: Any) -> None:
    if key.endswith("_bps"):
        # MAJ:MIN must name a block device of this machine for lanco's parser.
        devices = sorted(Path("/sys/dev/block").iterdir()) if Path("/sys/dev/block").is_dir() else []
        if not devices:
            pytest.skip("no block device here")
        device = devices[0].name
        value = {device: "10M"} if isinstance(value, dict) else [f"{device}=1G"]
    recorded = Limits.build({key: value}).as_record()
    assert lanco_cli.wanted_spec(task_params(limits={key: value}))["limits"] == recorded


def test_an_unreadable_limit_is_kept_as_given() -> None:
    """lanco judges it when it runs, with its own message; here it only differs from every record."""
    spec = lanco_cli.wanted_spec(task_params(limits={"memory_max": "64X"}))
    assert spec["limits"] == {"memory_max_bytes": "64X"}
    assert lanco_cli.differences(spec, {"argv": ["sleep", "300"], "limits": {"memory_max_bytes": 64 << 20},
                                        "labels": {}}) == ["limits"]


def test_the_same_spec_has_no_differences() -> None:
    wanted = lanco_cli.wanted_spec(task_params(limits={"memory_max": "64M", "cpu_quota": 50}, labels={"a": "b"}))
    recorded = lanco_cli.recorded_spec(running(limits={"memory_max_bytes": 67108864, "cpu_quota_percent": 50.0},
                                               labels={"a": "b"}))
    assert recorded is not None
    assert lanco_cli.differences(wanted, recorded) == []


@pytest.mark.parametrize(("change", "found"), [
    ({"command": ["sleep", "301"]}, ["command"]),
    ({"limits": {"memory_max": "32M"}}, ["limits"]),
    ({"limits": {"memory_max": "64M", "pids_max": 5}}, ["limits"]),
    ({"limits": None}, ["limits"]),
    ({"labels": {"a": "c"}}, ["labels"]),
    ({"command": ["true"], "labels": {}}, ["command", "labels"]),
])
def test_each_difference_is_named(change: dict[str, Any], found: list[str]) -> None:
    wanted = lanco_cli.wanted_spec(task_params(**{"limits": {"memory_max": "64M"}, "labels": {"a": "b"},
                                                  **change}))
    recorded = lanco_cli.recorded_spec(running(limits={"memory_max_bytes": 67108864}, labels={"a": "b"}))
    assert recorded is not None
    assert lanco_cli.differences(wanted, recorded) == found


def test_a_record_without_labels_has_none() -> None:
    """A lanco without labels records no "labels" key: the same as none asked for."""
    recorded = lanco_cli.recorded_spec(running())
    assert recorded == {"argv": ["sleep", "300"], "limits": {}, "labels": {}}


STOP = ["stop", "web"]
RUN = ["run", "web", "sleep", "300"]


@pytest.mark.parametrize(("state", "current", "steps"), [
    ("started", None, [RUN]),
    ("started", running(state="exited"), [RUN]),
    ("started", running(), []),
    ("started", running(state="frozen"), []),
    ("restarted", running(), [STOP, RUN]),
    ("restarted", None, [RUN]),
    ("stopped", running(), [STOP]),
    ("stopped", running(state="stopped"), []),
    ("stopped", None, []),
    ("absent", running(), [STOP, ["release", "web"]]),
    ("absent", running(state="killed"), [["release", "web"]]),
    ("absent", None, []),
])
def test_the_plan_of_each_state(state: str, current: dict[str, Any] | None, steps: list[list[str]]) -> None:
    assert lanco_cli.plan(state, current, task_params()) == steps


def test_started_with_another_spec_is_refused() -> None:
    with pytest.raises(lanco_cli.LancoFailed) as refused:
        lanco_cli.plan("started", running(argv=["sleep", "1"]), task_params())
    assert refused.value.msg == "task web is running with a different command; use state=restarted to run it anew"


def test_a_stop_timeout_is_the_grace_of_stop() -> None:
    assert lanco_cli.plan("stopped", running(), task_params(stop_timeout="3")) == [["stop", "-t", "3", "web"]]


def test_the_message_is_lancos_last_line() -> None:
    stderr = "2026-12-01T10:00:00 [INFO/run] reading\n2026-12-01T10:00:00 [WARN/run] task web is already running\n"
    assert lanco_cli.one_line(stderr, 1) == "2026-12-01T10:00:00 [WARN/run] task web is already running"
    assert lanco_cli.one_line("", 70) == "lanco exited with 70 and said nothing"


def test_init_argv_and_the_owner_check() -> None:
    assert lanco_cli.init_argv({"name": "apps", "user": "alice", "group": "staff"}) == [
        "apps", "init", "-u", "alice", "-g", "staff"]
    current = {"name": "apps", "owner": "alice", "owner_uid": 1000, "group": "staff", "owner_gid": 50,
               "group_access": True}
    assert lanco_cli.namespace_mismatch(current, {"name": "apps", "user": "alice", "group": "staff"}) is None
    assert lanco_cli.namespace_mismatch(current, {"name": "apps", "user": "1000"}) is None
    assert lanco_cli.namespace_mismatch(current, {"name": "apps"}) is None
    assert lanco_cli.namespace_mismatch(current, {"name": "apps", "user": "bob"}) == (
        "namespace apps exists with owner alice, not bob; release it first")
    assert lanco_cli.namespace_mismatch({**current, "group_access": False}, {"name": "apps", "group": "staff"}) == (
        "namespace apps exists with no group access, not group staff; release it first")


def test_lanco_path_or_the_path() -> None:
    assert lanco_cli.find_executable("/opt/lanco", lambda name: None) == "/opt/lanco"
    assert lanco_cli.find_executable(None, lambda name: f"/usr/bin/{name}") == "/usr/bin/lanco"
    with pytest.raises(lanco_cli.LancoFailed, match="not found"):
        lanco_cli.find_executable(None, lambda name: None)


MODULES = COLLECTIONS / "ansible_collections" / "lanco" / "lanco" / "plugins"


@pytest.mark.parametrize("path", sorted(MODULES.rglob("*.py")), ids=lambda p: p.name)
def test_the_collection_parses_as_python_3_8(path: Path) -> None:
    """Managed nodes may have an older Python than lanco's own 3.11: the modules keep to 3.8's grammar."""
    import ast

    ast.parse(path.read_text(), filename=str(path), feature_version=(3, 8))


@pytest.mark.parametrize("name", ["lanco_namespace", "lanco_task", "lanco_info"])
def test_each_documented_option_is_the_argument_spec(name: str) -> None:
    """What ansible-test's validate-modules checks (it cannot run offline): DOCUMENTATION's options, their types,
    choices and defaults are the module's argument_spec, and its other blocks are YAML."""
    pytest.importorskip("ansible.module_utils.basic", reason="ansible-core is not installed")
    import importlib

    import yaml

    module = importlib.import_module(f"ansible_collections.lanco.lanco.plugins.modules.{name}")
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert doc["module"] == name
    yaml.safe_load(module.EXAMPLES)
    yaml.safe_load(module.RETURN)

    def compare(documented: dict[str, Any], spec: dict[str, Any], where: str) -> None:
        assert set(documented) == set(spec), where
        for option, entry in spec.items():
            shown = documented[option]
            assert shown["description"], f"{where}{option}"
            assert shown.get("type", "str") == entry.get("type", "str"), f"{where}{option}"
            for key in ("choices", "default", "elements", "required"):
                assert shown.get(key) == entry.get(key), f"{where}{option}: {key}"
            if "options" in entry:
                compare(shown["suboptions"], entry["options"], f"{where}{option}.")

    compare(doc["options"], module.ARGUMENT_SPEC, "")
