"""Issue 10's done-when: a TLS-only Orthanc sends to a TLS-only node and gets results back.

Orthanc speaks DICOM TLS only (``DicomTlsEnabled``, client certificates required); the node
listens on TLS only and requires client certificates signed by the test CA; the delivery
presents the node's client certificate to Orthanc. Nothing travels in plain DICOM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.factories import make_four_view_study, write
from tests.node.conftest import run_dcmtk
from tests.services import free_port
from tests.services import wait_until as wait_for
from tests.tls_certs import issue, make_ca

pytestmark = pytest.mark.e2e


def test_tls_only_orthanc_round_trip(tmp_path: Path, random_weights: Path, pipelines: Any, orthancs: Any) -> None:
    pki = tmp_path / "pki"
    ca = make_ca(pki, "hospital-ca")
    node_pair, pacs_pair = issue(ca, pki, "mammocad"), issue(ca, pki, "orthanc")
    orthanc_port = free_port()
    node_tls = ("[node.tls]\nenabled = true\n"
                f'certificate = "{node_pair.certificate}"\nprivate_key = "{node_pair.private_key}"\n'
                f'ca_certificates = "{ca.certificate}"\nrequire_client_certificate = true\n')
    pipe = pipelines(tmp_path / "node", random_weights, node_extra=node_tls, destinations=[
        {"name": "orthanc", "ae_title": "ORTHANC", "host": "127.0.0.1", "port": orthanc_port, "tls": True,
         "ca_certificates": str(ca.certificate), "certificate": str(node_pair.certificate),
         "private_key": str(node_pair.private_key)}])
    orthanc = orthancs(tmp_path / "orthanc", {"mammocad": pipe.modality}, dicom_port=orthanc_port,
                       tls={"certificate": str(pacs_pair.certificate), "private_key": str(pacs_pair.private_key),
                            "ca_certificates": str(ca.certificate)})

    # Both ends refuse plain DICOM.
    assert run_dcmtk(["echoscu", "-aet", "ORTHANC", "-aec", "MAMMOCAD", "127.0.0.1", str(pipe.port)]).returncode != 0
    assert run_dcmtk(["echoscu", "-aet", "MAMMOCAD", "-aec", "ORTHANC", "127.0.0.1",
                      str(orthanc_port)]).returncode != 0

    study = make_four_view_study(rows=256, columns=200)
    study_uid = str(study[0].StudyInstanceUID)
    study_id = orthanc.send_study([write(ds, tmp_path / "sent" / f"{i}.dcm") for i, ds in enumerate(study)])
    report = pipe.wait_report(study_uid)
    wanted = set(report["outputs"])
    held = wait_for(lambda: wanted <= {i["MainDicomTags"]["SOPInstanceUID"] for i in orthanc.instances(study_id)},
                    90, "the results in the TLS-only Orthanc")
    assert held
    wait_for(lambda: "event=delivered dest=orthanc" in pipe.log_text(), 30, "the delivered log line")
    assert "event=tls_handshake_failed" in pipe.log_text()  # the plain echoscu above
