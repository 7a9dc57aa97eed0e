"""The admin's actions on a study: re-send its last report, re-analyse it.

Both go through the node–worker contract (``mammocad.spool``): ``resend`` puts the study's
current kept objects (the newest report's SRs, each image's newest SC/GSPS, from
``studies/<uid>/outputs/<key>/``) into the outbox as a new item per destination and queues
its delivery; ``reanalyse`` removes the image results and
queues a fresh analysis of every image plus a finalisation with the next revision, which
the results worker issues as an amended report (new UIDs, Predecessor Documents Sequence
citing the report it replaces). Asked again while that one is pending, ``reanalyse``
resumes it: it queues what is missing and deletes nothing.

Both are audited (PS3.15 A.5.3) with the OS user as requestor, before they take effect:
``resend`` as Begin Transferring DICOM Instances per destination, ``reanalyse`` as DICOM
Instances Accessed (Update) of the study's images. An action refused before it changes
anything (:class:`ActionError`) is not audited: no instances were accessed or sent.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from celery import Celery
from kombu.exceptions import KombuError
from pydicom import dcmread

from mammocad.audit import AuditMessage, Identity, Peer, events, oneshot
from mammocad.config import Destination, OutputKind, Settings
from mammocad.logs import log_event, safe_error
from mammocad.spool.broker import make_celery
from mammocad.spool.catch_up import PER_IMAGE, current_objects, lineage
from mammocad.spool.layout import Spool
from mammocad.spool.leases import lease_age, lease_path
from mammocad.spool.outbox import Outbox, OutboxItem
from mammocad.spool.records import RecordError
from mammocad.spool.records.analysis import ReanalysisRecord
from mammocad.spool.records.report import ReportRecord, report_revision
from mammocad.spool.studies import StudyFiles, latest_report
from mammocad.spool.tasks import (
    TASK_ANALYZE_IMAGE,
    TASK_DELIVER,
    TASK_FINALIZE_STUDY,
    analyze_image_args,
    deliver_args,
    finalize_study_args,
)
from mammocad.studies.status import unknown_study

logger = logging.getLogger(__name__)


class ActionError(Exception):
    """The action cannot be done; the message says why and what to do."""


def broker_url(settings: Settings) -> str:
    """broker.url, else the private broker of a running ``mammocad serve`` on this spool."""
    if settings.broker.url:
        return settings.broker.url
    path = Spool(settings.node.spool_dir).broker_url_file
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def _app(settings: Settings) -> Celery | None:
    url = broker_url(settings)
    return make_celery(settings, url) if url else None


def _report(files: StudyFiles) -> ReportRecord:
    report = latest_report(files)
    if report is None:
        raise ActionError(f"study {files.study_uid} has no report yet: nothing to re-send "
                          "(`mammocad studies show` says how far it got)")
    return report


def resend(settings: Settings, study_uid: str, destinations: list[str] | None = None) -> list[OutboxItem]:
    """Queue the study's current objects again for ``destinations`` (default: every configured one).

    The objects are the very ones first sent (same UIDs: a PACS replaces, not duplicates):
    the newest report's SRs and, per image, the newest kept SC and GSPS that stands for it
    (:func:`current_set`). Each destination gets the kinds the results worker sends it
    (``wanted_outputs``: a ``graphics_only`` one SC, never GSPS). Returns the new outbox
    items; the running worker delivers them.
    """
    files = StudyFiles(settings.node.spool_dir, study_uid)
    if not files.root.is_dir():
        raise ActionError(unknown_study(study_uid, settings.node.spool_dir))
    report = _report(files)
    folder = files.layout.outputs_dir(files.study_uid, report.report_key)
    if not (folder.is_dir() and any(folder.glob("*.dcm"))):
        raise ActionError(f"report {report.report_key} of study {study_uid} kept no objects (made before "
                          "`studies resend` existed, or pruned): use `mammocad studies reanalyse` instead")
    targets = [settings.destination(name) for name in destinations] if destinations else settings.destinations
    if not targets:
        raise ActionError("no destinations configured: add one with `mammocad dest add`")
    current = current_set(files, report, {k for dest in targets for k in dest.wanted_outputs})
    outbox = Outbox(settings.node.spool_dir)
    # A copy is named for the destination's item: ``<item>.s<n>`` (status and retention match it so).
    planned = [(dest, _next_id(outbox, files, report, dest.name), wanted)
               for dest in targets if (wanted := [p for kind, p in current if kind in dest.wanted_outputs])]
    # Audited before anything is queued: a running worker sends (and deletes) an item as soon as
    # it is in the outbox, and an admin whose record cannot be written must change nothing.
    _audit_resend(settings, report.report_key, planned)
    items, queued = [], []
    for dest, item_id, wanted in planned:
        item = outbox.put(dest.name, item_id, [dcmread(p) for p in wanted])
        if item is not None:
            items.append(item)
            queued.append((dest.name, item_id, [p.stem for p in wanted]))
    _record_items(files, report.report_key, queued)
    _queue_delivery(settings, outbox, items)
    return items


def _record_items(files: StudyFiles, report_key: str, items: list[tuple[str, str, list[str]]]) -> None:
    """Name each (destination, copy id, SOP Instance UIDs) in the report record.

    The outbox deletes a copy once confirmed, and nothing else would then say that the
    destination holds these objects: a late report's catch-up sent them again and ``studies
    show`` listed a destination the report did not name with no state, and one whose own item
    was dead-lettered or dropped as dead or dropped. A destination the report did not name gets
    the copy as its item (``destinations``, ``destination_objects``, as the results worker
    names its own); one it names keeps its item and gets the copy in ``copies``. Written after
    the items are in the outbox (while there, an item counts as on its way; a record naming an
    item never queued would count as delivered). Failing to write it loses nothing but that
    knowledge: logged, and the resend goes on.
    """
    if not items:
        return
    path = files.report(report_key)
    try:
        # The study's finalize lock, which the worker holds whenever it writes a report record:
        # neither a finalize nor another admin's resend can then lose this update, or this one theirs.
        with files.finalize_lock(wait=True):
            report = ReportRecord.read(path)
            for dest, item_id, sops in items:
                named = report.destinations.get(dest)
                report = (report.with_copy(dest, item_id, sops) if named not in (None, item_id)
                          else report.with_item(dest, item_id, sops))
            files.write_report(report)  # keeps the report's place among the study's (its sequence)
    except (OSError, RecordError) as exc:
        log_event(logger, "resend_not_recorded", logging.WARNING, study=files.study_uid, report=report_key,
                  destinations=",".join(d for d, _, _ in items), error=safe_error(exc),
                  hint="the copies are queued; a late report may send these objects to them again")


def current_set(files: StudyFiles, report: ReportRecord, kinds: Collection[OutputKind]
                ) -> list[tuple[OutputKind, Path]]:
    """The kept objects of ``kinds`` that stand for the study while ``report`` is its newest.

    Its SRs (they supersede every earlier one) and, per image, the newest SC and GSPS: a
    late-image report builds those of its late images only, and the earlier images' stay in
    the earlier reports' folders, back to the newest amended report. The rule is the one the
    results worker follows to give a destination the earlier objects it lacks
    (:mod:`mammocad.spool.catch_up`), so a resend and a late report agree on what stands.
    """
    folder = files.layout.outputs_dir(files.study_uid, report.report_key)
    out = [(kind, path) for kind in OutputKind if kind in kinds and kind not in PER_IMAGE
           for obj in report.objects_of(kind) if (path := folder / f"{obj.sop}.dcm").is_file()]
    images = frozenset(report.sop_uids)
    per_image = current_objects(files, lineage(files, images), {k: images for k in PER_IMAGE if k in kinds})
    return out + [(kind, path) for kind in PER_IMAGE for path in per_image.get(kind, [])]


def _audit_resend(settings: Settings, report_key: str, planned: list[tuple[Destination, str, list[Path]]]) -> None:
    """Begin Transferring per destination, for the kept objects about to be queued (the outbox
    copies are these files); raises :class:`oneshot.AuditUnavailable`, nothing queued yet."""
    def messages(me: Identity) -> list[AuditMessage]:
        user = events.os_user()
        return [events.transfer_requested(me, user, Peer(dest.ae_title, dest.host), events.study_transfers(wanted),
                                          f"re-sent by {user.user_id} with `mammocad studies resend` (report "
                                          f"{report_key}{_earlier(report_key, wanted)}, outbox item {item_id})")
                for dest, item_id, wanted in planned]

    if planned:
        oneshot.check(settings, "nothing was queued")
    oneshot.record(settings, "mammocad-studies", messages)


def _earlier(report_key: str, paths: list[Path]) -> str:
    """The earlier reports whose kept SC/GSPS a resend carries, in words ("" when none)."""
    keys = sorted({p.parent.name for p in paths} - {report_key})
    return f", with the SC/GSPS that still stand from earlier report(s) {', '.join(keys)}" if keys else ""


def _next_id(outbox: Outbox, files: StudyFiles, report: ReportRecord, destination: str) -> str:
    """The next copy ``<item>.s<n>`` of ``destination``'s item (the report key when it has none).

    Not one in the outbox, not one the report records (a confirmed copy is gone from the
    outbox, but its record and a drop marker would then speak of two copies), nor a dropped one.
    """
    key = report.destinations.get(destination, report.report_key)
    taken = {i.item_id for dead in (False, True) for i in outbox.items(dead=dead, destination=destination)}
    taken |= set(report.copies.get(destination, {}))
    n = 1
    while f"{key}.s{n}" in taken or (files.root / "dropped" / f"{destination}.{key}.s{n}").exists():
        n += 1
    return f"{key}.s{n}"


def _queue_delivery(settings: Settings, outbox: Outbox, items: list[OutboxItem]) -> None:
    app = _app(settings)
    for item in items:
        if app is None:  # an empty token makes the running worker's sweeper send it at once
            item.token = ""
            outbox.save(item)
            continue
        app.send_task(TASK_DELIVER, args=deliver_args(settings.node.spool_dir, item.destination, item.item_id),
                      kwargs={"token": item.token})


@dataclass(frozen=True)
class Reanalysis:
    """What ``reanalyse`` did: the amended report's ``revision``; ``resumed`` when a
    re-analysis was pending already and only its missing tasks were queued again
    (``analyses``: how many images it queued)."""

    revision: int
    resumed: bool = False
    analyses: int = 0


def reanalyse(settings: Settings, study_uid: str) -> Reanalysis:
    """Analyse every image of the study again and issue the result as an amended report.

    A re-analysis already pending (``reanalysis.json``, no amended report yet) is resumed,
    not started again (:func:`_resume`). Needs the broker (the analysis runs on the workers). Refused
    (ActionError, nothing changed, nothing audited) while the study has no report yet or a
    finalize holds its lock: there is nothing to amend yet, and deleting the results under a
    running first finalize would race it.

    The request is recorded in the spool (``reanalysis.json``: revision and images) before
    any result is deleted, and the finalize task takes its revision from there. So the
    broker may fail at any step after it (the tasks are then owed, the error says so): the
    node's reconciler queues the missing analyses and a finalize, and that finalize, like
    the one the last analysis queues, makes the amended report instead of skipping because
    the original exists. Queueing first and deleting after would not do: a worker could
    finish the finalize from the old results before they go.
    """
    files = StudyFiles(settings.node.spool_dir, study_uid)
    completion = files.complete()
    sops = list(completion.sop_uids) if completion else files.layout.image_sops(files.study_uid)
    sops = [s for s in sops if files.image(s).exists()]
    if not files.root.is_dir():
        raise ActionError(unknown_study(study_uid, settings.node.spool_dir))
    if not sops:
        raise ActionError(f"study {study_uid} has no images in {settings.node.spool_dir} "
                          "(never received, or pruned): send it again from the PACS")
    app = _app(settings)
    if app is None:
        raise ActionError("no broker to queue the analysis on: run this where `mammocad serve` runs (same "
                          "node.spool_dir), or set broker.url / MAMMOCAD_BROKER__URL")
    pending = files.layout.pending_reanalysis(files.study_uid)
    if pending is not None:
        return _resume(settings, app, files, pending)
    # Under the study's finalize lock, so no finalize builds from the results while they go.
    with files.finalize_lock() as got:
        if not got:
            raise _refused(study_uid, "finalize running",
                           f"a finalize of study {study_uid} is running now (its first report, or one for "
                           "images that arrived late): try again once it has finished; `mammocad studies show "
                           f"{study_uid}` says when the study is reported")
        completion = files.complete()
        if latest_report(files) is None or (completion is not None
                                            and not files.layout.has_report_for(study_uid, completion.sop_uids)):
            # Its finalize (first, or for late images) is queued or waiting for analyses: a
            # second one would race it, and that pass's analyses would fill the results back in.
            raise _refused(study_uid, "no report yet",
                           f"study {study_uid} has no report yet for its images: their analysis and report "
                           "are still under way, so there is nothing to amend. Wait for the report "
                           f"(`mammocad studies show {study_uid}` says what it waits for), then re-analyse")
        revision = 1 + max((report_revision(r.report_key) for r in files.reports()), default=0)

        def messages(me: Identity) -> list[AuditMessage]:
            user = events.os_user()
            what = (f"analysed again at the request of {user.user_id} with `mammocad studies reanalyse`; "
                    f"to be sent as amended report version {revision}")
            return [events.study_reanalysed(me, user, events.study_transfers(files.image(s) for s in sops), what)]

        oneshot.record(settings, "mammocad-studies", messages)
        # Owed from here on, whatever happens to the broker: written before any result goes.
        files.layout.write(files.layout.reanalysis_path(study_uid), json.dumps(ReanalysisRecord(
            revision=revision, sop_uids=tuple(sops), requested_at=time.time()).to_json()).encode())
        for sop in sops:  # a fresh analysis: the model runs again (possibly new weights)
            for path in (files.result(sop), files.attempts(sop)):
                _remove(path)
    _queue(app, settings, files, revision, sops, sops)
    return Reanalysis(revision, analyses=len(sops))


def _resume(settings: Settings, app: Celery, files: StudyFiles, pending: ReanalysisRecord) -> Reanalysis:
    """Queue again what a pending re-analysis still lacks; delete nothing, audit nothing.

    Asked twice (the first still running, or its tasks lost with the broker: "run this
    command again then"), a re-analysis used to start over: the images already analysed
    again lost their new results, and the audit trail got a second request for the same
    version. Only the images without a result and not being analysed now (fresh lease)
    are queued, with the finalize of the study's images (those that arrived since included);
    a duplicate task is harmless, every task being idempotent.
    """
    completion = files.complete()
    sops = sorted(completion.sop_uids) if completion is not None and set(pending.sop_uids) <= set(
        completion.sop_uids) else list(pending.sop_uids)
    now = time.time()
    missing = [s for s in sops if not files.result(s).exists() and not _analysing(files, s, settings.worker.lease_s, now)]
    log_event(logger, "reanalyse_resumed", study=files.study_uid, revision=pending.revision,
              images=len(sops), queued=len(missing))
    _queue(app, settings, files, pending.revision, missing, sops)
    return Reanalysis(pending.revision, resumed=True, analyses=len(missing))


def _analysing(files: StudyFiles, sop: str, lease_s: float, now: float) -> bool:
    """True while a live worker analyses the image (its lease is fresh)."""
    age = lease_age(lease_path(files.layout, files.study_uid, sop), now)
    return age is not None and age <= lease_s


def _queue(app: Celery, settings: Settings, files: StudyFiles, revision: int, analyse: list[str],
           report: list[str]) -> None:
    """Queue the analyses of ``analyse`` and the amended report's finalize of ``report``."""
    spool_dir, study_uid = str(settings.node.spool_dir), files.study_uid
    broker_errors = (KombuError, OSError, *app.connection_for_write().connection_errors)  # redis's own too
    try:
        for sop in analyse:
            app.send_task(TASK_ANALYZE_IMAGE, args=analyze_image_args(spool_dir, study_uid, sop))
        app.send_task(TASK_FINALIZE_STUDY, args=finalize_study_args(spool_dir, study_uid, report),
                      kwargs={"revision": revision})
    except broker_errors as exc:
        log_event(logger, "reanalyse_queue_failed", logging.WARNING, study=study_uid, revision=revision,
                  error=safe_error(exc))
        raise ActionError(
            f"the re-analysis of study {study_uid} (amended report version {revision}) is recorded in the "
            f"spool, but the broker did not take its tasks: {safe_error(exc)}. Nothing is lost: once the "
            "broker is back, the node's reconciler queues the analyses and the amended report (within "
            "node.reconcile_interval_s), or run this command again then. Check the broker (redis: `systemctl "
            "status redis-server`, broker.url), and `mammocad studies show` for progress") from exc


def _refused(study_uid: str, reason: str, message: str) -> ActionError:
    """Log a refused action (``event=reanalyse_refused``) and return the error to raise."""
    log_event(logger, "reanalyse_refused", logging.WARNING, study=study_uid, reason=reason)
    return ActionError(message)


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
