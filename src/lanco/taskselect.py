"""Tasks picked by their labels: ``Namespace.tasks(labels=...)``, and ``ls``, ``stop`` and ``wait --label``.

A task's labels are those of its record (spec.json), read with the owner's ids where root looks into someone
else's namespace. A task whose record is gone or damaged has no labels that could be read, so no selector
matches it: a stop or a wait by label never reaches a task nobody can tell is one of those meant.
"""

from __future__ import annotations

from lanco.errors import StateError
from lanco.options.labels import matches, parse_selectors, spec_labels
from lanco.state.record import read_spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from lanco.task import Task


def labelled(tasks: list[Task], selectors: Mapping[str, str] | Iterable[str] | str) -> list[Task]:
    """The tasks of ``tasks`` (of one namespace) whose labels hold every selector, in their order."""
    wanted = parse_selectors(selectors)
    if not tasks:
        return []
    chosen = []
    with tasks[0].owner_ids():
        for task in tasks:
            try:
                spec = read_spec(task.state_dir)
            except StateError:
                continue
            if matches(spec_labels(spec), wanted):
                chosen.append(task)
    return chosen
