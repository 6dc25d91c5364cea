"""Acting as a namespace's owner when root works in someone else's namespace.

A user's namespace keeps its records and logs in directories that user owns, and that user may replace any
file there with a symbolic link at any moment. Rather than guard every open, root does the work of such a
namespace with the owner's effective ids: whatever a planted link points to, root can then write no more than
the owner could. The effective ids are per process (glibc switches every thread), so a root daemon using the
API should not work in two users' namespaces from two threads at once.
"""

from __future__ import annotations

import contextlib
import os
import pwd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator


def user_name(uid: int) -> str:
    """The account name of ``uid`` for messages, or the number where there is none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def owner_groups(uid: int, gid: int) -> list[int]:
    try:
        return os.getgrouplist(pwd.getpwuid(uid).pw_name, gid)
    except KeyError:
        return [gid]


@contextlib.contextmanager
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


def become_owner_for_good(owner: tuple[int, int]) -> None:
    """In a child about to exec: drop root entirely (real, effective and saved ids) for ``owner``."""
    uid, gid = owner
    os.setgroups(owner_groups(uid, gid))
    os.setgid(gid)
    os.setuid(uid)
