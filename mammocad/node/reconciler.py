"""The node's periodic reconciliation: re-queue acknowledged work nobody holds.

Start-up recovery (:mod:`mammocad.node.requeue`) only runs when the node starts; the
broker can lose work at any time (redis restarted empty, a retry it refused, a worker
whose disk filled, a GPU worker killed). Every ``node.reconcile_interval_s`` the
dispatcher thread runs :meth:`NodeReconciler.run`, which:

- asks :class:`mammocad.spool.reconcile.Reconciler` what the spool owes that the broker
  does not hold, and queues it (``event=reconcile_requeued``, counted in
  ``mammocad_faults_total``);
- puts back into the study tracker any study with images that no completion covers and
  that the tracker does not follow (a completion whose write failed, e.g. disk full), so
  it completes again after ``study_timeout_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from mammocad.logs import log_event, safe_error
from mammocad.metrics.faults import count_fault
from mammocad.node.requeue import views_of
from mammocad.node.studies import StudyTracker
from mammocad.spool.layout import Spool
from mammocad.spool.reconcile import BrokerView, Reconciler
from mammocad.spool.tasks import TASK_ANALYZE_IMAGE

logger = logging.getLogger("mammocad.node.reconcile")

BrokerReader = Callable[[], BrokerView]
Queue = Callable[[str, list[str]], None]


class NodeReconciler:
    def __init__(self, spool: Spool, read_broker: BrokerReader | None, *, lease_s: float, interval_s: float) -> None:
        self.spool = spool
        self.read_broker = read_broker
        self.interval_s = interval_s
        self.reconciler = Reconciler(spool, lease_s)
        self._next = time.monotonic() + interval_s
        #: Passes run so far (tests wait on it).
        self.passes = 0

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def run(self, tracker: StudyTracker, analyse: Queue, finalize: Queue) -> int:
        """One pass; returns how many tasks it queued. Never raises (logs instead)."""
        self._next = time.monotonic() + self.interval_s
        self.passes += 1
        queued = 0
        try:
            self._resume_undeclared(tracker)
            if self.read_broker is None:
                return 0
            try:
                view = self.read_broker()
            except Exception as exc:  # broker down: nothing can be queued now anyway
                log_event(logger, "reconcile_skipped", logging.DEBUG, error=safe_error(exc))
                return 0
            for owed in self.reconciler.due(view):
                (analyse if owed.task == TASK_ANALYZE_IMAGE else finalize)(owed.study_uid, list(owed.sop_uids))
                log_event(logger, "reconcile_requeued", logging.WARNING, task=owed.task, study=owed.study_uid,
                          images=len(owed.sop_uids), why=owed.why)
                count_fault("reconcile_requeued")
                queued += 1
        except Exception as exc:  # a pass must never stop the dispatcher
            log_event(logger, "reconcile_failed", logging.ERROR, error=safe_error(exc))
            count_fault("reconcile_failed")
        return queued

    def _resume_undeclared(self, tracker: StudyTracker) -> None:
        following = set(tracker.open_studies())
        for study_uid in self.spool.study_uids():
            if study_uid in following:
                continue
            sops = self.spool.image_sops(study_uid)
            completed = self.spool.read_complete(study_uid)
            if not sops or not set(sops) - set(completed or []):
                continue
            newest = max(self.spool.image_path(study_uid, s).stat().st_mtime for s in sops)
            tracker.resume(study_uid, views_of(self.spool, study_uid, sops), time.time() - newest,
                           completed_once=completed is not None)
            log_event(logger, "reconcile_resumed", logging.WARNING, study=study_uid,
                      undeclared=len(set(sops) - set(completed or [])))
            count_fault("reconcile_resumed")
