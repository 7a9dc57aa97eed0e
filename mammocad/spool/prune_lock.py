"""One retention pass at a time on a spool: an exclusive ``flock`` on ``spool/prune.lock``.

``mammocad spool prune`` (an admin) and the results worker's hourly pass would otherwise both
put back, expire and audit the same folder. A pass holds the lock from start to end; the kernel
drops it when the process ends, a crash included, so it is never left held. A pass that finds
it held does nothing and says so (``prune_skipped``): the other pass is doing the work.

The file is not in ``tmp/``: :meth:`~mammocad.spool.layout.Spool.create` removes old files there,
and a lock file removed while held lets the next pass lock a new one beside it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from mammocad.spool.layout import FILE_MODE, Spool, ensure_dir


@contextmanager
def pass_lock(spool: Spool) -> Iterator[bool]:
    """Hold ``spool/prune.lock`` (exclusive ``flock``) for the block; yield False, holding
    nothing, when another pass has it.

    Opened read-only (``flock`` needs no write access): a worker account that may only read
    the file the service created can still take it. Unlocked explicitly, not only closed: a
    child forked meanwhile (a Celery pool) shares the open file and would keep it locked.
    Raises ``OSError`` when the file can be neither opened nor created (a read-only spool, one
    owned by another account).
    """
    ensure_dir(spool.root)
    fd = os.open(spool.prune_lock, os.O_RDONLY | os.O_CREAT, FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
