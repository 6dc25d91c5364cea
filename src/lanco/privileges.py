"""Acting as a namespace's owner when root works in someone else's namespace.

A user's namespace keeps its records and logs in directories that user owns, and that user may replace any
file there with a symbolic link at any moment. Rather than guard every open, root does the work of such a
namespace with the owner's effective ids: whatever a planted link points to, root can then read and write no
more than the owner could. The effective ids are per process (glibc switches every thread), so a root daemon
using the API should not work in two users' namespaces from two threads at once.

There is one way in: :func:`with_owner_ids`, the decorator of every method of a namespace or a task that opens a
file of the namespace (records, specs, results, markers, locks, logs, hooks), entering the object's
``owner_ids()`` (``lanco.namespace.Namespace.owner_ids``: the cgroup backend opened while still root, then
:func:`acting_as`). A method that reads only the kernel's cgroup files is left as root (cgroupfs holds no link
and no file a user can plant); ``tests/unit/test_privileges.py`` keeps the list of them.
"""

from __future__ import annotations

import os
import pwd

from lanco.contexts import contextmanager, copy_identity
from lanco.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager
    from typing import Concatenate, ParamSpec, Protocol, TypeVar

    class OwnerScoped(Protocol):
        def owner_ids(self) -> AbstractContextManager[None]: ...

    _Self = TypeVar("_Self", bound=OwnerScoped)
    _Params = ParamSpec("_Params")
    _Result = TypeVar("_Result")

OWNER_IDS_MARK = "__lanco_owner_ids__"
"""Set on every method :func:`with_owner_ids` wraps, so that a test can tell which ones do."""


def user_name(uid: int) -> str:
    """The account name of ``uid`` for messages, or the number where there is none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


_GROUPS: dict[tuple[int, int], list[int]] = {}


def owner_groups(uid: int, gid: int) -> list[int]:
    # Cached: ls of a user's namespace by root switches ids once per task, and each lookup reads /etc/group.
    groups = _GROUPS.get((uid, gid))
    if groups is None:
        try:
            groups = os.getgrouplist(pwd.getpwuid(uid).pw_name, gid)
        except KeyError:
            groups = [gid]
        _GROUPS[(uid, gid)] = groups
    return groups


@contextmanager
def acting_as(owner: tuple[int, int] | None) -> Iterator[None]:
    """Switch the effective uid, gid and groups to ``owner`` (when given) and back to root afterwards."""
    if owner is None or os.geteuid() != 0:
        yield
        return
    uid, gid = owner
    saved_groups = os.getgroups()
    saved_gid = os.getegid()
    os.setgroups(owner_groups(uid, gid))
    os.setegid(gid)
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(saved_gid)
        os.setgroups(saved_groups)


def with_owner_ids(method: Callable[Concatenate[_Self, _Params], _Result]
                   ) -> Callable[Concatenate[_Self, _Params], _Result]:
    """Run ``method`` inside ``self.owner_ids()``: with the namespace owner's effective ids when root works in
    someone else's namespace, unchanged otherwise. Nested calls switch once (the inner ones find the ids
    switched already)."""

    def acting(self: _Self, /, *args: _Params.args, **kwargs: _Params.kwargs) -> _Result:
        with self.owner_ids():
            return method(self, *args, **kwargs)

    copy_identity(method, acting)
    setattr(acting, OWNER_IDS_MARK, True)
    return acting


def become_owner_for_good(owner: tuple[int, int]) -> None:
    """In a child about to exec: drop root entirely (real, effective and saved ids) for ``owner``."""
    uid, gid = owner
    os.setgroups(owner_groups(uid, gid))
    os.setgid(gid)
    os.setuid(uid)


def resolve_owner(user: str | None, group: str | None) -> tuple[int, int, bool]:
    """The owner ids ``init -u USER -g GROUP`` names (default: the caller's), and whether the group has access."""
    try:
        entry = pwd.getpwnam(user) if user is not None else pwd.getpwuid(os.getuid())
    except KeyError:
        if user is not None and user.isdigit():
            return int(user), resolve_group(group, int(user)), group is not None
        raise UsageError(f"unknown user {user!r}") from None
    return entry.pw_uid, resolve_group(group, entry.pw_gid), group is not None


def resolve_group(group: str | None, default: int) -> int:
    import grp  # here: only init names a group

    if group is None:
        return default
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if group.isdigit():
            return int(group)
        raise UsageError(f"unknown group {group!r}") from None
