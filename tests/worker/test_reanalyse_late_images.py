"""Images that arrive while an admin's re-analysis is pending, against real redis, Celery and storescp.

The study is reported, an admin asks for a re-analysis (``studies reanalyse``), and before it
is done the PACS sends one more image of the study. The new report, of every image, answers
the request: it is the amended report version the admin was promised (revision 1, citing the
first report), the request is closed, and ``studies show`` says so.

It was not: the finalize of the larger image set made an ordinary report, so when the
re-analysis's own finalize had been lost (a broker restart) the request stayed pending for
ever (the study "waiting for the amended report", kept by retention for ever); and when it had
not, it made a second amended report of the old images only, one SR too many at the PACS.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
import redis
from pydicom import dcmread
from pydicom.dataset import Dataset

from mammocad.config import OutputKind, load_settings
from mammocad.node.reconciler import NodeReconciler
from mammocad.node.studies import StudyTracker
from mammocad.spool.broker import make_celery
from mammocad.spool.layout import Spool
from mammocad.spool.reconcile import read_broker, redis_client
from mammocad.spool.retention import prune
from mammocad.spool.studies import StudyFiles, report_key
from mammocad.spool.tasks import (
    TASK_ANALYZE_IMAGE,
    TASK_FINALIZE_STUDY,
    analyze_image_args,
    finalize_study_args,
)
from mammocad.studies.actions import reanalyse
from mammocad.studies.status import study_status
from tests.factories import make_mammogram, write
from tests.worker.conftest import StoreSCP, spool_study, wait_until, write_config
from tests.worker.test_reanalyse_broker import _worker
from tests.worker.test_studies_admin import _mammocad

MODEL = "0.0.0-random"


def _declare(files: StudyFiles, sops: list[str], reason: str) -> None:
    """What the node writes when it declares the study complete (complete.json)."""
    files.layout.write(files.layout.complete_path(files.study_uid), json.dumps(
        {"version": 1, "sop_uids": sorted(sops), "reason": reason, "declared_at": time.time()}).encode())


def _reported_once(tmp_path: Path, weights: Path, redis_url: str,
                   storescp: StoreSCP) -> tuple[Path, StudyFiles, list[str], set[str]]:
    """A four-view study analysed, reported (its Mammography CAD SR only) and delivered to
    ``storescp``; returns the configuration file, the study's files, its images and first SR UID."""
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path, spool, weights, broker_url=redis_url, worker={"lease_s": 5}, audit=True,
                       destinations=[storescp.destination(outputs=[OutputKind.MAMMO_CAD_SR])])
    study_uid, sops = spool_study(spool)
    files = StudyFiles(spool, study_uid)
    _declare(files, sops, "four_views")
    with _worker(cfg) as app:
        for sop in sops:
            app.send_task(TASK_ANALYZE_IMAGE, args=analyze_image_args(spool, study_uid, sop))
        app.send_task(TASK_FINALIZE_STUDY, args=finalize_study_args(spool, study_uid, sops))
        wait_until(files.report(report_key(sops, MODEL)).exists, 120, "the first report")
        wait_until(lambda: len(storescp.received()) == 1, 60, "the first SR at the PACS")
    return cfg, files, sops, {str(dcmread(p).SOPInstanceUID) for p in storescp.received()}


def _late_image(files: StudyFiles) -> str:
    """One more image of the study (a repeated L CC), spooled as the node would."""
    ds = make_mammogram(laterality="L", view="CC", study_uid=files.study_uid, seed=4, rows=256, columns=200)
    write(ds, files.image(str(ds.SOPInstanceUID)))
    return str(ds.SOPInstanceUID)


def _cited(sr: Dataset) -> list[str]:
    return [ref.ReferencedSOPInstanceUID for st in sr.PredecessorDocumentsSequence
            for se in st.ReferencedSeriesSequence for ref in se.ReferencedSOPSequence]


def _evidence(sr: Dataset) -> set[str]:
    return {ref.ReferencedSOPInstanceUID for st in sr.CurrentRequestedProcedureEvidenceSequence
            for se in st.ReferencedSeriesSequence for ref in se.ReferencedSOPSequence}


def _answered_with_late_image(cfg: Path, storescp: StoreSCP, files: StudyFiles, sops: list[str],
                              first: set[str]) -> None:
    """The state both cases must end in: one amended report (revision 1) of all five images."""
    spool, study_uid = files.spool, files.study_uid
    amended = files.report(report_key(sops, MODEL, 1))
    assert amended.exists(), sorted(p.name for p in (files.root / "reports").iterdir())
    assert len(files.reports()) == 2, "one amended report, not one per image set"
    assert files.layout.pending_reanalysis(study_uid) is None  # the request is answered: the report says so
    # ... and its file goes, but a moment after the report: the worker thread removes it next.
    wait_until(lambda: not files.layout.reanalysis_path(study_uid).exists(), 30, "the answered request's file removed")
    wait_until(lambda: len(storescp.received()) == 2, 60, "the amended SR at the PACS")
    srs = {str(ds.SOPInstanceUID): ds for ds in map(dcmread, storescp.received())}
    new = srs[(set(srs) - first).pop()]
    assert _cited(new) == sorted(first) and _evidence(new) == set(sops)
    assert (new.CompletionFlag, new.VerificationFlag) == ("COMPLETE", "UNVERIFIED")
    wait_until(lambda: study_status(spool, study_uid).state == "delivered", 60, "the amended report confirmed")
    status = study_status(spool, study_uid)
    assert (status.reanalysis, status.revision, status.answered, status.late_images) == (None, 1, 1, 1)
    shown = _mammocad(cfg, "studies", "show", study_uid)
    assert "answers the re-analysis (revision 1)" in shown.stdout, shown.stdout + shown.stderr
    assert "1 image(s) that arrived after the request" in shown.stdout
    assert "waiting" not in shown.stdout
    assert study_uid in prune(spool, 60, dry_run=True, now=time.time() + 3600).studies  # retention may take it


def test_a_late_image_and_a_lost_reanalysis_finalize_end_in_one_amended_report(
        tmp_path: Path, random_weights: Path, storescp: StoreSCP, redis_url: str) -> None:
    """The broker loses the re-analysis's tasks (restart without its data); the late image is
    declared; the node's reconciler queues what the spool owes: the study's finalize, of five
    images. That report must answer the request."""
    cfg, files, sops, first = _reported_once(tmp_path, random_weights, redis_url, storescp)
    spool = files.spool
    settings = load_settings(cfg)
    assert reanalyse(settings, files.study_uid).revision == 1  # queued; no worker runs now
    redis.Redis.from_url(redis_url).flushdb()  # ... and lost
    everything = sorted([*sops, _late_image(files)])
    _declare(files, everything, "timeout")

    with _worker(cfg) as app:
        queues = [settings.worker.analysis_queue, settings.worker.results_queue]
        client = redis_client(redis_url)
        reconciler = NodeReconciler(Spool(spool), lambda: read_broker(client, queues),
                                    lease_s=settings.worker.lease_s, interval_s=0.0)

        def analyse(study: str, owed: list[str]) -> None:
            for sop in owed:
                app.send_task(TASK_ANALYZE_IMAGE, args=analyze_image_args(spool, study, sop))

        def finalize(study: str, owed: list[str]) -> None:
            app.send_task(TASK_FINALIZE_STUDY, args=finalize_study_args(spool, study, owed))

        def reported() -> bool:
            reconciler.run(StudyTracker(300.0), analyse, finalize)
            return files.layout.has_report_for(files.study_uid, everything)

        wait_until(reported, 180, "a report of all five images", interval=0.5)
        _answered_with_late_image(cfg, storescp, files, everything, first)


def test_a_late_image_supersedes_the_reanalysis_of_the_old_images(
        tmp_path: Path, random_weights: Path, storescp: StoreSCP, redis_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """Nothing lost: the re-analysis's finalize (four images, revision 1) and the node's
    finalize of the five images both run. Only the second reports; the first skips."""
    caplog.set_level(logging.INFO, logger="mammocad.worker.tasks")
    cfg, files, sops, first = _reported_once(tmp_path, random_weights, redis_url, storescp)
    spool = files.spool
    settings = load_settings(cfg)
    assert reanalyse(settings, files.study_uid).revision == 1  # queued; the worker starts below
    late = _late_image(files)
    everything = sorted([*sops, late])
    _declare(files, everything, "timeout")
    node = make_celery(settings)  # what the node queues when it declares the study again
    node.send_task(TASK_ANALYZE_IMAGE, args=analyze_image_args(spool, files.study_uid, late))
    node.send_task(TASK_FINALIZE_STUDY, args=finalize_study_args(spool, files.study_uid, everything))
    old_set = files.report(report_key(sops, MODEL, 1))

    def skipped() -> bool:
        return any(r.getMessage() == "finalize_skip" and getattr(r, "reason", "") == "superseded"
                   and getattr(r, "images", 0) == len(sops) for r in caplog.records)

    with _worker(cfg):
        wait_until(lambda: files.layout.has_report_for(files.study_uid, everything) and (old_set.exists() or skipped()),
                   180, "the report of all five images, and the old set's finalize done")
        assert not old_set.exists(), "an amended report of the old four images only"
        _answered_with_late_image(cfg, storescp, files, everything, first)
