"""Spool retention: remove what the PACS already has back, once it is old enough.

The spool is a working area, not an archive (the PACS keeps the images and receives the
results), so studies must not pile up forever. A study folder goes only when all of this
holds, so pruning can never lose work that is still owed to someone:

- it is older than ``older_than_s`` by the times its records hold (completion declared, each
  report finished, a re-analysis asked for): not by file mtimes, which a backup restore, an
  ``rsync`` without ``-t`` or a ``touch`` moves (:mod:`mammocad.spool.retention_age`; only a
  study whose records hold no time, and a set-aside folder, is aged by its files' mtimes, and
  each pass counts them in one ``prune_age_from_mtime`` line; so is a study with a record dated
  beyond the pass's clock + :data:`~mammocad.spool.retention_age.FUTURE_TOLERANCE_S`, written
  under a wrong clock, each named on a ``prune_record_in_future`` line, where files dated beyond
  it do not count either, and a study with no time to believe at all is kept, saying so);
- it was finalised: at least one report exists and every spooled image is in a report;
- none of its reports has an outbox or dead-letter item left, re-sent copies
  (``studies resend``) included, i.e. every destination confirmed every result (a
  dead-letter item waits for an admin's ``outbox retry``).
- no re-analysis an admin asked for is still owed its amended report (``reanalysis.json``:
  its old results are gone already, so the study must wait for the broker however long).

What a study's reports covered is kept in ``pruned/<study>.json`` (UIDs and counts, no patient
data; written before the folder is deleted): an image of the study that arrives later is then
told apart from a new study (the node answers an image already reported Success without
analysing it again; a report of new images takes the next series numbers). These records go
too, ``pruned_record_s`` after the prune (``node.pruned_record_days``; 0 keeps them): every
file derived from a study has a bounded life. Once its record is gone, an image of the study
is a new study to the node: analysed and reported again, its report numbered from the start.
A record whose study is in the spool again stays (its report count numbers that study's next
reports) and is renewed when the study is pruned again.

Set-aside objects (``other/``: SOP classes that are not analysed) go after the same age (their
files' mtimes: no record of them holds a time), unless one arrived while their folder was being
removed.
A folder is first renamed into ``tmp/`` (atomic, as ``.pruned-<uid>-<random>``: see
:func:`~mammocad.spool.retention_moves.moved_away`) and then deleted, so a crash midway leaves
no half study for the node or a worker to trip over. While it is there it may still come back (an image arrived), so the node's
one-study-per-instance check counts it as held (mammocad/node/instances.py).

What :func:`_remove` writes, in order (a pass killed, or a power cut, after any step leaves
its folder in ``tmp/`` for the next pass, which settles it first: see
:mod:`mammocad.spool.retention_recovery`, logged ``prune_recovered``):

1. the rename to ``tmp/.pruned-<uid>-<random>``;
2. the check again: an arrival (or a record written meanwhile, as ``studies reanalyse`` writes
   one) merges the folder back into its place;
3. for a study, ``pruned/<uid>.json`` (atomic), the point of no return: that study is gone to
   the node (it answers its images as reported before) and the record counts its reports;
4. ``.prune-audited`` in the moved folder, then the audit record (DICOM Study Deleted, tagged
   ``(prune <random>)``): from here a set-aside folder too is finished, not put back, and its
   record is written again only when the audit file does not hold it;
5. the rename to ``tmp/.prune-deleting-<uid>-<random>``, then the delete.

The folder moves (rename away, merge back, audit and delete) are
:mod:`mammocad.spool.retention_moves`.

Each folder that goes is audited with the pruning process's ``trail`` (PS3.15 A.5.3.8 DICOM
Study Deleted: the study, the SOP classes and counts of the instances deleted, the patient
ID), once it is renamed away and checked, before it is deleted. The trail never blocks or
raises: a trail that is down drops and logs (``audit_dropped``), and pruning goes on.

One pass at a time (:mod:`mammocad.spool.prune_lock`): a pass that finds another one holding
``spool/prune.lock`` does nothing and says so (``prune_skipped``, :attr:`PruneReport.skipped`).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mammocad.logs import log_event, safe_error
from mammocad.spool.layout import Spool, atomic_write_json, ensure_dir, is_uid
from mammocad.spool.prune_lock import pass_lock
from mammocad.spool.records import RecordError
from mammocad.spool.records.pruned import PrunedRecord
from mammocad.spool.records.report import ReportRecord
from mammocad.spool.retention_age import FUTURE_TOLERANCE_S, log_future_dated, study_age
from mammocad.spool.retention_moves import (
    DELETING_PREFIX,
    MOVED_PREFIX,
    LinkFallback,
    delete_moved,
    deletion_auditor,
    merge_back,
    moved_away,
    moved_uid,
)

# Under this module's name: the pass looks it up here at each call, so a test can stop a pass midway.
from mammocad.spool.retention_moves import age_and_size as _age_and_size
from mammocad.spool.retention_recovery import recover

if TYPE_CHECKING:
    from mammocad.audit import AuditTrail

__all__ = ["DAY_S", "DELETING_PREFIX", "MOVED_PREFIX", "PruneReport", "moved_away", "moved_uid", "pass_lock",
           "prune"]

logger = logging.getLogger(__name__)

DAY_S = 86400.0


@dataclass
class PruneReport:
    """What a prune removed (or, with ``dry_run``, would remove), and what it kept and why."""

    studies: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)  # study UIDs whose pruned/<study>.json expired
    bytes: int = 0
    kept: dict[str, str] = field(default_factory=dict)  # study UID -> reason (old studies only)
    #: True when another pass held the spool's prune lock: this one looked at nothing.
    skipped: bool = False
    #: (UID, "deleted" or "put back") for each folder a killed pass left in ``tmp/``.
    recovered: list[tuple[str, str]] = field(default_factory=list)
    #: UID -> error for each folder this pass could not check, remove or put back (left where it
    #: was or in ``tmp/``, for the next pass): the others were done all the same.
    failed: dict[str, str] = field(default_factory=dict)
    #: Studies aged by their files' mtimes, not their records' times: some record of theirs holds
    #: no time (an older release's), or they have none yet (not finalised).
    aged_by_mtime: list[str] = field(default_factory=list)
    #: Study UID -> the records of it (``reports/<key>.json``, ...) whose time lies beyond the pass's
    #: clock + FUTURE_TOLERANCE_S: not believed, the study aged by mtime (also in ``aged_by_mtime``);
    #: also a study whose files alone were dated so, where their mtimes counted (an empty list).
    future_dated: dict[str, list[str]] = field(default_factory=dict)


def _why_kept(spool: Spool, study: Path) -> str | None:
    """None when the study may go; else the reason it must stay."""
    reports = []
    for path in sorted((study / "reports").glob("*.json")):
        try:
            reports.append(ReportRecord.read(path))
        except (OSError, RecordError):
            return f"unreadable report {path.name}"
    if not reports:
        return "never finalised (no report)"
    reported = {s for r in reports for s in r.sop_uids}
    images = {p.stem for p in (study / "images").glob("*.dcm")}
    if images - reported:
        return f"{len(images - reported)} image(s) in no report"
    for report in reports:
        ids = {str(i) for i in report.destinations.values()} | {report.report_key}
        for box in (spool.outbox, spool.deadletter):
            for dest in sorted(box.iterdir()) if box.is_dir() else ():
                # ``studies resend`` copies are ``<item>.s<n>``, to any destination configured then.
                if any((dest / i).exists() or next(dest.glob(f"{i}.s*"), None) for i in ids):
                    return f"results for {dest.name} still in {box.name}/"
    return None


def _why_moved_kept(spool: Spool, moved: Path, cutoff: float, now: float) -> str | None:
    """The checks again, on a study folder renamed away: :func:`_why_kept`, and its age.

    A record written between the pass's look and the rename (``studies reanalyse``'s
    ``reanalysis.json``, a report of a late image) is newer than ``cutoff``; looking only for
    images in no report, the pass deleted the study with the admin's re-analysis request in it.
    """
    reason = _why_kept(spool, moved)
    if reason is None and study_age(moved, _age_and_size(moved)[0], now=now).when >= cutoff:
        reason = "a record of the study was written while it was being removed (a re-analysis asked for, a report)"
    return reason


def _arrived(folder: Path, cutoff: float) -> str | None:
    """Why a set-aside folder renamed away must come back: an object the node committed
    into it (and answered Success for) after its age was checked is newer than ``cutoff``."""
    return "a set-aside object arrived while its folder was being removed" \
        if _age_and_size(folder)[0] >= cutoff else None


def _remember(spool: Spool, uid: str) -> Callable[[Path], None]:
    """What writes ``pruned/<uid>.json`` from the moved study folder's reports (UIDs only)."""

    def remember(doomed: Path) -> None:
        reports = [ReportRecord.read(path) for path in sorted((doomed / "reports").glob("*.json"))]
        record = PrunedRecord(tuple(sorted({s for r in reports for s in r.sop_uids})), len(reports), time.time())
        atomic_write_json(spool.pruned_path(uid), record.merged(spool.pruned(uid)).to_json(), spool.tmp)

    return remember


def _remove(spool: Spool, folder: Path, check: Callable[[Path], str | None] | None = None,
            deleting: Callable[[Path], None] | None = None,
            remember: Callable[[Path], None] | None = None, links: LinkFallback | None = None) -> bool:
    """Remove ``folder`` unless an image arrived between the checks and the rename.

    The node may commit an image into the study (and answer Success) after the age and
    report checks ran. The folder is renamed away first (atomic), then ``check`` runs
    again on what was moved: an image in no report, or a new folder the node created in
    the meantime, puts everything back, so nothing answered Success is ever deleted.
    ``deleting`` (the audit record) sees the moved folder just before it is deleted.
    ``remember`` (the study's :class:`PrunedRecord`) runs before that; when it fails the
    study is put back and stays until it can be written.
    ``links``: the pass's one :class:`LinkFallback` (one ``prune_no_hardlinks`` line a pass).
    Returns False when the study was put back.
    """
    doomed = spool.tmp / f"{MOVED_PREFIX}{folder.name}-{uuid.uuid4().hex[:8]}"
    os.rename(folder, doomed)
    reason = check(doomed) if check is not None else None
    if reason is not None or folder.exists():
        merge_back(doomed, folder, links=links)
        log_event(logger, "prune_raced_arrival", logging.WARNING, study=folder.name,
                  reason=reason or "an image arrived while the study was being removed")
        return False
    if remember is not None:
        try:
            remember(doomed)
        except (OSError, RecordError) as exc:
            merge_back(doomed, folder, links=links)
            log_event(logger, "prune_record_failed", logging.WARNING, study=folder.name, error=safe_error(exc),
                      hint="the study stays until spool/pruned/ can be written; check the spool's disk")
            return False
    delete_moved(spool, doomed, deleting)
    return True


def _expire_records(spool: Spool, keep_s: float, now: float, dry_run: bool) -> list[str]:
    """Remove the ``pruned/<study>.json`` written more than ``keep_s`` ago (0: none), one log
    line each (UIDs and counts only), except those whose study is in the spool again.

    A ``pruned_at`` beyond ``now`` + FUTURE_TOLERANCE_S (a pass under a clock that was ahead)
    is not believed, as for a study's records: the file's mtime says when instead. Believed,
    a clock a year ahead kept the record a year past ``pruned_record_days``."""
    if keep_s <= 0 or not spool.pruned_dir.is_dir():
        return []
    expired = []
    for path in sorted(spool.pruned_dir.glob("*.json")):
        uid = path.stem
        try:
            try:
                record: PrunedRecord | None = PrunedRecord.read(path)
            except RecordError:  # unreadable: the node reads it as none already; its age is the file's
                record = None
            believed = record is not None and 0 < record.pruned_at <= now + FUTURE_TOLERANCE_S
            when = record.pruned_at if record is not None and believed else path.stat().st_mtime
            if not is_uid(uid) or now - when <= keep_s or (spool.studies / uid).exists() or moved_away(spool, uid):
                continue
            if not dry_run:
                path.unlink()
        except FileNotFoundError:  # removed under us (another prune)
            continue
        log_event(logger, "pruned_record_expired", study=uid, age_days=round((now - when) / DAY_S, 1),
                  images=len(record.sop_uids) if record is not None else None,
                  reports=record.reports if record is not None else None, dry_run=dry_run)
        expired.append(uid)
    return expired


def prune(spool_dir: str | os.PathLike[str], older_than_s: float, *, dry_run: bool = False,
          now: float | None = None, trail: AuditTrail | None = None, pruned_record_s: float = 0.0,
          report: PruneReport | None = None) -> PruneReport:
    """Remove delivered studies and set-aside objects untouched for ``older_than_s``, and
    ``pruned/`` records older than ``pruned_record_s`` (0 keeps them); each study or folder
    removed is audited on ``trail`` (the calling process's).

    Nothing happens, and the report says ``skipped``, while another pass (another process)
    holds the spool's prune lock; a dry run takes it too, so what it lists is not half of
    another pass's work.

    ``report`` (a new one when None) is filled as the pass goes and returned: a caller whose
    pass stopped midway (an ``OSError`` outside any one folder, Ctrl-C) still holds what was
    removed before, and can say so.
    """
    report = PruneReport() if report is None else report
    spool = Spool(spool_dir)
    ensure_dir(spool.tmp)
    with pass_lock(spool) as locked:
        if not locked:
            log_event(logger, "prune_skipped", reason="another prune pass holds the spool's prune lock",
                      lock=str(spool.prune_lock), dry_run=dry_run)
            report.skipped = True
            return report
        _prune_pass(spool, older_than_s, report, dry_run=dry_run, now=now, trail=trail,
                    pruned_record_s=pruned_record_s)
        return report


def _prune_pass(spool: Spool, older_than_s: float, report: PruneReport, *, dry_run: bool, now: float | None,
                trail: AuditTrail | None, pruned_record_s: float) -> None:
    """One pass of :func:`prune`, under the spool's prune lock, into ``report``."""
    now = now if now is not None else time.time()
    cutoff = now - older_than_s
    days = f"{older_than_s / DAY_S:g} days"
    study_why = f"removed from the spool by retention: every result delivered, finished more than {days} ago"
    other_why = f"set-aside objects (SOP classes not analysed) removed from the spool by retention after {days}"
    links = LinkFallback()  # one prune_no_hardlinks line for the whole pass
    for recovered in recover(spool, trail, dry_run, links):
        if recovered.action == "failed":
            report.failed[recovered.uid] = recovered.error
            continue
        report.recovered.append((recovered.uid, recovered.action))
        report.bytes += recovered.size if recovered.action == "deleted" else 0
    report.records.extend(_expire_records(spool, pruned_record_s, now, dry_run))
    for uid in list(spool.study_uids()):
        folder = spool.studies / uid
        try:
            newest, size = _age_and_size(folder)
            age = study_age(folder, newest, now=now)
            if age.by_mtime:
                report.aged_by_mtime.append(uid)
            if age.future or age.files_ahead:
                report.future_dated[uid] = [record.name for record in age.future]
                log_future_dated(uid, age, newest, now=now, dry_run=dry_run)
            if age.when >= cutoff:
                if age.unknown:
                    report.kept[uid] = ("no time of it can be believed: its records and files are all dated more than "
                                        f"{FUTURE_TOLERANCE_S / 60:g} minutes after this host's clock")
                continue
            reason = _why_kept(spool, folder)
            if reason is None and spool.pending_reanalysis(uid) is not None:
                reason = "re-analysis pending (no amended report yet)"
            if reason:
                report.kept[uid] = reason
                continue
            if not dry_run and not _remove(spool, folder, lambda moved: _why_moved_kept(spool, moved, cutoff, now),
                                           deletion_auditor(trail, uid, study_why), _remember(spool, uid), links):
                continue
        except OSError as exc:
            _could_not_prune(spool, report, folder, exc)
            continue
        report.studies.append(uid)
        report.bytes += size
    set_aside = _prune_set_aside(spool, cutoff, report, dry_run=dry_run,
                                 auditor=lambda uid: deletion_auditor(trail, uid, other_why), links=links)
    _log_mtime_ages(report.aged_by_mtime, set_aside, dry_run)
    if (report.studies or report.other or report.kept or report.records or report.recovered or report.failed
            or report.future_dated):
        log_event(logger, "spool_pruned", studies=len(report.studies), other=len(report.other),
                  mb=round(report.bytes / 1e6, 1), kept=len(report.kept), records=len(report.records),
                  recovered=len(report.recovered), failed=len(report.failed),
                  future_dated=len(report.future_dated), dry_run=dry_run)


def _prune_set_aside(spool: Spool, cutoff: float, report: PruneReport, *, dry_run: bool,
                     auditor: Callable[[str], Callable[[Path], None] | None], links: LinkFallback) -> int:
    """Remove the ``other/`` folders whose files are all older than ``cutoff``, into ``report``;
    returns how many folders it looked at (each aged by its files' mtimes: no record of a
    set-aside object holds a time)."""
    if not spool.other.is_dir():
        return 0
    folders = sorted(p for p in spool.other.iterdir() if p.is_dir())
    for folder in folders:
        try:
            newest, size = _age_and_size(folder)
            if newest >= cutoff:
                continue
            if not dry_run and not _remove(spool, folder, lambda moved: _arrived(moved, cutoff),
                                           auditor(folder.name), links=links):
                continue
        except OSError as exc:
            _could_not_prune(spool, report, folder, exc)
            continue
        report.other.append(folder.name)
        report.bytes += size
    return len(folders)


def _log_mtime_ages(studies: list[str], set_aside: int, dry_run: bool) -> None:
    """One line a pass (none when there were none) counting the folders aged by their files'
    mtimes: an admin must be able to tell when a restore or ``touch`` could move retention."""
    if not studies and not set_aside:
        return
    log_event(logger, "prune_age_from_mtime", studies=len(studies), other=set_aside, dry_run=dry_run,
              why="no record of these folders holds a time that can be believed (a study not finalised yet, "
                  "records written by an older release, a record dated in the future: prune_record_in_future, "
                  "a set-aside folder): their age is their files' newest mtime, which a restore, an rsync "
                  "without -t or touch moves")


def _could_not_prune(spool: Spool, report: PruneReport, folder: Path, exc: OSError) -> None:
    """One folder could not be checked, removed or put back: say so, leave it, go on.

    Nothing of it is lost: what was not renamed away is in its place, what was is in
    ``tmp/.pruned-<uid>-*``, where the next pass puts it back (or finishes its delete when its
    record was written). Raising stopped the pass, and every later study stayed.
    """
    uid = folder.name
    left = [p for p in (folder, *moved_away(spool, uid)) if p.exists()]
    if isinstance(exc, FileNotFoundError) and not left:
        return  # gone before the pass reached it: nothing to prune, nothing to say
    report.failed[uid] = safe_error(exc)
    log_event(logger, "prune_folder_failed", logging.ERROR, study=uid, kind=folder.parent.name,
              error=report.failed[uid], left=",".join(str(p.relative_to(spool.root)) for p in left),
              hint="nothing was lost: the next prune pass settles what is in spool/tmp/ (puts it back, or "
                   "finishes its delete when its record was written); "
                   "check the spool's disk and the permissions of the path in error")
