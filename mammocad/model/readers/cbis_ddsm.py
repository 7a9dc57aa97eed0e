"""CBIS-DDSM (TCIA): case-description CSVs + full-mammogram DICOMs + ROI-mask DICOMs.

Layout (as the NBIA Data Retriever writes it; see docs/DATASETS.md)::

    ROOT/calc_case_description_train_set.csv   (and _test_set, mass_case_description_*)
    ROOT/CBIS-DDSM/Calc-Training_P_00005_RIGHT_CC/<study folder>/<series folder>/1-1.dcm
    ROOT/CBIS-DDSM/Calc-Training_P_00005_RIGHT_CC_1/<study>/<series>/1-1.dcm, 1-2.dcm

The CSV paths (``Calc-Training_P_00005_RIGHT_CC/1.3.6.../000000.dcm``) rarely match the
files on disk, so a path is resolved as: the CSV path itself; else every DICOM under the
subject folder (its first component). A ROI folder holds the mask and the cropped
image in either order: the mask is the file whose size equals the full image (and is
binary). Boxes are the mask's nonzero extent in the pixel-centre frame
(``xmin - 0.5 … xmax + 0.5``). pathology MALIGNANT → malignant; BENIGN and
BENIGN_WITHOUT_CALLBACK → benign.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pydicom

from mammocad.logs import log_event
from mammocad.model.annotations import AnnotatedImage, AnnotatedLesion
from mammocad.model.readers.common import report_missing, require, with_breast_truth
from mammocad.model.results import LesionClass

logger = logging.getLogger(__name__)
PATHOLOGY = {"MALIGNANT": LesionClass.MALIGNANT, "BENIGN": LesionClass.BENIGN,
             "BENIGN_WITHOUT_CALLBACK": LesionClass.BENIGN}


def read(path: Path, *, calc_only: bool = True, images_dir: Path | None = None,
         split: str | None = None) -> list[AnnotatedImage]:
    """One AnnotatedImage per full mammogram listed in the CSVs under ``path``.

    calc_only: read only calc_case_description_*.csv (masses ignored).
    split: "train" or "test" to read one split only.
    """
    if split not in (None, "train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = require(Path(path), "CBIS-DDSM folder")
    image_root = Path(images_dir) if images_dir else (root / "CBIS-DDSM" if (root / "CBIS-DDSM").is_dir() else root)
    patterns = ["calc_case_description*.csv"] + ([] if calc_only else ["mass_case_description*.csv"])
    csvs = sorted(p for pat in patterns for p in root.glob(pat) if split is None or f"_{split}" in p.name)
    if not csvs:
        raise FileNotFoundError(f"no CBIS-DDSM case description CSV ({', '.join(patterns)}) in {root}")
    rows = [(row, csv_path) for csv_path in csvs for row in _rows(csv_path)]
    # Group by the file a row resolves to: CSV paths of one image are not always identical.
    resolved: dict[str, Path | None] = {}
    grouped: dict[Path, list[tuple[dict[str, str], Path]]] = {}
    for row, csv_path in rows:
        key = row["image file path"].strip()
        if key not in resolved:
            resolved[key] = _resolve(image_root, key, want_mask=False, shape=None)
            if resolved[key] is None:
                log_event(logger, "cbis_image_missing", path=key)
        full = resolved[key]
        if full is not None:
            grouped.setdefault(full, []).append((row, csv_path))
    if not rows:
        raise ValueError(f"the case description CSVs {[p.name for p in csvs]} hold no rows")
    unknown = sorted({row["pathology"].strip().upper() for row, _ in rows} - set(PATHOLOGY))
    if unknown:
        raise ValueError(f"unknown pathology {unknown} in {[p.name for p in csvs]} (known: {sorted(PATHOLOGY)})")
    missing = [image_root / k for k, v in resolved.items() if v is None]
    report_missing(missing, len(resolved), listed_in=root, fmt="cbis-ddsm")
    images = [_image(full, items) for full, items in grouped.items()]
    return with_breast_truth(images)


def _rows(csv_path: Path) -> list[dict[str, str]]:
    with csv_path.open(newline="") as fh:
        rows = [{k.strip().lower().replace("_", " "): (v or "") for k, v in r.items() if k} for r in csv.DictReader(fh)]
    need = {"patient id", "left or right breast", "image view", "pathology", "image file path", "roi mask file path"}
    if rows and not need <= set(rows[0]):
        raise ValueError(f"{csv_path}: missing CBIS-DDSM columns {sorted(need - set(rows[0]))}")
    return rows


def _image(full: Path, items: list[tuple[dict[str, str], Path]]) -> AnnotatedImage:
    first, csv_path = items[0]
    image_root = _image_root_of(full, first["image file path"].strip())
    head = pydicom.dcmread(full, stop_before_pixels=True)
    shape = (int(head.Rows), int(head.Columns))
    lesions = []
    for row, _ in items:
        mask_path = _resolve(image_root, row["roi mask file path"].strip(), want_mask=True, shape=shape)
        box = _mask_box(mask_path, shape) if mask_path else None
        if box is None:
            log_event(logger, "cbis_mask_unusable", path=row["roi mask file path"].strip())
            continue
        lesions.append(AnnotatedLesion(box=box, lesion_class=PATHOLOGY[row["pathology"].strip().upper()],
                                       description=_describe(row)))
    lat = "L" if first["left or right breast"].strip().upper().startswith("L") else "R"
    patient = first["patient id"].strip()
    return AnnotatedImage(
        image_path=full, laterality=lat, view=first["image view"].strip().upper(), breast_id=f"{patient}_{lat}",
        lesions=tuple(lesions),
        extra={"patient_id": patient, "source_csv": csv_path.name,
               "split": "test" if "test" in csv_path.name else "train",
               "breast_density": first.get("breast density", ""), "assessment": [r["assessment"] for r, _ in items],
               "subtlety": [r.get("subtlety", "") for r, _ in items]})


def _image_root_of(full: Path, csv_path: str) -> Path:
    """The folder holding the subject folders (the full image's subject folder's parent)."""
    subject = Path(csv_path.replace("\\", "/")).parts[0]
    for parent in full.parents:
        if parent.name == subject:
            return parent.parent
    return full.parent


def _describe(row: dict[str, str]) -> str:
    if row.get("abnormality type", "").strip() == "mass":
        return f"mass: shape {row.get('mass shape', '')}, margins {row.get('mass margins', '')}; {row['pathology']}"
    return (f"calcification: type {row.get('calc type', '')}, distribution {row.get('calc distribution', '')}; "
            f"BI-RADS {row.get('assessment', '')}; {row['pathology']}")


def _resolve(image_root: Path, csv_path: str, *, want_mask: bool, shape: tuple[int, int] | None) -> Path | None:
    """The file a CSV path means (exact path, else search the subject folder; see module doc)."""
    rel = Path(csv_path.replace("\\", "/"))
    exact = image_root / rel
    candidates = [exact] if exact.is_file() else []
    subject = image_root / rel.parts[0] if rel.parts else None
    if subject is not None and subject.is_dir():
        candidates += sorted(p for p in subject.rglob("*") if p.suffix.lower() == ".dcm" and p != exact and p.is_file())
    if not want_mask:
        return candidates[0] if candidates else None
    for cand in candidates:
        head = pydicom.dcmread(cand, stop_before_pixels=True)
        if (int(head.Rows), int(head.Columns)) == shape:
            return cand
    return candidates[0] if candidates else None


def _mask_box(path: Path, shape: tuple[int, int]) -> tuple[float, float, float, float] | None:
    mask = pydicom.dcmread(path).pixel_array
    if mask.ndim != 2 or len(np.unique(mask[:: max(mask.shape[0] // 256, 1)])) > 2:
        return None  # not a binary mask: the cropped image, or a broken entry
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    sy, sx = shape[0] / mask.shape[0], shape[1] / mask.shape[1]  # a few masks differ in size
    return (float(max(xs.min() - 0.5, 0) * sx), float(max(ys.min() - 0.5, 0) * sy),
            float((xs.max() + 0.5) * sx), float((ys.max() + 0.5) * sy))
