"""A failed DICOM TLS handshake at the node becomes a security alert naming the peer and
the reason: a real pynetdicom server with the node's TLS context (mammocad.dicom.tls),
real clients with no or an untrusted client certificate, certificates made here."""

from __future__ import annotations

import socket
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom import AE

from mammocad.config import Settings
from mammocad.dicom import tls
from mammocad.dicom.sop_classes import VERIFICATION
from mammocad.node.observer import NodeObserver
from tests.audit.certs import Certs, make_certs
from tests.audit.schema import problems
from tests.audit.xpath import attribute
from tests.services import free_port, wait_until

#: The node's DICOM TLS port, the certificates made for the test, the audit file, the observer.
TlsNode = tuple[int, Certs, Path, NodeObserver]


@pytest.fixture
def tls_node(tmp_path: Path) -> Iterator[TlsNode]:
    certs = make_certs(tmp_path / "certs")
    audit = tmp_path / "audit.log"
    observer = NodeObserver(Settings(node={"spool_dir": tmp_path}, audit={"file": str(audit)}))
    ctx = tls.server_context(certificate=str(certs.server_cert), private_key=str(certs.server_key),
                             ca_certificates=str(certs.ca), on_failure=observer.security_alert)
    ae = AE("MAMMOCAD")
    ae.add_supported_context(VERIFICATION)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, ssl_context=ctx)
    assert server is not None  # None only with block=True
    yield port, certs, audit, observer
    server.shutdown()
    observer.trail.close()


def _handshake(port: int, ctx: ssl.SSLContext) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"\x00")  # TLS 1.3: the server's verdict on our certificate comes after the handshake
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass


def _alerts(audit: Path) -> list[ET.Element]:
    lines = audit.read_bytes().splitlines() if audit.exists() else []
    assert all(problems(line) == [] for line in lines)
    return [ET.fromstring(line) for line in lines]


def test_handshake_without_or_with_an_untrusted_client_certificate_is_alerted(tls_node: TlsNode, tmp_path: Path) -> None:
    port, certs, audit, observer = tls_node
    no_cert = ssl.create_default_context(cafile=str(certs.ca))
    _handshake(port, no_cert)
    other = make_certs(tmp_path / "other")
    untrusted = ssl.create_default_context(cafile=str(certs.ca))
    untrusted.load_cert_chain(other.client_cert, other.client_key)
    _handshake(port, untrusted)
    wait_until(lambda: len(_alerts(audit)) >= 2, 10, "two security alerts")
    for alert in _alerts(audit):
        assert attribute(alert, "EventIdentification/EventID", "csd-code") == "110113"
        assert attribute(alert, "EventIdentification/EventTypeCode", "csd-code") == "110126"
        assert attribute(alert, "EventIdentification", "EventOutcomeIndicator") == "8"
        assert "certificate" in alert.findtext("EventIdentification/EventOutcomeDescription", "")
        peer = [p for p in alert.findall("ActiveParticipant") if p.get("UserIsRequestor") == "true"]
        assert [p.get("NetworkAccessPointID") for p in peer] == ["127.0.0.1"]


def test_a_good_client_certificate_raises_no_alert(tls_node: TlsNode) -> None:
    port, certs, audit, _ = tls_node
    good = ssl.create_default_context(cafile=str(certs.ca))
    good.load_cert_chain(certs.client_cert, certs.client_key)
    ae = AE("STORESCU")
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate("127.0.0.1", port, ae_title="MAMMOCAD", tls_args=(good, "127.0.0.1"))
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0
    assoc.release()
    assert _alerts(audit) == []
