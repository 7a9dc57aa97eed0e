"""One record the sender cannot handle loses only itself: the rest of its batch is written and sent.

The sender serialised a whole batch (up to 256 records) before writing any, and let a sink's
unexpected error (not an ``OSError``) out of the batch: one record whose ``to_xml`` failed, or
one such error from the collector, left the whole batch unwritten and unsent, counted nowhere;
only an ``audit_sender_error`` line said that something had gone wrong.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mammocad.audit import codes, events
from mammocad.audit.events import Identity, Peer, StudyTransfer
from mammocad.audit.messages import AuditMessage, ParticipantObject
from mammocad.audit.syslog import SyslogClient
from mammocad.audit.trail import AuditTrail
from mammocad.logs import KeyValueFormatter
from tests.audit.listener import SyslogListener
from tests.audit.schema import problems
from tests.services import wait_until

ME = Identity.make("MAMMOCAD")
PATIENT = "PAT-0042-SECRET"


def _unserialisable() -> AuditMessage:
    """A transfer record whose detail value is text, not bytes (as a caller that forgot an
    ``.encode()`` makes it): valid when built, its ``to_xml`` raises TypeError (base64)."""
    good = events.instances_sent(ME, Peer("PACS", "127.0.0.1"),
                                 [StudyTransfer("1.2.3", {"1.2.840.10008.5.1.4.1.1.7": 1}, patient_id=PATIENT)])
    broken = ParticipantObject(PATIENT, codes.PATIENT_NUMBER, type_code="1", role="1",
                               details=(("Alert Description", "text, not bytes"),))  # type: ignore[arg-type]
    return AuditMessage(good.event_id, good.action, good.outcome, good.participants, good.source_id,
                        objects=(*good.objects, broken))


def test_a_record_that_cannot_be_serialised_loses_only_itself(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    bad = _unserialisable()
    with pytest.raises(TypeError):
        bad.to_xml()
    audit = tmp_path / "audit.log"
    caplog.set_level(logging.WARNING, "mammocad.audit")
    with SyslogListener("tcp") as listener:
        host, port = listener.url.removeprefix("tcp://").split(":")
        trail = AuditTrail(ME, audit, SyslogClient("tcp", host, int(port)))
        # The sender takes a batch, then waits for this lock to write it: everything emitted
        # while the test holds it shares a batch with the bad record (whatever it took first).
        with trail._io_lock:
            for message in (events.application_activity(ME, True), bad, events.application_activity(ME, False)):
                trail.emit(message)
        trail.close(timeout_s=60)  # returns when the queue is sent; 60 s is only a deadline
        wait_until(lambda: len(listener.received) >= 2, 60, "the two good records at the collector")
        assert listener.errors == [] and all(problems(got.xml) == [] for got in listener.received)
    lines = audit.read_bytes().splitlines()
    assert len(lines) == 2 and all(problems(line) == [] for line in lines)
    assert trail.dropped == {"file": 0, "syslog": 0, "queue": 1}
    assert trail.written == {"file": 2, "syslog": 2}
    drops = [r for r in caplog.records if r.getMessage() == "audit_dropped"]
    assert [(r.sink, r.audit_event) for r in drops] == [("queue", "110104 DICOM Instances Transferred")]  # type: ignore[attr-defined]
    assert PATIENT not in KeyValueFormatter().format(drops[0])
    assert "audit_sender_error" not in caplog.text


def test_an_unexpected_error_from_the_collector_is_counted_and_the_file_has_the_batch(tmp_path: Path) -> None:
    """``tcp://a..b`` passes the config's check, but the host name cannot be encoded: the
    connect raises UnicodeError (a ValueError), not an OSError."""
    audit = tmp_path / "audit.log"
    trail = AuditTrail(ME, audit, SyslogClient("tcp", "a..b", 514))
    with trail._io_lock:  # one batch, as above
        for ok in (True, False):
            trail.emit(events.application_activity(ME, ok))
    trail.close(timeout_s=60)
    assert trail.dropped == {"file": 0, "syslog": 2, "queue": 0}
    assert trail.written == {"file": 2, "syslog": 0}
    assert len(audit.read_bytes().splitlines()) == 2


def test_an_unexpected_error_from_the_file_is_counted_and_the_collector_gets_the_batch(tmp_path: Path) -> None:
    """A path with a NUL byte: ``os.open`` raises ValueError, not an OSError."""
    with SyslogListener("tcp") as listener:
        host, port = listener.url.removeprefix("tcp://").split(":")
        trail = AuditTrail(ME, tmp_path / "audit\x00.log", SyslogClient("tcp", host, int(port)))
        with trail._io_lock:  # one batch, as above
            for ok in (True, False):
                trail.emit(events.application_activity(ME, ok))
        trail.close(timeout_s=60)
        wait_until(lambda: len(listener.received) >= 2, 60, "the batch at the collector")
    assert trail.dropped == {"file": 2, "syslog": 0, "queue": 0}
    assert trail.written == {"file": 0, "syslog": 2}
