"""Where a namespace keeps its state and logs, and the configuration ``init`` records for it."""

from __future__ import annotations

import os

from lanco.errors import NamespaceMissing, StateError
from lanco.state import jsonread
from lanco.values import Value

CONFIG_VERSION = 1
DEFAULT_CGROUP_BASE = "/lanco"


def system_state_root() -> str:
    return os.environ.get("LANCO_STATE_DIR") or "/var/lib/lanco"


def system_log_root() -> str:
    return os.environ.get("LANCO_LOG_DIR") or "/var/log"


def user_state_root() -> str:
    xdg = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(xdg, "lanco")


class NamespaceConfig(Value):
    """What ``init`` decided for a namespace; every later command obeys it rather than re-detecting."""

    _fields = ("name", "owner_uid", "owner_gid", "group_access", "mode", "tracker", "cgroup_base", "state_dir",
               "log_dir", "created", "version")
    __slots__ = _fields
    name: str
    owner_uid: int
    owner_gid: int
    group_access: bool
    mode: str
    tracker: str
    cgroup_base: str
    state_dir: str
    log_dir: str
    created: float
    version: int

    def __init__(self, name: str, owner_uid: int, owner_gid: int, group_access: bool, mode: str, tracker: str,
                 cgroup_base: str, state_dir: str, log_dir: str, created: float,
                 version: int = CONFIG_VERSION) -> None:
        self.name = name
        self.owner_uid = owner_uid
        self.owner_gid = owner_gid
        self.group_access = group_access
        self.mode = mode
        self.tracker = tracker
        self.cgroup_base = cgroup_base
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.created = created
        self.version = version

    @property
    def tasks_dir(self) -> str:
        return os.path.join(self.state_dir, "tasks")

    def task_state_dir(self, task: str) -> str:
        return os.path.join(self.tasks_dir, task)

    def default_log(self, task: str) -> str:
        return os.path.join(self.log_dir, f"task-{task}.log")

    @property
    def config_path(self) -> str:
        return os.path.join(self.state_dir, "config.json")

    def save(self) -> None:
        import json

        tmp = self.config_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.as_dict(), f, indent=2, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.config_path)


def system_state_dir(ns: str) -> str:
    return os.path.join(system_state_root(), ns)


def system_log_dir(ns: str) -> str:
    return os.path.join(system_log_root(), f"lanco-{ns}")


def candidate_config_paths(ns: str) -> list[str]:
    return [os.path.join(system_state_root(), ns, "config.json"),
            os.path.join(user_state_root(), ns, "config.json")]


def load_config(ns: str) -> NamespaceConfig:
    for path in candidate_config_paths(ns):
        try:
            with open(path, encoding="utf-8") as f:
                data = jsonread.loads(f.read())
                file_owner = os.fstat(f.fileno()).st_uid
        except FileNotFoundError:
            continue
        except PermissionError as exc:
            raise StateError(f"cannot read the configuration of namespace {ns}: {path}: permission denied") \
                from exc
        except (OSError, ValueError) as exc:
            raise StateError(f"the configuration of namespace {ns} is damaged: {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise StateError(f"the configuration of namespace {ns} is damaged: {path}: not an object")
        try:
            config = NamespaceConfig(**data)
        except TypeError as exc:
            raise StateError(f"the configuration of namespace {ns} is damaged: {path}: {exc}") from exc
        if problem := _shape_problem(config):
            raise StateError(f"the configuration of namespace {ns} is damaged: {path}: {problem}")
        if file_owner not in (0, config.owner_uid):
            # Whoever wrote the configuration chose its owner and its paths: only root or that owner may have.
            raise StateError(f"the configuration of namespace {ns} is not to be trusted: {path} belongs to uid "
                             f"{file_owner}, neither root nor the owner it names (uid {config.owner_uid})")
        return config
    raise NamespaceMissing(f"namespace {ns} should be created with init command")


_CONFIG_SHAPE: dict[str, type | tuple[type, ...]] = {
    "name": str, "owner_uid": int, "owner_gid": int, "group_access": bool, "mode": str, "tracker": str,
    "cgroup_base": str, "state_dir": str, "log_dir": str, "created": (int, float), "version": int}


def _shape_problem(config: NamespaceConfig) -> str:
    """The first field of a configuration that has the wrong type (a hand-edited file): refused, never half used."""
    for key, types in _CONFIG_SHAPE.items():
        value = getattr(config, key)
        if not isinstance(value, types) or (isinstance(value, bool) and types is not bool):
            return f"{key} is {type(value).__name__}, not {getattr(types, '__name__', 'number')}"
    return ""


def system_namespaces() -> list[str]:
    """The namespaces root initialised: those with a configuration in the system state root."""
    root = system_state_root()
    try:
        entries = os.listdir(root)
    except OSError:
        return []
    return sorted(e for e in entries if os.path.isfile(os.path.join(root, e, "config.json")))


def list_namespaces() -> list[str]:
    names: set[str] = set()
    for root in (system_state_root(), user_state_root()):
        try:
            entries = os.listdir(root)
        except OSError:
            continue
        names.update(e for e in entries if os.path.isfile(os.path.join(root, e, "config.json")))
    return sorted(names)
