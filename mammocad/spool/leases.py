"""Analysis leases: how the reconciler tells a running analysis from a dead worker's.

With late acknowledgement, an image whose GPU worker died stays "unacknowledged" in
Redis until the visibility timeout (twice ``worker.time_limit_s``: half an hour). The
spool knows sooner: an analysis holds ``studies/<study>/results/<sop>.lease`` and a
thread of its process touches the file every ``lease_s / 6``. A lease older than
``lease_s`` belongs to a process that is gone (killed, out of memory, its machine off),
and the reconciler queues the image again (docs/FAULTS.md). The result file, not the
lease, stays the done marker: a stale lease only ever causes a duplicate task, which
the idempotent ``analyze_image`` skips.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mammocad.spool.layout import Spool, atomic_write_bytes


def lease_path(spool: Spool, study_uid: str, sop_uid: str) -> Path:
    return spool.result_path(study_uid, sop_uid).with_suffix(".lease")


def lease_age(path: Path, now: float | None = None) -> float | None:
    """Seconds since the lease was last refreshed; None when there is no lease."""
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    return max(0.0, (now if now is not None else time.time()) - mtime)


@contextmanager
def held(path: Path, tmp_dir: Path, lease_s: float) -> Iterator[None]:
    """Hold the lease at ``path`` while the body runs; refresh it from a daemon thread."""
    who = f"{socket.gethostname()} pid {os.getpid()} since {time.time():.0f}\n".encode()
    atomic_write_bytes(path, who, tmp_dir)
    stop = threading.Event()

    def refresh() -> None:
        while not stop.wait(lease_s / 6):
            try:
                os.utime(path)
            except OSError:  # removed by a reconciler that thought us dead: write it again
                try:
                    atomic_write_bytes(path, who, tmp_dir)
                except OSError:
                    pass

    thread = threading.Thread(target=refresh, name="analysis-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        path.unlink(missing_ok=True)
