"""INbreast: AllDICOMs/*.dcm + AllXML/<file name>.xml (plist ROIs) + INbreast.csv.

INbreast gives no per-lesion pathology, only a BI-RADS per image (INbreast.csv,
``Bi-Rads`` column, values 1-6 with 4a/4b/4c). Every kept ROI of an image takes the
image's class: malignant when BI-RADS ≥ ``malignant_birads`` (default 4, i.e. 4a and up),
else benign. ROI names: "Calcification" marks one calcification (often a single point),
"Cluster" a cluster outline; ``calc_mode`` chooses which become boxes. Single-point ROIs
get a box of ``point_radius_mm`` around the point (spacing from the DICOM header).
"""

from __future__ import annotations

import csv
import logging
import plistlib
import re
from pathlib import Path
from typing import Any

import pydicom

from mammocad.logs import log_event
from mammocad.model.annotations import AnnotatedImage, AnnotatedLesion
from mammocad.model.readers.common import birads_value, header_laterality_view, require, with_breast_truth
from mammocad.model.results import LesionClass

logger = logging.getLogger(__name__)
CALC_MODES = {"clusters": {"cluster"}, "individual": {"calcification"}, "both": {"cluster", "calcification"}}
_POINT = re.compile(r"[-+0-9.eE]+")


def read(path: Path, *, calc_mode: str = "clusters", malignant_birads: float = 4.0,
         point_radius_mm: float = 0.5, all_findings: bool = False) -> list[AnnotatedImage]:
    """Every DICOM in AllDICOMs with its ROIs (no XML → no lesions).

    calc_mode: "clusters" (default; "Cluster" ROIs), "individual" ("Calcification"), "both".
    all_findings: keep every ROI (masses, asymmetries...) whatever its name.
    """
    if calc_mode not in CALC_MODES:
        raise ValueError(f"calc_mode must be one of {sorted(CALC_MODES)}, got {calc_mode!r}")
    root = require(Path(path), "INbreast folder")
    dicom_dir = require(_first_dir(root, ("AllDICOMs", "AllDICOMS")) or root / "AllDICOMs",
                        "INbreast AllDICOMs folder")
    xml_dir = _first_dir(root, ("AllXML",))
    table = _read_table(root)
    images = []
    # Any case of the extension (copies written as .DCM); an image without a table row has no
    # BI-RADS, so its class is unknown, and one whose XML is unreadable has unknown ROIs: skipped.
    dicoms = sorted(p for p in dicom_dir.iterdir() if p.is_file() and p.suffix.lower() in (".dcm", ".dicom"))
    if not dicoms:
        raise FileNotFoundError(f"no DICOM files (*.dcm) in {dicom_dir}; see docs/DATASETS.md for the INbreast layout")
    skipped = {"not_in_table": 0, "unreadable_xml": 0}
    for dcm in dicoms:
        file_id = dcm.name.split("_")[0]
        if file_id not in table:
            skipped["not_in_table"] += 1
            continue
        info = table[file_id]
        birads = birads_value(info.get("bi-rads"))
        cls = LesionClass.MALIGNANT if birads is not None and birads >= malignant_birads else LesionClass.BENIGN
        try:
            rois = _read_rois(xml_dir / f"{file_id}.xml") if xml_dir else []
        except (plistlib.InvalidFileException, ValueError, OSError):
            skipped["unreadable_xml"] += 1
            continue
        names = None if all_findings else CALC_MODES[calc_mode]
        lesions = _lesions(dcm, rois, names, cls, point_radius_mm)
        lat, view = str(info.get("laterality", "")).upper(), str(info.get("view", "")).upper()
        if lat not in ("L", "R") or not view:
            h_lat, h_view = header_laterality_view(dcm)
            lat, view = (lat if lat in ("L", "R") else h_lat), (view or h_view)
        # File names are <file id>_<patient hash>_MG_<lat>_<view>_ANON.dcm; the CSV's
        # Patient ID column is often "removed", so the hash identifies the patient.
        parts = dcm.name.split("_")
        patient = parts[1] if len(parts) > 2 else str(info.get("patient id", "") or file_id)
        images.append(AnnotatedImage(
            image_path=dcm, laterality=lat, view=view, breast_id=f"{patient}_{lat}", lesions=tuple(lesions),
            extra={"file_id": file_id, "birads": info.get("bi-rads", ""), "acr": info.get("acr", ""),
                   "roi_names": sorted({str(r.get("Name", "")) for r in rois})}))
    if any(skipped.values()):
        log_event(logger, "inbreast_images_skipped", level=logging.WARNING, folder=str(dicom_dir), kept=len(images),
                  **skipped)
    if not images:
        raise ValueError(f"none of the {len(dicoms)} DICOM files in {dicom_dir} could be used ({skipped['not_in_table']} "
                         f"without a row in INbreast.csv, whose File Name column holds the first part of each name; "
                         f"{skipped['unreadable_xml']} with an unreadable AllXML file)")
    return with_breast_truth(images)


def _first_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        for cand in (root / name, *root.glob(f"*/{name}")):
            if cand.is_dir():
                return cand
    return None


def _read_table(root: Path) -> dict[str, dict[str, str]]:
    """INbreast.csv (';'-separated as released; ',' accepted) keyed by File Name."""
    found = sorted(root.glob("INbreast*.csv")) + sorted(root.glob("*/INbreast*.csv"))
    if not found:
        raise FileNotFoundError(f"INbreast.csv not found under {root}; export INbreast.xls to CSV "
                                "(see docs/DATASETS.md)")
    lines = found[0].read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines:
        raise ValueError(f"{found[0]} is empty; export INbreast.xls to CSV again (see docs/DATASETS.md)")
    delim = ";" if lines[0].count(";") >= lines[0].count(",") else ","
    header = {h.strip().lower() for h in lines[0].split(delim)}
    if not {"file name", "bi-rads"} <= header:
        raise ValueError(f"{found[0]}: missing INbreast columns {sorted({'file name', 'bi-rads'} - header)} "
                         f"(separator {delim!r}; columns found: {sorted(header)})")
    out = {}
    for row in csv.DictReader(lines, delimiter=delim):
        norm = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        if norm.get("file name"):
            out[norm["file name"].split(".")[0]] = norm
    return out


def _read_rois(xml: Path) -> list[dict[str, Any]]:
    if not xml.is_file():
        return []
    with xml.open("rb") as fh:
        doc = plistlib.load(fh)
    rois: list[dict[str, Any]] = []
    for image in doc.get("Images", []):
        rois.extend(image.get("ROIs", []))
    return rois


def _lesions(dcm: Path, rois: list[dict[str, Any]], names: set[str] | None, cls: LesionClass,
             point_radius_mm: float) -> list[AnnotatedLesion]:
    head = pydicom.dcmread(dcm, stop_before_pixels=True)
    spacing = float((head.get("PixelSpacing") or head.get("ImagerPixelSpacing") or [0.07])[0])
    pad = point_radius_mm / spacing
    out = []
    for roi in rois:
        name = str(roi.get("Name", "")).strip()
        if names is not None and name.lower() not in names:
            continue
        pts = [[float(v) for v in _POINT.findall(p)[:2]] for p in roi.get("Point_px", [])]
        pts = [p for p in pts if len(p) == 2]
        if not pts:
            continue
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
        if x2 - x1 < 2 * pad:
            x1, x2 = (x1 + x2) / 2 - pad, (x1 + x2) / 2 + pad
        if y2 - y1 < 2 * pad:
            y1, y2 = (y1 + y2) / 2 - pad, (y1 + y2) / 2 + pad
        out.append(AnnotatedLesion(box=(max(x1, 0.0), max(y1, 0.0), x2, y2), lesion_class=cls,
                                   description=f"INbreast ROI {name}"))
    return out
