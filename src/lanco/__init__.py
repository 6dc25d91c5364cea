"""lanco: a daemonless task launcher for Linux built on cgroups.

The public API is loaded lazily so that the command line, which imports this package first, pays only
for what a command needs (``check`` must stay close to a bare interpreter start).
"""

from __future__ import annotations

# typing costs every command several milliseconds at start-up: annotations only (lanco.launch.spawn does the same).
TYPE_CHECKING = False

__version__ = "0.1.0"

__all__ = [
    "AlreadyRunning",
    "CgroupsMissing",
    "CommandNotFound",
    "HostUnreachable",
    "LancoError",
    "LimitUnavailable",
    "Namespace",
    "NamespaceMissing",
    "NotRunning",
    "PermissionDenied",
    "StateError",
    "SystemFailure",
    "Task",
    "TaskRecord",
    "UsageError",
    "__version__",
]

if TYPE_CHECKING:
    from typing import Any

    from lanco.errors import (
        AlreadyRunning,
        CgroupsMissing,
        CommandNotFound,
        HostUnreachable,
        LancoError,
        LimitUnavailable,
        NamespaceMissing,
        NotRunning,
        PermissionDenied,
        StateError,
        SystemFailure,
        UsageError,
    )
    from lanco.namespace import Namespace
    from lanco.state.record import TaskRecord
    from lanco.task import Task

_LAZY = {
    "Namespace": "lanco.namespace",
    "Task": "lanco.task",
    "TaskRecord": "lanco.state.record",
}


def __getattr__(name: str) -> Any:
    # Also asked for every submodule on its first "from lanco import x": that must cost nothing.
    module = _LAZY.get(name) or ("lanco.errors" if name in __all__ else None)
    if module is None:
        raise AttributeError(f"module 'lanco' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
