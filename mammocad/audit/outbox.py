"""A sender's queue that can be sealed, so no audit record lands where nobody reads or counts it.

The audit trail (mammocad/audit/trail.py) gives each sender thread a queue of its own. When
the sender stops or ``close`` gives up on it, the queue is sealed: the seal takes what is
queued, under the queue's own mutex, and a later put raises :class:`Sealed`, so the producer
takes a successor's queue (or, at a process's exit, counts the record).
"""

from __future__ import annotations

import queue

from mammocad.audit.messages import AuditMessage


class Sealed(Exception):
    """A put into the queue of a sender that was retired: the record goes to the successor."""


class Outbox(queue.Queue[AuditMessage | None]):
    """One sender's queue, which can be sealed.

    Sealing and putting take the queue's own mutex, so a record is either in the queue when
    it is sealed (the sealer accounts for it) or refused with :class:`Sealed` (the producer
    puts it elsewhere): no record lands in a queue no sender will read and nobody counted.
    """

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.sealed = False

    def _put(self, item: AuditMessage | None) -> None:  # called with the mutex held
        if self.sealed:
            raise Sealed
        super()._put(item)

    def seal(self) -> list[AuditMessage]:
        """Refuse every later put; return what was queued and leave a stop for a waiting sender."""
        with self.mutex:
            self.sealed = True
            left = [m for m in self.queue if m is not None]
            self.queue.clear()
            self.queue.append(None)  # a sender blocked in get() wakes up and stops
            self.not_empty.notify_all()
        return left
