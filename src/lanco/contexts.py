"""The three kinds of ``with`` lanco needs, without contextlib: ``suppress``, ``contextmanager`` and ``ExitStack``.

contextlib loads collections and functools (with operator, keyword, reprlib and types): 4 to 9 ms natively, on
hot paths (check, stop, run) whose own work takes less, and some 60 ms in the project's emulated guest, where
``lanco check`` is measured against ``systemctl --user is-active``. These do what contextlib's do for the way
lanco uses them (exceptions pass through, or are swallowed, exactly as there); tests/unit/test_contexts.py holds
them to contextlib's behaviour.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import TracebackType
    from typing import Any, ParamSpec, TypeVar

    _Params = ParamSpec("_Params")
    _Value = TypeVar("_Value")


class suppress:
    """``with suppress(OSError): ...`` ends the block quietly at one of the exceptions given."""

    __slots__ = ("_exceptions",)

    def __init__(self, *exceptions: type[BaseException]) -> None:
        self._exceptions = exceptions

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> bool:
        return kind is not None and issubclass(kind, self._exceptions)


class GeneratorContext:
    """The context manager :func:`contextmanager` makes of one call of a generator function."""

    __slots__ = ("_generator",)

    def __init__(self, generator: Iterator[Any]) -> None:
        self._generator = generator

    def __enter__(self) -> Any:
        try:
            return next(self._generator)
        except StopIteration:
            raise RuntimeError("generator didn't yield") from None

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> bool:
        if kind is None:
            try:
                next(self._generator)
            except StopIteration:
                return False
            raise RuntimeError("generator didn't stop")
        if value is None:
            value = kind()
        try:
            self._generator.throw(value)  # type: ignore[attr-defined]  # an Iterator that is a generator
        except StopIteration as stopped:
            return stopped is not value  # the generator swallowed the exception
        except BaseException as raised:
            if raised is value:
                raised.__traceback__ = traceback
                return False
            raise
        raise RuntimeError("generator didn't stop after throw()")


def contextmanager(function: Callable[_Params, Iterator[_Value]]) -> Callable[_Params, GeneratorContext]:
    """As contextlib.contextmanager: a generator function yielding once becomes a context manager's factory."""

    def factory(*args: _Params.args, **kwargs: _Params.kwargs) -> GeneratorContext:
        return GeneratorContext(function(*args, **kwargs))

    copy_identity(function, factory)
    return factory


class ExitStack:
    """``with ExitStack() as stack: stack.enter_context(cm)``: every entered context is exited, the last first,
    each seeing the exception the ones after it left (or none), as contextlib.ExitStack does."""

    __slots__ = ("_exits",)

    def __init__(self) -> None:
        self._exits: list[Callable[[Any, Any, Any], Any]] = []

    def enter_context(self, context: Any) -> Any:
        kind = type(context)
        value = kind.__enter__(context)
        self._exits.append(lambda k, v, t: kind.__exit__(context, k, v, t))
        return value

    def __enter__(self) -> ExitStack:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> bool | None:
        # bool | None, as typeshed types contextlib's: to a type checker, a with block that may not swallow.
        pending = value
        suppressed = False
        while self._exits:
            exit_ = self._exits.pop()
            try:
                if exit_(type(pending) if pending is not None else None, pending,
                         pending.__traceback__ if pending is not None else None):
                    suppressed, pending = True, None
            except BaseException as raised:
                if pending is not None and raised is not pending and raised.__context__ is None:
                    raised.__context__ = pending
                suppressed, pending = False, raised
        if pending is not None and pending is not value:
            raise pending
        return suppressed and pending is None


def copy_identity(original: Callable[..., Any], wrapper: Callable[..., Any]) -> None:
    """What functools.wraps copies: the wrapper answers to the original's name and documentation."""
    for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
        try:
            setattr(wrapper, attribute, getattr(original, attribute))
        except AttributeError:
            pass
    wrapper.__dict__.update(getattr(original, "__dict__", {}))
    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
