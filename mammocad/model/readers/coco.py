"""COCO detection JSON → AnnotatedImage, and the way back (``write_coco``).

COCO has no laterality or view: they are taken from extra keys on the image entry
(``laterality``, ``view``, ``breast_id``/``patient_id``), else from the DICOM header,
else from the file name (``..._R_CC...``). Boxes ``[x, y, w, h]`` become
``(x, y, x + w, y + h)`` unchanged (COCO's pixel-edge origin; half a pixel off our
pixel-centre convention, below any detector's precision).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from mammocad.logs import log_event
from mammocad.model.annotations import AnnotatedImage, AnnotatedLesion
from mammocad.model.readers.common import (
    FileFinder,
    header_laterality_view,
    name_laterality_view,
    report_missing,
    require,
    with_breast_truth,
)
from mammocad.model.results import LesionClass

logger = logging.getLogger(__name__)
DEFAULT_CATEGORIES = {"benign": LesionClass.BENIGN, "malignant": LesionClass.MALIGNANT}


def read(path: Path, *, images_dir: Path | None = None, category_map: dict[str, str] | None = None,
         skip_unknown_categories: bool = False) -> list[AnnotatedImage]:
    """Read a COCO file (or the only ``*.json`` in a folder).

    category_map: category name → "benign" | "malignant" (default: names containing
    "malig" are malignant, "benign" benign). Other categories raise unless
    ``skip_unknown_categories``. File names resolve against ``images_dir`` (default: the
    JSON's folder).
    """
    json_path = _find_json(Path(path))
    try:
        data = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{json_path}: not a JSON file ({exc}); export the annotations as COCO JSON") from exc
    for key in ("images", "annotations", "categories"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise ValueError(f"{json_path}: not a COCO detection file (no {key!r} list)")
    root = Path(images_dir) if images_dir else json_path.parent
    classes = _category_classes(data["categories"], category_map, skip_unknown_categories)
    by_image: dict[Any, list[AnnotatedLesion]] = {}
    for ann in data["annotations"]:
        lacking = [k for k in ("image_id", "category_id", "bbox") if k not in ann]
        if lacking:
            raise ValueError(f"{json_path}: annotation {ann.get('id')} has no {', '.join(lacking)}")
        cls = classes.get(ann["category_id"])
        if cls is None:
            continue
        if len(ann["bbox"]) != 4:
            raise ValueError(f"{json_path}: annotation {ann.get('id')} bbox must be [x, y, w, h], got {ann['bbox']}")
        x, y, w, h = (float(v) for v in ann["bbox"])
        if w <= 0 or h <= 0:
            raise ValueError(f"{json_path}: annotation {ann.get('id')} has an empty bbox {ann['bbox']}")
        by_image.setdefault(ann["image_id"], []).append(
            AnnotatedLesion(box=(x, y, x + w, y + h), lesion_class=cls, description=str(ann.get("description", ""))))
    images, missing = [], []
    finder = FileFinder((".dcm", ".dicom"))
    for entry in data["images"]:
        if "id" not in entry or "file_name" not in entry:
            raise ValueError(f"{json_path}: image entry {entry} needs 'id' and 'file_name'")
        found = finder.find(root / entry["file_name"])
        if found is None:
            missing.append(root / entry["file_name"])
            continue
        images.append(_image(entry, found, by_image.get(entry["id"], [])))
    report_missing(missing, len(data["images"]), listed_in=json_path, fmt="coco")
    orphans = set(by_image) - {entry["id"] for entry in data["images"]}
    if orphans:  # boxes of images left out of the list: skipped, counted
        log_event(logger, "coco_annotations_without_image", level=logging.WARNING, listed_in=str(json_path),
                  annotations=sum(len(by_image[i]) for i in orphans), image_ids=len(orphans))
    return with_breast_truth(images)


def _find_json(path: Path) -> Path:
    require(path, "COCO annotation file")
    if path.is_file():
        return path
    found = sorted(path.glob("*.json"))
    found = [p for p in found if p.name != "manifest.json"]
    if len(found) != 1:
        raise ValueError(f"{path}: expected exactly one COCO *.json file, found {[p.name for p in found]}; "
                         "pass the JSON file itself")
    return found[0]


def _category_classes(categories: list[dict[str, Any]], mapping: dict[str, str] | None,
                      skip_unknown: bool) -> dict[Any, LesionClass | None]:
    out: dict[Any, LesionClass | None] = {}
    for cat in categories:
        name = str(cat["name"])
        if mapping is not None and name in mapping:
            out[cat["id"]] = LesionClass(mapping[name])
        elif "malig" in name.lower():
            out[cat["id"]] = LesionClass.MALIGNANT
        elif "benign" in name.lower():
            out[cat["id"]] = LesionClass.BENIGN
        elif skip_unknown:
            out[cat["id"]] = None
        else:
            raise ValueError(f"COCO category {name!r} is neither benign nor malignant; pass "
                             "category_map={name: 'benign'|'malignant'} or skip_unknown_categories=True")
    return out


def _image(entry: dict[str, Any], path: Path, lesions: list[AnnotatedLesion]) -> AnnotatedImage:
    lat, view = str(entry.get("laterality", "")).upper(), str(entry.get("view", "")).upper()
    if lat not in ("L", "R") or not view:
        if path.suffix.lower() in (".dcm", ".dicom") and path.exists():
            h_lat, h_view = header_laterality_view(path)
        else:
            h_lat, h_view = name_laterality_view(path.name)
        lat = lat if lat in ("L", "R") else h_lat
        view = view or h_view
    if lat not in ("L", "R"):
        raise ValueError(f"COCO image {entry['file_name']}: laterality unknown; add \"laterality\": \"L\"|\"R\" "
                         "to the image entry")
    patient = str(entry.get("patient_id", "") or Path(entry["file_name"]).parent.as_posix() or entry["id"])
    breast_id = str(entry.get("breast_id", "") or f"{patient}_{lat}")
    spacing = entry.get("pixel_spacing_mm")
    return AnnotatedImage(image_path=path, laterality=lat, view=view, breast_id=breast_id, lesions=tuple(lesions),
                          pixel_spacing_mm=float(spacing) if spacing else None,
                          extra={"coco_id": entry["id"], "width": entry.get("width"), "height": entry.get("height")})


def write_coco(images: list[AnnotatedImage], json_path: Path, *, root: Path | None = None) -> Path:
    """Write images as COCO (categories 1 benign, 2 malignant: our label numbers)."""
    root = root or json_path.parent
    out: dict[str, Any] = {"images": [], "annotations": [],
                           "categories": [{"id": c.label, "name": c.value} for c in LesionClass]}
    for i, img in enumerate(images, start=1):
        try:
            name = img.image_path.relative_to(root).as_posix()
        except ValueError:
            name = img.image_path.as_posix()
        out["images"].append({"id": i, "file_name": name, "laterality": img.laterality, "view": img.view,
                              "breast_id": img.breast_id, "pixel_spacing_mm": img.pixel_spacing_mm})
        for les in img.lesions:
            x1, y1, x2, y2 = les.box
            out["annotations"].append({"id": len(out["annotations"]) + 1, "image_id": i,
                                       "category_id": les.lesion_class.label, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                       "area": (x2 - x1) * (y2 - y1), "iscrowd": 0, "description": les.description})
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(out, indent=1))
    return json_path
