"""lanco.contexts against contextlib: the same exceptions pass, the same are swallowed, in the same order."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lanco import contexts


class Boom(Exception):
    pass


def outcome(block: Callable[[], Any]) -> str:
    try:
        return f"returned {block()!r}"
    except BaseException as exc:  # every outcome is compared, KeyboardInterrupt too
        context = type(exc.__context__).__name__ if exc.__context__ is not None else "-"
        return f"raised {type(exc).__name__} (context {context})"


@pytest.mark.parametrize("raising", [None, OSError, KeyError, Boom, KeyboardInterrupt])
def test_suppress(raising: type[BaseException] | None) -> None:
    def block(module: Any) -> Callable[[], str]:
        def run() -> str:
            with module.suppress(OSError, KeyError):
                if raising is not None:
                    raise raising()
            return "after"
        return run

    assert outcome(block(contexts)) == outcome(block(contextlib))


@pytest.mark.parametrize("raising", [None, Boom, ValueError])
@pytest.mark.parametrize("generator", ["plain", "finally", "swallows", "reraises_other", "yields_twice"])
def test_contextmanager(generator: str, raising: type[BaseException] | None) -> None:
    log: list[str] = []

    def make(module: Any) -> Callable[[], Any]:
        @module.contextmanager  # type: ignore[untyped-decorator]  # contextlib or lanco.contexts
        def managed() -> Iterator[str]:
            log.append("enter")
            if generator == "plain":
                yield "value"
            elif generator == "finally":
                try:
                    yield "value"
                finally:
                    log.append("cleanup")
            elif generator == "swallows":
                try:
                    yield "value"
                except Boom:
                    log.append("swallowed")
            elif generator == "reraises_other":
                try:
                    yield "value"
                except Exception as exc:
                    raise RuntimeError("other") from exc
            else:
                yield "value"
                yield "again"

        def run() -> Any:
            with managed() as value:
                log.append(value)
                if raising is not None:
                    raise raising()
            return "after"

        assert managed.__name__ == "managed"
        return run

    ours = outcome(make(contexts))
    ours_log = list(log)
    log.clear()
    theirs = outcome(make(contextlib))
    assert (ours, ours_log) == (theirs, log)


@pytest.mark.parametrize("raising", [None, Boom])
@pytest.mark.parametrize("inner", ["quiet", "swallows", "raises"])
def test_exit_stack(inner: str, raising: type[BaseException] | None) -> None:
    log: list[str] = []

    class Recorder:
        def __init__(self, name: str, behaviour: str = "quiet") -> None:
            self.name, self.behaviour = name, behaviour

        def __enter__(self) -> str:
            log.append(f"enter {self.name}")
            return self.name

        def __exit__(self, kind: Any, value: Any, tb: Any) -> bool:
            log.append(f"exit {self.name} seeing {kind.__name__ if kind else None}")
            if self.behaviour == "raises":
                raise KeyError(self.name)
            return self.behaviour == "swallows"

    def make(module: Any) -> Callable[[], Any]:
        def run() -> Any:
            with module.ExitStack() as stack:
                assert stack.enter_context(Recorder("outer")) == "outer"
                stack.enter_context(Recorder("inner", inner))
                if raising is not None:
                    raise raising()
            return "after"
        return run

    ours = outcome(make(contexts))
    ours_log = list(log)
    log.clear()
    assert (ours, ours_log) == (outcome(make(contextlib)), log)
