"""No patient name or ID in the service log, not even inside a library's warning (issue 11).

CBIS-DDSM names have a single component ("Mass-Test_P_00173_LEFT_CC"); highdicom warns about
such a name when it builds the TID 1500 SR and the presentation states, and its warning
quotes the name. The node, both workers and their pool processes log through
``mammocad.logs`` (``configure_logging``), which redacts quoted values in third-party text.
Here a study with a CBIS-style name goes through `mammocad serve` to a DCMTK storescp, and
the serve log must hold that warning, redacted, and neither the name nor the patient ID.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import send_with_storescu
from tests.factories import make_four_view_study, write
from tests.services import wait_until as wait_for
from tests.worker.conftest import StoreSCP

pytestmark = pytest.mark.e2e

NAME = "Mass-Test_P_00173_LEFT_CC"  # as CBIS-DDSM writes Patient's Name: one component, no caret
PATIENT_ID = "CBIS-P-00173-Q"


def test_highdicom_name_warning_reaches_the_log_redacted(tmp_path: Path, random_weights: Path, pipelines) -> None:
    with StoreSCP(tmp_path / "pacs") as pacs:
        pipe = pipelines(tmp_path / "node", random_weights, destinations=[
            {"name": "pacs", "ae_title": pacs.ae_title, "host": "127.0.0.1", "port": pacs.port,
             "outputs": ["mammo-cad-sr", "tid1500-sr", "gsps"]}])
        study = make_four_view_study(rows=256, columns=200, patient_name=NAME, patient_id=PATIENT_ID)
        send_with_storescu(pipe.port, [write(ds, tmp_path / "sent" / f"{i}.dcm") for i, ds in enumerate(study)])
        report = pipe.wait_report(str(study[0].StudyInstanceUID))
        wait_for(lambda: len(pacs.received()) >= len(report["outputs"]), 120, "the results at the PACS")
        log = pipe.log_text()
    warnings = [line for line in log.splitlines() if "unlikely to represent the intended person name" in line]
    assert warnings, "highdicom's name warning did not reach the log: this test no longer sees the path"
    assert all("event=warning" in line and "<redacted>" in line for line in warnings), warnings[0]
    for secret in (NAME, PATIENT_ID, "P_00173"):
        assert secret not in log, [line for line in log.splitlines() if secret in line][:3]
