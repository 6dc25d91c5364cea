"""What the release of a namespace removes from disk once its cgroups are gone: its records and configuration, with
the owner's ids where they are the owner's, and never its logs."""

from __future__ import annotations

import os
import shutil

from lanco import contexts
from lanco.state.config import system_state_dir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lanco.namespace import Namespace


def remove_state(namespace: Namespace) -> None:
    """Records and configuration go; the logs stay, also where they live inside the state directory.
    What a user's namespace holds is removed with the owner's ids; root removes only root's own
    directory of a namespace it initialised (``/var/lib/lanco/NS``, with nothing of the owner's left
    in it but what the owner could not remove, which rmtree removes without following a link)."""
    config = namespace.config
    with namespace.owner_ids():
        _remove_records(config.tasks_dir)
    state, logs = config.state_dir, os.path.normpath(config.log_dir)
    if state == system_state_dir(namespace.name) and os.path.dirname(logs) != os.path.normpath(state):
        shutil.rmtree(state)
        return
    with namespace.owner_ids():
        _remove_own_state(state, logs)


def _remove_records(tasks_dir: str) -> None:
    try:
        entries = os.listdir(tasks_dir)
    except OSError:
        return
    for entry in entries:
        path = os.path.join(tasks_dir, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contexts.suppress(OSError):
                os.unlink(path)


def _remove_own_state(state: str, logs: str) -> None:
    if os.path.dirname(logs) != os.path.normpath(state):
        shutil.rmtree(state)
        return
    for entry in os.listdir(state):
        path = os.path.join(state, entry)
        if os.path.normpath(path) == logs:
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
