"""The audit sender against real collectors on loopback: UDP, TCP (octet counting) and TLS
(certificates made here), the audit file, and a collector that is down."""

from __future__ import annotations

import os
import signal
import ssl
import threading
from pathlib import Path

import pytest

from mammocad.audit import events
from mammocad.audit.events import Identity, Peer, StudyTransfer
from mammocad.audit.syslog import SyslogClient, frame
from mammocad.audit.trail import AuditTrail
from mammocad.config.settings import AuditSettings
from tests.audit.certs import make_certs
from tests.audit.listener import SyslogListener
from tests.audit.schema import problems
from tests.services import free_port, wait_until

ME = Identity.make("MAMMOCAD")


def _study_messages() -> list:  # type: ignore[type-arg]
    study = StudyTransfer("1.2.3", {"1.2.840.10008.5.1.4.1.1.7": 2}, patient_id="P1")
    return [events.application_activity(ME, True), events.association_accepted(ME, Peer("PACS", "127.0.0.1")),
            events.instances_received(ME, Peer("PACS", "127.0.0.1"), [study]),
            events.instances_sent(ME, Peer("ORTHANC", "127.0.0.1"), [study]),
            events.application_activity(ME, False)]


def _check_received(listener: SyslogListener, n: int) -> None:
    wait_until(lambda: len(listener.received) >= n, 60, f"{n} syslog messages")  # a deadline under load
    assert listener.errors == []
    for got in listener.received:
        assert got.pri == 10 * 8 + 5 and got.app_name == "mammocad" and got.msgid == "IHE+RFC-3881"
        assert problems(got.xml) == []


@pytest.mark.parametrize("scheme", ["udp", "tcp"])
def test_plain_syslog_receives_valid_messages(scheme: str, tmp_path: Path) -> None:
    with SyslogListener(scheme) as listener:
        trail = AuditTrail.from_settings(AuditSettings(syslog=listener.url, file=str(tmp_path / "audit.log")),
                                         "MAMMOCAD")
        for message in _study_messages():
            trail.emit(message)
        trail.close()
        _check_received(listener, 5)
    lines = (tmp_path / "audit.log").read_bytes().splitlines()
    assert len(lines) == 5 and all(problems(line) == [] for line in lines)
    assert (tmp_path / "audit.log").stat().st_mode & 0o777 == 0o640


def _server_context(certs, require_client: bool) -> ssl.SSLContext:  # type: ignore[no-untyped-def]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.server_cert, certs.server_key)
    if require_client:
        ctx.load_verify_locations(certs.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def test_tls_syslog_with_client_certificate(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    with SyslogListener("tls", server_context=_server_context(certs, require_client=True)) as listener:
        settings = AuditSettings(syslog=listener.url, ca_certificates=str(certs.ca),
                                 certificate=str(certs.client_cert), private_key=str(certs.client_key))
        trail = AuditTrail.from_settings(settings, "MAMMOCAD")
        first, *rest = _study_messages()
        trail.emit(first)
        # Once the collector holds the first message it has also sent its TLS 1.3 session
        # tickets (the server sends them at the end of its handshake), so the sender's socket
        # is readable without data when the next messages go: the case that once stalled
        # each message 5 s, reconnected, and lost messages under load.
        wait_until(lambda: listener.received, 60, "the first syslog message")
        for message in rest:
            trail.emit(message)
        trail.close(timeout_s=60)  # returns when the queue is sent; 60 s is only a deadline
        _check_received(listener, 5)
        assert trail.dropped["syslog"] == 0
        assert listener.connections == 1  # session tickets are not a collector that went away


def test_tls_collector_with_an_untrusted_certificate_gets_nothing(tmp_path: Path) -> None:
    certs, other = make_certs(tmp_path / "certs"), make_certs(tmp_path / "other")
    with SyslogListener("tls", server_context=_server_context(certs, require_client=False)) as listener:
        trail = AuditTrail.from_settings(AuditSettings(syslog=listener.url, ca_certificates=str(other.ca)),
                                         "MAMMOCAD")
        trail.emit(events.application_activity(ME, True))
        trail.close()
        assert trail.dropped["syslog"] == 1 and listener.received == []


@pytest.mark.parametrize(("cipher", "accepted"), [("ECDHE-RSA-AES128-SHA256", False),
                                                ("ECDHE-RSA-AES128-GCM-SHA256", True)])
def test_tls_collector_gets_only_the_bcp195_suites(cipher: str, accepted: bool, tmp_path: Path) -> None:
    """A TLS 1.2 collector that offers only a CBC suite is refused; an AES-GCM one is used.
    The sender once took Python's default list (CBC with SHA-256/384 on TLS 1.2), wider than
    the node's DICOM TLS (BCP 195)."""
    certs = make_certs(tmp_path / "certs")
    ctx = _server_context(certs, require_client=False)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.3 suites are all AEAD
    ctx.set_ciphers(cipher)
    with SyslogListener("tls", server_context=ctx) as listener:
        client = SyslogClient("tls", "127.0.0.1", listener.port, ca_file=str(certs.ca))
        message = frame(b"<AuditMessage/>")
        try:
            if accepted:
                client.send(message)
                wait_until(lambda: listener.received, 60, "the syslog message")
            else:
                with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE|NO_SHARED_CIPHER|no shared cipher"):
                    client.send(message)
                assert listener.received == []
        finally:
            client.close()


def test_a_fork_waits_for_the_tls_send_in_flight_and_the_child_audits_on_its_own(tmp_path: Path) -> None:
    """Celery's prefork pool forks while the parent's sender may be mid-handshake (its start
    message). A child forked inside the handshake inherited OpenSSL's locks held by a thread
    it does not have: its first TLS message then hung for good, in the file but never at the
    collector. The collector here answers the handshake late, so an unguarded fork lands in it."""
    certs = make_certs(tmp_path / "certs")
    context = _server_context(certs, require_client=True)
    with SyslogListener("tls", server_context=context, handshake_delay_s=1.0) as listener:
        settings = AuditSettings(syslog=listener.url, ca_certificates=str(certs.ca),
                                 certificate=str(certs.client_cert), private_key=str(certs.client_key))
        trail = AuditTrail.from_settings(settings, "MAMMOCAD")
        trail.emit(events.application_activity(ME, True))
        wait_until(lambda: listener.connections == 1, 60, "the sender's connection")  # now in the handshake
        pid = os.fork()
        if pid == 0:  # the child: exit 0; 3 forked mid-send, 4 its own message dropped, 5 an error
            status = 5
            try:
                status = 0 if trail.syslog is not None and trail.syslog.connected else 3
                trail.emit(events.instances_sent(ME, Peer("PACS", "127.0.0.1"),
                                                 [StudyTransfer("1.2.3", {"1.2.840.10008.5.1.4.1.1.7": 1})]))
                trail.close(timeout_s=60)
                status = status or (0 if trail.dropped["syslog"] == 0 else 4)
            finally:
                os._exit(status)  # never back into pytest
        try:
            _check_received(listener, 2)  # the parent's start and the child's transfer
            _, exited = wait_until(lambda: [r for r in [os.waitpid(pid, os.WNOHANG)] if r[0]], 60,
                                   "the child's exit")[0]
            pid = 0
            assert os.waitstatus_to_exitcode(exited) == 0
        finally:
            if pid:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        trail.close()
        assert listener.connections == 2 and trail.dropped["syslog"] == 0


def test_collector_down_never_blocks_drops_are_counted_and_the_file_keeps_everything(tmp_path: Path) -> None:
    port = free_port()  # nothing listens: connections are refused
    trail = AuditTrail(ME, tmp_path / "audit.log", SyslogClient("tcp", "127.0.0.1", port, timeout_s=2))
    for _ in range(200):
        trail.emit(events.application_activity(ME, True))
    trail.close()
    assert trail.dropped["syslog"] == 200 and trail.dropped["queue"] == 0
    assert len((tmp_path / "audit.log").read_bytes().splitlines()) == 200

    # the collector comes back: after the back-off, messages flow again
    with SyslogListener("tcp", port=port) as listener:
        trail = AuditTrail(ME, None, SyslogClient("tcp", "127.0.0.1", port, timeout_s=2))
        trail.emit(events.application_activity(ME, False))
        trail.close()
        _check_received(listener, 1)


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    sending, release = threading.Event(), threading.Event()

    class Stuck(SyslogClient):  # a collector that never answers, held until the test lets it go
        def send(self, message: bytes) -> None:
            sending.set()
            release.wait(60)

    trail = AuditTrail(ME, None, Stuck("udp", "127.0.0.1", free_port()), queue_size=10)
    try:
        trail.emit(events.application_activity(ME, True))
        assert sending.wait(60), "the sender never took the first message"
        for _ in range(100):  # the sender is stuck: 10 fit in the queue, the rest must not wait
            trail.emit(events.application_activity(ME, True))
        assert trail.dropped["queue"] == 90
    finally:
        release.set()
        trail.close(timeout_s=10)


def test_nothing_configured_means_disabled(tmp_path: Path) -> None:
    trail = AuditTrail.from_settings(AuditSettings(), "MAMMOCAD")
    assert not trail.enabled
    trail.emit(events.application_activity(ME, True))
    trail.close()


@pytest.mark.parametrize("url", ["syslog://h:1", "udp://", "tcp://h:x", "tls://h:70000", "h:514"])
def test_bad_syslog_urls_are_refused_naming_the_form(url: str) -> None:
    with pytest.raises(ValueError, match="syslog"):
        AuditSettings(syslog=url)


def test_tls_collector_files_are_loaded_with_the_config(tmp_path: Path) -> None:
    """A wrong CA or client certificate path once passed `config check` and then stopped the
    node ("cannot start the node ... No such file or directory", no file named) and the
    worker (a traceback) when they built their audit trail."""
    certs = make_certs(tmp_path / "certs")
    url = "tls://127.0.0.1:6514"
    AuditSettings(syslog=url, ca_certificates=str(certs.ca), certificate=str(certs.client_cert),
                  private_key=str(certs.client_key))
    with pytest.raises(ValueError, match=r"audit\.ca_certificates: cannot load CA certificates '.*missing\.pem'"):
        AuditSettings(syslog=url, ca_certificates=str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match=r"audit\.ca_certificates: cannot load CA .*client\.key"):
        AuditSettings(syslog=url, ca_certificates=str(certs.client_key))  # a key, not a certificate
    with pytest.raises(ValueError, match=r"audit\.certificate/audit\.private_key: cannot load certificate"):
        AuditSettings(syslog=url, ca_certificates=str(certs.ca), certificate=str(certs.client_cert),
                      private_key=str(certs.server_key))  # not the certificate's key


def test_tls_files_without_a_tls_collector_are_refused(tmp_path: Path) -> None:
    """They would be ignored: the admin would believe the audit trail travels encrypted."""
    certs = make_certs(tmp_path / "certs")
    for url in ("tcp://127.0.0.1:514", "udp://127.0.0.1:514", ""):
        with pytest.raises(ValueError, match="apply only to a tls:// syslog collector"):
            AuditSettings(syslog=url, ca_certificates=str(certs.ca))


def test_a_message_too_big_for_udp_loses_only_itself(tmp_path: Path) -> None:
    """An association that brought hundreds of studies makes an audit message over the
    65,507-byte UDP limit. That message cannot go by UDP (the file has it), but it says
    nothing about the collector: the next messages must still be sent, not dropped while
    the sender backs off as from a dead collector."""
    studies = [StudyTransfer(f"1.2.826.0.1.3680043.8.498.{n}", {"1.2.840.10008.5.1.4.1.1.1.2": 4},
                             patient_id=f"P{n}", accessions=(f"ACC{n:08d}",)) for n in range(600)]
    big = events.instances_received(ME, Peer("PACS", "127.0.0.1"), studies)
    assert len(big.to_xml()) > 65507
    with SyslogListener("udp") as listener:
        trail = AuditTrail.from_settings(AuditSettings(syslog=listener.url, file=str(tmp_path / "audit.log")),
                                         "MAMMOCAD")
        trail.emit(big)
        trail.close()
        trail.emit(events.application_activity(ME, False))  # after the failed send: a new batch
        trail.close()
        _check_received(listener, 1)
    assert trail.dropped["syslog"] == 1 and trail.written == {"file": 2, "syslog": 1}
    assert len((tmp_path / "audit.log").read_bytes().splitlines()) == 2
