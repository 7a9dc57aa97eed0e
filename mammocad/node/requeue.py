"""Start-up recovery: whatever the spool says is unfinished gets queued again.

The spool is the source of truth, the broker only a to-do list that may have been lost
(redis wiped, node killed between rename and send). Duplicates are harmless because
the worker's tasks are idempotent (they skip work whose output file exists).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from pydicom import dcmread

from mammocad.dicom.header import HEADER_KEYWORDS, breast_view
from mammocad.logs import log_event
from mammocad.node.queueing import Dispatcher
from mammocad.spool.layout import Spool

logger = logging.getLogger("mammocad.node.requeue")


@dataclass
class RecoveryReport:
    images: int = 0
    finalizations: int = 0
    resumed_studies: int = 0


def views_of(spool: Spool, study_uid: str, sops: list[str]) -> dict[str, tuple[str, str]]:
    """(breast, view) of each image on disk, read as the C-STORE path reads them
    (:func:`~mammocad.dicom.header.breast_view`), so a resumed study completes as it would have."""
    views: dict[str, tuple[str, str]] = {}
    for sop in sops:
        try:
            ds = dcmread(spool.image_path(study_uid, sop), stop_before_pixels=True,
                         specific_tags=list(HEADER_KEYWORDS))
            lat, view = breast_view(ds)
        except Exception as exc:
            log_event(logger, "recover_unreadable", logging.WARNING, study=study_uid, sop=sop, error=str(exc)[:200])
            lat, view = "", ""
        views[sop] = (lat, view)
    return views


def recover(spool: Spool, dispatcher: Dispatcher) -> RecoveryReport:
    """Re-queue unanalysed images and unfinalised studies; resume open studies' timers.

    Runs before the node accepts associations, in the caller's thread; the dispatcher
    thread need not be started yet (sends happen here, retries later in the thread).
    """
    report = RecoveryReport()
    for study_uid in spool.study_uids():
        sops = spool.image_sops(study_uid)
        for sop in sops:
            if not spool.result_path(study_uid, sop).exists():
                dispatcher.queue_analysis(study_uid, sop)
                report.images += 1
        completed = spool.read_complete(study_uid)
        extra = sorted(set(sops) - set(completed or []))
        if completed is not None and not extra:
            if spool.report_owed(study_uid, completed):
                dispatcher.queue_finalize(study_uid, completed)
                report.finalizations += 1
            continue
        if not sops:
            continue
        newest = max(spool.image_path(study_uid, s).stat().st_mtime for s in sops)
        views = views_of(spool, study_uid, sops)
        dispatcher.tracker.resume(study_uid, views, time.time() - newest, completed_once=completed is not None)
        report.resumed_studies += 1
    log_event(logger, "recovered", images_requeued=report.images,
              finalizations_requeued=report.finalizations, studies_resumed=report.resumed_studies)
    return report
