"""One retention pass at a time on a spool: an exclusive ``flock`` on ``spool/prune.lock``.

``mammocad spool prune`` (an admin) and the results worker's hourly pass would otherwise both
put back, expire and audit the same folder. A pass holds the lock from start to end; the kernel
drops it when the process ends, a crash included, so it is never left held. A pass that finds
it held does nothing and says so (``prune_skipped``): the other pass is doing the work.

The file is not in ``tmp/``: :meth:`~mammocad.spool.layout.Spool.create` removes old files there,
and a lock file removed while held lets the next pass lock a new one beside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mammocad.spool.layout import Spool, ensure_dir, exclusive_lock


@contextmanager
def pass_lock(spool: Spool) -> Iterator[bool]:
    """Hold ``spool/prune.lock`` for the block; yield False, holding nothing, when another pass
    has it. Read-only: a worker account that may only read the file the service created can
    still take it. Raises ``OSError`` when the file can be neither opened nor created (a
    read-only spool, one owned by another account)."""
    ensure_dir(spool.root)
    with exclusive_lock(spool.prune_lock, read_only=True) as locked:
        yield locked
