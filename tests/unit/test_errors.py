"""OS errors reach API callers as lanco's own errors, mapped in one place (lanco.errors), and every public method
of Namespace and Task goes through that place."""

from __future__ import annotations

import errno
import os

import pytest

from lanco.errors import (
    LancoError,
    PermissionDenied,
    StateError,
    SystemFailure,
    as_lanco_error,
    maps_os_errors,
)
from lanco.namespace import Namespace
from lanco.task import Task
from tests.unit.conftest import TASK

# Public methods that do no I/O of their own, so that no OSError can come from them.
_PURE = {
    (Namespace, "authorize"), (Namespace, "acting_for_owner"), (Namespace, "owner_ids"), (Namespace, "task"),
    (Task, "__init__"), (Task, "state_dir"), (Task, "owner_ids"), (Task, "record_gone"),
}


def _public_callables() -> list[tuple[type, str, object]]:
    found: list[tuple[type, str, object]] = []
    for cls in (Namespace, Task):
        for name, member in vars(cls).items():
            if name.startswith("_") and name != "__init__":
                continue
            if isinstance(member, property):
                found.append((cls, name, member.fget))
            elif isinstance(member, (classmethod, staticmethod)):
                found.append((cls, name, member.__func__))
            elif callable(member):
                found.append((cls, name, member))
    return found


@pytest.mark.parametrize(("cls", "name", "function"), _public_callables(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_public_method_maps_os_errors(cls: type, name: str, function: object) -> None:
    if (cls, name) in _PURE:
        assert not getattr(function, "maps_os_errors", False), f"{cls.__name__}.{name} is listed as pure"
        return
    assert getattr(function, "maps_os_errors", False), \
        f"{cls.__name__}.{name} can let an OSError out: decorate it with lanco.errors.maps_os_errors"


def test_the_kernel_refusing_a_read_is_a_lanco_error_with_its_code(namespace: Namespace,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    task = Task(namespace, TASK)

    def broken(ns: str, name: str) -> list[int]:
        raise OSError(errno.EIO, os.strerror(errno.EIO), "/sys/fs/cgroup/x/cgroup.procs")

    monkeypatch.setattr(namespace.backend, "pids", broken)
    with pytest.raises(SystemFailure) as caught:
        task.pids()
    assert caught.value.errno == errno.EIO
    assert caught.value.message == "Input/output error: /sys/fs/cgroup/x/cgroup.procs"
    assert isinstance(caught.value.__cause__, OSError)


def test_a_denial_is_permission_denied(namespace: Namespace, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(ns: str, name: str) -> list[int]:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/x")

    monkeypatch.setattr(namespace.backend, "pids", denied)
    with pytest.raises(PermissionDenied, match=r"^Permission denied: /x$"):
        Task(namespace, TASK).pids()


def test_lancos_own_errors_and_a_broken_pipe_pass_unchanged() -> None:
    refusal = StateError("the record of task t is damaged")

    @maps_os_errors
    def refuses() -> None:
        raise refusal

    @maps_os_errors
    def writes_to_a_closed_pipe() -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    with pytest.raises(StateError) as caught:
        refuses()
    assert caught.value is refusal
    with pytest.raises(BrokenPipeError):
        writes_to_a_closed_pipe()
    assert refuses.__name__ == "refuses"


def test_the_mapping_keeps_the_message_of_the_cli() -> None:
    rename = OSError(errno.EXDEV, os.strerror(errno.EXDEV), "/a", None, "/b")
    failure = as_lanco_error(rename)
    assert type(failure) is SystemFailure and failure.message == "Invalid cross-device link: /a -> /b"
    assert failure.exit_code == 1
    assert as_lanco_error(ValueError("x")).exit_code == 70
    assert isinstance(as_lanco_error(PermissionError(errno.EPERM, "Operation not permitted")), LancoError)
