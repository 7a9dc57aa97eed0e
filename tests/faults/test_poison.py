"""Poison inputs the node accepted must still end in a delivered report (issue 12, item 2).

Each study below broke ``finalize_study`` before: it raised, nothing was reported, and
nobody was told. Now every one gets a Mammography CAD SR at the PACS (with "CAD failed"
where the images could not be analysed), and a healthy study sent alongside is not held
up by them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from pydicom import dcmread

from mammocad.spool.studies import StudyFiles, report_key
from mammocad.spool.tasks import TASK_ANALYZE_IMAGE, TASK_FINALIZE_STUDY
from tests.factories import make_mammogram, write
from tests.worker.conftest import StoreSCP, make_settings, wait_until

pytestmark = pytest.mark.faults

MAMMO_CAD_SR = "1.2.840.10008.5.1.4.1.1.88.50"


def _study(name: str) -> list:
    from pydicom.uid import generate_uid

    uid = generate_uid()
    images = [make_mammogram(laterality=lat, view="CC", rows=96, columns=80, study_uid=uid, seed=i)
              for i, lat in enumerate("RL")]
    if name == "undecodable":
        for ds in images:
            ds.PixelData = ds.PixelData[:50]
    elif name == "no_study_id":
        for ds in images:
            del ds.StudyID
    elif name == "two_centres_one_width":
        for ds in images:
            ds.WindowCenter, ds.WindowWidth = [2000, 1500], 4000
    return images


#: A UID with a leading zero is no longer among them: the node refuses it at receipt (0xC001,
#: tests/node/test_store_identity.py) and a build refuses to cite it (tests/results/test_cited_uids.py).
POISONS = ("undecodable", "no_study_id", "two_centres_one_width")


def test_poison_studies_get_delivered_reports(tmp_path: Path, random_weights: Path, storescp: StoreSCP,
                                              celery_worker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    spool = tmp_path / "spool"
    app = celery_worker(make_settings(spool, [storescp.destination()], worker={"weights": str(random_weights)}))
    studies = {name: _study(name) for name in (*POISONS, "healthy")}
    for images in studies.values():
        files = StudyFiles(spool, str(images[0].StudyInstanceUID))
        for ds in images:
            write(ds, files.image(str(ds.SOPInstanceUID)))
    for images in studies.values():
        study_uid, sops = str(images[0].StudyInstanceUID), [str(ds.SOPInstanceUID) for ds in images]
        for sop in sops:
            app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sop])
        app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, sops])
    reports = {}
    for name, images in studies.items():
        study_uid, sops = str(images[0].StudyInstanceUID), [str(ds.SOPInstanceUID) for ds in images]
        path = StudyFiles(spool, study_uid).report(report_key(sops, "0.0.0-random"))
        wait_until(path.exists, 180, f"the {name} study's report")
        reports[name] = json.loads(path.read_text())
    wait_until(lambda: not list((spool / "outbox").glob("*/*/item.json")), 60, "every result delivered")
    delivered = [dcmread(p, stop_before_pixels=True) for p in storescp.received()]
    for name, images in studies.items():
        study_uid = str(images[0].StudyInstanceUID)
        srs = [ds for ds in delivered if ds.StudyInstanceUID == study_uid and ds.SOPClassUID == MAMMO_CAD_SR]
        assert len(srs) == 1, (name, reports[name])
        assert {str(ds.SOPInstanceUID) for ds in delivered if ds.StudyInstanceUID == study_uid} \
            == set(reports[name]["outputs"]), name
        expected_failed = [str(ds.SOPInstanceUID) for ds in images] if name == "undecodable" else []
        assert sorted(reports[name]["failed_images"]) == sorted(expected_failed), name
    # Whatever could not be built is said, not hidden: an event line per failed kind.
    failed_events = {(r.__dict__.get("study"), r.__dict__.get("kind")) for r in caplog.records
                     if r.getMessage() == "output_failed"}
    for name, images in studies.items():
        for kind in reports[name].get("failed_outputs", {}):
            assert (str(images[0].StudyInstanceUID), kind) in failed_events, (name, kind)
