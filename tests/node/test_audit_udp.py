"""The node's audit trail over UDP syslog (RFC 5426) to a real collector on loopback.

A running node (real redis, real DCMTK peers) starts, rejects an unknown caller, accepts a
known one that stores a four-view study, and stops. The collector must get one RFC 5424
message per datagram for each of those events, each carrying a PS3.15 A.5 audit message
that passes the schema checks; the audit file holds the same messages.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from tests import factories
from tests.audit.listener import SyslogListener
from tests.audit.schema import problems
from tests.audit.xpath import attribute
from tests.node.conftest import NodeEnv, wait_until


def _ids(xml: bytes) -> tuple[str, str, str]:
    """(EventID, EventTypeCode, EventActionCode) of one audit message."""
    event = ET.fromstring(xml).find("EventIdentification")
    assert event is not None, xml[:200]
    event_id = event.find("EventID")
    assert event_id is not None
    type_code = event.find("EventTypeCode")
    return (event_id.get("csd-code", ""), "" if type_code is None else type_code.get("csd-code", ""),
            event.get("EventActionCode", ""))


def _requestors(xml: bytes) -> list[str]:
    return [p.get("UserID", "") for p in ET.fromstring(xml).iter("ActiveParticipant")
            if p.get("UserIsRequestor") == "true"]


def test_node_audits_to_udp_syslog(start_node: Callable[..., NodeEnv], tmp_path: Path) -> None:
    audit_file = tmp_path / "audit.log"
    with SyslogListener("udp") as collector:
        env = start_node(extra_node=f'\n[audit]\nsyslog = "{collector.url}"\nfile = "{audit_file}"\n')
        wait_until(lambda: len(collector.received) >= 1, 10, "the application start message")

        rejected = env.echoscu(aet="INTRUDER")
        assert rejected.returncode != 0, rejected.stdout
        study = factories.make_four_view_study(rows=64, columns=48)
        files = [factories.write(ds, tmp_path / "send" / f"{i}.dcm") for i, ds in enumerate(study)]
        sent = env.storescu(*files)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        wait_until(lambda: any(_ids(m.xml)[:3] == ("110104", "", "C") for m in collector.received), 10,
                   "the instances-received message")
        env.node.stop()
        wait_until(lambda: any(_ids(m.xml)[1] == "110121" for m in collector.received), 10,
                   "the application stop message")

    assert collector.errors == []
    received = collector.received
    for message in received:  # RFC 5424 header as IHE ATNA frames it; XML valid against PS3.15 A.5.1
        outcome = attribute(ET.fromstring(message.xml), "EventIdentification", "EventOutcomeIndicator")
        severity = 5 if outcome == "0" else 4  # notice, or warning for a failure
        assert (message.pri, message.app_name, message.msgid) == (10 * 8 + severity, "mammocad", "IHE+RFC-3881")
        assert problems(message.xml) == [], message.xml
    events = [_ids(m.xml) for m in received]
    assert events[0] == ("110100", "110120", "E") and events[-1] == ("110100", "110121", "E")
    assert sorted(events[1:-1]) == [("110104", "", "C"), ("110113", "110126", "E"),
                                    ("110114", "110122", "E")], events

    (alert,) = [m.xml for m in received if _ids(m.xml)[0] == "110113"]
    why = ET.fromstring(alert).findtext("EventIdentification/EventOutcomeDescription", "")
    assert "calling AE title not recognised" in why and _requestors(alert) == ["INTRUDER"]
    (login,) = [m.xml for m in received if _ids(m.xml)[0] == "110114"]
    assert _requestors(login) == ["STORESCU"]
    (incoming,) = [m.xml for m in received if _ids(m.xml)[0] == "110104"]
    study_object = [o for o in ET.fromstring(incoming).iter("ParticipantObjectIdentification")
                    if o.get("ParticipantObjectTypeCodeRole") == "3"]
    assert [o.get("ParticipantObjectID") for o in study_object] == [str(study[0].StudyInstanceUID)]
    sop = study_object[0].find("ParticipantObjectDescription/SOPClass")
    assert sop is not None and sop.get("NumberOfInstances") == "4"

    # the file and the collector hold the same messages (each datagram one whole message)
    assert sorted(audit_file.read_bytes().splitlines()) == sorted(m.xml for m in received)
