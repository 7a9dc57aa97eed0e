"""Every audit event mammocad emits conforms to the DICOM audit message schema, carries the
standard's codes, and names who and what; the schema checker itself rejects bad messages."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET

import pytest

from mammocad.audit import codes, events
from mammocad.audit.events import Identity, Peer, StudyTransfer
from mammocad.audit.messages import ActiveParticipant, AuditMessage, ParticipantObject
from tests.audit.schema import problems

ME = Identity.make("MAMMOCAD", site_id="Test Hospital")
STUDY = StudyTransfer("1.2.3.4", {"1.2.840.10008.5.1.4.1.1.1.2": 4}, patient_id="PAT-7", accessions=("ACC1",))


def _all_events() -> dict[str, AuditMessage]:
    caller = Peer("PACS", "127.0.0.1")
    return {
        "start": events.application_activity(ME, started=True),
        "stop": events.application_activity(ME, started=False),
        "accepted": events.association_accepted(ME, caller),
        "rejected": events.association_rejected(ME, Peer("INTRUDER", "10.9.9.9"), "MAMMOCAD",
                                                 "calling AE title not recognised"),
        "tls": events.security_alert(ME, Peer("", "10.9.9.9"), "TLS handshake failed: unknown CA"),
        "received": events.instances_received(ME, caller, [STUDY]),
        "sent": events.instances_sent(ME, Peer("ORTHANC", "pacs.example.org"), [STUDY]),
        "dead": events.instances_sent(ME, Peer("ORTHANC", "10.0.0.5"), [STUDY], error="refused"),
        "resend": events.transfer_requested(ME, events.os_user(), Peer("ORTHANC", "10.0.0.5"), [STUDY],
                                            "re-sent by admin with `mammocad studies resend`"),
        "reanalyse": events.study_reanalysed(ME, events.os_user(), [STUDY], "analysed again: amended report 1"),
        "dropped": events.instances_sent(ME, Peer("ORTHANC", "10.0.0.5"), [STUDY], error="given up by admin",
                                         requested_by=events.os_user()),
        "config": events.config_changed(ME, "/etc/mammocad/mammocad.toml", "destinations",
                                        ["mammocad", "dest", "add", "pacs"], before=[], after=[{"name": "pacs"}]),
    }


@pytest.mark.parametrize("name", list(_all_events()))
def test_each_event_conforms_to_the_schema(name: str) -> None:
    xml = _all_events()[name].to_xml()
    assert b"\n" not in xml
    assert problems(xml) == []


def _code(el: ET.Element | None) -> tuple[str, str, str]:
    assert el is not None
    return el.get("csd-code", ""), el.get("codeSystemName", ""), el.get("originalText", "")


def test_instances_received_names_sender_study_classes_and_patient() -> None:
    root = ET.fromstring(events.instances_received(ME, Peer("PACS", "10.0.0.5"), [STUDY], refused=1).to_xml())
    event = root.find("EventIdentification")
    assert event is not None and event.get("EventActionCode") == "C" and event.get("EventOutcomeIndicator") == "4"
    assert _code(event.find("EventID")) == ("110104", "DCM", "DICOM Instances Transferred")
    source, dest = root.findall("ActiveParticipant")
    assert (source.get("UserID"), source.get("UserIsRequestor"), source.get("NetworkAccessPointID"),
            source.get("NetworkAccessPointTypeCode")) == ("PACS", "true", "10.0.0.5", "2")
    assert _code(source.find("RoleIDCode"))[0] == "110153" and _code(dest.find("RoleIDCode"))[0] == "110152"
    assert dest.get("AlternativeUserID") == "AETITLES=MAMMOCAD"
    study, patient = root.findall("ParticipantObjectIdentification")
    assert (study.get("ParticipantObjectID"), study.get("ParticipantObjectTypeCode"),
            study.get("ParticipantObjectTypeCodeRole")) == ("1.2.3.4", "2", "3")
    assert _code(study.find("ParticipantObjectIDTypeCode")) == ("110180", "DCM", "Study Instance UID")
    sop = study.find("ParticipantObjectDescription/SOPClass")
    assert sop is not None and (sop.get("UID"), sop.get("NumberOfInstances")) == ("1.2.840.10008.5.1.4.1.1.1.2", "4")
    assert (patient.get("ParticipantObjectID"), patient.get("ParticipantObjectTypeCode"),
            patient.get("ParticipantObjectTypeCodeRole")) == ("PAT-7", "1", "1")
    source_id = root.find("AuditSourceIdentification")
    assert source_id is not None and source_id.get("AuditEnterpriseSiteID") == "Test Hospital"


def test_rejection_says_who_and_why() -> None:
    msg = events.association_rejected(ME, Peer("INTRUDER", "10.9.9.9"), "MAMMOCAD", "calling AE title not recognised")
    root = ET.fromstring(msg.to_xml())
    assert _code(root.find("EventIdentification/EventID"))[0] == "110113"
    assert _code(root.find("EventIdentification/EventTypeCode"))[0] == "110126"
    assert root.findtext("EventIdentification/EventOutcomeDescription") == "calling AE title not recognised"
    requestor = [p for p in root.findall("ActiveParticipant") if p.get("UserIsRequestor") == "true"]
    assert [(p.get("UserID"), p.get("NetworkAccessPointID")) for p in requestor] == [("INTRUDER", "10.9.9.9")]


def test_config_change_records_user_command_before_and_after() -> None:
    msg = events.config_changed(ME, "cfg.toml", "callers", ["mammocad", "aet", "add", "X"],
                                before=[{"ae_title": "A"}], after=[{"ae_title": "A"}, {"ae_title": "X"}])
    root = ET.fromstring(msg.to_xml())
    assert _code(root.find("EventIdentification/EventTypeCode"))[0] == "110129"
    details = {d.get("type"): json.loads(base64.b64decode(d.get("value", "")))
               for d in root.iter("ParticipantObjectDetail")}
    assert details == {"Command": ["mammocad", "aet", "add", "X"], "Before": [{"ae_title": "A"}],
                       "After": [{"ae_title": "A"}, {"ae_title": "X"}]}
    person = root.find("ActiveParticipant")
    assert person is not None and person.get("UserIsRequestor") == "true" and person.get("UserID")


def test_free_text_with_newlines_and_control_characters_stays_one_valid_line() -> None:
    msg = events.association_rejected(ME, Peer("A\x00B", "h"), "X", "line one\nline two\r\x07")
    xml = msg.to_xml()
    assert b"\n" not in xml and problems(xml) == []


def test_constructors_refuse_values_the_schema_forbids() -> None:
    with pytest.raises(ValueError, match="EventOutcomeIndicator"):
        AuditMessage(event_id=codes.SECURITY_ALERT, action="E", outcome=3,
                     participants=(ActiveParticipant("u", True),), source_id="s")
    with pytest.raises(ValueError, match="UserID"):
        ActiveParticipant("", True)
    with pytest.raises(ValueError, match="ParticipantObjectTypeCodeRole"):
        ParticipantObject("x", codes.NODE_ID, role="99")
    with pytest.raises(ValueError, match="at least one ActiveParticipant"):
        AuditMessage(event_id=codes.SECURITY_ALERT, action="E", outcome=0, participants=(), source_id="s")


@pytest.mark.parametrize("bad, expected", [
    (b"<AuditMessage/>", "missing EventIdentification"),
    (b'<AuditMessage><EventIdentification EventDateTime="yesterday" EventOutcomeIndicator="0">'
     b'<EventID csd-code="110100" codeSystemName="DCM" originalText="x"/></EventIdentification>'
     b'<ActiveParticipant UserID="u" UserIsRequestor="true"/><AuditSourceIdentification AuditSourceID="s"/>'
     b"</AuditMessage>", "not an xsd:dateTime"),
    (b'<AuditMessage><EventIdentification EventDateTime="2026-01-01T00:00:00Z" EventOutcomeIndicator="1">'
     b'<EventID csd-code="110100" codeSystemName="DCM"/></EventIdentification>'
     b'<ActiveParticipant UserIsRequestor="yes"/><AuditSourceIdentification AuditSourceID="s"/>'
     b"</AuditMessage>", "EventOutcomeIndicator='1'"),
    (b'<AuditMessage><EventIdentification EventDateTime="2026-01-01T00:00:00Z" EventOutcomeIndicator="0">'
     b'<EventID csd-code="1" codeSystemName="DCM" originalText="x"/></EventIdentification>'
     b'<AuditSourceIdentification AuditSourceID="s"/><ActiveParticipant UserID="u" UserIsRequestor="true"/>'
     b"</AuditMessage>", "misplaced element ActiveParticipant"),
])
def test_the_schema_checker_finds_bad_messages(bad: bytes, expected: str) -> None:
    assert any(expected in p for p in problems(bad)), problems(bad)
