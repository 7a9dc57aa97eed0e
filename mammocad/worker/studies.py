"""The worker's view of the spool: where a study's images, results and reports live.

Every file here is a done marker for some step (see docs/ARCHITECTURE.md), so each one is
written durably (tmp + fsync + rename + directory fsync) and read back tolerantly: a
half-written file cannot exist, but a file from an older version may lack fields.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset

from mammocad.model.results import ImageRef, ImageResult
from mammocad.node.spool import atomic_write_bytes

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def check_uid(uid: str, what: str = "UID") -> str:
    """Reject anything that is not a DICOM UID before it becomes a path component."""
    if not isinstance(uid, str) or len(uid) > 64 or not _UID_RE.match(uid):
        raise ValueError(f"{what} must be a DICOM UID (digits and dots, at most 64 characters), got {uid!r}")
    return uid


def durable_write(path: Path, data: bytes, spool_dir: Path) -> None:
    """Write ``data`` to ``path`` so that a reader sees all of it or nothing, even after a crash."""
    atomic_write_bytes(path, data, Path(spool_dir) / "tmp")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, obj: Any, spool_dir: Path) -> None:
    durable_write(path, json.dumps(obj, indent=1, sort_keys=True).encode(), spool_dir)


class StudyFiles:
    """Paths of one study in the spool; UIDs are checked on construction."""

    def __init__(self, spool_dir: str | os.PathLike[str], study_uid: str) -> None:
        self.spool = Path(spool_dir)
        self.study_uid = check_uid(study_uid, "study UID")
        self.root = self.spool / "studies" / study_uid

    def image(self, sop_uid: str) -> Path:
        return self.root / "images" / f"{check_uid(sop_uid, 'SOP Instance UID')}.dcm"

    def result(self, sop_uid: str) -> Path:
        return self.root / "results" / f"{check_uid(sop_uid, 'SOP Instance UID')}.json"

    def attempts(self, sop_uid: str) -> Path:
        return self.root / "results" / f"{check_uid(sop_uid, 'SOP Instance UID')}.attempts"

    def report(self, key: str) -> Path:
        return self.root / "reports" / f"{key}.json"

    @contextmanager
    def finalize_lock(self) -> Iterator[bool]:
        """Exclusive, non-blocking lock of this study's finalisation; yields False if held."""
        path = self.root / ".finalize.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def complete(self) -> dict[str, Any] | None:
        path = self.root / "complete.json"
        if not path.exists():
            return None
        return json.loads(path.read_text())

    def write_result(self, result: ImageResult) -> None:
        write_json(self.result(result.image.sop_instance_uid), result.to_dict(), self.spool)

    def read_result(self, sop_uid: str) -> ImageResult:
        return ImageResult.from_dict(json.loads(self.result(sop_uid).read_text()))

    def bump_attempts(self, sop_uid: str) -> int:
        """Count analysis starts of one image, so a poison image cannot crash-loop a worker."""
        path = self.attempts(sop_uid)
        n = int(path.read_text() or 0) + 1 if path.exists() else 1
        durable_write(path, str(n).encode(), self.spool)
        return n

    def reports(self) -> list[dict[str, Any]]:
        """Every finished report of this study, oldest first."""
        folder = self.root / "reports"
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime):
            report = json.loads(path.read_text())
            report.setdefault("report_key", path.stem)
            out.append(report)
        return out


def report_key(sop_uids: list[str], model_version: str) -> str:
    """Deterministic name of a report: same images + same model → same key → done once."""
    text = "\n".join(sorted(set(sop_uids))) + "\n" + model_version
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def find_predecessor(files: StudyFiles, sop_uids: list[str], model_version: str) -> dict[str, Any] | None:
    """The newest earlier report of the same study over a strict subset of ``sop_uids``.

    When late images arrive after a timeout-declared study, the new report supersedes
    the earlier one; the results builders cite it (Predecessor Documents Sequence).
    """
    wanted = set(sop_uids)
    best: dict[str, Any] | None = None
    for report in files.reports():
        earlier = set(report.get("sop_uids", []))
        if earlier and earlier < wanted and (best is None or len(earlier) >= len(best["sop_uids"])):
            best = report
    return best


def image_ref_from_header(ds: Dataset) -> ImageRef:
    """What a report needs to cite an image, from its header alone (no pixel decoding)."""
    lat = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "") or "").upper()
    view = str(ds.get("ViewPosition", "") or "").upper()
    return ImageRef(
        study_uid=str(ds.get("StudyInstanceUID", "")),
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        sop_class_uid=str(ds.get("SOPClassUID", "")),
        laterality=lat if lat in ("L", "R") else "",
        view=view,
        rows=int(ds.get("Rows", 0) or 0),
        columns=int(ds.get("Columns", 0) or 0),
    )


def failed_result(files: StudyFiles, sop_uid: str, error: str) -> ImageResult:
    """An ImageResult with ``error`` set, citing the image as well as its header allows."""
    try:
        ref = image_ref_from_header(dcmread(files.image(sop_uid), stop_before_pixels=True))
    except Exception:
        ref = ImageRef(study_uid=files.study_uid, series_uid="", sop_instance_uid=sop_uid,
                       sop_class_uid="", laterality="", view="", rows=0, columns=0)
    return ImageResult(image=ref, error=error)

