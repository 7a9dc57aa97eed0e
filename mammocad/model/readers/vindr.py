"""VinDr-Mammo (PhysioNet): finding_annotations.csv + images/<study_id>/<image_id>.dicom.

Every image appears in finding_annotations.csv (``No Finding`` rows included), one row
per finding. A finding is malignant when its ``finding_birads`` ≥ ``malignant_birads``
(default 4: BI-RADS 4 and 5), else benign; VinDr-Mammo has no biopsy pathology, so this
is a radiologist-suspicion label. ``calc_only`` keeps only findings whose categories
include "Suspicious Calcification" (images with other findings stay, lesion-free).
"""

from __future__ import annotations

import ast
import csv
import math
from pathlib import Path

from mammocad.model.annotations import AnnotatedImage, AnnotatedLesion
from mammocad.model.readers.common import FileFinder, birads_value, found_images, require, with_breast_truth
from mammocad.model.results import LesionClass

CALC_CATEGORY = "Suspicious Calcification"


def read(path: Path, *, calc_only: bool = True, malignant_birads: float = 4.0,
         split: str | None = None, images_dir: Path | None = None) -> list[AnnotatedImage]:
    """split: "training" or "test" (the CSV's ``split`` column) to read one split only."""
    root = require(Path(path), "VinDr-Mammo folder")
    csv_path = require(root / "finding_annotations.csv", "VinDr-Mammo finding_annotations.csv")
    image_root = Path(images_dir) if images_dir else root / "images"
    with csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    need = {"study_id", "image_id", "laterality", "view_position", "finding_categories", "finding_birads",
            "xmin", "ymin", "xmax", "ymax"}
    if not rows:
        raise ValueError(f"{csv_path} holds no rows: every VinDr-Mammo image has at least its 'No Finding' row")
    if not need <= set(rows[0]):
        raise ValueError(f"{csv_path}: missing VinDr-Mammo columns {sorted(need - set(rows[0]))}")
    splits = sorted({row.get("split", "") for row in rows})
    if split is not None and split not in splits:
        raise ValueError(f"{csv_path}: no rows of split {split!r}; its split column holds {splits}")
    by_image: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in rows:
        if split is None or row.get("split", "") == split:
            by_image.setdefault((row["study_id"], row["image_id"]), []).append(row)
    images = [_image(image_root, key, items, calc_only, malignant_birads) for key, items in by_image.items()]
    # Copies saved as .dcm, or in upper case, are found; images the download lacks are skipped and counted.
    return with_breast_truth(found_images(images, FileFinder((".dicom", ".dcm")), listed_in=csv_path, fmt="vindr"))


def _categories(text: str) -> list[str]:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = [text]
    return [str(v).strip() for v in (value if isinstance(value, (list, tuple)) else [value])]


def _image(image_root: Path, key: tuple[str, str], rows: list[dict[str, str]], calc_only: bool,
           malignant_birads: float) -> AnnotatedImage:
    study_id, image_id = key
    lesions = []
    for row in rows:
        cats = _categories(row["finding_categories"])
        if cats == ["No Finding"] or (calc_only and CALC_CATEGORY not in cats):
            continue
        coords = [_float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")]
        if any(c is None for c in coords) or not (coords[0] < coords[2] and coords[1] < coords[3]):  # type: ignore[operator]
            continue
        birads = birads_value(row["finding_birads"])
        cls = LesionClass.MALIGNANT if birads is not None and birads >= malignant_birads else LesionClass.BENIGN
        lesions.append(AnnotatedLesion(box=tuple(coords), lesion_class=cls,  # type: ignore[arg-type]
                                       description=f"{', '.join(cats)}; {row['finding_birads']}"))
    first = rows[0]
    lat = first["laterality"].strip().upper()[:1]
    return AnnotatedImage(
        image_path=image_root / study_id / f"{image_id}.dicom", laterality=lat,
        view=first["view_position"].strip().upper(), breast_id=f"{study_id}_{lat}", lesions=tuple(lesions),
        extra={"study_id": study_id, "image_id": image_id, "split": first.get("split", ""),
               "breast_birads": first.get("breast_birads", ""), "breast_density": first.get("breast_density", ""),
               "all_findings": sorted({c for r in rows for c in _categories(r["finding_categories"])})})


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value
