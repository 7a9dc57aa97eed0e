"""One study in the spool: its images, results, reports and finalisation lock.

Every file here is a done marker for some step (see docs/ARCHITECTURE.md), so each one is
written durably (tmp + fsync + rename + directory fsync) and read back tolerantly: a
half-written file cannot exist, but a file from an older version may lack fields.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mammocad.config.settings import OutputKind
from mammocad.logs import log_event, safe_error
from mammocad.model.results import ImageResult
from mammocad.spool.layout import (
    DIR_MODE,
    Spool,
    atomic_write_bytes,
    atomic_write_json,
    ensure_dir,
    exclusive_lock,
    fsync_dir,
    validate_uid,
    write_new,
)
from mammocad.spool.records import RecordError
from mammocad.spool.records.analysis import CompletionRecord, image_result_json, read_image_result
from mammocad.spool.records.report import KeptOutputs, ReportRecord

if TYPE_CHECKING:  # pydicom loads numpy and Pillow: not at import (tests/test_cli_help.py)
    from pydicom.dataset import Dataset

logger = logging.getLogger(__name__)

#: The record of a report's kept objects, in their folder (``outputs/<key>/kept.json``).
KEPT_JSON = "kept.json"


def durable_write(path: Path, data: bytes, spool_dir: Path) -> None:
    """Write ``data`` to ``path`` so that a reader sees all of it or nothing, even after a crash."""
    atomic_write_bytes(path, data, Spool(spool_dir).tmp)


def write_json(path: Path, obj: Any, spool_dir: Path) -> None:
    atomic_write_json(path, obj, Spool(spool_dir).tmp)


class StudyFiles:
    """Paths of one study in the spool; UIDs are checked on construction."""

    def __init__(self, spool_dir: str | os.PathLike[str], study_uid: str) -> None:
        self.layout = Spool(spool_dir)
        self.spool = self.layout.root
        self.study_uid = validate_uid(study_uid, "StudyInstanceUID")
        self.root = self.layout.study_dir(self.study_uid)

    def image(self, sop_uid: str) -> Path:
        return self.layout.image_path(self.study_uid, sop_uid)

    def result(self, sop_uid: str) -> Path:
        return self.layout.result_path(self.study_uid, sop_uid)

    def attempts(self, sop_uid: str) -> Path:
        return self.layout.attempts_path(self.study_uid, sop_uid)

    def report(self, key: str) -> Path:
        return self.layout.report_path(self.study_uid, key)

    @contextmanager
    def finalize_lock(self, *, wait: bool = False) -> Iterator[bool]:
        """Exclusive, non-blocking lock of this study's finalisation; yields False if held
        (``wait``: waits for it). Every writer of the study's report records holds it."""
        path = self.layout.finalize_lock_path(self.study_uid)
        ensure_dir(path.parent)  # not mkdir(parents=True): that takes the umask (0777 under 000)
        with exclusive_lock(path, wait=wait) as locked:
            yield locked

    def complete(self) -> CompletionRecord | None:
        """The node's last completion of this study (None: not declared, or unreadable)."""
        return self.layout.completion(self.study_uid)

    def write_result(self, result: ImageResult) -> None:
        write_json(self.result(result.image.sop_instance_uid), image_result_json(result), self.spool)

    def read_result(self, sop_uid: str) -> ImageResult:
        return read_image_result(self.result(sop_uid))

    def bump_attempts(self, sop_uid: str) -> int:
        """Count analysis starts of one image, so a poison image cannot crash-loop a worker."""
        path = self.attempts(sop_uid)
        n = int(path.read_text() or 0) + 1 if path.exists() else 1
        durable_write(path, str(n).encode(), self.spool)
        return n

    def write_report(self, report: ReportRecord) -> None:
        """Write the record; one written for the first time becomes the study's newest report.

        A new record without a ``sequence`` gets the next one (one more than the study's
        highest), which orders the study's reports (:meth:`Spool.reports`). A rewrite (``studies
        resend`` naming a copy) keeps the number the record has, and for a record from before
        numbers were kept, its file's mtime, its only order. Create records under the study's
        finalize lock, as finalize does: two writers must not take the same number.
        """
        path = self.report(report.report_key)
        try:
            existing: ReportRecord | None = ReportRecord.read(path)
            mtime_ns = path.stat().st_mtime_ns
        except FileNotFoundError:
            existing, mtime_ns = None, 0
        except RecordError:  # damaged: written again as new
            existing, mtime_ns = None, 0
        if not report.sequence:
            sequence = (existing.sequence if existing is not None
                        else 1 + max((r.sequence for r in self.reports()), default=0))
            report = replace(report, sequence=sequence)
        write_json(path, report.to_json(), self.spool)
        if existing is not None and not report.sequence:
            os.utime(path, ns=(mtime_ns, mtime_ns))

    def reports(self) -> list[ReportRecord]:
        """Every finished report of this study, oldest first."""
        return self.layout.reports(self.study_uid)


def report_key(sop_uids: list[str], model_version: str, revision: int = 0) -> str:
    """Deterministic name of a report: same images + same model (+ revision) → same key → done once.

    ``revision`` N > 0 (an admin's re-analysis) appends ``.rN``: the report is new, its
    outputs get new UIDs and cite the previous report as predecessor.
    """
    text = "\n".join(sorted(set(sop_uids))) + "\n" + model_version
    base = hashlib.sha256(text.encode()).hexdigest()[:32]
    return f"{base}.r{revision}" if revision else base


def keep_outputs(files: StudyFiles, key: str, objects: list[tuple[OutputKind, Dataset]],
                 failed_outputs: Mapping[str, str], failed_images: tuple[str, ...]) -> KeptOutputs:
    """Keep the report's DICOM objects beside it (``studies/<uid>/outputs/<key>/``), all or none.

    The outbox deletes its copy once a destination confirms; this one lets
    ``mammocad studies resend`` send the very same objects again, to any destination, and
    lets a finalize that runs again after a crash send what the first run put in some
    outboxes already (:func:`read_kept`). So the folder is built in ``tmp/`` and renamed
    into place with its ``kept.json``, before any outbox item and before the report record.
    A folder without ``kept.json`` (left by an interrupted finalize of an older release)
    is replaced. Call it under the study's finalize lock.
    """
    kept = KeptOutputs(objects={validate_uid(str(ds.SOPInstanceUID), "SOP Instance UID"): kind
                                for kind, ds in objects},
                       failed_outputs=dict(failed_outputs), failed_images=tuple(failed_images))
    final = files.layout.outputs_dir(files.study_uid, key)
    ensure_dir(files.layout.tmp)
    tmp = Path(tempfile.mkdtemp(dir=files.layout.tmp, prefix=f".outputs-{key}-"))
    try:
        os.chmod(tmp, DIR_MODE)
        for _, ds in objects:
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            write_new(tmp / f"{ds.SOPInstanceUID}.dcm", buffer.getvalue())
        write_new(tmp / KEPT_JSON, json.dumps(kept.to_json(), indent=1).encode())
        fsync_dir(tmp)
        ensure_dir(final.parent)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(final.parent)
    return kept


def read_kept(files: StudyFiles, key: str) -> tuple[KeptOutputs, list[tuple[OutputKind, Dataset]]] | None:
    """The objects an earlier run of this report's finalize kept, with their kinds; None when
    none were kept completely (no ``kept.json``, or a record or object that cannot be read)."""
    from pydicom import dcmread

    folder = files.layout.outputs_dir(files.study_uid, key)
    try:
        kept = KeptOutputs.read(folder / KEPT_JSON)
        objects: list[tuple[OutputKind, Dataset]] = [
            (kind, dcmread(folder / f"{validate_uid(sop, 'SOP Instance UID')}.dcm"))
            for sop, kind in kept.objects.items()]
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - damaged: build again rather than never report
        log_event(logger, "kept_outputs_unreadable", logging.WARNING, study=files.study_uid, report=key,
                  error=safe_error(exc))
        return None
    return kept, objects


def latest_report(files: StudyFiles) -> ReportRecord | None:
    """The study's newest report (what ``studies resend`` sends and ``reanalyse`` amends): the
    last one written (:meth:`Spool.reports`), not the one with the latest ``created``, which
    is the wall clock's and steps with it."""
    reports = files.reports()
    return reports[-1] if reports else None


def find_predecessor(files: StudyFiles, sop_uids: list[str], model_version: str) -> ReportRecord | None:
    """The newest earlier report of the same study over a strict subset of ``sop_uids``.

    When late images arrive after a timeout-declared study, the new report supersedes
    the earlier one; the results builders cite it (Predecessor Documents Sequence).
    """
    wanted = set(sop_uids)
    best: ReportRecord | None = None
    for report in files.reports():
        earlier = set(report.sop_uids)
        if earlier and earlier < wanted and (best is None or len(earlier) >= len(best.sop_uids)):
            best = report
    return best
