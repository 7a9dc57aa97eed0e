"""What the node reports about itself: audit messages and Prometheus counters.

The SCP calls these from its association threads; each call only updates a counter or a
small per-association record and queues audit messages (never blocking, never raising
into the C-STORE handler). Received instances are audited once per association, when its
connection closes: calling AE title and address, and per study the SOP classes and
counts, accession numbers and the patient ID (see mammocad/audit/events.py).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field

from mammocad.audit import AuditTrail, Peer, StudyTransfer, events
from mammocad.config import Settings
from mammocad.metrics import definitions as m

logger = logging.getLogger("mammocad.node")


@dataclass
class _Study:
    sop_classes: Counter[str] = field(default_factory=Counter)
    patient_id: str = ""
    accessions: set[str] = field(default_factory=set)


@dataclass
class _Association:
    caller: Peer
    studies: dict[str, _Study] = field(default_factory=dict)
    refused: int = 0


class NodeObserver:
    """Audit trail and metrics of one node; ``trail`` is closed by :meth:`stopped`."""

    def __init__(self, settings: Settings, trail: AuditTrail | None = None) -> None:
        self.trail = trail or AuditTrail.from_settings(settings.audit, settings.node.ae_title, "mammocad-node")
        self._open: dict[int, _Association] = {}
        self._lock = threading.Lock()

    # -- application -------------------------------------------------------------------
    def started(self) -> None:
        self.trail.emit(events.application_activity(self.trail.identity, started=True))

    def stopped(self) -> None:
        self.trail.emit(events.application_activity(self.trail.identity, started=False))
        self.trail.close()

    # -- associations ------------------------------------------------------------------
    def rejected(self, calling: str, called: str, host: str, reason: str, why: str) -> None:
        m.ASSOCIATIONS.labels("rejected", reason).inc()
        self.trail.emit(events.association_rejected(self.trail.identity, Peer(calling, host), called, why))

    def accepted(self, assoc_id: int, calling: str, host: str) -> None:
        m.ASSOCIATIONS.labels("accepted", "").inc()
        caller = Peer(calling, host)
        with self._lock:
            self._open[assoc_id] = _Association(caller)
        self.trail.emit(events.association_accepted(self.trail.identity, caller))

    def security_alert(self, host: str, why: str) -> None:
        """A TLS handshake (or another node check) failed before any association
        (the ``on_failure`` hook of the node's TLS context, mammocad/dicom/tls.py)."""
        m.ASSOCIATIONS.labels("rejected", "tls").inc()
        self.trail.emit(events.security_alert(self.trail.identity, Peer("", host), why))

    def closed(self, assoc_id: int) -> None:
        """The connection ended: audit what it brought, once."""
        with self._lock:
            record = self._open.pop(assoc_id, None)
        if record is None or not (record.studies or record.refused):
            return
        studies = [StudyTransfer(uid, dict(s.sop_classes), s.patient_id, tuple(sorted(s.accessions)))
                   for uid, s in sorted(record.studies.items())]
        self.trail.emit(events.instances_received(self.trail.identity, record.caller, studies, record.refused))

    # -- C-STORE -----------------------------------------------------------------------
    def stored(self, assoc_id: int, *, study_uid: str, sop_class: str, patient_id: str, accession: str,
               kind: str, size: int = 0) -> None:
        """An object is safe in the spool (``kind``: analysed, set_aside, duplicate)."""
        m.INSTANCES.labels("0x0000", kind).inc()
        if size:
            m.INSTANCE_BYTES.labels(kind).inc(size)
        with self._lock:
            record = self._open.get(assoc_id)
            if record is None:
                return
            study = record.studies.setdefault(study_uid, _Study())
            study.sop_classes[sop_class] += 1
            study.patient_id = study.patient_id or patient_id
            if accession:
                study.accessions.add(accession)

    def not_stored(self, assoc_id: int, status: int, kind: str) -> None:
        """A C-STORE answered with a failure (``kind``: refused, failed)."""
        m.INSTANCES.labels(f"0x{status:04X}", kind).inc()
        with self._lock:
            record = self._open.get(assoc_id)
            if record is not None:
                record.refused += 1

    @staticmethod
    def declared(reason: str) -> None:
        m.STUDIES_DECLARED.labels(reason).inc()
