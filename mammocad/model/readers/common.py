"""Helpers every reader shares: BI-RADS parsing, breast-level truth, header fall-backs."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

import pydicom

from mammocad.dicom.header import laterality_view
from mammocad.logs import log_event
from mammocad.model.annotations import AnnotatedImage

logger = logging.getLogger(__name__)
_BIRADS = re.compile(r"(\d)\s*([abc])?", re.IGNORECASE)


def birads_value(text: object) -> float | None:
    """'BI-RADS 4' / '4c' / 5 → 4.0 / 4.3 / 5.0 (sub-categories a, b, c → .1, .2, .3); None if absent."""
    if text is None:
        return None
    s = str(text).strip()
    if not s or s.lower() in ("nan", "none", "-"):
        return None
    m = _BIRADS.search(s)
    if m is None:
        return None
    sub = {"a": 0.1, "b": 0.2, "c": 0.3}.get((m.group(2) or "").lower(), 0.0)
    return int(m.group(1)) + sub


def with_breast_truth(images: list[AnnotatedImage]) -> list[AnnotatedImage]:
    """Set breast_malignant (where unset) to 'any malignant lesion on any view of that breast'.

    Without this a breast whose lesion is boxed on CC only would count as benign on MLO.
    """
    malignant: dict[str, bool] = {}
    for img in images:
        malignant[img.breast_id] = malignant.get(img.breast_id, False) or img.malignant
    return [img if img.breast_malignant is not None else replace(img, breast_malignant=malignant[img.breast_id])
            for img in images]


def header_laterality_view(path: Path) -> tuple[str, str]:
    """(laterality, view) from a DICOM header (the one header reader, as the node and the
    inference read it), then from the file name, as some archives only say it there."""
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    lat, view = laterality_view(ds)
    text = f"{ds.get('SeriesDescription', '')} {path.name}".upper()
    if lat not in ("L", "R"):
        lat, _ = name_laterality_view(text)
    if not view:
        _, view = name_laterality_view(text)
    return lat, view


_NAME = re.compile(r"(?<![A-Z])(LEFT|RIGHT|L|R)[ _.-]*(CC|MLO|ML)(?![A-Z])")


def name_laterality_view(text: str) -> tuple[str, str]:
    """('L'|'R'|'', 'CC'|'MLO'|'') from names like 'R_CC', 'LEFT_MLO', 'RIGHT MLO'."""
    m = _NAME.search(text.upper())
    if m is None:
        return "", ""
    view = "MLO" if m.group(2) in ("MLO", "ML") else "CC"
    return m.group(1)[0], view


def require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}; see docs/DATASETS.md for the expected layout")
    return path


class FileFinder:
    """Finds the file a data set's list names, as copies of public sets really hold them.

    Why: copies differ from the published layout in the case of names and extensions
    (``1-1.DCM``, ``mdb001.PGM``, VinDr images saved as ``.dcm``); an exact-path lookup found
    none of them and the reader returned images that failed later, or silently none. Each
    folder is listed once.
    """

    def __init__(self, suffixes: tuple[str, ...] = ()) -> None:
        self.suffixes = tuple(s.lower() for s in suffixes)
        self._listings: dict[Path, dict[str, Path]] = {}

    def find(self, path: Path) -> Path | None:
        """``path`` itself, else a file in its folder of that name, or of its stem and one of ``suffixes``,
        in any case."""
        if path.is_file():
            return path
        listing = self._listing(path.parent)
        for name in (path.name, *(path.stem + s for s in self.suffixes)):
            found = listing.get(name.lower())
            if found is not None:
                return found
        return None

    def _listing(self, folder: Path) -> dict[str, Path]:
        if folder not in self._listings:
            files = sorted(folder.iterdir()) if folder.is_dir() else []
            self._listings[folder] = {p.name.lower(): p for p in reversed(files) if p.is_file()}
        return self._listings[folder]


def found_images(images: list[AnnotatedImage], finder: FileFinder, *, listed_in: Path, fmt: str) -> list[AnnotatedImage]:
    """The images whose file exists (names resolved by ``finder``); the others skipped with a count.

    Raises FileNotFoundError when the list names images but none is there: a wrong folder, not
    a data set without images.
    """
    kept, missing = [], []
    for img in images:
        path = finder.find(img.image_path)
        if path is None:
            missing.append(img.image_path)
        else:
            kept.append(img if path == img.image_path else replace(img, image_path=path))
    report_missing(missing, len(images), listed_in=listed_in, fmt=fmt)
    return kept


def report_missing(missing: list[Path], listed: int, *, listed_in: Path, fmt: str) -> None:
    """Log how many listed images are not there; raise FileNotFoundError when none of them is."""
    if missing:
        log_event(logger, "dataset_images_missing", level=logging.WARNING, format=fmt, listed_in=str(listed_in),
                  missing=len(missing), listed=listed)
        log_event(logger, "dataset_image_missing_paths", level=logging.DEBUG, paths=[str(p) for p in missing])
    if listed and len(missing) == listed:
        raise FileNotFoundError(f"none of the {listed} images {listed_in} lists was found (e.g. {missing[0]}); "
                                "check the folder layout in docs/DATASETS.md, or the images_dir option")
