"""The audit trail: a bounded queue and one sender thread per process.

``emit`` never blocks and never raises, because it is called from the DICOM path (an
association thread) and from Celery tasks. The sender thread appends each message to the
audit file (one XML message per line, fsync per batch) and sends it to the syslog
collector. When the collector is down a message is dropped for syslog only (the file still
has it), counted (``mammocad_audit_messages_total{sink="syslog",outcome="dropped"}``) and
logged, and the sender backs off (1 s doubling to 30 s) so a dead collector cannot stall
the file. When the queue is full, new messages are dropped and counted the same way.
The file and the collector themselves (writing, backoff, what each took) are
:class:`~mammocad.audit.sinks.Sinks`; this module owns the queue, the sender and the counts.

The thread starts at the first ``emit`` in each process, so a trail made before Celery's
prefork pool forks works in every child. A fork waits for the sender's batch in flight
(:mod:`mammocad.audit.atfork`): a child forked while the parent's sender was inside an OpenSSL
handshake inherited OpenSSL's locks held by a thread it does not have, and its own sender
then hung for good on its first TLS message (the file had the message, the collector never
did, and nothing was logged). The child then makes its own syslog client. The fork takes the
trail's own locks too: a child forked while a thread held one hung at its first use.

A sender that ``close`` gave up on (stuck in a batch: a sink that hangs) is retired: the next
sender gets a new queue and generation, and the retired one finishes its batch, closes the
sinks ``close`` could not, and stops. It once went on taking records from the queue it
shared with its successor: records ``close`` had reported lost were written after all, and a
later ``close`` waited for the wrong thread.

Each sender's queue is an :class:`~mammocad.audit.outbox.Outbox`, sealed when its sender
is retired (the seal takes what is queued: ``close`` counts it) or stops (it sends what was
put behind the stop); a put after the seal fails, so ``emit`` takes a successor's queue. A
record whose ``emit`` had chosen the queue just before ``close`` emptied it, or put behind
the stop, once stayed in a queue nobody read or counted. At a process's exit (``close_all``)
no successor starts: such a record is counted (see ``close_all``).
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from mammocad.audit.atfork import hold_across_fork
from mammocad.audit.events import Identity
from mammocad.audit.messages import AuditMessage
from mammocad.audit.metric import count
from mammocad.audit.outbox import InFlight, Outbox, Pending, Sealed
from mammocad.audit.sinks import Sinks
from mammocad.audit.syslog import SyslogClient
from mammocad.logs import log_event

if TYPE_CHECKING:
    from mammocad.config.services import AuditSettings

logger = logging.getLogger("mammocad.audit")

_LOG_EVERY_S = 60.0
#: The longest a fork waits for the sender's batch in flight: above the socket timeouts, so
#: it is reached only by a sender that is stuck for another reason.
_FORK_WAIT_S = 30.0
#: The longest a process's exit waits for its audit senders, all trails together: above the
#: syslog socket timeout (5 s), so one stalled send still lets the rest reach the file.
CLOSE_TIMEOUT_S = 10.0


class _Exiting(Exception):
    """The process's exit has begun (:func:`close_all`): a sender started now would die with
    the process (``os._exit``, or the interpreter ending its daemon threads) and take its
    records with it, uncounted."""


#: The process whose exit has begun: :func:`close_all` sets it, and its trails start no
#: sender after that. A pid, so a child forked afterwards still audits.
_exiting_pid: int | None = None


#: An emit retries on the successor's queue at most this often (each retry means a close in between).
_PUT_TRIES = 3


class AuditTrail:
    """Where this process's audit messages go; ``enabled`` is False when nothing is configured."""

    def __init__(self, identity: Identity, file: str | os.PathLike[str] | None = None,
                 syslog: SyslogClient | None = None, queue_size: int = 10000) -> None:
        self.identity = identity
        self.queue_size = queue_size
        self.dropped = {"file": 0, "syslog": 0, "queue": 0}
        self._logged = dict(self.dropped)  # the counts the last audit_dropped line of each sink gave
        self._sinks = Sinks(identity, Path(file) if file else None, syslog, drop=self._drop,
                            dropped=lambda sink: self.dropped[sink])
        self._pid = os.getpid()  # the sender thread starts on first use; a forked child makes its own
        self._lock = threading.Lock()
        self._queue = Outbox(queue_size)
        self._thread: threading.Thread | None = None
        self._generation = 0  # the current sender's; a sender of an older one writes no further batch
        self._last_log = 0.0
        #: Guards ``dropped``, ``_logged`` and ``_last_log``: emit threads, the sender and close
        #: all count drops, and ``+= 1`` from two threads at once once counted one.
        self._counts_lock = threading.Lock()
        self._io_lock = threading.Lock()  # held by the sender while it writes; a fork takes it first
        hold_across_fork(self, _fork_locks, _FORK_WAIT_S, in_child=AuditTrail._forked)
        _LIVE.add(self)

    def _forked(self) -> None:
        """A forked child's counts start at zero: they are this process's own, as its Prometheus
        samples are (prometheus_client starts a forked child's values at zero). The parent's drops
        are the parent's to report, on its own ``audit_dropped``/``audit_unsent`` lines (at its
        close or exit): a child that kept them repeated, on its ``audit_unsent`` line, drops its
        parent had not logged yet, and an admin adding up the lines of all processes counted them
        twice. ``written`` must say what this process wrote: oneshot compares it with what it
        emitted. Called in the child only, its only thread: no lock is taken. The sinks' own
        state (the collector's back-off) is reset there too (:meth:`Sinks.in_child`).
        """
        self.dropped = {"file": 0, "syslog": 0, "queue": 0}
        self._logged = dict(self.dropped)
        self._last_log = 0.0
        self._sinks.written = {"file": 0, "syslog": 0}
        self._sinks.in_child()

    @classmethod
    def from_settings(cls, audit: AuditSettings, ae_title: str, program: str = "mammocad") -> AuditTrail:
        from mammocad.config.services import syslog_address

        identity = Identity.make(ae_title, audit.source_id, audit.site_id, program)
        client = None
        if audit.syslog:
            scheme, host, port = syslog_address(audit.syslog)
            client = SyslogClient(scheme, host, port, ca_file=audit.ca_certificates, cert_file=audit.certificate,
                                  key_file=audit.private_key)
        return cls(identity, audit.file or None, client, audit.queue_size)

    @property
    def enabled(self) -> bool:
        return self.file is not None or self.syslog is not None

    @property
    def file(self) -> Path | None:
        return self._sinks.file

    @property
    def syslog(self) -> SyslogClient | None:
        """The collector's client; a forked child's own once it emits."""
        return self._sinks.syslog

    @property
    def written(self) -> dict[str, int]:
        """Messages each sink took, so a short-lived command can tell its record was written
        (mammocad/audit/oneshot.py) rather than only that nothing was counted as dropped."""
        return self._sinks.written

    # -- producer side (any thread) -----------------------------------------------------
    def emit(self, message: AuditMessage) -> None:
        """Queue ``message``; drop and count it when the queue is full. Never raises."""
        if not self.enabled:
            return
        try:
            for _ in range(_PUT_TRIES):
                try:
                    self._ensure_thread().put_nowait(message)
                    return
                except Sealed:  # its sender was retired since we chose it: its successor takes it
                    continue
            self._drop("queue", "audit trail closed repeatedly while this record was queued")
        except _Exiting:  # no later close would count it: one line per record (an exit sees few)
            self._report_unsent(1, after_exit_began=True)
        except queue.Full:
            self._drop("queue", "audit queue full", capacity=self.queue_size)
        except Exception as exc:  # an audit problem must never reach the DICOM path
            self._drop("queue", f"{type(exc).__name__}: {exc}")

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Send what is queued, then stop the thread and close the sinks: ``timeout_s`` in all.

        Whatever is still queued at the deadline (a sink that hangs) is dropped, counted and
        logged on one ``audit_unsent`` line, which also gives the sinks' drop counts when some
        were not in an ``audit_dropped`` line yet (that line comes at most once a minute): the
        caller is shutting down and must not hang on its audit trail, and the admin must learn
        what it lost. A later ``emit`` starts a new sender, on a new queue: the stuck one stops
        after its batch (see the module docstring).
        """
        deadline = time.monotonic() + timeout_s
        thread, outbox, unsent, held = self._thread, self._queue, 0, None
        if thread is not None and self._pid == os.getpid() and thread.is_alive():
            try:
                outbox.put(None, timeout=_left(deadline))
            except (queue.Full, Sealed):
                pass
            thread.join(_left(deadline))
            if thread.is_alive():  # stuck in a batch: what waits behind it goes no further
                unsent, held = self._retire(outbox)
        with self._lock:
            if self._thread is thread:  # not a successor an emit started meanwhile: close_all must find it
                self._thread = None
        if self._io_lock.acquire(timeout=_left(deadline)):  # a sender still writing keeps its sinks
            try:
                self._sinks.close()
            finally:
                self._io_lock.release()
        self._report_unsent(unsent, held, timeout_s=round(timeout_s, 1))

    def _report_unsent(self, unsent: int, held: Pending | None = None, **fields: object) -> None:
        """Count ``unsent`` records and log the ``audit_unsent`` line, with the sinks' drops
        no ``audit_dropped`` line has given yet and what a stuck sender holds (``in_flight``:
        not counted, it may still be delivered); nothing when there is nothing to say."""
        with self._counts_lock:
            if unsent:
                self.dropped["queue"] += unsent
                self._logged["queue"] = self.dropped["queue"]
            say = bool(unsent or held or self.dropped != self._logged)  # what no audit_dropped line has counted yet
            if say:
                self._logged = dict(self.dropped)
            dropped = dict(self.dropped)
        if unsent:
            count("queue", "dropped", unsent)
        if held is not None:  # close gave up on a sender: what it holds, also when it is nothing
            fields.update(in_flight=held.nowhere, in_flight_file=held.file, in_flight_syslog=held.syslog)
        if say:
            log_event(logger, "audit_unsent", logging.WARNING, unsent=unsent, dropped_file=dropped["file"],
                      dropped_syslog=dropped["syslog"], dropped_queue=dropped["queue"], **fields,
                      file=str(self.file or ""), collector=self.syslog.address if self.syslog is not None else "",
                      hint="unsent and dropped_queue records reached neither sink, dropped_syslog ones only the file (if any), "
                           "in_flight ones no sink yet (a stuck sender holds them: compare with the collector); "
                           "check the audit file's disk and the collector (`mammocad config check` names them)")

    def _retire(self, stale: Outbox) -> tuple[int, Pending]:
        """Leave the current sender behind: it may write no batch after the one in flight.

        Its queue is sealed here, so what ``close`` counts as unsent is exactly what no
        sender will write, and a record put after the count goes to the successor's queue
        (``emit``). Returns that count, and what the batch in flight had not delivered then.
        """
        with self._lock:
            self._generation += 1
            self._thread = None  # before the new queue: an emit that reads the new queue then starts its sender
            self._queue = Outbox(self.queue_size)
            left, held = stale.seal()
            return len(left), held

    def _sending_here(self) -> bool:
        """This process started this trail's sender (not a parent's trail a fork copied)."""
        return self._thread is not None and self._pid == os.getpid()

    def _ensure_thread(self) -> Outbox:
        """The queue of this process's live sender, started here if there is none."""
        pid = os.getpid()
        outbox = self._queue  # read first: a sender that stops after this seals it, and the put fails
        if self._pid == pid and self._thread is not None and not outbox.sealed:
            return outbox
        with self._lock:
            if self._pid == pid and self._thread is not None and not self._queue.sealed:
                return self._queue
            if _exiting_pid == pid:
                raise _Exiting
            if self._pid == pid and self._queue.sealed:  # its sender stopped: a successor on a queue of its own
                self._queue = Outbox(self.queue_size)
            elif self._pid != pid:  # a forked child: the parent's queue, thread and sockets are not ours
                self._queue = Outbox(self.queue_size)
                self._sinks.forked()
            self._pid = pid
            self._thread = threading.Thread(target=self._run, args=(self._queue, self._generation),
                                            name="mammocad-audit", daemon=True)
            self._thread.start()
            return self._queue

    # -- sender thread ------------------------------------------------------------------
    def _run(self, source: Outbox, generation: int) -> None:
        """Send batches from ``source`` (this sender's own queue) until a stop or retirement."""
        while True:  # a stop's batch holds what was put behind it; a later emit starts a successor
            messages, stop = source.take(256, file=self.file is not None, syslog=self.syslog is not None)
            with self._io_lock:
                try:
                    self._sinks.write(messages, source.held)
                except Exception as exc:  # keep the thread alive whatever happens
                    logger.exception("audit_sender_error", extra={"error": str(exc)[:300]})
                if generation != self._generation:  # retired by close while in this batch
                    self._settled(source.held)
                    self._sinks.close_quietly()  # close could not; a successor reopens them
                    return
            if stop:
                return

    def _settled(self, held: InFlight) -> None:
        """The batch ``close`` reported in flight is done: say what it delivered after all."""
        if held.size and held.reported:
            log_event(logger, "audit_in_flight_settled", records=held.size, in_file=held.file_written,
                      syslog_sent=held.syslog_sent, collector=self.syslog.address if self.syslog is not None else "")

    def lost(self, error: str, **fields: object) -> None:
        """A record its caller could not make (the message's construction raised): counted as a
        ``queue`` drop and logged with ``fields`` (the event, a study UID; never patient data),
        as the trail counts its own. Callers once logged ``audit_dropped`` themselves, which
        ``mammocad_audit_messages_total{outcome="dropped"}`` (the drop alert) never saw."""
        self._drop("queue", error, each=True, **fields)

    def _drop(self, sink: str, why: str, *, each: bool = False, **fields: object) -> None:
        """Count a record ``sink`` did not take; log it at most once a minute, unless ``each``
        (a record lost to a defect: the admin needs each one's event and time)."""
        with self._counts_lock:
            self.dropped[sink] += 1
            dropped, now = self.dropped[sink], time.monotonic()
            periodic = now - self._last_log >= _LOG_EVERY_S or dropped == 1
            say = each or periodic
            if periodic:  # a line of its own leaves the once-a-minute line's timer alone
                self._last_log = now
            if say:
                self._logged[sink] = dropped
        count(sink, "dropped")
        if say:
            log_event(logger, "audit_dropped", logging.WARNING, sink=sink, error=why, dropped=dropped,
                      **fields)


def _fork_locks(trail: AuditTrail) -> list[threading.Lock]:
    """What a fork takes first, in the order threads nest them (the sender counts drops
    inside its write): the sender's batch in flight, then the locks a child's ``emit`` and
    ``close`` take. The queue's mutex is not among them: a child makes a queue of its own."""
    return [trail._io_lock, trail._lock, trail._counts_lock]


#: Every trail of this process, held weakly, for :func:`close_all`.
_LIVE: weakref.WeakSet[AuditTrail] = weakref.WeakSet()


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def close_all(timeout_s: float = CLOSE_TIMEOUT_S) -> None:
    """Send what every trail of this process queued (``timeout_s`` for all), then close them.

    For a process's exit: ``atexit`` calls it, and a Celery pool process calls it from
    ``worker_process_shutdown`` (mammocad/worker/cli.py). Trails a fork copied from the parent
    and never used here are left alone: their queue and sockets are the parent's.

    From here on no trail of this process starts a sender: a record that would need one
    (emitted after its trail was closed, or turned away from a retired sender's queue) is
    counted and logged on an ``audit_unsent`` line of its own (``after_exit_began=True``),
    as nothing would wait for that sender. One once took such records out with the process.
    """
    global _exiting_pid
    _exiting_pid = os.getpid()
    deadline = time.monotonic() + timeout_s
    for trail in list(_LIVE):
        if trail._sending_here():
            trail.close(_left(deadline))


atexit.register(close_all)

