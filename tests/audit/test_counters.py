"""The drop counts stay whole when threads drop at once.

``dropped`` is updated by every association thread whose ``emit`` finds the queue full, by
the sender (file, syslog) and by ``close``; ``dropped[sink] += 1`` is a read, then a write,
and two threads that both read before either wrote counted one drop where there were two
(the ``audit_dropped`` and ``audit_unsent`` lines said fewer than were lost). The test holds
one thread between its read and its write and lets a second drop in that gap.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from mammocad.audit import events
from mammocad.audit.events import Identity
from mammocad.audit.outbox import Outbox
from mammocad.audit.trail import AuditTrail

ME = Identity.make("MAMMOCAD")


class _HeldRead(dict[str, int]):
    """The first thread to read ``queue`` waits there (``reading`` set) until ``go``; a read
    by any other thread sets ``second``."""

    def __init__(self, counts: dict[str, int], second: threading.Event) -> None:
        super().__init__(counts)
        self.reading, self.go, self.second = threading.Event(), threading.Event(), second
        self._first: int | None = None

    def __getitem__(self, key: str) -> int:
        value = super().__getitem__(key)
        if key == "queue":
            me = threading.get_ident()
            if self._first is None:
                self._first = me
                self.reading.set()
                assert self.go.wait(60), "never released"
            elif me != self._first:
                self.second.set()
        return value


class _Contended:
    """A lock that sets ``second`` when a thread has to wait for it."""

    def __init__(self, lock: threading.Lock, second: threading.Event) -> None:
        self._lock, self._second = lock, second

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            self._second.set()
            self._lock.acquire()

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()


def test_two_threads_that_drop_at_once_count_two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trail = AuditTrail(ME, tmp_path / "audit.log", queue_size=1)
    full = Outbox(1)
    full.put_nowait(events.application_activity(ME, True))
    monkeypatch.setattr(trail, "_ensure_thread", lambda: full)  # a sender that does not keep up
    second = threading.Event()
    counts = _HeldRead(trail.dropped, second)
    monkeypatch.setattr(trail, "dropped", counts)
    monkeypatch.setattr(trail, "_counts_lock", _Contended(threading.Lock(), second), raising=False)
    first = threading.Thread(target=trail.emit, args=(events.application_activity(ME, False),))
    first.start()
    assert counts.reading.wait(60), "the first drop never read its count"
    other = threading.Thread(target=trail.emit, args=(events.application_activity(ME, False),))
    other.start()
    assert second.wait(60), "the second drop neither read the count nor waited for the first"
    counts.go.set()
    first.join(60)
    other.join(60)
    assert trail.dropped["queue"] == 2


def test_the_stop_line_gives_the_queue_drops_no_audit_dropped_line_gave(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """Records dropped at a full queue after the minute's ``audit_dropped`` line were counted
    on no line: the ``audit_unsent`` line at the stop was logged for them (the counts had
    changed) but gave only the file's and the collector's drops, all 0."""
    from tests.services import wait_until

    trail = AuditTrail(ME, tmp_path / "audit.log", queue_size=2)
    caplog.set_level("WARNING", "mammocad.audit")
    with trail._io_lock:  # the sender takes its first batch, then waits here to write it
        trail.emit(events.application_activity(ME, True))
        wait_until(lambda: trail._queue.qsize() == 0, 60, "the sender's first batch")
        for _ in range(5):  # 2 fit in the queue, 3 are dropped: the first on an audit_dropped line
            trail.emit(events.application_activity(ME, True))
    trail.close(timeout_s=60)
    dropped = [r for r in caplog.records if r.getMessage() == "audit_dropped"]
    unsent = [r for r in caplog.records if r.getMessage() == "audit_unsent"]
    assert [r.dropped for r in dropped] == [1]  # type: ignore[attr-defined]
    assert [(r.unsent, r.dropped_queue) for r in unsent] == [(0, 3)]  # type: ignore[attr-defined]
    assert trail.written["file"] == 3
