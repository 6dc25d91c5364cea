"""The cgroup backends: the only place that knows which cgroup mode is in use.

Everything outside this package talks to a :class:`~lanco.cgroups.backend.Backend`, which hides whether a task
is tracked in the unified (v2) tree, in lanco's named v1 hierarchy or in scopes of a systemd user manager, and
where its controllers live; :func:`open_namespace_backend` makes the one a namespace's record calls for. This
module imports nothing at the top, so that reading the mode list costs nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lanco.cgroups.backend import Backend


def open_namespace_backend(mode: str, base: str, tracker_kind: str, *, owner_uid: int, owner_gid: int,
                           group_access: bool, mount_named: bool) -> Backend:
    """The backend of a namespace recorded with ``mode``, ``base`` and ``tracker_kind`` (``unified``, ``named`` or
    ``systemd``); ``mount_named``: mount lanco's named hierarchy where it is missing (root)."""
    if tracker_kind == "systemd":
        from lanco.cgroups.systemd import open_systemd_backend

        return open_systemd_backend(mode, base, owner_uid=owner_uid, owner_gid=owner_gid, group_access=group_access)
    from lanco.cgroups.backend import open_backend

    return open_backend(mode, base, tracker_kind, mount_named=mount_named)
