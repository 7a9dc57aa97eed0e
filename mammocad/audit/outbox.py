"""A sender's queue that can be sealed, so no audit record lands where nobody reads or counts it.

The audit trail (mammocad/audit/trail.py) gives each sender thread a queue of its own. When
the sender stops or ``close`` gives up on it, the queue is sealed: the seal takes what is
queued, under the queue's own mutex, and a later put raises :class:`Sealed`, so the producer
takes a successor's queue (or, at a process's exit, counts the record).

The batch the sender took from the queue is its :class:`InFlight`, taken under the same
mutex: a record is queued (``close`` counts it unsent), in flight (``close`` reports it as
such: the sink that hangs may still take it) or done, never in none of them. ``close`` once
knew only the queued ones: with syslog alone, the up to 256 records of the batch a stuck
collector held reached no sink at exit and no line counted them.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

from mammocad.audit.messages import AuditMessage


class Sealed(Exception):
    """A put into the queue of a sender that was retired: the record goes to the successor."""


@dataclass(frozen=True)
class Pending:
    """What a batch in flight has not delivered yet, per sink, at one instant.

    ``nowhere``: records in no sink yet (not in the file, not confirmed by the collector);
    ``file``: not yet written to the file; ``syslog``: not yet confirmed by the collector.
    A pending record may or may not reach its sink later: it is not lost for sure.
    """

    nowhere: int = 0
    file: int = 0
    syslog: int = 0

    def __bool__(self) -> bool:
        return bool(self.nowhere or self.file or self.syslog)


class InFlight:
    """One batch a sender took from its queue, and how far each sink has taken it.

    The sender writes the file first (the whole batch, one fsync), then sends each record to
    the collector; a record a sink refused (dropped and counted) is no longer pending there.
    Updated by the sender, read by ``close``: its own lock keeps the per-sink counts whole.
    """

    def __init__(self, size: int = 0, *, file: bool = False, syslog: bool = False) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._file_pending = file and size > 0
        self._file_written = False
        self._syslog = syslog
        self._syslog_done = 0  # records the collector took or refused, in order
        #: Records the collector confirmed: what a settled batch tells the admin.
        self.syslog_sent = 0
        #: What the seal found pending (``close`` reported it): the sender says how it ended.
        self.reported = Pending()

    def file_done(self, written: bool) -> None:
        with self._lock:
            self._file_pending, self._file_written = False, written

    def syslog_done(self, sent: bool) -> None:
        with self._lock:
            self._syslog_done += 1
            self.syslog_sent += sent

    @property
    def file_written(self) -> bool:
        return self._file_written

    def pending(self) -> Pending:
        with self._lock:
            syslog = self.size - self._syslog_done if self._syslog else 0
            file = self.size if self._file_pending else 0
            nowhere = file or (0 if self._file_written else syslog)
            return Pending(nowhere=nowhere, file=file, syslog=syslog)


class Outbox(queue.Queue[AuditMessage | None]):
    """One sender's queue, which can be sealed.

    Sealing and putting take the queue's own mutex, so a record is either in the queue when
    it is sealed (the sealer accounts for it) or refused with :class:`Sealed` (the producer
    puts it elsewhere): no record lands in a queue no sender will read and nobody counted.
    """

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.sealed = False
        #: The batch the sender took last (see :meth:`take`).
        self.held = InFlight()

    def _put(self, item: AuditMessage | None) -> None:  # called with the mutex held
        if self.sealed:
            raise Sealed
        super()._put(item)

    def take(self, limit: int, *, file: bool, syslog: bool) -> tuple[list[AuditMessage], bool]:
        """Wait for records, take up to ``limit`` as the batch in flight (:attr:`held`) and
        return them with whether a stop was among them. At a stop the queue is sealed and
        what was put behind the stop joins the batch: a later emit starts a successor."""
        with self.not_empty:
            while not self._qsize():
                self.not_empty.wait()
            items = [self._get() for _ in range(min(limit, self._qsize()))]
            self.not_full.notify_all()
            stop = None in items
            messages = [m for m in items if m is not None]
            if stop:
                messages += self._seal()
            self.held = InFlight(len(messages), file=file, syslog=syslog)
            return messages, stop

    def seal(self) -> tuple[list[AuditMessage], Pending]:
        """Refuse every later put; return what was queued and what the batch in flight has
        not delivered yet, at the same instant; leave a stop for a waiting sender."""
        with self.mutex:
            left = self._seal()
            self.queue.append(None)  # a sender blocked in take() wakes up and stops
            self.not_empty.notify_all()
            self.held.reported = self.held.pending()
            return left, self.held.reported

    def _seal(self) -> list[AuditMessage]:  # called with the mutex held
        self.sealed = True
        left = [m for m in self.queue if m is not None]
        self.queue.clear()
        return left
