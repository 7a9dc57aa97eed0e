"""Failures on the way: an analysis process SIGKILLed mid-image and the PACS down for a while.

The study must still complete exactly once (one report, one finalisation, one delivery)
and reach the PACS after it comes back, without anyone resending it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.harness import send_with_storescu
from tests.factories import make_four_view_study, write
from tests.services import free_port
from tests.services import wait_until as wait_for

pytestmark = pytest.mark.e2e


def test_worker_killed_and_pacs_down_still_delivers_once(tmp_path: Path, random_weights: Path, pipelines,
                                                         orthancs) -> None:
    orthanc_http, orthanc_dicom = free_port(), free_port()
    pipe = pipelines(tmp_path / "node", random_weights, destinations=[
        {"name": "pacs", "ae_title": "ORTHANC", "host": "127.0.0.1", "port": orthanc_dicom}])
    study = make_four_view_study(rows=256, columns=200)
    study_uid = str(study[0].StudyInstanceUID)
    sops = [str(ds.SOPInstanceUID) for ds in study]
    results = pipe.spool / "studies" / study_uid / "results"
    send_with_storescu(pipe.port, [write(ds, tmp_path / "sent" / f"{i}.dcm") for i, ds in enumerate(study)])

    # Kill the analysis process while it holds an image (attempt counted, no result yet).
    def in_flight() -> list[str]:
        return [s for s in sops if (results / f"{s}.attempts").exists() and not (results / f"{s}.json").exists()]

    victim = wait_for(in_flight, 60, "an analysis in flight", interval=0.01)[0]
    pids = pipe.analysis_pool_pids()
    assert pids, "no analysis pool process found"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    killed_at = time.time()

    report = pipe.wait_report(study_uid)
    assert sorted(report["sop_uids"]) == sorted(sops) and report["failed_images"] == []
    attempts = (results / f"{victim}.attempts").read_text()
    if attempts == "1":  # rare: it finished in the milliseconds between the check and the kill
        assert (results / f"{victim}.json").stat().st_mtime <= killed_at
    else:
        assert attempts == "2"  # re-run after the kill, once
    assert "WorkerLostError" in pipe.log_text()

    # The PACS is down: the item waits in the outbox, retrying.
    item_json = pipe.spool / "outbox" / "pacs"
    wait_for(lambda: any('"attempts": 2' in p.read_text() or '"attempts": 3' in p.read_text()
                         for p in item_json.glob("*/item.json")), 30, "delivery retries while the PACS is down")
    orthanc = orthancs(tmp_path / "orthanc", {"mammocad": pipe.modality}, http_port=orthanc_http,
                       dicom_port=orthanc_dicom)
    wanted = set(report["outputs"])

    def arrived() -> bool:
        study_id = orthanc.study_id(study_uid)
        return bool(study_id) and {i["MainDicomTags"]["SOPInstanceUID"]
                                   for i in orthanc.instances(study_id)} == wanted

    # Nobody resends by hand: the outbox's own retries (retry_max_s 2 s) deliver once the PACS is up.
    wait_for(arrived, 60, "the results after the PACS came back")
    wait_for(lambda: not any(item_json.glob("*/item.json")), 10, "the outbox to empty")
    # The worker logs "delivered" just after it removed the item: wait for the line too.
    wait_for(lambda: "event=delivered dest=pacs" in pipe.log_text(), 10, "the delivered log line")

    log = pipe.log_text()
    assert log.count(f"event=finalized study={study_uid}") == 1
    assert log.count("event=delivered dest=pacs") == 1
    assert len(pipe.reports(study_uid)) == 1
