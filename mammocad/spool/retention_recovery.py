"""What a retention pass killed (or a power cut) left in ``tmp/``: finished or put back.

A pass removes a folder in steps (listed in :mod:`mammocad.spool.retention`): the rename to
``tmp/.pruned-<uid>-<random>``, the check again, for a study ``pruned/<uid>.json`` (the point of
no return), the audit record, then the rename to ``tmp/.prune-deleting-<uid>-<random>`` and the
delete. The next pass looks in ``tmp/`` first (:func:`recover`, logged ``prune_recovered``),
under the prune lock, so no live pass is working on any of these folders.

A ``.pruned-`` folder of a study whose record lists every image it holds and every image its
reports cover was past the record, and its delete is finished and audited. Merging it back
instead would count its reports twice (in the folder and in the record), so this holds also when
the study folder came back meanwhile (an image arrived after the record): as with a pass that
had not stopped, the new images are a study of their own. An older record cannot list them: the
node answers the images a record lists without storing them, so a study back in the spool holds
only others. Any other ``.pruned-`` folder (killed before the record, or while merging back;
every set-aside folder, which has no record) goes back where it came from, merged with what is
there now: nothing answered Success is lost, and an old delivered study is pruned again by the
usual checks. A study folder holds subfolders (``images/``, ``reports/``), a set-aside one only
``<sop>.dcm`` files: that tells where it goes back. A ``.pruned-`` folder holding
``.prune-audited`` (a study's, or a set-aside one's) was being audited, past every check: its
delete is finished, and audited only when the audit file does not hold its record already
(:func:`~mammocad.spool.retention_moves.deletion_auditor`). A ``.prune-deleting-`` folder is
deleted and not audited again.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from mammocad.logs import log_event, safe_error
from mammocad.spool.layout import Spool, ensure_dir, is_uid
from mammocad.spool.records import RecordError
from mammocad.spool.records.report import ReportRecord
from mammocad.spool.retention_moves import (
    AUDIT_MARK,
    DELETING_PREFIX,
    MOVED_PREFIX,
    LinkFallback,
    age_and_size,
    delete_moved,
    deletion_auditor,
    merge_back,
    moved_uid,
)

if TYPE_CHECKING:
    from mammocad.audit import AuditTrail

logger = logging.getLogger(__name__)


class Recovered(NamedTuple):
    """One folder a killed pass left, settled: its UID, "deleted" or "put back", and its bytes;
    or "failed" and why (it stays in ``tmp/`` for the next pass)."""

    uid: str
    action: str
    size: int
    error: str = ""


def recorded(spool: Spool, uid: str, moved: Path) -> bool:
    """True when ``pruned/<uid>.json`` lists every image in ``moved`` and every image its
    reports cover: the pass that moved it wrote its record (module docstring)."""
    try:
        reports = [ReportRecord.read(path) for path in sorted((moved / "reports").glob("*.json"))]
    except (OSError, RecordError):
        return False
    held = {s for r in reports for s in r.sop_uids} | {p.stem for p in (moved / "images").glob("*.dcm")}
    record = spool.pruned(uid)
    return bool(held) and record is not None and held <= set(record.sop_uids)


def leftover(spool: Spool, moved: Path) -> tuple[str, str, Path | None] | None:
    """(UID, what to do: "deleted" or "put back", where it goes back) for a folder a killed pass
    left in ``tmp/``; None for any other entry."""
    if moved.name.startswith(DELETING_PREFIX):
        uid = moved.name[len(DELETING_PREFIX):].rpartition("-")[0]
        return (uid, "deleted", None) if is_uid(uid) else None
    uid_or_none = moved_uid(moved)
    if uid_or_none is None:
        return None
    if (moved / AUDIT_MARK).exists():  # its delete was being audited: past every check
        return uid_or_none, "deleted", None
    if not any(p.is_dir() for p in moved.iterdir()):  # a set-aside folder: files only, no record
        return uid_or_none, "put back", spool.other / uid_or_none
    if recorded(spool, uid_or_none, moved):
        return uid_or_none, "deleted", None
    return uid_or_none, "put back", spool.studies / uid_or_none


def recover(spool: Spool, trail: AuditTrail | None, dry_run: bool,
            links: LinkFallback | None = None) -> list[Recovered]:
    """Finish or undo what a killed pass left in ``tmp/`` (see the module docstring); with
    ``dry_run``, only say what would be done.

    Must run under the prune lock. A folder that cannot be settled is logged
    (``prune_recovery_failed``), listed as "failed", and waits for the next pass; the others go on.
    """
    why = ("removed from the spool by retention: every result delivered; the prune pass that began "
           "removing it was stopped, the next one finished")
    done: list[Recovered] = []
    for moved in sorted(p for p in spool.tmp.iterdir() if p.is_dir()):
        found = leftover(spool, moved)
        if found is None:
            continue
        uid, action, origin = found
        size = age_and_size(moved)[1]
        try:
            if not dry_run and origin is not None:
                ensure_dir(origin.parent)
                merge_back(moved, origin, links=links)
            elif not dry_run and moved.name.startswith(MOVED_PREFIX):
                delete_moved(spool, moved, deletion_auditor(trail, uid, why))
            elif not dry_run:  # audited already, before it was renamed for deletion
                shutil.rmtree(moved, ignore_errors=True)
        except OSError as exc:  # this folder waits for the next pass; the others go on
            log_event(logger, "prune_recovery_failed", logging.WARNING, study=uid, folder=moved.name,
                      action=action, error=safe_error(exc),
                      hint="the next prune pass tries again; check the spool's disk and permissions")
            done.append(Recovered(uid, "failed", size, safe_error(exc)))
            continue
        log_event(logger, "prune_recovered", logging.WARNING, study=uid, action=action, folder=moved.name,
                  mb=round(size / 1e6, 1), dry_run=dry_run,
                  reason="a prune pass was stopped (killed, power cut) while removing this folder")
        done.append(Recovered(uid, action, size))
    return done
