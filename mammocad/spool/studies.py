"""One study in the spool: its images, results, reports and finalisation lock.

Every file here is a done marker for some step (see docs/ARCHITECTURE.md), so each one is
written durably (tmp + fsync + rename + directory fsync) and read back tolerantly: a
half-written file cannot exist, but a file from an older version may lack fields.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mammocad.model.results import ImageResult
from mammocad.spool.layout import FILE_MODE, Spool, atomic_write_bytes, atomic_write_json, validate_uid
from mammocad.spool.records import CompletionRecord, ReportRecord, image_result_json, read_image_result


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
    def finalize_lock(self) -> Iterator[bool]:
        """Exclusive, non-blocking lock of this study's finalisation; yields False if held."""
        path = self.layout.finalize_lock_path(self.study_uid)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

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
        write_json(self.report(report.report_key), report.to_json(), self.spool)

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


def keep_outputs(files: StudyFiles, key: str, datasets: list[Any]) -> None:
    """Keep a copy of the report's DICOM objects beside it (``studies/<uid>/outputs/<key>/``).

    The outbox deletes its copy once a destination confirms; this one lets
    ``mammocad studies resend`` send the very same objects again, to any destination.
    Written before the report record, so a report always has its outputs (or none, for
    reports made before this existed).
    """
    folder = files.layout.outputs_dir(files.study_uid, key)
    for ds in datasets:
        path = folder / f"{validate_uid(str(ds.SOPInstanceUID), 'SOP Instance UID')}.dcm"
        if path.exists():
            continue
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        durable_write(path, buffer.getvalue(), files.spool)


def report_revision(key: str) -> int:
    """The revision encoded in a report key (0 for a first report)."""
    _, sep, rev = key.rpartition(".r")
    return int(rev) if sep and rev.isdigit() else 0


def latest_report(files: StudyFiles) -> ReportRecord | None:
    """The study's newest report (what ``studies resend`` sends and ``reanalyse`` amends)."""
    reports = files.reports()
    return max(reports, key=lambda r: r.created) if reports else None


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
