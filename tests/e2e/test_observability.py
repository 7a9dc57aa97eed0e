"""A whole study through `mammocad serve` with the audit trail and the metrics on.

DCMTK storescu sends a four-view study, the worker delivers the results to a real DCMTK
storescp. A syslog collector started here (TCP, octet counting) must receive valid DICOM
audit messages for all of it; the node's and workers' /metrics must show the study,
including the latency from last image received to results accepted. Run with a TCP
collector and with a TLS one that requires a client certificate (certificates made here).
"""

from __future__ import annotations

import ssl
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.audit.certs import make_certs
from tests.audit.listener import SyslogListener
from tests.audit.schema import problems
from tests.e2e.harness import send_with_storescu
from tests.factories import make_four_view_study, write
from tests.metrics.scrape import get, value
from tests.services import free_port
from tests.services import wait_until as wait_for
from tests.worker.conftest import StoreSCP

pytestmark = pytest.mark.e2e


def _event(xml: bytes) -> tuple[str, str, str]:
    root = ET.fromstring(xml)
    event = root.find("EventIdentification")
    assert event is not None
    types = [t.get("csd-code", "") for t in event.findall("EventTypeCode")]
    return (event.find("EventID").get("csd-code", ""), ",".join(types),  # type: ignore[union-attr]
            event.get("EventActionCode", ""))


def _with(received: list[bytes], event_id: str, action: str = "") -> list[ET.Element]:
    return [ET.fromstring(x) for x in received if _event(x)[0] == event_id and (not action or _event(x)[2] == action)]


def _collector(scheme: str, tmp_path: Path) -> tuple[SyslogListener, str]:
    """A collector and the [audit] keys that reach it (TLS: mutual, with certificates made here)."""
    if scheme == "tcp":
        return SyslogListener("tcp"), ""
    certs = make_certs(tmp_path / "certs")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.server_cert, certs.server_key)
    ctx.load_verify_locations(certs.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    keys = (f'ca_certificates = "{certs.ca}"\ncertificate = "{certs.client_cert}"\n'
            f'private_key = "{certs.client_key}"\n')
    return SyslogListener("tls", server_context=ctx), keys


@pytest.mark.parametrize("scheme", ["tcp", "tls"])
def test_a_study_is_audited_and_measured(scheme: str, tmp_path: Path, random_weights: Path, pipelines) -> None:
    node_metrics, worker_metrics = free_port(), free_port()
    audit_file = tmp_path / "audit.log"
    listener, tls_keys = _collector(scheme, tmp_path)
    with listener as collector, StoreSCP(tmp_path / "pacs") as pacs:
        pipe = pipelines(tmp_path / "node", random_weights, destinations=[
            {"name": "pacs", "ae_title": pacs.ae_title, "host": "127.0.0.1", "port": pacs.port,
             "outputs": ["mammo-cad-sr", "gsps"]}],
            extra=f'[audit]\nfile = "{audit_file}"\nsyslog = "{collector.url}"\nsite_id = "Test Hospital"\n'
                  f'{tls_keys}[metrics]\nport = {node_metrics}\nworker_port = {worker_metrics}\n')
        # a caller the node does not know: rejected, and a security alert says who and why
        echo = subprocess.run(["echoscu", "-aet", "INTRUDER", "-aec", "MAMMOCAD", "127.0.0.1", str(pipe.port)],
                              capture_output=True, text=True, timeout=60)
        assert echo.returncode != 0
        study = make_four_view_study(rows=256, columns=200)
        study_uid = str(study[0].StudyInstanceUID)
        send_with_storescu(pipe.port, [write(ds, tmp_path / "sent" / f"{i}.dcm") for i, ds in enumerate(study)])
        pipe.wait_report(study_uid)
        wait_for(lambda: len(pacs.received()) >= 2, 120, "the results at the PACS")

        # metrics: the results worker saw the study accepted by the PACS
        latency = wait_for(lambda: value(worker_metrics, "mammocad_result_latency_seconds_count",
                                         destination="pacs"), 60, "the latency histogram")
        assert latency == 1
        assert value(worker_metrics, "mammocad_stage_seconds_count", stage="send")
        assert value(worker_metrics, "mammocad_stage_seconds_count", stage="build") == 1
        analysis = worker_metrics + 1
        assert value(analysis, "mammocad_model_seconds_per_image_count") == 4
        assert value(analysis, "mammocad_stage_seconds_count", stage="wait") == 4
        assert value(analysis, "mammocad_images_analysed_total", outcome="ok") == 4
        assert value(node_metrics, "mammocad_instances_stored_total", kind="analysed", status="0x0000") == 4
        assert (value(node_metrics, "mammocad_instance_bytes_total", kind="analysed") or 0) > 4 * 256 * 200
        assert value(node_metrics, "mammocad_associations_total", outcome="rejected", reason="calling_ae") == 1
        assert value(node_metrics, "mammocad_associations_total", outcome="accepted") == 1
        assert value(node_metrics, "mammocad_studies_declared_total", reason="four_views") == 1
        assert value(node_metrics, "mammocad_deadletter_items", destination="pacs") == 0
        assert value(node_metrics, "mammocad_queue_depth", queue="gpu") is not None
        for port in (node_metrics, worker_metrics, analysis):
            assert get(port, "/readyz")[0] == 200 and get(port, "/healthz")[0] == 200

        # audit: delivered results
        try:
            wait_for(lambda: _with([m.xml for m in collector.received], "110104", "R"), 30, "the transfer audit")
        except AssertionError as exc:  # say whether the file has it and what the senders logged
            in_file = len(_with(audit_file.read_bytes().splitlines(), "110104", "R"))
            logged = [line for line in pipe.log_text().splitlines() if "mammocad.audit" in line]
            raise AssertionError(f"{exc}; transfer audits in the file: {in_file}; audit log lines: {logged}; "
                                 f"collector errors: {collector.errors}") from None
        pipe.stop()
        wait_for(lambda: len(_with([m.xml for m in collector.received], "110100")) >= 6, 30,
                 "start and stop of node and both workers")
    received = [m.xml for m in collector.received]
    assert collector.errors == []
    assert [p for x in received for p in problems(x)] == []
    assert sorted(audit_file.read_bytes().splitlines()) == sorted(received)

    starts_stops = [_event(x)[1] for x in received if _event(x)[0] == "110100"]
    assert starts_stops.count("110120") == 3 and starts_stops.count("110121") == 3

    (alert,) = [r for r in _with(received, "110113") if r.findtext("EventIdentification/EventOutcomeDescription")]
    assert "calling AE title not recognised" in alert.findtext("EventIdentification/EventOutcomeDescription", "")
    assert [p.get("UserID") for p in alert.findall("ActiveParticipant") if p.get("UserIsRequestor") == "true"] \
        == ["INTRUDER"]
    (login,) = _with(received, "110114")
    assert login.find("ActiveParticipant").get("UserID") == "STORESCU"  # type: ignore[union-attr]

    (incoming,) = _with(received, "110104", "C")
    objects = {o.get("ParticipantObjectTypeCodeRole"): o for o in incoming.findall("ParticipantObjectIdentification")}
    assert objects["3"].get("ParticipantObjectID") == study_uid
    sop = objects["3"].find("ParticipantObjectDescription/SOPClass")
    assert sop is not None and sop.get("NumberOfInstances") == "4"
    assert objects["1"].get("ParticipantObjectID") == "PID-TEST-0001"
    (outgoing,) = _with(received, "110104", "R")
    dest = [p for p in outgoing.findall("ActiveParticipant") if p.get("UserIsRequestor") == "false"]
    assert [p.get("UserID") for p in dest] == ["PACS"]
    out_objects = outgoing.findall("ParticipantObjectIdentification")
    assert [o.get("ParticipantObjectID") for o in out_objects] == [study_uid, "PID-TEST-0001"]
    assert "PID-TEST-0001" not in pipe.log_text()  # the application log never carries the patient ID
