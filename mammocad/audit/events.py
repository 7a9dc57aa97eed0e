"""The audit events mammocad reports, built from what the caller knows.

Mapping to PS3.15 A.5.3 (section numbers of the current edition, e.g. A.5.3.11 Security
Alert; documented for admins in docs/ADMIN.md, "Audit trail"):

| what happened | EventID | EventTypeCode | outcome |
| --- | --- | --- | --- |
| a service starts / stops | 110100 Application Activity | 110120 / 110121 | 0 |
| an association is accepted | 110114 User Authentication | 110122 Login | 0 |
| an association is rejected (who and why) | 110113 Security Alert | 110126 Node Authentication | 4 |
| a TLS handshake fails | 110113 Security Alert | 110126 Node Authentication | 8 |
| instances received, per association | 110104 DICOM Instances Transferred (C) | | 0 / 4 |
| instances sent to a destination | 110104 DICOM Instances Transferred (R) | | 0 / 8 |
| an admin queues results again (`studies resend`, `outbox retry`) | 110102 Begin Transferring DICOM Instances (E) | | 0 |
| an admin has a study analysed again (`studies reanalyse`) | 110103 DICOM Instances Accessed (U) | | 0 |
| retention removes a study (or its set-aside objects) from the spool | 110105 DICOM Study Deleted (D) | | 0 |
| callers or destinations edited | 110113 Security Alert | 110129 / 110128 | 0 |
| a service reloads changed callers / destinations | 110113 Security Alert | 110129 / 110128 | 0 |

Received instances are reported once per association (not per instance): the association
knows who sent them (calling AE title and address), and a study sent in two associations
is two transfers. Patient IDs appear here, in the audit trail, and never in logs. An admin's
action on a study names the OS user as the requestor (:func:`os_user`).
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mammocad.audit import codes
from mammocad.audit.messages import ActiveParticipant, AuditMessage, ParticipantObject, SOPClassCount


@dataclass(frozen=True)
class Identity:
    """Who reports: this program, its AE title and host (``AuditSourceIdentification``)."""

    ae_title: str
    source_id: str
    site_id: str = ""
    host: str = ""
    program: str = "mammocad"

    @classmethod
    def make(cls, ae_title: str, source_id: str = "", site_id: str = "", program: str = "mammocad") -> Identity:
        host = socket.gethostname()
        return cls(ae_title, source_id or f"{ae_title}@{host}", site_id, host, program)

    def process(self, requestor: bool, roles: tuple[codes.Code, ...] = (codes.APPLICATION,)) -> ActiveParticipant:
        """This process as a participant: UserID the program, AE titles as AlternativeUserID (A.5.2.2)."""
        return ActiveParticipant(user_id=f"{self.program}[{os.getpid()}]", requestor=requestor, roles=roles,
                                 alternative_user_id=f"AETITLES={self.ae_title}", access_point=self.host,
                                 access_point_type=codes.ACCESS_POINT_NAME if self.host else "")

    def message(self, **kwargs: Any) -> AuditMessage:
        return AuditMessage(source_id=self.source_id, site_id=self.site_id, **kwargs)


@dataclass(frozen=True)
class Peer:
    """The DICOM application at the other end of an association."""

    ae_title: str
    host: str

    def participant(self, requestor: bool, roles: tuple[codes.Code, ...] = ()) -> ActiveParticipant:
        return ActiveParticipant(user_id=self.ae_title or "(no AE title)", requestor=requestor, roles=roles,
                                 alternative_user_id=f"AETITLES={self.ae_title}" if self.ae_title else "",
                                 access_point=self.host, access_point_type=_access_point_type(self.host))


@dataclass(frozen=True)
class StudyTransfer:
    """What moved for one study: SOP class counts, patient ID and accession numbers (may be empty)."""

    study_uid: str
    sop_classes: Mapping[str, int]
    patient_id: str = ""
    accessions: tuple[str, ...] = ()


_HEADER_TAGS = ["StudyInstanceUID", "SOPClassUID", "PatientID", "AccessionNumber"]


def study_transfers(files: Iterable[Path]) -> list[StudyTransfer]:
    """Per study: SOP classes and counts, patient ID and accessions of DICOM files (headers only).

    A file that cannot be read is left out: an audit message names what can be named.
    """
    from pydicom import dcmread  # only the callers that read files pay for it

    studies: dict[str, tuple[Counter[str], set[str], set[str]]] = {}
    for path in files:
        try:
            ds = dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
        except Exception:  # noqa: BLE001 - damaged or vanished: the rest is still audited
            continue
        classes, patients, accessions = studies.setdefault(str(ds.get("StudyInstanceUID", "")),
                                                           (Counter(), set(), set()))
        classes[str(ds.get("SOPClassUID", ""))] += 1
        patients.add(str(ds.get("PatientID", "") or ""))
        accessions.add(str(ds.get("AccessionNumber", "") or ""))
    return [StudyTransfer(uid, dict(classes), min((p for p in patients if p), default=""),
                          tuple(sorted(a for a in accessions if a)))
            for uid, (classes, patients, accessions) in sorted(studies.items()) if uid]


def _access_point_type(host: str) -> str:
    if not host:
        return ""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return codes.ACCESS_POINT_NAME
    return codes.ACCESS_POINT_IP


def os_user() -> ActiveParticipant:
    """The person at the keyboard: the OS user, and the sudo caller when run through sudo."""
    user = getpass.getuser()
    sudo = os.environ.get("SUDO_USER", "")
    host = socket.gethostname()
    return ActiveParticipant(user_id=user, requestor=True, user_name=f"sudo by {sudo}" if sudo else "",
                             alternative_user_id=f"uid={os.getuid()}", access_point=host,
                             access_point_type=codes.ACCESS_POINT_NAME)


def application_activity(me: Identity, started: bool) -> AuditMessage:
    """A.5.3.1: the service started or stopped; the launcher is the OS user running it."""
    launcher = os_user()
    launcher = ActiveParticipant(user_id=launcher.user_id, requestor=True, roles=(codes.APPLICATION_LAUNCHER,),
                                 user_name=launcher.user_name, alternative_user_id=launcher.alternative_user_id)
    return me.message(event_id=codes.APPLICATION_ACTIVITY, action=codes.ACTION_EXECUTE,
                      outcome=codes.OUTCOME_SUCCESS,
                      event_types=(codes.APPLICATION_START if started else codes.APPLICATION_STOP,),
                      participants=(me.process(requestor=False), launcher))


def association_accepted(me: Identity, caller: Peer) -> AuditMessage:
    """A.5.3.12 User Authentication (Login): a calling AE passed the node's checks."""
    return me.message(event_id=codes.USER_AUTHENTICATION, action=codes.ACTION_EXECUTE,
                      outcome=codes.OUTCOME_SUCCESS, event_types=(codes.LOGIN,),
                      participants=(caller.participant(requestor=True), me.process(requestor=False)))


def association_rejected(me: Identity, caller: Peer, called_ae: str, reason: str) -> AuditMessage:
    """A.5.3.11 Security Alert (Node Authentication, minor failure): who was refused, and why."""
    subject = ParticipantObject(object_id=f"{caller.ae_title}@{caller.host}", id_type=codes.NODE_ID,
                                type_code=codes.OBJECT_SYSTEM,
                                details=(("Alert Description", reason.encode()),
                                         ("Called AE Title", called_ae.encode())))
    return me.message(event_id=codes.SECURITY_ALERT, action=codes.ACTION_EXECUTE, outcome=codes.OUTCOME_MINOR,
                      event_types=(codes.NODE_AUTHENTICATION,), outcome_description=reason,
                      participants=(me.process(requestor=False), caller.participant(requestor=True)),
                      objects=(subject,))


def security_alert(me: Identity, peer: Peer, reason: str, outcome: int = codes.OUTCOME_SERIOUS) -> AuditMessage:
    """A.5.3.11 Security Alert (Node Authentication): a TLS handshake or other node check failed."""
    subject = ParticipantObject(object_id=peer.host or peer.ae_title, id_type=codes.NODE_ID,
                                type_code=codes.OBJECT_SYSTEM, details=(("Alert Description", reason.encode()),))
    return me.message(event_id=codes.SECURITY_ALERT, action=codes.ACTION_EXECUTE, outcome=outcome,
                      event_types=(codes.NODE_AUTHENTICATION,), outcome_description=reason,
                      participants=(me.process(requestor=False), peer.participant(requestor=True)),
                      objects=(subject,))


def _study_objects(studies: Iterable[StudyTransfer]) -> tuple[ParticipantObject, ...]:
    objects: list[ParticipantObject] = []
    patients: set[str] = set()
    for study in studies:
        objects.append(ParticipantObject(
            object_id=study.study_uid, id_type=codes.STUDY_INSTANCE_UID, type_code=codes.OBJECT_SYSTEM,
            role=codes.ROLE_REPORT, accessions=tuple(a for a in study.accessions if a),
            sop_classes=tuple(SOPClassCount(uid, n) for uid, n in sorted(study.sop_classes.items()))))
        if study.patient_id:
            patients.add(study.patient_id)
    for patient in sorted(patients):
        objects.append(ParticipantObject(object_id=patient, id_type=codes.PATIENT_NUMBER,
                                         type_code=codes.OBJECT_PERSON, role=codes.ROLE_PATIENT))
    return tuple(objects)


def instances_received(me: Identity, caller: Peer, studies: Iterable[StudyTransfer], refused: int = 0
                       ) -> AuditMessage:
    """A.5.3.7 DICOM Instances Transferred (Create), as the receiver, for one association."""
    outcome = codes.OUTCOME_MINOR if refused else codes.OUTCOME_SUCCESS
    return me.message(event_id=codes.INSTANCES_TRANSFERRED, action=codes.ACTION_CREATE, outcome=outcome,
                      outcome_description=f"{refused} instance(s) refused" if refused else "",
                      participants=(caller.participant(requestor=True, roles=(codes.SOURCE,)),
                                    me.process(requestor=False, roles=(codes.DESTINATION,))),
                      objects=_study_objects(studies))


def instances_sent(me: Identity, destination: Peer, studies: Iterable[StudyTransfer], error: str = "",
                   requested_by: ActiveParticipant | None = None) -> AuditMessage:
    """A.5.3.7 DICOM Instances Transferred (Read, the sender's view) to one destination.

    ``error`` set: the destination never confirmed them (dead-lettered, or given up by
    ``requested_by``, the admin, who is then the requestor), a serious failure.
    """
    others = (requested_by,) if requested_by is not None else ()
    return me.message(event_id=codes.INSTANCES_TRANSFERRED, action=codes.ACTION_READ,
                      outcome=codes.OUTCOME_SERIOUS if error else codes.OUTCOME_SUCCESS,
                      outcome_description=error,
                      participants=(me.process(requestor=not others, roles=(codes.SOURCE,)),
                                    destination.participant(requestor=False, roles=(codes.DESTINATION,)),
                                    *others),
                      objects=_study_objects(studies))


def transfer_requested(me: Identity, user: ActiveParticipant, destination: Peer, studies: Iterable[StudyTransfer],
                       what: str) -> AuditMessage:
    """A.5.3.3 Begin Transferring DICOM Instances: an admin queued results for a destination
    (``studies resend``, ``outbox retry``); ``what`` says with which command. The transfer
    itself is audited when the destination confirms or is given up (:func:`instances_sent`)."""
    return me.message(event_id=codes.BEGIN_TRANSFERRING, action=codes.ACTION_EXECUTE,
                      outcome=codes.OUTCOME_SUCCESS, outcome_description=what,
                      participants=(user, me.process(requestor=False, roles=(codes.SOURCE,)),
                                    destination.participant(requestor=False, roles=(codes.DESTINATION,))),
                      objects=_study_objects(studies))


def study_reanalysed(me: Identity, user: ActiveParticipant, studies: Iterable[StudyTransfer], what: str
                     ) -> AuditMessage:
    """A.5.3.6 DICOM Instances Accessed (Update): an admin had the study's images analysed again,
    to be reported as an amended report (``studies reanalyse``); ``what`` says which version."""
    return me.message(event_id=codes.INSTANCES_ACCESSED, action=codes.ACTION_UPDATE,
                      outcome=codes.OUTCOME_SUCCESS, outcome_description=what,
                      participants=(user, me.process(requestor=False)), objects=_study_objects(studies))


def study_deleted(me: Identity, study: StudyTransfer, why: str) -> AuditMessage:
    """A.5.3.8 DICOM Study Deleted: this process removed a study's instances from the spool
    (retention); ``study`` holds the SOP classes and counts that went, ``why`` the rule.

    One study per message: the standard allows one patient per message only.
    """
    return me.message(event_id=codes.STUDY_DELETED, action=codes.ACTION_DELETE, outcome=codes.OUTCOME_SUCCESS,
                      outcome_description=why, participants=(me.process(requestor=True),),
                      objects=_study_objects([study]))


def _config_subject(path: str, section: str, details: tuple[tuple[str, Any], ...]) -> tuple[codes.Code,
                                                                                            ParticipantObject]:
    """The event type and the changed section as a participant object (the file's URI).

    Callers (and whether they are enforced) are the node's access control (110129 Security
    Configuration); destinations are where patient data goes (110128 Network Configuration).
    """
    security = section.split(".")[0] in ("callers", "node")
    event_type = codes.SECURITY_CONFIGURATION if security else codes.NETWORK_CONFIGURATION
    subject = ParticipantObject(
        object_id="file://" + os.path.abspath(path), id_type=codes.URI, type_code=codes.OBJECT_SYSTEM,
        name=f"[[{section}]]" if "." not in section else section,
        role=codes.ROLE_SECURITY_RESOURCE if security else codes.ROLE_MASTER_FILE,
        details=tuple((key, json.dumps(value, sort_keys=True, default=str).encode()) for key, value in details))
    return event_type, subject


def config_changed(me: Identity, path: str, section: str, command: list[str], before: Any, after: Any,
                   outcome: int = codes.OUTCOME_SUCCESS, error: str = "") -> AuditMessage:
    """A.5.3.11 Security Alert (configuration): who edited which section, with which command, before/after."""
    event_type, subject = _config_subject(path, section, (("Command", command), ("Before", before),
                                                          ("After", after)))
    return me.message(event_id=codes.SECURITY_ALERT, action=codes.ACTION_EXECUTE, outcome=outcome,
                      event_types=(event_type,), outcome_description=error,
                      participants=(os_user(), me.process(requestor=False)), objects=(subject,))


def config_reloaded(me: Identity, path: str, section: str, before: Any, after: Any) -> AuditMessage:
    """A.5.3.11 Security Alert (configuration): this service re-read its configuration file and
    applies a changed ``section`` (callers, whether they are enforced, destinations), before/after.

    Reported by the process that reloads, as the requestor: who wrote the file is not known
    here (an audited ``aet|dest`` edit, or an editor, which only this record shows).
    """
    event_type, subject = _config_subject(path, section, (("Before", before), ("After", after)))
    return me.message(event_id=codes.SECURITY_ALERT, action=codes.ACTION_EXECUTE, outcome=codes.OUTCOME_SUCCESS,
                      event_types=(event_type,),
                      outcome_description=f"configuration reloaded by the running service: {section} changed",
                      participants=(me.process(requestor=True),), objects=(subject,))
