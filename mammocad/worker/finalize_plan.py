"""What a ``finalize_study`` owes: which report (key, revision), or why none.

Decided from the spool alone, before the study's finalize lock and again under it (the
finalize that held it may have answered the same need), so that every finalize of a study
(the node's, the last analysis's, the reconciler's, an admin's re-analysis) agrees.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mammocad.logs import log_event
from mammocad.spool.records.analysis import ReanalysisRecord
from mammocad.spool.studies import StudyFiles, report_key

logger = logging.getLogger("mammocad.worker.tasks")  # its events are the finalize task's


@dataclass(frozen=True)
class FinalizePlan:
    """The report a finalize owes: its key and revision, and the admin's request it answers."""

    key: str
    revision: int
    request: ReanalysisRecord | None


def plan_finalize(files: StudyFiles, sop_uids: list[str], model_version: str, revision: int) -> FinalizePlan | str:
    """The report this finalize owes, or why it owes none (logged ``finalize_skip``; returned).

    - A pending re-analysis (``reanalysis.json``) of these images, or of some of them,
      raises ``revision`` to its own: the finalize the last analysis, the node (images that
      arrived while it was pending) or the reconciler queue carries none, yet must make the
      amended report the admin was promised, not skip because a report exists or make an
      ordinary one that leaves the request owed for ever.
    - A plain finalize (revision 0) of images that already have a report skips, whatever
      its key: a duplicate after an amended report answered the request.
    - A re-analysis finalize of fewer images than the study was since declared complete
      with skips: the finalize of all its images makes the amended report, once. Made
      here, it would be one more report, and the newest if it came last, without the late images.
    """
    request = files.layout.pending_reanalysis(files.study_uid, sop_uids)
    if request is not None:
        revision = max(revision, request.revision)
    key = report_key(sop_uids, model_version, revision)
    reason = ""
    completion = files.complete()
    if files.report(key).exists():
        reason = "report exists"
    elif not revision and files.layout.has_report_for(files.study_uid, sop_uids):
        reason = "reported"
    elif revision and completion is not None and set(completion.sop_uids) > set(sop_uids):
        reason = "superseded"
    if reason:
        log_event(logger, "finalize_skip", study=files.study_uid, report=key, reason=reason,
                  images=len(sop_uids))
        return "exists" if reason == "report exists" else reason
    return FinalizePlan(key, revision, request)
