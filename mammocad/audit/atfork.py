"""Hold an object's locks across ``os.fork``, so a child never inherits one held by a thread
it does not have.

A forked child has only the thread that called ``fork``: a lock another thread held at that
instant stays held in the child for good, and the child's first use of it hangs. The audit
trail (mammocad/audit/trail.py) is made before Celery's prefork pool forks and used by
association threads and its sender while the pool forks, so each of its locks a child uses
is taken before the fork and released after it, in the parent and in the child.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar


class _Lock(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


T = TypeVar("T")


def hold_across_fork(owner: T, locks: Callable[[T], Sequence[_Lock]], wait_s: float,
                     in_child: Callable[[T], None] | None = None) -> None:
    """Make ``os.fork`` take ``locks(owner)``, in that order, and release them after the fork;
    then, in the child only, call ``in_child(owner)`` (its only thread: it takes no lock).

    ``locks`` names them anew at each fork (an attribute may be replaced) and gives them in
    the order the owner's threads nest them, so the fork cannot deadlock with one of them.
    Each is waited for at most ``wait_s``: one that is not taken by then is left as it is
    (the fork goes on; a child may then hang on it, as before this hook). The owner is held
    weakly: an owner that is gone costs a dead reference.
    """
    ref = weakref.ref(owner)
    taken = threading.local()  # per forking thread: the locks its before-hook took

    def before() -> None:
        held: list[_Lock] = []
        obj = ref()
        if obj is not None:
            for lock in locks(obj):
                if lock.acquire(timeout=wait_s):
                    held.append(lock)
        taken.held = held

    def after() -> None:
        held: list[_Lock] = getattr(taken, "held", [])
        taken.held = []
        for lock in reversed(held):
            lock.release()

    def after_in_child() -> None:
        after()
        obj = ref()
        if in_child is not None and obj is not None:
            in_child(obj)

    os.register_at_fork(before=before, after_in_parent=after, after_in_child=after_in_child)
