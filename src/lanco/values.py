"""Plain value classes: the equality, repr, hashing and ``asdict`` lanco used dataclasses for.

``dataclasses`` imports ``inspect`` (with ``ast``, ``dis``, ``tokenize``): about 8 ms before ``check`` could
do anything, on every call. A subclass names its fields, in order, in ``_fields``, which are also its
``__slots__``; it annotates them in its body for the type checker and assigns them in an explicit ``__init__``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar


class Value:
    """Fields compared in order with those of an instance of the very same class, as a dataclass does."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()

    def field_values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        # Defining __eq__ alone leaves the class unhashable, as a dataclass that is not frozen.
        if not isinstance(other, Value) or other.__class__ is not self.__class__:
            return NotImplemented
        return self.field_values() == other.field_values()

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__qualname__}({shown})"

    def as_dict(self) -> dict[str, Any]:
        """The fields by name, lists and dicts copied, as ``dataclasses.asdict`` gives them."""
        return {name: _copied(getattr(self, name)) for name in self._fields}


class FrozenValue(Value):
    """A Value that cannot change once made, and so can be hashed. ``__init__`` sets its fields through
    :meth:`_set_fields`."""

    __slots__ = ()

    def _set_fields(self, *values: object) -> None:
        for name, value in zip(self._fields, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a {type(self).__qualname__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a {type(self).__qualname__}")

    def __hash__(self) -> int:
        return hash(self.field_values())


def _copied(value: Any) -> Any:
    if isinstance(value, Value):
        return value.as_dict()
    if isinstance(value, list | tuple):
        return type(value)(_copied(v) for v in value)
    if isinstance(value, dict):
        return {_copied(k): _copied(v) for k, v in value.items()}
    return value
