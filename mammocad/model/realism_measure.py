"""One side's images → per-image statistics (:class:`ImageMeasure`), for the realism report.

Every image is read once (``realism_read``: standardised to 0.2 mm, uncropped), measured, and
optionally shown to the detector (``realism_marks``), which standardises it its own way, as in
production. Summaries over a side are ``realism_summary``'s.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mammocad.logs import log_event
from mammocad.model import realism, realism_layout, realism_shape, realism_stats
from mammocad.model.realism_marks import Rendering, count_marks, count_rendered_marks
from mammocad.model.realism_read import read_standardised, realism_spec
from mammocad.model.realism_sources import RealismImage
from mammocad.model.standardise import PreprocessSpec, Standardised, standardise

logger = logging.getLogger(__name__)


@dataclass
class ImageMeasure:
    """What one image contributed (``error`` set when it could not be measured)."""

    path: str
    spectrum: realism.SpectrumStats = field(default_factory=realism.SpectrumStats)
    #: Noise power in FINE_NPS_BAND at FINE_SPACING_MM, per ROI; empty when acquired coarser.
    nps_fine: tuple[float, ...] = ()
    #: Power in TISSUE_BAND of each 128-px ROI (tissue contrast at 2.5-5 mm periods).
    tissue_power: tuple[float, ...] = ()
    #: (line share, blob share) of the curvature energy (``realism_shape``): strands or clouds.
    curvature: tuple[float, float] = (float("nan"), float("nan"))
    #: (patch contrast, roll-off contrast) (``realism_layout``): where the dense tissue lies.
    layout: tuple[float, float] = (float("nan"), float("nan"))
    histogram: np.ndarray | None = None
    speck_cnr: list[tuple[float, float]] = field(default_factory=list)  # (diameter mm, CNR)
    box_cnr: list[tuple[str, float]] = field(default_factory=list)  # (class, CNR)
    spacing_mm: float | None = None
    spacing_source: str = ""
    marks: int | None = None
    malignant_marks: int | None = None
    #: The reported lesions' boxes (x1, y1, x2, y2, score) in original pixels: where the marks fell.
    mark_boxes: list[list[float]] = field(default_factory=list)
    #: Marks on the image rendered as a public film set (``Rendering``), when one was asked for.
    rendered_marks: int | None = None
    rendered_malignant_marks: int | None = None
    #: PNGs of the image (and its rendering) with the marks drawn, when pictures were asked for.
    marks_picture: str | None = None
    rendered_marks_picture: str | None = None
    error: str | None = None
    #: Which exam the image belongs to (``realism_spread.exam_groups``); identifiers, so kept out
    #: of the JSON (``per_image[].exam`` numbers the exams) and of reprs.
    study_uid: str = field(default="", repr=False)
    patient_id: str = field(default="", repr=False)
    #: The exam a raster file's source names (``RealismImage.exam``); DICOM files use their header.
    named_exam: str = field(default="", repr=False)


def measure_image(item: RealismImage, assumed_spacing_mm: float, detector: Any = None,
                  rendering: Rendering | None = None, picture: Path | None = None) -> ImageMeasure:
    """All statistics of one image; failures come back as ``error`` (one bad file is not fatal).

    detector: a :class:`mammocad.model.inference.Detector`, shown the image when it has no
    lesion; give it the same fallback spacing (``realism_marks.with_fallback_spacing``).
    rendering: also show it the image rendered so (``realism_marks.count_rendered_marks``).
    picture: where to write a PNG of the marks (``marks_picture``; the rendering's gets
    ``-rendered`` added to its name).
    """
    spec = realism_spec(assumed_spacing_mm)
    out = ImageMeasure(path=str(item.path))
    try:
        std, ds = read_standardised(item, spec)
    except Exception as exc:  # not DICOM, undecodable pixels...: report it and go on
        out.error = f"{type(exc).__name__}: {exc}"
        log_event(logger, "realism_image_failed", logging.WARNING, path=str(item.path), error=out.error)
        return out
    if ds is not None:
        out.study_uid, out.patient_id = str(ds.get("StudyInstanceUID", "")), str(ds.get("PatientID", ""))
    else:
        out.named_exam = item.exam
    image = std.image
    mask = realism.breast_mask(image, realism.REALISM_SPACING_MM)
    out.spectrum = realism.spectrum_stats(image, mask.usable)
    out.tissue_power = realism.tissue_power(image, mask.usable)
    out.curvature = realism_shape.curvature_shape(image, mask.usable)
    out.layout = realism_layout.layout_contrast(image, mask.breast, mask.usable)
    out.histogram = realism_stats.intensity_histogram(image, mask.usable)
    out.spacing_mm = float(std.meta["spacing_mm"][0])
    out.spacing_source = str(std.meta["spacing_source"])
    if out.spacing_mm <= realism.FINE_SPACING_MM + 1e-6:
        out.nps_fine = _fine_noise_power(item, ds, spec)
    _measure_cnr(out, item, std)
    if detector is not None and item.negative:
        count_marks(out, item, ds, detector, assumed_spacing_mm, picture)
        if rendering is not None and out.error is None:
            count_rendered_marks(out, ds, detector, rendering, picture)
    return out


def _fine_noise_power(item: RealismImage, ds: Any, spec: PreprocessSpec) -> tuple[float, ...]:
    """Per-ROI noise power in the fine band, the image standardised to 0.1 mm instead of 0.2 mm."""
    fine = dataclasses.replace(spec, working_spacing_mm=realism.FINE_SPACING_MM)
    std = standardise(ds, fine) if ds is not None else read_standardised(item, fine)[0]
    usable = realism.breast_mask(std.image, realism.FINE_SPACING_MM).usable
    return realism.spectrum_stats(std.image, usable, spacing_mm=realism.FINE_SPACING_MM,
                                  nps_band=realism.FINE_NPS_BAND).nps_hf


def _measure_cnr(out: ImageMeasure, item: RealismImage, std: Standardised) -> None:
    spacing = realism.REALISM_SPACING_MM
    if item.specks:
        centres = np.array([[x, y, x, y] for x, y, _ in item.specks], dtype=np.float64)
        model = std.transform.to_model(centres)
        for (_, _, d_mm), (mx, my, _, _) in zip(item.specks, model, strict=True):
            speck = realism_stats.Speck(x=float(mx), y=float(my), diameter_px=d_mm / spacing)
            out.speck_cnr.append((d_mm, realism_stats.speck_cnr(std.image, speck, spacing)))
    if item.boxes:
        boxes = std.transform.to_model(np.array(item.boxes, dtype=np.float64))
        for cls, box in zip(item.classes, boxes, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            out.box_cnr.append((cls, realism_stats.box_cnr(std.image, (x1, y1, x2, y2), spacing)))


def measure_set(items: Sequence[RealismImage], assumed_spacing_mm: float, *, detector: Any = None,
                rendering: Rendering | None = None, desc: str = "images", progress: bool = True,
                pictures: Path | None = None) -> list[ImageMeasure]:
    """Every image of one side; ``pictures``: a folder for the marks' PNGs, named
    ``<desc>-<number>-<file stem>.png`` so that two sides and equal file names never collide."""
    from tqdm import tqdm

    return [measure_image(item, assumed_spacing_mm, detector, rendering,
                          None if pictures is None else pictures / f"{desc}-{k:03d}-{Path(item.path).stem}.png")
            for k, item in enumerate(tqdm(items, desc=desc, unit="img", file=sys.stderr,
                                          disable=not progress or None), start=1)]
