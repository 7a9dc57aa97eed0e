"""Who may associate with the node, and what it records as associations open and close.

The A-ASSOCIATE-RQ is checked in ``EVT_REQUESTED``: the called AE title, the node's
association limit (:mod:`mammocad.node.limits`), then the caller (AE title, host, TLS
certificate subject) against ``[[callers]]``, which :class:`CallerPolicy` re-reads when the
config file changes. A refusal is an A-ASSOCIATE-RJ whose log line and audit record name the
rule; DICOM's reason codes cannot.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pynetdicom import AE, evt

from mammocad.config import Settings
from mammocad.config.watch import ConfigWatcher
from mammocad.dicom.tls import peer_subject
from mammocad.logs import log_event, safe_error
from mammocad.metrics.faults import count_fault
from mammocad.node import limits, receive
from mammocad.node.observer import NodeObserver

if TYPE_CHECKING:
    from mammocad.audit import AuditTrail

logger = logging.getLogger("mammocad.node")

#: A-ASSOCIATE-RJ reasons (service-user): calling / called AE title not recognised.
REJECT_CALLING, REJECT_CALLED = 0x03, 0x07


class CallerPolicy:
    """Who may connect; re-read from the config file when it changes on disk."""

    def __init__(self, settings: Settings, config_path: Path | None, trail: AuditTrail | None = None) -> None:
        """``trail``: the node's audit trail, which records each reload's changes as the node's."""
        self.settings = settings
        self.config_path = config_path
        self._watcher = ConfigWatcher(settings, config_path, trail)

    def refresh(self) -> None:
        """Take the callers and ``node.require_known_callers`` of a changed file, nothing else.

        The policy's settings are replaced, never changed in place: the node and its handlers
        hold the settings object they started with (``model_copy`` shares the nested ``node``
        section), and association threads read ``self.settings`` while another one reloads, so
        the new object is complete before the one assignment that publishes it.
        """
        new = self._watcher.poll()
        if new is not None:
            node = self.settings.node.model_copy(update={"require_known_callers": new.node.require_known_callers})
            self.settings = self.settings.model_copy(update={"callers": new.callers, "node": node})

    def destination_names(self) -> list[str]:
        """The destinations the file names now, for the node's outbox gauges (a scrape re-reads
        the file as an association does). Only callers take effect in the node; a destination
        added or removed while it runs must still show there, as every worker sends to it."""
        self.refresh()
        return [d.name for d in self._watcher.settings.destinations]

    def refusal(self, ae_title: str, host: str, subject: dict[str, str] | None = None) -> str | None:
        """None when the caller may associate, else the failed rule in words (AE title, host
        or certificate subject), for the log, the audit trail and the admin."""
        s = self.settings
        if not s.node.require_known_callers:
            return None
        return s.caller_refusal(ae_title, host, subject)


class AssociationHandlers:
    """``EVT_REQUESTED``, ``EVT_ACCEPTED`` and ``EVT_CONN_CLOSE`` of one node, and its TLS
    handshake failures; they run in the association's (or connection's) thread."""

    def __init__(self, settings: Settings, ae: AE, policy: CallerPolicy, observer: NodeObserver) -> None:
        self.settings = settings
        self.ae = ae
        self.policy = policy
        self.observer = observer

    def on_requested(self, event: evt.Event) -> None:
        """Check the caller. pynetdicom logs an exception raised here and then *accepts* the
        association, so any failure of the check rejects it instead (transient: the sender
        retries)."""
        try:
            self._check_caller(event)
        except Exception as exc:
            log_event(logger, "association_rejected", logging.ERROR, peer=str(event.assoc.requestor.address),
                      reason=f"the caller could not be checked: {safe_error(exc)}")
            count_fault("association_check_failed")
            event.assoc.acse.send_reject(0x02, 0x01, 0x01)  # rejected-transient, service-user, no reason given
            event.assoc.kill()

    def _check_caller(self, event: evt.Event) -> None:
        self.policy.refresh()
        rq = event.assoc.requestor
        primitive = rq.primitive
        assert primitive is not None  # pynetdicom sets the A-ASSOCIATE request before EVT_REQUESTED
        calling = str(primitive.calling_ae_title).strip()
        called = str(primitive.called_ae_title).strip()
        host = str(rq.address)
        if called != self.settings.node.ae_title:
            self._reject(event, REJECT_CALLED, calling, called, host, "called AE title not recognised")
            return
        busy = limits.negotiated(self.ae, event.assoc)
        if busy >= self.settings.node.max_associations:
            log_event(logger, "association_rejected", logging.WARNING, calling_ae=calling, called_ae=called,
                      peer=host, reason=f"node.max_associations ({busy}) reached; retry later")
            count_fault("association_limit")
            limits.reject_busy(event.assoc)
            return
        why = self.policy.refusal(calling, host, peer_subject(getattr(event.assoc.dul.socket, "socket", None)))
        if why is not None:
            # DICOM has one reason code for all of these; the log and audit trail name the rule.
            self._reject(event, REJECT_CALLING, calling, called, host, why)

    def _reject(self, event: evt.Event, reason: int, calling: str, called: str, host: str, why: str) -> None:
        log_event(logger, "association_rejected", logging.WARNING, calling_ae=calling, called_ae=called,
                  peer=host, reason=why)
        self.observer.rejected(calling, called, host, "called_ae" if reason == REJECT_CALLED else "calling_ae", why)
        event.assoc.acse.send_reject(0x01, 0x01, reason)  # rejected-permanent, service-user
        event.assoc.kill()  # as pynetdicom's own rejection does: waits until the A-ASSOCIATE-RJ is out

    def on_accepted(self, event: evt.Event) -> None:
        rq = event.assoc.requestor
        log_event(logger, "association_accepted", calling_ae=str(rq.ae_title).strip(), peer=rq.address,
                  contexts=len(event.assoc.accepted_contexts))
        self.observer.accepted(id(event.assoc), str(rq.ae_title).strip(), str(rq.address))

    def on_closed(self, event: evt.Event) -> None:
        receive.discard_open(event.assoc)
        self.observer.closed(id(event.assoc))

    def tls_failed(self, host: str, why: str) -> None:
        """A caller failed the TLS handshake (runs in its connection's thread, before any PDU: log only)."""
        log_event(logger, "tls_handshake_failed", logging.WARNING, peer=host, reason=why[:300])
        self.observer.security_alert(host, why)
