"""mini-MIAS: Info.txt + mdbNNN.pgm (1024 × 1024, 200 µm pixels, MLO views only).

Info.txt lines: ``REFNUM BG CLASS [SEVERITY X Y RADIUS]``; CLASS CALC is calcification,
SEVERITY B/M. X, Y have their origin at the image's *bottom-left* corner, so the row is
``1024 - Y``; the box is the circle's square (centre ± RADIUS) clipped to the image.
Laterality, from the database's own README: "The list is arranged in pairs of films,
where each pair represents the left (even filename numbers) and right mammograms (odd
filename numbers) of a single patient": mdb001 is right, mdb002 left, both patient 1
(``patient``: (n + 1) // 2). ``odd_is_left=True`` reverses it for a copy that differs.
Some CALC rows give no coordinates: those images are dropped (``skip_unlocalised``) as
their lesion cannot be boxed.
"""

from __future__ import annotations

import re
from pathlib import Path

from mammocad.model.annotations import AnnotatedImage, AnnotatedLesion
from mammocad.model.readers.common import FileFinder, found_images, require, with_breast_truth
from mammocad.model.results import LesionClass

SIZE = 1024
SPACING_MM = 0.2
_LINE = re.compile(r"^\s*(mdb\d{3})\s+([FGD])\s+([A-Z]+)(?:\s+([BM]))?(?:\s+(\d+)\s+(\d+)\s+(\d+))?", re.I)


def read(path: Path, *, calc_only: bool = True, skip_unlocalised: bool = True,
         odd_is_left: bool = False) -> list[AnnotatedImage]:
    """path: the folder holding Info.txt and the PGMs (or Info.txt itself)."""
    path = require(Path(path), "mini-MIAS folder")
    info = path if path.is_file() else _find_info(path)
    rows: dict[str, list[re.Match[str]]] = {}
    for line in info.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if m:
            rows.setdefault(m.group(1).lower(), []).append(m)
    if not rows:
        raise ValueError(f"{info}: no 'mdbNNN BG CLASS ...' lines; is this the mini-MIAS Info.txt?")
    images = []
    for ref, matches in sorted(rows.items()):
        lesions, unlocalised = [], 0
        for m in matches:
            cls_name, severity = m.group(3).upper(), (m.group(4) or "").upper()
            if cls_name == "NORM" or (calc_only and cls_name != "CALC"):
                continue
            if m.group(5) is None:
                unlocalised += 1
                continue
            x, y, r = (float(m.group(i)) for i in (5, 6, 7))
            row = SIZE - y
            box = (max(x - r, 0.0), max(row - r, 0.0), min(x + r, SIZE - 1.0), min(row + r, SIZE - 1.0))
            lesions.append(AnnotatedLesion(
                box=box, lesion_class=LesionClass.MALIGNANT if severity == "M" else LesionClass.BENIGN,
                description=f"mini-MIAS {cls_name} {severity}, background {m.group(2).upper()}"))
        if unlocalised and skip_unlocalised:
            continue
        number = int(ref[3:])
        lat = "L" if (number % 2 == 1) == odd_is_left else "R"
        images.append(AnnotatedImage(
            image_path=info.parent / f"{ref}.pgm", laterality=lat, view="MLO",
            breast_id=f"{patient(number)}_{lat}", lesions=tuple(lesions), pixel_spacing_mm=SPACING_MM,
            extra={"refnum": ref, "background": matches[0].group(2).upper(),
                   "classes": sorted({m.group(3).upper() for m in matches})}))
    # Copies with .PGM names, or converted to PNG, are found; images the folder lacks are skipped and counted.
    finder = FileFinder((".pgm", ".png", ".tif", ".tiff"))
    return with_breast_truth(found_images(images, finder, listed_in=info, fmt="mias"))


def patient(number: int) -> str:
    """The patient of mini-MIAS film ``number`` (mdb001 → 1), as ``breast_id`` names her: films
    come in pairs, one woman's right and left (``(number + 1) // 2``), so mdb001 and mdb002 are
    both ``mias_001``. The one place this rule lives: the realism report groups a plain folder's
    films into exams by it (``realism_sources.raster_exam``)."""
    if number < 1:
        raise ValueError(f"a mini-MIAS film number starts at 1 (mdb001), got {number}")
    return f"mias_{(number + 1) // 2:03d}"


def _find_info(folder: Path) -> Path:
    found = FileFinder().find(folder / "info.txt")
    if found is not None:
        return found
    raise FileNotFoundError(f"Info.txt not found in {folder}; see docs/DATASETS.md for the mini-MIAS layout")
