"""Spool retention: remove what the PACS already has back, once it is old enough.

The spool is a working area, not an archive (the PACS keeps the images and receives the
results), so studies must not pile up forever. A study folder goes only when all of this
holds, so pruning can never lose work that is still owed to someone:

- nothing in it changed for ``older_than_s`` (no late image, result or report);
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

Set-aside objects (``other/``: SOP classes that are not analysed) go after the same age,
unless one arrived while their folder was being removed.
A folder is first renamed into ``tmp/`` (atomic, as ``.pruned-<uid>-<random>``: see
:func:`moved_away`) and then deleted, so a crash midway leaves no half study for the node or a
worker to trip over. While it is there it may still come back (an image arrived), so the node's
one-study-per-instance check counts it as held (mammocad/node/instances.py).

What :func:`_remove` writes, in order, and what a pass killed (or a power cut) after each step
leaves for the next pass, which looks in ``tmp/`` first (:func:`_recover`, logged
``prune_recovered``):

1. the rename to ``tmp/.pruned-<uid>-<random>``;
2. the check again: an arrival merges the folder back into its place;
3. for a study, ``pruned/<uid>.json`` (atomic), the point of no return: that study is gone to
   the node (it answers its images as reported before) and the record counts its reports;
4. the audit record (DICOM Study Deleted);
5. the rename to ``tmp/.prune-deleting-<uid>-<random>``, then the delete.

A ``.pruned-`` folder of a study whose record lists every image it holds and every image its
reports cover was past 3, and its delete is finished and audited. Merging it back instead would
count its reports twice (in the folder and in the record), so this holds also when the study
folder came back meanwhile (an image arrived after 3): as with a pass that had not stopped, the
new images are a study of their own. An older record cannot list them: the node answers the
images a record lists without storing them, so a study back in the spool holds only others.
Any other ``.pruned-`` folder (killed in 1-3, or while merging back; every set-aside folder,
which has no record) goes back where it came from, merged with what is there now: nothing
answered Success is lost, and an old delivered study is pruned again by the usual checks. A
study folder holds subfolders (``images/``, ``reports/``), a set-aside one only ``<sop>.dcm``
files: that tells where it goes back. A ``.prune-deleting-`` folder is deleted and not audited
again; only a pass killed between 4 and 5, a rename apart, leaves a study audited twice.

Each folder that goes is audited with the pruning process's ``trail`` (PS3.15 A.5.3.8 DICOM
Study Deleted: the study, the SOP classes and counts of the instances deleted, the patient
ID), once it is renamed away and checked, before it is deleted. The trail never blocks or
raises: a trail that is down drops and logs (``audit_dropped``), and pruning goes on.

One pass at a time: ``mammocad spool prune`` (an admin) and the results worker's hourly pass
would otherwise both put back, expire and audit the same folder. A pass holds an exclusive
``flock`` on ``spool/prune.lock`` from start to end; the kernel drops it when the process
ends, a crash included, so it is never left held. A pass that finds it held does nothing and
says so (``prune_skipped``, :attr:`PruneReport.skipped`): the other pass is doing the work.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mammocad.logs import log_event, safe_error
from mammocad.spool.layout import FILE_MODE, Spool, atomic_write_json, ensure_dir, is_uid
from mammocad.spool.records import PrunedRecord, RecordError, ReportRecord

if TYPE_CHECKING:
    from mammocad.audit import AuditTrail

logger = logging.getLogger(__name__)

DAY_S = 86400.0
#: How a folder renamed away by retention starts in ``tmp/``: ``.pruned-<uid>-<random>``.
MOVED_PREFIX = ".pruned-"
#: The same folder once audited, being deleted: it never comes back, so the node's index ignores it.
DELETING_PREFIX = ".prune-deleting-"


def moved_away(spool: Spool, uid: str) -> list[Path]:
    """The folders of study (or set-aside folder) ``uid`` that retention has renamed into
    ``tmp/`` and not yet deleted or put back.

    Between the rename and the delete the folder may still be put back (an image of the study
    arrived meanwhile): whoever asks "does the spool hold this instance?" must look here too.
    """
    return sorted(spool.tmp.glob(f"{MOVED_PREFIX}{uid}-*")) if spool.tmp.is_dir() else []


def moved_uid(folder: Path) -> str | None:
    """The UID of a folder :func:`moved_away` lists, None for any other entry of ``tmp/``."""
    if not folder.name.startswith(MOVED_PREFIX):
        return None
    uid, sep, _ = folder.name[len(MOVED_PREFIX):].rpartition("-")
    return uid if sep and is_uid(uid) else None


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


def _age_and_size(folder: Path) -> tuple[float, int]:
    """(newest modification time of the folder or anything in it, total bytes of its files)."""
    newest, size = folder.stat().st_mtime, 0
    for root, dirs, files in os.walk(folder):
        for is_file, names in ((False, dirs), (True, files)):
            for name in names:
                try:
                    st = os.stat(os.path.join(root, name))
                except FileNotFoundError:
                    continue
                newest = max(newest, st.st_mtime)
                size += st.st_size if is_file else 0
    return newest, size


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


def _arrived(folder: Path, cutoff: float) -> str | None:
    """Why a set-aside folder renamed away must come back: an object the node committed
    into it (and answered Success for) after its age was checked is newer than ``cutoff``."""
    return "a set-aside object arrived while its folder was being removed" \
        if _age_and_size(folder)[0] >= cutoff else None


def _merge_back(doomed: Path, folder: Path) -> None:
    """Move everything in ``doomed`` back under ``folder`` (keeping what is there now)."""
    if not folder.exists():
        os.rename(doomed, folder)
        return
    for path in sorted(doomed.rglob("*")):
        target = folder / path.relative_to(doomed)
        if path.is_file() and not target.exists():
            ensure_dir(target.parent)  # 0750 whatever the umask, as every spool folder
            os.rename(path, target)
    shutil.rmtree(doomed, ignore_errors=True)


def _remember(spool: Spool, uid: str) -> Callable[[Path], None]:
    """What writes ``pruned/<uid>.json`` from the moved study folder's reports (UIDs only)."""

    def remember(doomed: Path) -> None:
        reports = [ReportRecord.read(path) for path in sorted((doomed / "reports").glob("*.json"))]
        record = PrunedRecord(tuple(sorted({s for r in reports for s in r.sop_uids})), len(reports), time.time())
        atomic_write_json(spool.pruned_path(uid), record.merged(spool.pruned(uid)).to_json(), spool.tmp)

    return remember


def _remove(spool: Spool, folder: Path, check: Callable[[Path], str | None] | None = None,
            deleting: Callable[[Path], None] | None = None,
            remember: Callable[[Path], None] | None = None) -> bool:
    """Remove ``folder`` unless an image arrived between the checks and the rename.

    The node may commit an image into the study (and answer Success) after the age and
    report checks ran. The folder is renamed away first (atomic), then ``check`` runs
    again on what was moved: an image in no report, or a new folder the node created in
    the meantime, puts everything back, so nothing answered Success is ever deleted.
    ``deleting`` (the audit record) sees the moved folder just before it is deleted.
    ``remember`` (the study's :class:`PrunedRecord`) runs before that; when it fails the
    study is put back and stays until it can be written.
    Returns False when the study was put back.
    """
    doomed = spool.tmp / f"{MOVED_PREFIX}{folder.name}-{uuid.uuid4().hex[:8]}"
    os.rename(folder, doomed)
    reason = check(doomed) if check is not None else None
    if reason is not None or folder.exists():
        _merge_back(doomed, folder)
        log_event(logger, "prune_raced_arrival", logging.WARNING, study=folder.name,
                  reason=reason or "an image arrived while the study was being removed")
        return False
    if remember is not None:
        try:
            remember(doomed)
        except (OSError, RecordError) as exc:
            _merge_back(doomed, folder)
            log_event(logger, "prune_record_failed", logging.WARNING, study=folder.name, error=safe_error(exc),
                      hint="the study stays until spool/pruned/ can be written; check the spool's disk")
            return False
    _delete(spool, doomed, deleting)
    return True


def _delete(spool: Spool, doomed: Path, deleting: Callable[[Path], None] | None) -> None:
    """Audit (``deleting``) and delete a folder renamed away, renamed once more in between so
    that a pass killed while deleting does not audit what is left of it again."""
    if deleting is not None:
        deleting(doomed)
    gone = spool.tmp / f"{DELETING_PREFIX}{doomed.name[len(MOVED_PREFIX):]}"
    os.rename(doomed, gone)
    shutil.rmtree(gone, ignore_errors=True)


def _recorded(spool: Spool, uid: str, moved: Path) -> bool:
    """True when ``pruned/<uid>.json`` lists every image in ``moved`` and every image its
    reports cover: the pass that moved it wrote its record (module docstring)."""
    try:
        reports = [ReportRecord.read(path) for path in sorted((moved / "reports").glob("*.json"))]
    except (OSError, RecordError):
        return False
    held = {s for r in reports for s in r.sop_uids} | {p.stem for p in (moved / "images").glob("*.dcm")}
    record = spool.pruned(uid)
    return bool(held) and record is not None and held <= set(record.sop_uids)


def _leftover(spool: Spool, moved: Path) -> tuple[str, str, Path | None] | None:
    """(UID, what to do: "deleted" or "put back", where it goes back) for a folder a killed pass
    left in ``tmp/``; None for any other entry."""
    if moved.name.startswith(DELETING_PREFIX):
        uid = moved.name[len(DELETING_PREFIX):].rpartition("-")[0]
        return (uid, "deleted", None) if is_uid(uid) else None
    uid_or_none = moved_uid(moved)
    if uid_or_none is None:
        return None
    if not any(p.is_dir() for p in moved.iterdir()):  # a set-aside folder: files only, no record
        return uid_or_none, "put back", spool.other / uid_or_none
    if _recorded(spool, uid_or_none, moved):
        return uid_or_none, "deleted", None
    return uid_or_none, "put back", spool.studies / uid_or_none


def _recover(spool: Spool, trail: AuditTrail | None, dry_run: bool, report: PruneReport) -> None:
    """Finish or undo what a killed pass left in ``tmp/`` (see the module docstring).

    Runs under the prune lock, so no live pass is working on any of these folders.
    """
    why = ("removed from the spool by retention: every result delivered; the prune pass that began "
           "removing it was stopped, the next one finished")
    for moved in sorted(p for p in spool.tmp.iterdir() if p.is_dir()):
        leftover = _leftover(spool, moved)
        if leftover is None:
            continue
        uid, action, origin = leftover
        size = _age_and_size(moved)[1]
        try:
            if not dry_run and origin is not None:
                ensure_dir(origin.parent)
                _merge_back(moved, origin)
            elif not dry_run and moved.name.startswith(MOVED_PREFIX):
                _delete(spool, moved, _auditor(trail, uid, why))
            elif not dry_run:  # audited already, before it was renamed for deletion
                shutil.rmtree(moved, ignore_errors=True)
        except OSError as exc:  # this folder waits for the next pass; the others go on
            log_event(logger, "prune_recovery_failed", logging.WARNING, study=uid, folder=moved.name,
                      action=action, error=safe_error(exc),
                      hint="the next prune pass tries again; check the spool's disk and permissions")
            continue
        log_event(logger, "prune_recovered", logging.WARNING, study=uid, action=action, folder=moved.name,
                  mb=round(size / 1e6, 1), dry_run=dry_run,
                  reason="a prune pass was stopped (killed, power cut) while removing this folder")
        report.recovered.append((uid, action))
        report.bytes += size if action == "deleted" else 0


def _auditor(trail: AuditTrail | None, uid: str, why: str) -> Callable[[Path], None] | None:
    """What audits the deletion of study ``uid``'s folder (its DICOM files' headers), if anyone."""
    if trail is None or not trail.enabled:
        return None

    def deleting(doomed: Path) -> None:
        from mammocad.audit import StudyTransfer, events

        try:
            studies = [s for s in events.study_transfers(doomed.rglob("*.dcm")) if s.study_uid == uid]
            trail.emit(events.study_deleted(trail.identity, studies[0] if studies else StudyTransfer(uid, {}), why))
        except Exception as exc:  # noqa: BLE001 - never leave a renamed folder behind for the audit's sake
            log_event(logger, "audit_dropped", logging.WARNING, sink="queue", error=safe_error(exc), study=uid)

    return deleting


def _expire_records(spool: Spool, keep_s: float, now: float, dry_run: bool) -> list[str]:
    """Remove the ``pruned/<study>.json`` written more than ``keep_s`` ago (0: none), one log
    line each (UIDs and counts only), except those whose study is in the spool again."""
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
            when = record.pruned_at if record is not None and record.pruned_at > 0 else path.stat().st_mtime
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


@contextmanager
def pass_lock(spool: Spool) -> Iterator[bool]:
    """Hold ``spool/prune.lock`` (exclusive ``flock``) for the block; yield False, holding
    nothing, when another pass has it.

    Opened read-only (``flock`` needs no write access): a worker account that may only read
    the file the service created can still take it. Unlocked explicitly, not only closed: a
    child forked meanwhile (a Celery pool) shares the open file and would keep it locked.
    """
    ensure_dir(spool.root)
    fd = os.open(spool.prune_lock, os.O_RDONLY | os.O_CREAT, FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def prune(spool_dir: str | os.PathLike[str], older_than_s: float, *, dry_run: bool = False,
          now: float | None = None, trail: AuditTrail | None = None, pruned_record_s: float = 0.0) -> PruneReport:
    """Remove delivered studies and set-aside objects untouched for ``older_than_s``, and
    ``pruned/`` records older than ``pruned_record_s`` (0 keeps them); each study or folder
    removed is audited on ``trail`` (the calling process's).

    Nothing happens, and the report says ``skipped``, while another pass (another process)
    holds the spool's prune lock; a dry run takes it too, so what it lists is not half of
    another pass's work.
    """
    spool = Spool(spool_dir)
    ensure_dir(spool.tmp)
    with pass_lock(spool) as locked:
        if not locked:
            log_event(logger, "prune_skipped", reason="another prune pass holds the spool's prune lock",
                      lock=str(spool.prune_lock), dry_run=dry_run)
            return PruneReport(skipped=True)
        return _prune_pass(spool, older_than_s, dry_run=dry_run, now=now, trail=trail,
                           pruned_record_s=pruned_record_s)


def _prune_pass(spool: Spool, older_than_s: float, *, dry_run: bool, now: float | None,
                trail: AuditTrail | None, pruned_record_s: float) -> PruneReport:
    """One pass of :func:`prune`, under the spool's prune lock."""
    now = now if now is not None else time.time()
    cutoff = now - older_than_s
    days = f"{older_than_s / DAY_S:g} days"
    study_why = f"removed from the spool by retention: every result delivered, untouched for {days}"
    other_why = f"set-aside objects (SOP classes not analysed) removed from the spool by retention after {days}"
    report = PruneReport()
    _recover(spool, trail, dry_run, report)
    report.records = _expire_records(spool, pruned_record_s, now, dry_run)
    for uid in list(spool.study_uids()):
        folder = spool.studies / uid
        try:
            newest, size = _age_and_size(folder)
            if newest >= cutoff:
                continue
            reason = _why_kept(spool, folder)
            if reason is None and spool.pending_reanalysis(uid) is not None:
                reason = "re-analysis pending (no amended report yet)"
            if reason:
                report.kept[uid] = reason
                continue
            if not dry_run and not _remove(spool, folder, lambda moved: _why_kept(spool, moved),
                                           _auditor(trail, uid, study_why), _remember(spool, uid)):
                continue
        except FileNotFoundError:  # removed under us (another prune)
            continue
        report.studies.append(uid)
        report.bytes += size
    if spool.other.is_dir():
        for folder in sorted(p for p in spool.other.iterdir() if p.is_dir()):
            try:
                newest, size = _age_and_size(folder)
                if newest >= cutoff:
                    continue
                if not dry_run and not _remove(spool, folder, lambda moved: _arrived(moved, cutoff),
                                               _auditor(trail, folder.name, other_why)):
                    continue
            except FileNotFoundError:
                continue
            report.other.append(folder.name)
            report.bytes += size
    if report.studies or report.other or report.kept or report.records or report.recovered:
        log_event(logger, "spool_pruned", studies=len(report.studies), other=len(report.other),
                  mb=round(report.bytes / 1e6, 1), kept=len(report.kept), records=len(report.records),
                  recovered=len(report.recovered), dry_run=dry_run)
    return report
