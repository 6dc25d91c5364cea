"""A task's labels (``--label KEY=VALUE``) and description (``--description TEXT``): their rules, their parsing
for ``run`` and the API alike, and the selectors that pick tasks by them (``ls``, ``stop``, ``wait --label``,
``Namespace.tasks(labels=...)``, and ``events --label``).

The rules keep a label something every view can show on one line and every tool can pass on: a key is 1 to 63
characters of ``A-Z a-z 0-9 . _ / -``, starting and ending with a letter or a digit (as Kubernetes' label names,
the prefix included); a value is 0 to 255 characters of UTF-8 text with no control character; at most 32
labels, each key once. A description is at most 256 characters, with no control character either.

The characters are checked by hand rather than with ``re``: the views and ``stop`` match selectors, and ``re``
would be a third of what they import.
"""

from __future__ import annotations

from _collections_abc import Mapping

from lanco.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

MAX_KEY_LENGTH = 63
MAX_VALUE_LENGTH = 255
MAX_LABELS = 32
MAX_DESCRIPTION_LENGTH = 256
KEY_RULE = (f"1 to {MAX_KEY_LENGTH} characters of A-Z a-z 0-9 . _ / -, starting and ending with a letter or a "
            "digit")
VALUE_RULE = f"0 to {MAX_VALUE_LENGTH} characters of UTF-8 text, no control characters"
_KEY_ENDS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_KEY_CHARACTERS = _KEY_ENDS | frozenset("._/-")


def key_problem(key: str) -> str:
    """Why ``key`` is no label key ("" when it is one)."""
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not set(key) <= _KEY_CHARACTERS or key[0] not in _KEY_ENDS or \
            key[-1] not in _KEY_ENDS:
        return f"a key is {KEY_RULE}"
    return ""


def _control_character(text: str) -> str | None:
    """What breaks the rule first in ``text``, in words: a control character (C0, DEL, C1, and the line and
    paragraph separators that would break a view's line) as it is escaped, or a byte that is not UTF-8 (a word
    of the command line decodes such a byte to a lone surrogate, as os.fsdecode does)."""
    for character in text:
        code = ord(character)
        if 0xdc80 <= code < 0xdd00:
            return f"the byte \\x{code - 0xdc00:02x}, which is not UTF-8"
        if 0xd800 <= code < 0xe000:
            return f"a lone surrogate \\u{code:04x}, which is not UTF-8"
        if code < 0x20 or 0x7f <= code < 0xa0 or code in (0x2028, 0x2029):
            return repr(character)[1:-1]
    return None


def value_problem(value: str) -> str:
    """Why ``value`` is no label value ("" when it is one)."""
    if len(value) > MAX_VALUE_LENGTH:
        return f"a value is {VALUE_RULE} (this one has {len(value)})"
    if (found := _control_character(value)) is not None:
        return f"a value is {VALUE_RULE} (this one has {found})"
    return ""


def _split(text: str, what: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise UsageError(f"invalid {what} {text!r}: expected KEY=VALUE")
    return key, value


def _items(raw: object, what: str) -> list[tuple[str, str]]:
    """(key, value) pairs from a mapping, one ``KEY=VALUE`` string or an iterable of them."""
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, str):
        pairs = [_split(raw, what)]
    else:
        try:
            words = list(raw)  # type: ignore[call-overload]
        except TypeError:
            raise UsageError(f"invalid {what}s {raw!r}: expected a mapping or KEY=VALUE strings") from None
        pairs = [_split(word, what) if isinstance(word, str) else (word, None) for word in words]
    for key, value in pairs:
        if not isinstance(key, str) or not isinstance(value, str):
            raise UsageError(f"invalid {what} {key!r}: keys and values are strings")
    return pairs


def parse_labels(raw: Mapping[str, str] | Iterable[str] | str | None) -> dict[str, str]:
    """The labels of a run from ``--label`` words or the API's mapping, checked against the rules; the first
    label that breaks one raises UsageError naming it and the rule."""
    if raw is None:
        return {}
    labels: dict[str, str] = {}
    for key, value in _items(raw, "label"):
        if problem := key_problem(key):
            raise UsageError(f"invalid label {_shown(key)}: {problem}")
        if problem := value_problem(value):
            raise UsageError(f"invalid label {key}: {problem}")
        if key in labels:
            raise UsageError(f"invalid label {key}: given twice (a key is given once)")
        labels[key] = value
        if len(labels) > MAX_LABELS:
            raise UsageError(f"too many labels: at most {MAX_LABELS}")
    return labels


def parse_description(raw: object) -> str | None:
    """The description of a run, checked: at most 256 characters, no control characters. None: none given."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise UsageError(f"invalid description {raw!r}: a string")
    if len(raw) > MAX_DESCRIPTION_LENGTH:
        raise UsageError(f"invalid description: at most {MAX_DESCRIPTION_LENGTH} characters (this one has "
                         f"{len(raw)})")
    if (found := _control_character(raw)) is not None:
        raise UsageError(f"invalid description: UTF-8 text, no control characters (this one has {found})")
    return raw


def parse_selectors(raw: Mapping[str, str] | Iterable[str] | str | None) -> dict[str, str]:
    """Selectors (``--label KEY=VALUE``, each to be matched exactly; several must all match) from words or a
    mapping. A key given twice with two values could match nothing, so it is refused as ``run`` refuses it."""
    return parse_labels(raw)


def matches(labels: Mapping[str, str], selectors: Mapping[str, str]) -> bool:
    """True when ``labels`` has every selector's key with the selector's value (no selectors: every task)."""
    return all(labels.get(key) == value for key, value in selectors.items())


def spec_labels(spec: Mapping[str, object] | None) -> dict[str, str]:
    """The labels a task's spec.json holds; {} for a spec written before labels existed, or damaged."""
    labels = None if spec is None else spec.get("labels")
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                               for k, v in labels.items()):
        return {}
    return dict(labels)


def spec_description(spec: Mapping[str, object] | None) -> str | None:
    """The description a task's spec.json holds; None when there is none, or it is damaged."""
    description = None if spec is None else spec.get("description")
    return description if isinstance(description, str) else None


def format_labels(labels: Mapping[str, str]) -> str:
    """``k=v,k2=v2`` in key order, as ``ls -l`` and ``status`` show them; "" for none."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _shown(key: str) -> str:
    return repr(key) if key == "" or _control_character(key) is not None or " " in key else key
