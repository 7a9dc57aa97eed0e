"""DICOM audit trail (PS3.15 A.5, IHE ATNA): messages, RFC 5424 syslog and the sender.

``AuditTrail.from_settings(settings.audit, ae_title)`` gives the process its trail;
``trail.emit(events.instances_received(...))`` queues a message without blocking.
"""

from mammocad.audit import events
from mammocad.audit.events import Identity, Peer, StudyTransfer
from mammocad.audit.messages import ActiveParticipant, AuditMessage, ParticipantObject, SOPClassCount
from mammocad.audit.trail import AuditTrail

__all__ = ["ActiveParticipant", "AuditMessage", "AuditTrail", "Identity", "ParticipantObject", "Peer",
           "SOPClassCount", "StudyTransfer", "events"]
