"""The spool on disk: durable writes, UID validation and the paths of everything in it.

This is the one description of the layout (docs/ARCHITECTURE.md has the table); the node
and the workers both build their paths here, so they cannot disagree about where a file is.


A file exists under its final name only once its bytes are on disk: write to
``tmp/``, fsync, rename, fsync the directory (and the parent of any directory we had
to create). A crash leaves at most a stray file in ``tmp/``, never a half image that a
worker would read. UIDs are checked before they become path components so a hostile
UID cannot escape the spool.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mammocad.spool.records import RecordError
from mammocad.spool.records.analysis import CompletionRecord, ReanalysisRecord
from mammocad.spool.records.pruned import PrunedRecord
from mammocad.spool.records.report import ReportRecord, report_order, report_revision

Chunks = bytes | bytearray | memoryview | Iterable[bytes | bytearray | memoryview]

#: The one UID rule for every UID that becomes a path component, on both sides of the
#: queue: digits and dots, components not empty, at most 64 characters (PS3.5 §9.1).
#: Leading zeros in a component ("1.2.03") break PS3.5's rule but some modalities write
#: them; they are harmless in paths, so the spool tolerates them (the node accepts such an
#: image, and the worker must then be able to find it). Whatever writes a UID into a
#: *new* DICOM object must not copy such a UID blindly.
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
UID_MAX_LENGTH = 64


class InvalidUIDError(ValueError):
    """A UID that is not a DICOM UID (and so must not become a file name)."""


def is_uid(text: str) -> bool:
    """True when ``text`` (already stripped) passes the spool's UID rule."""
    return len(text) <= UID_MAX_LENGTH and _UID_RE.match(text) is not None


def validate_uid(value: object, what: str = "UID") -> str:
    """Return ``value`` stripped if it is a DICOM UID; raise :class:`InvalidUIDError` if not.

    Surrounding spaces and the trailing NUL padding of an even-length UI value are
    removed first (they are encoding, not part of the UID).
    """
    text = str(value).strip().rstrip("\x00") if value is not None else ""
    if not text:
        raise InvalidUIDError(f"{what} is missing")
    if not is_uid(text):
        raise InvalidUIDError(f"{what} is not a DICOM UID (digits and dots, at most 64): {text[:80]!r}")
    return text


def fsync_dir(path: Path) -> None:
    """Make a rename or creation inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Spool files hold patient images: owner read/write, group (a worker account) read, others nothing.
FILE_MODE = 0o640
#: How the outbox's temporary folders in ``tmp/`` start (an item being written or deleted).
OUTBOX_TMP_PREFIX = ".outbox-"
DIR_MODE = 0o750


def ensure_dir(path: Path) -> None:
    """mkdir -p (mode 0750) that fsyncs the parent of each directory it creates."""
    if path.is_dir():
        return
    ensure_dir(path.parent)
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        return
    fsync_dir(path.parent)


@contextmanager
def exclusive_lock(path: Path, *, read_only: bool = False, wait: bool = False) -> Iterator[bool]:
    """Hold an exclusive, non-blocking ``flock`` on ``path`` (created) for the block; yield
    False, holding nothing, when another process has it (``wait``: block until it is free,
    then yield True).

    The kernel drops the lock when its process ends, a crash included, so it is never left
    held. Unlocked explicitly, not only closed: a child forked meanwhile (a Celery pool) shares
    the open file and would keep it locked. ``read_only``: ``flock`` needs no write access, so
    an account that may only read a file the service created can still take it. Raises
    ``OSError`` when the file can be neither opened nor created.
    """
    fd = os.open(path, (os.O_RDONLY if read_only else os.O_RDWR) | os.O_CREAT, FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data_or_chunks: Chunks,
                       tmp_dir: str | os.PathLike[str] | None = None) -> int:
    """Write ``data_or_chunks`` to ``path`` durably and atomically; return bytes written.

    ``tmp_dir`` must be on the same filesystem as ``path`` (the spool's ``tmp/``);
    default: the target's directory. Raises ``OSError`` (disk full, permission...) after
    removing the temporary file; the target is then untouched.
    """
    target = Path(path)
    tmp_root = Path(tmp_dir) if tmp_dir is not None else target.parent
    ensure_dir(tmp_root)
    ensure_dir(target.parent)
    chunks = [data_or_chunks] if isinstance(data_or_chunks, (bytes, bytearray, memoryview)) else data_or_chunks
    tmp = tmp_root / f".{target.name}.{uuid.uuid4().hex}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    written = 0
    try:
        try:
            for chunk in chunks:
                view = memoryview(chunk).cast("B")
                while view:
                    n = os.write(fd, view)
                    written += n
                    view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return written


def write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist) holding ``data``, mode 0640, fsynced.

    For files inside a private folder that is renamed into place as a whole (an outbox item,
    a report's kept outputs). The mode is given at creation: a file written first and
    chmod-ed after took the process umask in between (0666 under umask 000).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        view = memoryview(data).cast("B")
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_json(path: Path, payload: Any, tmp_dir: Path | None = None) -> None:
    atomic_write_bytes(path, json.dumps(payload, indent=1, sort_keys=True).encode(), tmp_dir)


class Spool:
    """Paths of the spool layout described in docs/ARCHITECTURE.md."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.studies = self.root / "studies"
        self.other = self.root / "other"
        self.outbox = self.root / "outbox"
        self.deadletter = self.root / "deadletter"
        self.redis = self.root / "redis"
        #: One heartbeat file per running worker (:mod:`mammocad.spool.presence`).
        self.workers = self.root / "workers"
        #: What retention removed of each study (:class:`~mammocad.spool.records.pruned.PrunedRecord`).
        self.pruned_dir = self.root / "pruned"
        #: ``flock``-ed for the whole of a retention pass: one pass at a time (:mod:`mammocad.spool.prune_lock`).
        #: Not in ``tmp/``: :meth:`create` removes old files there, and a lock file removed while
        #: held lets the next pass lock a new one beside it.
        self.prune_lock = self.root / "prune.lock"
        #: The private broker's URL while ``mammocad serve`` runs (admin commands queue tasks on it).
        self.broker_url_file = self.root / "broker.url"

    def create(self, stale_after_s: float = 3600.0) -> Spool:
        """Make the folders; remove temporary files a crash left behind.

        Only files older than ``stale_after_s`` go: a worker sharing the spool may be
        writing its own temporary files right now. So do the outbox's folders (``.outbox-*``:
        an item being written, or a delivered one being deleted), which hold result objects;
        retention's own folders there are settled by its next pass, never here.
        """
        for d in (self.tmp, self.studies, self.other):
            ensure_dir(d)
        cutoff = time.time() - stale_after_s
        for entry in self.tmp.iterdir():
            try:
                if entry.stat().st_mtime >= cutoff:
                    continue
                if entry.is_file():
                    entry.unlink()
                elif entry.is_dir() and entry.name.startswith(OUTBOX_TMP_PREFIX):
                    shutil.rmtree(entry, ignore_errors=True)
            except OSError:
                continue
        return self

    def study_dir(self, study_uid: str) -> Path:
        return self.studies / validate_uid(study_uid, "StudyInstanceUID")

    def image_path(self, study_uid: str, sop_uid: str) -> Path:
        return self.study_dir(study_uid) / "images" / f"{validate_uid(sop_uid, 'SOPInstanceUID')}.dcm"

    def result_path(self, study_uid: str, sop_uid: str) -> Path:
        return self.study_dir(study_uid) / "results" / f"{validate_uid(sop_uid, 'SOPInstanceUID')}.json"

    def attempts_path(self, study_uid: str, sop_uid: str) -> Path:
        """Count of analysis starts of one image (poison-image guard of the GPU worker)."""
        return self.study_dir(study_uid) / "results" / f"{validate_uid(sop_uid, 'SOPInstanceUID')}.attempts"

    def complete_path(self, study_uid: str) -> Path:
        return self.study_dir(study_uid) / "complete.json"

    def reports_dir(self, study_uid: str) -> Path:
        return self.study_dir(study_uid) / "reports"

    def report_path(self, study_uid: str, report_key: str) -> Path:
        return self.reports_dir(study_uid) / f"{report_key}.json"

    def finalize_lock_path(self, study_uid: str) -> Path:
        return self.study_dir(study_uid) / ".finalize.lock"

    def outputs_dir(self, study_uid: str, report_key: str) -> Path:
        """The DICOM objects one report produced, kept so ``studies resend`` sends the same bytes."""
        return self.study_dir(study_uid) / "outputs" / report_key

    def pruned_path(self, study_uid: str) -> Path:
        return self.pruned_dir / f"{validate_uid(study_uid, 'StudyInstanceUID')}.json"

    def pruned(self, study_uid: str) -> PrunedRecord | None:
        """What retention removed of the study, or None (never pruned, or an unreadable record:
        the study is then treated as new, as before records of pruning existed)."""
        try:
            return PrunedRecord.read(self.pruned_path(study_uid))
        except (OSError, RecordError):
            return None

    def presence_path(self, worker: str) -> Path:
        """``workers/<worker>.json``; the Celery node name made safe as a file name."""
        safe = re.sub(r"[^A-Za-z0-9._@-]", "_", worker)[:200].lstrip(".") or "worker"
        return self.workers / f"{safe}.json"

    def other_path(self, study_uid: str, sop_uid: str) -> Path:
        return (self.other / validate_uid(study_uid, "StudyInstanceUID")
                / f"{validate_uid(sop_uid, 'SOPInstanceUID')}.dcm")

    def write(self, path: Path, data_or_chunks: Chunks) -> int:
        return atomic_write_bytes(path, data_or_chunks, self.tmp)

    def study_uids(self) -> Iterator[str]:
        """Study folders whose names are valid UIDs (anything else is ignored)."""
        if not self.studies.is_dir():
            return
        for entry in sorted(self.studies.iterdir()):
            if entry.is_dir() and is_uid(entry.name):
                yield entry.name

    def image_sops(self, study_uid: str) -> list[str]:
        folder = self.study_dir(study_uid) / "images"
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.dcm") if is_uid(p.stem))

    def completion(self, study_uid: str) -> CompletionRecord | None:
        """The study's last completion, or None when it was never completed.

        An unreadable complete.json counts as never completed: the study then completes
        again and the file is rewritten.
        """
        try:
            return CompletionRecord.read(self.complete_path(study_uid))
        except (OSError, RecordError):
            return None

    def read_complete(self, study_uid: str) -> list[str] | None:
        """SOP UIDs of the last completion, or None when the study was never completed."""
        record = self.completion(study_uid)
        return list(record.sop_uids) if record is not None else None

    def reports(self, study_uid: str) -> list[ReportRecord]:
        """Every readable report of the study, oldest first (unreadable ones are skipped).

        In the order their records were first written (:func:`report_order`: each record's
        ``sequence``; its file's mtime only for records written before that was kept), so
        the last is the newest report, whatever a restore or the clock did to the files.
        """
        folder = self.reports_dir(study_uid)
        if not folder.is_dir():
            return []
        out = []
        for path in folder.glob("*.json"):
            try:
                record = ReportRecord.read(path)
                out.append((report_order(record, path.stat().st_mtime), record))
            except (OSError, RecordError):
                continue
        return [record for _, record in sorted(out, key=lambda pair: pair[0])]

    def has_report_for(self, study_uid: str, sop_uids: Iterable[str]) -> bool:
        """True when the worker finalised the study for exactly this set of images."""
        wanted = tuple(sorted(sop_uids))
        return any(report.sop_uids == wanted for report in self.reports(study_uid))

    def reanalysis_path(self, study_uid: str) -> Path:
        return self.study_dir(study_uid) / "reanalysis.json"

    def pending_reanalysis(self, study_uid: str, sop_uids: Iterable[str] | None = None) -> ReanalysisRecord | None:
        """The admin's re-analysis still owed (no report of its revision or later yet), else
        None; with ``sop_uids``, only one whose images are all among these: a report of the
        study's images answers it, those that arrived after the request included (one amended
        report for all of them, not one for the old set followed by another). An unreadable
        record counts as none: the command wrote it durably, so that is a damaged spool, not
        a pending request.
        """
        try:
            record = ReanalysisRecord.read(self.reanalysis_path(study_uid))
        except (OSError, RecordError):
            return None
        if sop_uids is not None and not set(record.sop_uids) <= set(sop_uids):
            return None
        if any(report_revision(r.report_key) >= record.revision for r in self.reports(study_uid)):
            return None
        return record

    def report_owed(self, study_uid: str, sop_uids: Iterable[str]) -> bool:
        """True when a finalize of the study for these images is owed: no report for them
        yet, or an admin's re-analysis of them (or of some of them) without its amended report."""
        wanted = tuple(sorted(sop_uids))
        return not self.has_report_for(study_uid, wanted) or self.pending_reanalysis(study_uid, wanted) is not None


class SpoolInUse(RuntimeError):
    """Another ``mammocad serve``/``node`` holds the spool; the message names its pid."""


class InstanceLock:
    """One node (``serve`` or ``node``) per spool: an exclusive ``flock`` on ``spool/instance.lock``.

    Two ``serve`` on one spool would run two redis-servers on one append-only file and two
    SCPs answering for the same studies. The lock goes with the process (also on a crash),
    so a stale lock file never blocks a restart. Workers do not take it: several may share a spool.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.path = Path(root) / "instance.lock"
        self._fd: int | None = None

    def acquire(self) -> InstanceLock:
        ensure_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SpoolInUse(f"spool {self.path.parent} is in use by another mammocad node (pid {holder}); "
                             "stop it first, or give this one its own node.spool_dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
