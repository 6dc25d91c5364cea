"""lanco.state.config: where namespaces keep their state, and the configuration init records for them."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from lanco.errors import NamespaceMissing, StateError
from lanco.state.config import (
    NamespaceConfig,
    candidate_config_paths,
    list_namespaces,
    load_config,
    system_log_dir,
    system_state_dir,
    user_state_root,
)


def make_config(state_dir: Path, name: str = "testns", **changes: object) -> NamespaceConfig:
    state_dir.mkdir(parents=True, exist_ok=True)
    values: dict[str, object] = dict(name=name, owner_uid=1000, owner_gid=1000, group_access=True, mode="hybrid",
                                     tracker="named", cgroup_base="/lanco", state_dir=str(state_dir),
                                     log_dir=str(state_dir / "log"), created=1700000000.25)
    values.update(changes)
    return NamespaceConfig(**values)  # type: ignore[arg-type]


def system_root() -> Path:
    return Path(os.environ["LANCO_STATE_DIR"])


def test_save_load_round_trip() -> None:
    config = make_config(system_root() / "testns")
    config.save()
    assert load_config("testns") == config
    path = Path(config.config_path)
    assert path == system_root() / "testns" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    text = path.read_text()
    assert text.endswith("}\n")
    assert json.loads(text) == config.as_dict() == {
        "name": "testns", "owner_uid": 1000, "owner_gid": 1000, "group_access": True, "mode": "hybrid",
        "tracker": "named", "cgroup_base": "/lanco", "state_dir": config.state_dir, "log_dir": config.log_dir,
        "created": 1700000000.25, "version": 1}
    assert sorted(os.listdir(path.parent)) == ["config.json"]  # no temp file left


def test_save_replaces() -> None:
    make_config(system_root() / "testns").save()
    make_config(system_root() / "testns", mode="v1").save()
    assert load_config("testns").mode == "v1"


def test_derived_paths() -> None:
    config = make_config(system_root() / "testns")
    assert config.tasks_dir == str(system_root() / "testns" / "tasks")
    assert config.task_state_dir("t1") == str(system_root() / "testns" / "tasks" / "t1")
    assert config.default_log("t1") == str(system_root() / "testns" / "log" / "task-t1.log")


def test_roots_follow_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LANCO_STATE_DIR", str(tmp_path / "s"))
    monkeypatch.setenv("LANCO_LOG_DIR", str(tmp_path / "l"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "x"))
    assert system_state_dir("ns") == str(tmp_path / "s" / "ns")
    assert system_log_dir("ns") == str(tmp_path / "l" / "lanco-ns")
    assert user_state_root() == str(tmp_path / "x" / "lanco")
    assert candidate_config_paths("ns") == [str(tmp_path / "s" / "ns" / "config.json"),
                                            str(tmp_path / "x" / "lanco" / "ns" / "config.json")]


def test_default_roots(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("LANCO_STATE_DIR", "LANCO_LOG_DIR", "XDG_STATE_HOME"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert system_state_dir("ns") == "/var/lib/lanco/ns"
    assert system_log_dir("ns") == "/var/log/lanco-ns"
    assert user_state_root() == str(tmp_path / ".local" / "state" / "lanco")


def test_user_config_is_found() -> None:
    config = make_config(Path(user_state_root()) / "mine", name="mine")
    config.save()
    assert load_config("mine") == config


def test_system_config_wins_over_user_config() -> None:
    system = make_config(system_root() / "testns", mode="v2")
    system.save()
    make_config(Path(user_state_root()) / "testns", mode="v1").save()
    assert load_config("testns") == system


def test_missing() -> None:
    with pytest.raises(NamespaceMissing, match=r"^namespace nope should be created with init command$"):
        load_config("nope")


@pytest.mark.parametrize("content", [
    "{not json",
    "",
    "[]",
    "null",
    '"text"',
    '{"name": "testns"}',
])
def test_damaged(content: str) -> None:
    path = system_root() / "testns" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(StateError) as caught:
        load_config("testns")
    assert caught.value.message.startswith(f"the configuration of namespace testns is damaged: {path}: ")


@pytest.mark.parametrize(("field", "value", "why"), [
    ("owner_uid", "0", "owner_uid is str, not int"),
    ("owner_uid", True, "owner_uid is bool, not int"),
    ("group_access", 1, "group_access is int, not bool"),
    ("state_dir", 1, "state_dir is int, not str"),
    ("mode", None, "mode is NoneType, not str"),
    ("created", "today", "created is str, not number"),
])
def test_damaged_by_a_field_of_the_wrong_type(field: str, value: object, why: str) -> None:
    """A whole configuration with one field of the wrong type: refused in one message, not used half way."""
    config = make_config(system_root() / "testns")
    Path(config.config_path).write_text(json.dumps({**config.as_dict(), field: value}))
    with pytest.raises(StateError) as caught:
        load_config("testns")
    assert caught.value.message == \
        f"the configuration of namespace testns is damaged: {config.config_path}: {why}"


def test_a_whole_configuration_of_the_right_types_is_read() -> None:
    config = make_config(system_root() / "testns")
    Path(config.config_path).write_text(json.dumps({**config.as_dict(), "created": 5}))
    assert load_config("testns").created == 5


def test_damaged_by_an_unknown_key() -> None:
    config = make_config(system_root() / "testns")
    data = {**config.as_dict(), "surprise": 1}
    Path(config.config_path).write_text(json.dumps(data))
    with pytest.raises(StateError, match="surprise"):
        load_config("testns")


def test_damaged_by_bytes_that_are_not_utf8() -> None:
    path = system_root() / "testns" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"name": "\xff"}')
    with pytest.raises(StateError, match="is damaged"):
        load_config("testns")


def test_a_damaged_system_config_is_not_masked_by_a_user_one() -> None:
    path = system_root() / "testns" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text("{")
    make_config(Path(user_state_root()) / "testns").save()
    with pytest.raises(StateError, match=str(path)):
        load_config("testns")


def test_list_namespaces() -> None:
    assert list_namespaces() == []
    make_config(system_root() / "zeta", name="zeta").save()
    make_config(system_root() / "alpha", name="alpha").save()
    make_config(Path(user_state_root()) / "mine", name="mine").save()
    make_config(Path(user_state_root()) / "alpha", name="alpha").save()  # in both roots: listed once
    (system_root() / "not-initialised").mkdir()
    (system_root() / "stray-file").write_text("")
    (system_root() / "dir-config" / "config.json").mkdir(parents=True)
    assert list_namespaces() == ["alpha", "mine", "zeta"]


def test_list_namespaces_without_roots(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LANCO_STATE_DIR", str(tmp_path / "absent"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "absent-too"))
    assert list_namespaces() == []
