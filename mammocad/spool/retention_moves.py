"""A folder on its way out of the spool: renamed into ``tmp/``, put back, or audited and deleted.

Retention never deletes a study folder (or a set-aside ``other/`` folder) in place. It renames
it into ``tmp/`` first (atomic, as ``.pruned-<uid>-<random>``), so a crash midway leaves no half
study for the node or a worker to trip over; from there the folder either goes back where it
came from (:func:`merge_back`: an image arrived meanwhile) or is audited and deleted
(:func:`delete_moved`, through ``.prune-deleting-<uid>-<random>``).

Both the pass (:mod:`mammocad.spool.retention`) and the recovery of what a killed pass left
(:mod:`mammocad.spool.retention_recovery`) move folders through here, so the names in ``tmp/``
and the way back are one contract. The node reads it too: while a folder is ``.pruned-`` it may
still come back, so its one-study-per-instance check counts it as held (:func:`moved_away`).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mammocad.logs import log_event, safe_error
from mammocad.spool.layout import FILE_MODE, Spool, ensure_dir, is_uid

if TYPE_CHECKING:
    from mammocad.audit import AuditTrail

logger = logging.getLogger(__name__)

#: How a folder renamed away by retention starts in ``tmp/``: ``.pruned-<uid>-<random>``.
MOVED_PREFIX = ".pruned-"
#: The same folder once audited, being deleted: it never comes back, so the node's index ignores it.
DELETING_PREFIX = ".prune-deleting-"
#: In a moved folder: its Study Deleted record was queued (see :func:`deletion_auditor`); past
#: every check, so the next pass finishes its delete (a set-aside folder too) rather than put it back.
AUDIT_MARK = ".prune-audited"

#: What ``os.link`` raises where the filesystem has no hard links (SMB and some FUSE mounts),
#: or where ``fs.protected_hardlinks`` refuses a file of another account (EPERM too).
_NO_LINK_ERRNOS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV})
#: What ``renameat2`` raises where the filesystem (or the kernel) has no RENAME_NOREPLACE.
_NO_NOREPLACE_ERRNOS = frozenset({errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP})
_AT_FDCWD, _RENAME_NOREPLACE = -100, 1


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


def age_and_size(folder: Path) -> tuple[float, int]:
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


@dataclass
class LinkFallback:
    """Whether this prune pass has met a filesystem without hard links, and logged it.

    Give one to every :func:`merge_back` of a pass so the ``prune_no_hardlinks`` line comes
    once per pass; without one, each folder put back gives its own line.
    """

    logged: bool = False
    #: Set at the first refused link: the rest of the pass goes straight to the fallback.
    error: str = ""


def merge_back(doomed: Path, folder: Path, *, links: LinkFallback | None = None) -> None:
    """Move everything in ``doomed`` back under ``folder`` (keeping what is there now).

    The node may create ``folder`` (an image of the study arrived) between the look and the
    rename of the whole folder: that rename then fails on a folder that is not empty, and the
    merge goes on file by file, as when the folder was there already. Letting it fail aborted
    the pass for every later study. Any other failure is raised, with ``doomed`` left in
    ``tmp/`` (what was not moved yet is there, and the next pass puts it back).

    File by file, a file at its place is never replaced: it is the node's newer copy (the same
    instance sent again, committed while the merge runs). Each old copy is hard-linked into
    place, which fails on a file already there whenever that file landed (a look, then a
    rename, replaced a copy the node committed between the two), then unlinked from ``doomed``.

    Where the filesystem has no hard links (``os.link`` raises EPERM, ENOTSUP, EOPNOTSUPP or
    EXDEV: some SMB and FUSE mounts) each old copy is renamed with Linux's ``renameat2``
    RENAME_NOREPLACE, which keeps the same rule. Where that is missing too (not Linux, an old
    glibc, a filesystem that refuses the flag) the merge looks, then renames: a copy the node
    commits between the look and the rename (microseconds) is replaced by the old copy of the
    same instance. One ``prune_no_hardlinks`` line per pass (``links``) says which it was.
    Put-back once failed there for good, the study left in ``tmp/``.
    """
    links = LinkFallback() if links is None else links
    if not folder.exists():
        try:
            os.rename(doomed, folder)
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not folder.is_dir():
                raise
    for path in sorted(doomed.rglob("*")):
        if path.is_file():
            _put_back(path, folder / path.relative_to(doomed), links)
    shutil.rmtree(doomed, ignore_errors=True)


def _put_back(path: Path, target: Path, links: LinkFallback) -> None:
    """Move ``path`` to ``target`` unless a file is there already (that one wins)."""
    ensure_dir(target.parent)  # 0750 whatever the umask, as every spool folder
    if not links.error:
        try:
            os.link(path, target)
        except FileExistsError:
            return  # the old copy goes with the rest of the moved folder
        except OSError as exc:
            if exc.errno not in _NO_LINK_ERRNOS:
                raise
            links.error = f"{errno.errorcode.get(exc.errno or 0, exc.errno)}: {exc.strerror}"
        else:
            os.unlink(path)
            return
    how = _move_no_replace(path, target)
    if not links.logged:
        links.logged = True
        log_event(logger, "prune_no_hardlinks", logging.WARNING, folder=str(target.parent), error=links.error,
                  fallback=how, hint="this filesystem has no hard links (an SMB or FUSE mount?): folders are put "
                  "back by rename" + ("" if how == "renameat2_noreplace" else ", which may replace an image the node "
                  "stores in the same instant; keep the spool on a local filesystem (ext4, xfs)"))


def _move_no_replace(path: Path, target: Path) -> str:
    """Rename ``path`` to ``target`` unless a file is there (``path`` then stays); says how.

    ``renameat2_noreplace``: atomic, never replaces. ``check_then_rename``: the fallback's
    fallback, a look then a rename, with the window :func:`merge_back` describes.
    """
    renameat2 = _renameat2()
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(path), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE) == 0:
            return "renameat2_noreplace"
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            return "renameat2_noreplace"  # the node's copy wins; the old one goes with the folder
        if err not in _NO_NOREPLACE_ERRNOS:
            raise OSError(err, os.strerror(err), str(path), None, str(target))
    if not os.path.lexists(target):
        os.rename(path, target)
    return "check_then_rename"


@functools.cache
def _renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    """libc's ``renameat2`` (Linux, glibc 2.28 and later), None where there is none."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    function.restype = ctypes.c_int
    found: Callable[[int, bytes, int, bytes, int], int] = function
    return found


def delete_moved(spool: Spool, doomed: Path, deleting: Callable[[Path], None] | None) -> None:
    """Audit (``deleting``) and delete a folder renamed away, renamed once more in between so
    that a pass killed while deleting does not audit what is left of it again."""
    if deleting is not None:
        deleting(doomed)
    gone = spool.tmp / f"{DELETING_PREFIX}{doomed.name[len(MOVED_PREFIX):]}"
    os.rename(doomed, gone)
    shutil.rmtree(gone, ignore_errors=True)


def deletion_auditor(trail: AuditTrail | None, uid: str, why: str) -> Callable[[Path], None] | None:
    """What audits the deletion of study ``uid``'s folder (its DICOM files' headers), if anyone.

    One record per prune of one folder, also when the pass is killed after writing it and the
    next pass finishes the delete (it used to write a second one). The record's
    EventOutcomeDescription ends in ``(prune <id>)``, the random part of the moved folder's name,
    and :data:`AUDIT_MARK` is written in the folder just before the record is queued, with the
    audit file's size then. The next pass, finding the mark, looks for that tag in the file
    from there on and writes the record only when it is not there: the trail writes
    asynchronously, so a pass killed right after queueing it may have lost it (a duplicate
    rather than none: also with no audit file to look in, or one rotated meanwhile).

    The trail never blocks or raises: a trail that is down drops and logs (``audit_dropped``),
    and the delete goes on.
    """
    if trail is None or not trail.enabled:
        return None

    def deleting(doomed: Path) -> None:
        from mammocad.audit import StudyTransfer, events

        tag = f"(prune {doomed.name.rpartition('-')[2]})"
        mark = doomed / AUDIT_MARK
        if mark.exists() and _in_audit_file(trail.file, mark, uid, tag):
            log_event(logger, "prune_audit_found", study=uid, folder=doomed.name,
                      reason="the pass that began this delete wrote its Study Deleted record")
            return
        _mark(mark, trail.file)
        try:
            studies = [s for s in events.study_transfers(doomed.rglob("*.dcm")) if s.study_uid == uid]
            trail.emit(events.study_deleted(trail.identity, studies[0] if studies else StudyTransfer(uid, {}),
                                            f"{why} {tag}"))
        except Exception as exc:  # noqa: BLE001 - never leave a renamed folder behind for the audit's sake
            trail.lost(safe_error(exc), audit_event="study_deleted", study=uid)  # counted: the drop alert sees it

    return deleting


def _mark(mark: Path, audit_file: Path | None) -> None:
    """Write :data:`AUDIT_MARK`: the audit file's size now (where to look for the record)."""
    try:
        size = audit_file.stat().st_size if audit_file is not None else 0
    except OSError:
        size = 0
    fd = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.write(fd, str(size).encode())
    finally:
        os.close(fd)


def _in_audit_file(audit_file: Path | None, mark: Path, uid: str, tag: str) -> bool:
    """True when ``audit_file`` holds a line with ``uid`` and ``tag`` after the size in ``mark``
    (the whole file when it is smaller now: rotated)."""
    if audit_file is None:
        return False
    try:
        since = int(mark.read_text() or 0)
        with open(audit_file, "rb") as fh:
            fh.seek(since if fh.seek(0, os.SEEK_END) >= since else 0)
            return any(tag.encode() in line and uid.encode() in line for line in fh)
    except (OSError, ValueError):
        return False
