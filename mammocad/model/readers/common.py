"""Helpers every reader shares: BI-RADS parsing, breast-level truth, header fall-backs."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pydicom

from mammocad.dicom.header import laterality_view
from mammocad.model.annotations import AnnotatedImage

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
