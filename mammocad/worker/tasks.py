"""The three Celery tasks: analyse an image, finalise a study, deliver an outbox item.

Every task takes JSON arguments only (paths and UIDs) and is idempotent, because with
``acks_late`` + ``reject_on_worker_lost`` a task can run again after a crash:

- ``analyze_image`` skips when ``results/<sop>.json`` exists; a poison image that kills
  its worker three times gets an error result instead of a crash loop.
- ``finalize_study`` skips when its report exists (or owes none: :mod:`finalize_plan`);
  outbox items are named by the report key, so a re-run finds them instead of making copies.
- ``deliver`` acts only under an exclusive lock on the item and only for the item's
  current ``token``.

Delivery retries and the Redis visibility timeout: a retry is an ETA task, which the
Redis transport keeps unacknowledged and re-delivers after ``visibility_timeout``. So the
countdown is capped at half that timeout; a task that wakes before the item's
``next_attempt`` just schedules itself again for the rest of the wait. The token makes
exactly one chain live per item: the sweeper (``outbox_delivery.requeue_due``, run by the results
worker at start and periodically) replaces the token when it requeues an overdue item
(e.g. after the broker lost its queue), and tasks of an older chain then drop out.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from pydicom import dcmread
from pydicom.dataset import Dataset

from mammocad.config import OutputKind, Settings
from mammocad.config.watch import ConfigWatcher
from mammocad.dicom.frame_size import DecodeBudgetError, check_decoded_size
from mammocad.logs import log_event, safe_error
from mammocad.metrics.faults import count_fault
from mammocad.model.results import ImageResult, StudyResult
from mammocad.spool import leases
from mammocad.spool.catch_up import lineage, owed_objects
from mammocad.spool.layout import validate_uid
from mammocad.spool.leases import lease_path
from mammocad.spool.outbox import Outbox, OutboxItem
from mammocad.spool.outbox_unreadable import describe, report_item
from mammocad.spool.records import RecordError
from mammocad.spool.records.report import KeptOutputs, OutputObject, ReportRecord
from mammocad.spool.studies import (
    StudyFiles,
    find_predecessor,
    keep_outputs,
    latest_report,
    read_kept,
)
from mammocad.spool.tasks import (
    TASK_ANALYZE_IMAGE,
    TASK_DELIVER,
    TASK_FINALIZE_STUDY,
    finalize_study_args,
)
from mammocad.worker import model_cache, observer
from mammocad.worker.building import Built, build_study
from mammocad.worker.failures import failed_result
from mammocad.worker.finalize_plan import FinalizePlan, plan_finalize
from mammocad.worker.outbox_delivery import attempt, schedule_delivery

logger = logging.getLogger(__name__)

#: Analysis starts of one image before it is given up as poison.
MAX_ANALYSIS_ATTEMPTS = 3
#: How often a finalize that waits for image results looks again (a stat per image).
FINALIZE_POLL_S = 1.0
#: Longest wait between two looks (the last missing result also queues finalize at once).
FINALIZE_POLL_MAX_S = 30.0


def register_tasks(app: Celery, settings: Settings, config_path: str | os.PathLike[str] | None = None) -> None:
    """Attach the tasks to ``app``; they read ``settings`` through ``app.mammocad_settings``.

    With ``config_path``, destinations and delivery settings follow edits of that file
    (``mammocad dest add/remove``) without a worker restart; the rest (weights, device,
    queues) is fixed for the life of the process, because a loaded model depends on it.
    """
    app.mammocad_settings = settings  # type: ignore[attr-defined]
    app.mammocad_audit = observer.make_trail(settings)  # type: ignore[attr-defined]
    # The reloads are audited as this worker's (its trail), not by a second sender of their own.
    app.mammocad_watcher = ConfigWatcher(settings, config_path, app.mammocad_audit)  # type: ignore[attr-defined]
    common: dict[str, Any] = {"bind": True, "acks_late": True, "reject_on_worker_lost": True}
    app.task(name=TASK_ANALYZE_IMAGE, **common)(analyze_image)
    app.task(name=TASK_FINALIZE_STUDY, max_retries=None, **common)(finalize_study)
    app.task(name=TASK_DELIVER, **common)(deliver)


def _settings(task: Task) -> Settings:
    base: Settings = task.app.mammocad_settings  # type: ignore[attr-defined]
    watcher: ConfigWatcher | None = getattr(task.app, "mammocad_watcher", None)
    if watcher is None or watcher.path is None:
        return base
    latest = watcher.current()
    if latest is base:
        return base
    return base.model_copy(update={"destinations": latest.destinations, "delivery": latest.delivery})


# --------------------------------------------------------------------------- analyze


def analyze_image(self: Task, spool_dir: str, study_uid: str, sop_uid: str) -> str:
    """Run the detector on one spooled image; write its result JSON (the done marker)."""
    settings = _settings(self)
    files = StudyFiles(spool_dir, study_uid)
    if files.result(sop_uid).exists():
        log_event(logger, "analyze_skip", study=study_uid, sop=sop_uid, reason="result exists")
        return "exists"
    attempt = files.bump_attempts(sop_uid)
    if attempt == 1:
        observer.image_waited(files.image(sop_uid))
    if attempt > MAX_ANALYSIS_ATTEMPTS:
        result = failed_result(files, sop_uid, f"analysis stopped the worker {attempt - 1} times; image skipped")
        count_fault("poison_image")
    else:
        lease = lease_path(files.layout, study_uid, sop_uid)
        with leases.held(lease, files.layout.tmp, settings.worker.lease_s), observer.stage("analyse"):
            result = _analyze(settings, files, sop_uid)
    files.write_result(result)
    observer.analysed(result)
    log_event(logger, "analyzed", study=study_uid, sop=sop_uid, lesions=len(result.lesions),
              seconds=round(result.seconds, 2), error=result.error or "", attempt=attempt)
    _kick_finalize(self.app, files)
    return "error" if result.error else "ok"


def _kick_finalize(app: Celery, files: StudyFiles) -> None:
    """Queue finalize now when this was the study's last missing result.

    The node's finalize task polls every FINALIZE_POLL_S; this saves that wait on the
    critical path. A duplicate finalize is harmless: it skips once the report exists and
    the finalize lock keeps two from building at once.
    """
    complete = files.complete()
    if complete is None:
        return
    sops = list(complete.sop_uids)
    if sops and all(files.result(s).exists() for s in sops):
        app.send_task(TASK_FINALIZE_STUDY, args=finalize_study_args(files.spool, files.study_uid, sops))


def _analyze(settings: Settings, files: StudyFiles, sop_uid: str) -> ImageResult:
    path = files.image(sop_uid)
    try:
        ds = dcmread(path)
        check_decoded_size(ds, settings.worker.max_decoded_mb)
    except DecodeBudgetError as exc:
        log_event(logger, "decode_refused", logging.WARNING, study=files.study_uid, sop=sop_uid, error=str(exc))
        count_fault("decode_refused")
        return failed_result(files, sop_uid, f"not decoded: {exc}")
    except Exception as exc:
        return failed_result(files, sop_uid, f"cannot read {path.name} as DICOM: {safe_error(exc)}")
    det = model_cache.get_detector(settings.worker.weights, settings.worker.device)
    try:
        with model_cache.analysis_lock:
            return det.analyze_dataset(ds)  # type: ignore[no-any-return]
    except SoftTimeLimitExceeded:
        error = f"analysis exceeded worker.soft_time_limit_s ({settings.worker.soft_time_limit_s} s)"
    except Exception as exc:  # undecodable pixels, unsupported geometry...
        error = f"analysis failed: {safe_error(exc)}"
        log_event(logger, "analysis_failed", logging.WARNING, study=files.study_uid, sop=sop_uid, error=error)
    failed = failed_result(files, sop_uid, error)
    return ImageResult(image=failed.image, model_name=det.model_name, model_version=det.model_version,
                       device=det.device, error=error)


# --------------------------------------------------------------------------- finalize


def finalize_study(
    self: Task, spool_dir: str, study_uid: str, sop_uids: list[str], first_try: float | None = None,
    polls: int = 0, revision: int = 0,
) -> str:
    """Gather the study's image results, build the outputs, fill the outbox, write the report.

    Never lost silently: a retry the broker refuses is logged (``finalize_retry_lost``)
    and left to the reconciler, which re-queues any completed study without a report; any
    other failure is logged as ``finalize_failed`` and counted before Celery sees it.
    ``revision`` > 0: an admin's re-analysis (``mammocad studies reanalyse``), issued as an
    amended report: new UIDs, citing the study's previous report as predecessor. What is
    owed is decided by :func:`~mammocad.worker.finalize_plan.plan_finalize`, before the lock
    and again under it.
    """
    settings = _settings(self)
    files = StudyFiles(spool_dir, study_uid)
    sop_uids = sorted({validate_uid(s, "SOPInstanceUID") for s in sop_uids})
    info = model_cache.get_info(settings.worker.weights)  # version and breast-risk rule, no network
    plan = plan_finalize(files, sop_uids, info.model_version, revision)
    if isinstance(plan, str):
        return plan
    first_try, key = first_try or time.time(), plan.key
    try:
        with files.finalize_lock() as got:
            if not got:  # another finalize of this study is at work: look again after it
                return _retry_later(self, study_uid, first_try, polls, revision)
            plan = plan_finalize(files, sop_uids, info.model_version, revision)  # that one may have answered it
            if isinstance(plan, str):
                return plan
            return _finalize_locked(self, files, sop_uids, plan, info, first_try, polls, revision)
    except Retry:
        raise
    except Exception as exc:
        log_event(logger, "finalize_failed", logging.ERROR, study=study_uid, report=key, error=safe_error(exc),
                  hint="the reconciler queues it again; see docs/FAULTS.md")
        count_fault("finalize_failed")
        raise


def _retry_later(self: Task, study_uid: str, first_try: float, polls: int, revision: int = 0) -> str:
    """Look again with backoff (1 s doubling to FINALIZE_POLL_MAX_S); a refused retry is left to the reconciler.

    ``revision``: the one this task was queued with (a pending request is read again each time).
    """
    countdown = min(FINALIZE_POLL_MAX_S, FINALIZE_POLL_S * 2 ** min(polls, 10))
    try:
        raise self.retry(countdown=countdown, kwargs={"first_try": first_try, "polls": polls + 1,
                                                        "revision": revision})
    except Retry:
        raise
    except Exception as exc:  # the broker is down: the task is acknowledged, the spool still says "owed"
        log_event(logger, "finalize_retry_lost", logging.WARNING, study=study_uid, error=safe_error(exc),
                  hint="the reconciler queues it again once the broker is back")
        count_fault("finalize_retry_lost")
        return "retry-lost"


def _finalize_locked(self: Task, files: StudyFiles, sop_uids: list[str], plan: FinalizePlan, info: Any,
                     first_try: float, polls: int, revision: int = 0) -> str:
    settings = _settings(self)
    study_uid, key = files.study_uid, plan.key
    missing = [s for s in sop_uids if not files.result(s).exists()]
    if missing:
        bound = settings.worker.time_limit_s * (len(sop_uids) + 1)
        waited = time.time() - first_try
        if waited < bound:
            log_event(logger, "finalize_wait", logging.DEBUG, study=study_uid, missing=len(missing),
                      waited=round(waited, 1))
            return _retry_later(self, study_uid, first_try, polls, revision)
        for sop in missing:
            if not files.result(sop).exists():
                files.write_result(failed_result(files, sop, f"no analysis result after {bound} s"))
        log_event(logger, "finalize_gave_up_waiting", level=logging.WARNING, study=study_uid, missing=len(missing))
        count_fault("finalize_gave_up_waiting")
    study = _study_result(info, files, sop_uids, plan.revision)
    earlier, sent = _earlier_and_sent(info, files, sop_uids, study)
    kept, built = _build_once(settings, files, info, study, sop_uids, key, earlier, sent)
    objects = [OutputObject(study=str(ds.StudyInstanceUID), series=str(ds.SeriesInstanceUID),
                            sop=str(ds.SOPInstanceUID), sop_class=str(ds.SOPClassUID), kind=kind)
               for kind, ds in built]
    items = _fill_outbox(settings, files, built, key, owed_objects(files, settings.destinations, sent))
    report = ReportRecord(report_key=key, sop_uids=tuple(sop_uids), model_name=info.model_name,
                          model_version=info.model_version, objects=tuple(objects),
                          destinations={d: i.item_id for d, i in items.items()},
                          destination_objects={d: tuple(p.stem for p in i.files()) for d, i in items.items()},
                          failed_images=kept.failed_images, failed_outputs=kept.failed_outputs,
                          created=time.time(), reanalysis=plan.request)
    files.write_report(report)
    if plan.revision:  # the re-analysis it answers is done (pending_reanalysis says so already)
        files.layout.reanalysis_path(study_uid).unlink(missing_ok=True)
    if plan.request is not None:
        log_event(logger, "reanalysis_done", study=study_uid, report=key, revision=plan.revision,
                  requested_images=len(plan.request.sop_uids),
                  late_images=len(set(sop_uids) - set(plan.request.sop_uids)))
    for item in items.values():
        if not item.dead:  # a dead letter waits for `mammocad outbox retry`
            schedule_delivery(self.app, str(files.spool), item)
    log_event(logger, "finalized", study=study_uid, report=key, images=len(sop_uids),
              outputs=len(objects), destinations=len(items), failed_images=len(report.failed_images),
              failed_outputs=",".join(report.failed_outputs) or "-")
    return key


def _build_once(settings: Settings, files: StudyFiles, info: Any, study: StudyResult, sop_uids: list[str],
                key: str, earlier: ReportRecord | None, sent: Mapping[OutputKind, frozenset[str]],
                ) -> tuple[KeptOutputs, list[tuple[OutputKind, Dataset]]]:
    """The report's objects: those an interrupted earlier run kept, else a new build, kept now.

    Built once per report key: the SOP Instance UIDs derive from the content (ContentTime
    included), so a second build would give destinations whose outbox items the first run
    had made another report than the rest, and ``studies resend`` both.
    """
    resumed = read_kept(files, key)
    if resumed is not None:
        log_event(logger, "finalize_resumed", study=files.study_uid, report=key, outputs=len(resumed[1]))
        return resumed
    with observer.stage("build"):
        built, study = _build(settings, files, study, sop_uids, earlier, sent)
    kept = keep_outputs(files, key, built.objects, {k.value: why for k, why in built.failed.items()},
                        tuple(r.image.sop_instance_uid for r in study.images if r.error))
    return kept, built.objects


def _study_result(info: Any, files: StudyFiles, sop_uids: list[str], revision: int = 0) -> StudyResult:
    results = [files.read_result(s) for s in sop_uids]
    analysed = [r for r in results if r.analysed]
    breasts = tuple(info.breast_risks(analysed)) if analysed else ()
    return StudyResult(study_uid=files.study_uid, images=tuple(results), breasts=breasts,
                       model_name=info.model_name, model_version=info.model_version,
                       synthetic_weights=bool(info.synthetic_weights), revision=revision)


def _fill_outbox(settings: Settings, files: StudyFiles, built: list[tuple[OutputKind, Dataset]],
                 key: str, owed: Mapping[str, list[Path]]) -> dict[str, OutboxItem]:
    """Give every destination the kinds it asked for (one outbox item each), plus ``owed``:
    earlier reports' SC/GSPS it never confirmed (:mod:`~mammocad.spool.catch_up`).

    An item an interrupted earlier run made is kept, wherever it is now (waiting, or
    dead-lettered since): the report names it, so the study shows where that destination stands.
    """
    outbox = Outbox(files.spool)
    items: dict[str, OutboxItem] = {}
    for dest in settings.destinations:
        wanted = [ds for kind, ds in built if kind in dest.wanted_outputs]
        if not wanted and not owed.get(dest.name):
            continue
        item = (outbox.get(dest.name, key) or outbox.get(dest.name, key, dead=True)
                or outbox.put(dest.name, key, wanted + [dcmread(p) for p in owed.get(dest.name, [])]))
        if item is not None:
            items[dest.name] = item
    return items


def _earlier_and_sent(info: Any, files: StudyFiles, sop_uids: list[str], study: StudyResult,
                      ) -> tuple[ReportRecord | None, dict[OutputKind, frozenset[str]]]:
    """The report this one follows (each SR cites its own kind's object of it), and the
    per-image objects left to the earlier reports (:func:`_sent_per_image`)."""
    earlier = find_predecessor(files, sop_uids, study.model_version)
    if study.revision:  # an amended report replaces the study's newest report, whatever its images
        earlier = latest_report(files)
    return earlier, _sent_per_image(info, files, earlier, study)


def _sent_per_image(info: Any, files: StudyFiles, earlier: ReportRecord | None,
                    study: StudyResult) -> dict[OutputKind, frozenset[str]]:
    """Per-image objects (SC, GSPS) the earlier report delivered that a late-image report
    would only repeat: a GSPS holds its image's marks only, so it is the same; an SC's banner
    also shows the breast risks, so it is the same only while they are. A re-analysis
    (new results) repeats nothing, and a kind no earlier report holds is built for all.
    A destination that lacks some of those earlier objects (added to the configuration since,
    its item dead-lettered or dropped) gets the kept ones in its item (:mod:`catch_up`)."""
    if earlier is None or study.revision:
        return {}
    old = frozenset(earlier.sop_uids)
    # Not the earlier report alone: one whose late images all failed analysis holds no SC or
    # GSPS (nothing to draw), yet the reports before it delivered them for the other images.
    reports = lineage(files, old)

    def held(kind: OutputKind) -> bool:
        return any(r.objects_of(kind) for r in reports)

    sent = {OutputKind.GSPS: old} if held(OutputKind.GSPS) else {}
    before = [r for r in (files.read_result(s) for s in sorted(old)) if r.analysed]
    if held(OutputKind.SECONDARY_CAPTURE) and _banner_risks(
            tuple(info.breast_risks(before)) if before else ()) == _banner_risks(study.breasts):
        sent[OutputKind.SECONDARY_CAPTURE] = old
    return sent


def _banner_risks(breasts: Any) -> set[tuple[str, float, bool]]:
    return {(b.laterality, b.risk, b.malignant) for b in breasts}


def _build(settings: Settings, files: StudyFiles, study: StudyResult, sop_uids: list[str],
           earlier: ReportRecord | None, sent: Mapping[OutputKind, frozenset[str]]) -> tuple[Built, StudyResult]:
    """Build each kind some destination wants; a failing kind is reported, never fatal."""
    kinds = [k for k in OutputKind if any(k in d.wanted_outputs for d in settings.destinations)]
    if not kinds:
        return Built(), study

    def predecessors(kind: OutputKind) -> list[tuple[str, str, str]]:
        # Each SR cites only its own earlier version.
        return [(o.study, o.series, o.sop) for o in (earlier.objects_of(kind) if earlier else [])
                if kind.is_report]

    device = next((r.device for r in study.images if r.device), "")
    # Every later report of a study (late images, re-analysis) gets series numbers of its own,
    # after those of reports retention has pruned (an image that arrived after that: its report
    # stands alone, citing none, since the pruned one still holds for its own images).
    pruned = files.layout.pruned(files.study_uid)
    version = 1 + len(files.reports()) + (pruned.reports if pruned is not None else 0)
    return build_study(study, files, sop_uids, kinds, device=device, predecessors=predecessors,
                       sc_jpeg_quality=settings.results.sc_jpeg_quality,
                       sc_lossless=settings.results.sc_lossless, version=version, sent=sent)


# --------------------------------------------------------------------------- deliver


def deliver(self: Task, spool_dir: str, destination: str, item_id: str, token: str | None = None) -> str:
    """One C-STORE attempt of one outbox item; reschedules itself with backoff on failure.

    An item whose ``item.json`` cannot be read ends its chain with an ``outbox_item_unreadable``
    line through the sweeper's memo (:func:`_unreadable`): no attempt can succeed until an admin
    corrects the file (the sweeper then sees it overdue and queues it again), so a failing task
    with a traceback would only hide that.
    """
    settings = _settings(self)
    outbox = Outbox(spool_dir)
    try:
        item = outbox.get(destination, item_id)
    except RecordError as exc:
        return _unreadable(outbox, destination, item_id, exc)
    if item is None:
        return "gone"
    # Wait for a concurrent attempt (at most one network timeout per file batch) rather
    # than drop this task: it may carry the item's current token.
    with outbox.locked(item, wait_s=2 * settings.delivery.network_timeout_s + 10) as got:
        try:
            item = outbox.get(destination, item_id) if got else None  # reread under the lock
        except RecordError as exc:  # changed meanwhile (by hand, or by a newer release)
            return _unreadable(outbox, destination, item_id, exc)
        if item is None:
            return "busy-or-gone"
        if token and token != item.token:
            return "stale"
        wait: float | None  # attempt gives None when no further try is owed (delivered or dead-lettered)
        wait = item.next_attempt - time.time()
        if wait <= 1.0:
            outcome, wait = attempt(settings, outbox, item, getattr(self.app, "mammocad_audit", None))
        else:
            outcome = "not-due" if token else "early"
    if wait is not None and token and outcome in ("retry", "not-due"):
        # After releasing the lock, so the next task never finds it held by this one.
        schedule_delivery(self.app, spool_dir, item, wait)
    return outcome


def _unreadable(outbox: Outbox, destination: str, item_id: str, exc: RecordError) -> str:
    """Report the item this task was to send as :meth:`Outbox.items` does, through the same memo:
    logging it here too, the task and the sweeps after it logged one fault twice."""
    report_item(outbox.root / destination / item_id, describe(exc))
    return "unreadable"
