"""The audit file and the syslog collector a trail's sender writes to, and what each took.

Only the trail's sender thread writes here, and ``close`` under the trail's write lock
(mammocad/audit/trail.py). A record a sink did not take is handed to the trail's ``drop``,
which counts and logs it; ``written`` counts what a sink took, for a short-lived command that
must know its record was written (mammocad/audit/oneshot.py). A metric is counted only outside
the sinks' ``except OSError`` (:mod:`mammocad.audit.metric` never raises): a failing metric
once turned lines already in the file into drops.

When the collector fails, the sends of the next 1 s (doubling to 30 s) are dropped for syslog
at once (the file has them), so a dead collector costs one timeout per backoff, not one per
record.

Each record is handled on its own: one that cannot be serialised (a defect in how it was
built) is counted as dropped before any sink (``queue``, on an ``audit_dropped`` line of its
own naming its event), and an unexpected error from a sink (not an ``OSError``) is that
record's drop for that sink. Either once left the whole batch (up to 256 records) unwritten
and unsent, counted nowhere.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from mammocad.audit.events import Identity
from mammocad.audit.messages import AuditMessage
from mammocad.audit.metric import count
from mammocad.audit.outbox import InFlight
from mammocad.audit.syslog import SEVERITY_NOTICE, SEVERITY_WARNING, SyslogClient, frame
from mammocad.logs import log_event, safe_error

logger = logging.getLogger("mammocad.audit")

BACKOFF_START_S, BACKOFF_MAX_S = 1.0, 30.0


class Drop(Protocol):
    """The trail's drop counter: one call per record ``sink`` did not take, and why; ``each``
    logs this drop on a line of its own (not once a minute): a record lost to a defect."""

    def __call__(self, sink: str, why: str, *, each: bool = False, **fields: object) -> None: ...


class Sinks:
    """One trail's file (``file``: None for none) and collector (``syslog``: None for none)."""

    def __init__(self, identity: Identity, file: Path | None, syslog: SyslogClient | None, *, drop: Drop,
                 dropped: Callable[[str], int]) -> None:
        self.identity, self.file, self.syslog = identity, file, syslog
        self._drop, self._dropped = drop, dropped
        self.written = {"file": 0, "syslog": 0}
        self._fd: int | None = None
        self._retry_at = 0.0
        self._backoff = BACKOFF_START_S

    def write(self, messages: list[AuditMessage], held: InFlight) -> None:
        """Write the batch ``messages`` to each sink, telling ``held`` what each took."""
        lines: list[tuple[AuditMessage, bytes]] = []
        for message in messages:
            xml = self._serialise(message)
            if xml is not None:
                lines.append((message, xml))
            elif self.syslog is not None:  # no sink will take it: not pending at the collector
                held.syslog_done(False)
        if self.file is not None:
            held.file_done(self.append([xml for _, xml in lines]))
        if self.syslog is not None:
            for message, xml in lines:
                held.syslog_done(self.send(message, xml))

    def _serialise(self, message: AuditMessage) -> bytes | None:
        """``message`` as one line of XML, or None when it cannot be (dropped and counted).

        The line names the record's event, never its content: the exception's message may
        quote a value of it (a patient ID), so only its type is given.
        """
        try:
            return message.to_xml()
        except Exception as exc:  # noqa: BLE001 - one record's defect must not cost its batch
            event = message.event_id
            self._drop("queue", f"this record cannot be serialised ({type(exc).__name__}), a defect: report it "
                       "with this line", each=True, audit_event=f"{event.value} {event.meaning}",
                       audit_outcome=message.outcome)
            return None

    def append(self, xmls: list[bytes]) -> bool:
        """Whether the file took the batch (written and fsynced; else each is dropped and counted)."""
        assert self.file is not None
        try:
            if self._fd is None:
                self.file.parent.mkdir(mode=0o750, parents=True, exist_ok=True)  # the audit folder: 0750 whatever the umask
                self._fd = os.open(self.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            for xml in xmls:  # one write per line: O_APPEND keeps lines of several processes whole
                os.write(self._fd, xml + b"\n")
            os.fsync(self._fd)
        except Exception as exc:  # noqa: BLE001 - the file's only: a metric counted in here once made written lines drops
            self.close_file()
            why = (exc.strerror or exc) if isinstance(exc, OSError) else safe_error(exc)
            for _ in xmls:
                self._drop("file", f"cannot write {self.file}: {why}")
            return False
        self.written["file"] += len(xmls)
        count("file", "written", len(xmls))  # never raises (mammocad/audit/metric.py)
        return True

    def send(self, message: AuditMessage, xml: bytes) -> bool:
        """Whether the collector took ``message`` (else it is dropped and counted)."""
        assert self.syslog is not None
        now = time.monotonic()
        if now < self._retry_at:
            self._drop("syslog", "collector unavailable, backing off", collector=self.syslog.address)
            return False
        severity = SEVERITY_NOTICE if message.outcome == 0 else SEVERITY_WARNING
        message_bytes = frame(xml, severity=severity, hostname=self.identity.host)
        try:
            self.syslog.send(message_bytes)
        except Exception as exc:  # noqa: BLE001 - also a ValueError (a host name IDNA cannot encode): this record's drop
            if isinstance(exc, OSError) and exc.errno == errno.EMSGSIZE:  # this message, not the collector
                self._drop("syslog", f"message of {len(message_bytes)} bytes is too large for a "
                           f"{self.syslog.scheme.upper()} datagram (the file has it); use tcp:// or tls:// "
                           "for [audit] syslog", collector=self.syslog.address)
                return False
            self._retry_at = time.monotonic() + self._backoff  # from the failure: a connect may take its timeout
            self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
            self._drop("syslog", f"{type(exc).__name__}: {exc}"[:300], collector=self.syslog.address)
            return False
        if self._backoff > BACKOFF_START_S:
            log_event(logger, "audit_syslog_recovered", collector=self.syslog.address,
                      dropped=self._dropped("syslog"))
        self._backoff = BACKOFF_START_S
        self.written["syslog"] += 1
        count("syslog", "written")  # never raises: the record was sent whatever the metric does
        return True

    def in_child(self) -> None:
        """Right after a fork, in the child (its only thread: no lock is taken): what the
        parent's sinks went through is not the child's. The collector's back-off starts over:
        the parent's timer made a new child drop its records for up to 30 s without trying a
        collector that may have been up all along (a new connection of its own, anyway).

        The child's copy of the parent's audit file descriptor is closed here (the parent's
        stays open): the child opens its own at its first write, and forgetting the copy
        leaked one descriptor per trail and child. Here, because the number is surely still
        that copy: later, code of the child may have closed it and opened something else under it.
        """
        self._retry_at = 0.0
        self._backoff = BACKOFF_START_S
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):  # an error on close (EIO) still frees the number
                os.close(fd)

    def forked(self) -> None:
        """A forked child's own sinks: the parent's socket stays the parent's (its file
        descriptor was closed at the fork, :meth:`in_child`)."""
        if self.syslog is not None:
            inherited, self.syslog = self.syslog, self.syslog.fresh()
            inherited.close()  # our copy of the parent's socket: the parent keeps its own

    def close_file(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            finally:
                self._fd = None

    def close(self) -> None:
        self.close_file()
        if self.syslog is not None:
            self.syslog.close()

    def close_quietly(self) -> None:
        """Close for a retired sender, which has no caller to tell."""
        try:
            self.close()
        except Exception as exc:  # noqa: BLE001 - logged: the sender thread must end cleanly
            logger.exception("audit_sender_error", extra={"error": str(exc)[:300]})
