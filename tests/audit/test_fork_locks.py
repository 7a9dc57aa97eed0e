"""A fork while another thread holds one of the trail's locks leaves the child able to audit.

Celery's prefork pool forks while association-like threads may be inside the trail: one
starting the sender holds ``_lock``, one counting a drop holds ``_counts_lock``. The fork
hook waited only for the sender's write lock, so the child inherited such a lock held by a
thread it does not have, and its first ``emit`` (``_lock``) or its ``close`` (``_counts_lock``)
hung for good. A helper thread here holds the lock until a fork hook asks for it.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from mammocad.audit import events
from mammocad.audit.events import Identity
from mammocad.audit.trail import AuditTrail

ME = Identity.make("MAMMOCAD")


class _Wanted:
    """A lock that sets ``wanted`` when another acquire finds it held."""

    def __init__(self, wanted: threading.Event) -> None:
        self._lock, self._wanted = threading.Lock(), wanted

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(blocking=False):
            return True
        self._wanted.set()
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


@pytest.mark.parametrize("name", ["_lock", "_counts_lock"])
def test_a_child_forked_while_a_thread_holds_a_trail_lock_audits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    audit = tmp_path / "audit.log"
    trail = AuditTrail(ME, audit)
    held, wanted = threading.Event(), threading.Event()
    lock = _Wanted(wanted)
    monkeypatch.setattr(trail, name, lock)

    def hold() -> None:
        with lock:
            held.set()
            wanted.wait(60)  # until the fork hook asks for it (or the parent, after the fork)

    holder = threading.Thread(target=hold, name="association")
    holder.start()
    assert held.wait(60)
    pid = os.fork()
    if pid == 0:  # the child: 0 its record written, 4 not; killed by SIGALRM when it hangs
        status = 5
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)  # not a test plugin's handler: die
            signal.alarm(60)
            trail.emit(events.application_activity(ME, True))
            trail.close(timeout_s=60)
            status = 0 if trail.written["file"] == 1 else 4
        finally:
            os._exit(status)  # never back into pytest
    wanted.set()
    holder.join(60)
    _, exited = os.waitpid(pid, 0)  # the child's alarm bounds this
    assert os.waitstatus_to_exitcode(exited) == 0, f"the child hung on {name} (-14: SIGALRM) or failed"
    assert audit.read_bytes().count(b"\n") == 1
