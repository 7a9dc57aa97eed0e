"""The detector's false marks on images without lesions, for the realism report.

Counted at the detector's shipped operating point (its own lesion score threshold, or the one
the user gives), on the image as the node sees it and, when asked, a second time on the image
rendered as public film sets ship it (``Rendering``). Failures are written on the image's
measure (``ImageMeasure.error``): one bad image is reported, not fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mammocad.logs import log_event
from mammocad.model.realism_read import raster_pixels
from mammocad.model.realism_sources import RealismImage
from mammocad.model.standardise import standardise_array

if TYPE_CHECKING:  # realism_measure imports this module to count the marks
    from mammocad.model.realism_measure import ImageMeasure

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rendering:
    """Count marks a second time on each image as public film sets ship it (``film_rendering``).

    The node's path standardises a 0.05 mm scan with an anti-aliased resize; a set that was
    reduced to 0.2 mm by block means is sharper, and a detector can mark it several times as
    often (MODEL_CARD.md, "Experiments not shipped"), so the report shows both.
    """

    spacing_mm: float
    bits: int | None = None

    def __post_init__(self) -> None:
        if not self.spacing_mm > 0:
            raise ValueError(f"the rendering's spacing must be positive, got {self.spacing_mm}")
        if self.bits is not None and not 6 <= self.bits <= 16:
            raise ValueError(f"the rendering's bits must be 6..16, got {self.bits}")

    @classmethod
    def parse(cls, text: str) -> Rendering:
        """``"0.2"`` or ``"0.2:8"`` (spacing in mm, then bits)."""
        spacing, _, bits = text.partition(":")
        try:
            return cls(float(spacing), int(bits) if bits else None)
        except ValueError as exc:
            raise ValueError(f"a rendering is MM or MM:BITS, e.g. 0.2:8 (mini-MIAS); got {text!r}: {exc}") from exc

    def label(self) -> str:
        return f"{self.spacing_mm:g} mm" + (f", {self.bits} bits" if self.bits else "")

    def to_dict(self) -> dict[str, Any]:
        return {"spacing_mm": self.spacing_mm, "bits": self.bits}


def with_fallback_spacing(detector: Any, spacing_mm: float) -> Any:
    """The detector (a new object; the given one is untouched), analysing images without a
    pixel size at ``spacing_mm``.

    Its checkpoint's fallback is an estimate from the image's size (the longer side taken as
    ``fallback_field_mm``, 230 mm: 0.049 mm for the CBIS-DDSM scans); the report shows the
    detector each image at the spacing the user states for the archive, so the node's figures
    and the report's can differ by that estimate. Headers with a spacing win.
    """
    return detector.with_preprocess(fallback_spacing_mm=spacing_mm, fallback_field_mm=0.0)


def count_marks(out: ImageMeasure, item: RealismImage, ds: Any, detector: Any, assumed_spacing_mm: float,
                picture: Path | None = None) -> None:
    """Marks the detector reports at its shipped operating point (its own lesion score threshold).

    A DICOM image goes through ``analyze_dataset`` as in the node. A raster file (mini-MIAS
    PGM, PNG) goes through ``standardise_array``, the path ``evaluate`` takes for such sets:
    public film sets come as rasters, and their false marks are the ones to know.
    """
    if ds is not None:
        result = detector.analyze_dataset(ds)
        if result.error:
            out.error = f"detector: {result.error}"
            return
        lesions = result.lesions
    else:
        try:
            std = standardise_array(raster_pixels(item), laterality=item.laterality or "L", view=item.view,
                                    spacing_mm=item.pixel_spacing_mm or assumed_spacing_mm, spec=detector.preprocess)
            lesions = detector.reported_lesions(std)
        except Exception as exc:  # as analyze_dataset: one bad image is reported, not fatal
            out.error = f"detector: {type(exc).__name__}: {exc}"
            return
    out.marks = len(lesions)
    out.malignant_marks = sum(1 for les in lesions if les.lesion_class.value == "malignant")
    out.mark_boxes = [[round(v, 1) for v in les.box] + [round(les.score, 3)] for les in lesions]
    if picture is not None:
        pixels = ds.pixel_array if ds is not None else raster_pixels(item)
        out.marks_picture = _picture(out, picture, pixels, ds, lesions, detector)


def count_rendered_marks(out: ImageMeasure, ds: Any, detector: Any, rendering: Rendering,
                         picture: Path | None = None) -> None:
    """Marks on the DICOM image as block means to about ``rendering.spacing_mm``, rounded to its bits.

    A raster file already is a rendering (that is how public film sets ship): its marks are
    the ones counted on it as it is.
    """
    if ds is None:
        out.rendered_marks, out.rendered_malignant_marks = out.marks, out.malignant_marks
        out.rendered_marks_picture = out.marks_picture
        return
    import copy

    from mammocad.model.readers.film_rendering import block_factor, render_coarser

    spacing = float(out.spacing_mm or rendering.spacing_mm)
    rendered = render_coarser(copy.deepcopy(ds), ds.pixel_array, block_factor(spacing, rendering.spacing_mm),
                              rendering.bits, spacing_mm=spacing)
    result = detector.analyze_dataset(rendered)
    if result.error:
        out.error = f"detector, rendered at {rendering.label()}: {result.error}"
        return
    out.rendered_marks = len(result.lesions)
    out.rendered_malignant_marks = sum(1 for les in result.lesions if les.lesion_class.value == "malignant")
    if picture is not None:
        out.rendered_marks_picture = _picture(out, picture.with_name(picture.stem + "-rendered.png"),
                                              rendered.pixel_array, rendered, result.lesions, detector)


def _picture(out: ImageMeasure, path: Path, pixels: np.ndarray, ds: Any, lesions: Sequence[Any],
             detector: Any) -> str | None:
    """Write the marks' picture; a failure to write is reported on the image, not fatal."""
    from mammocad.model.marks_picture import save_marks_picture

    malignant = sum(1 for les in lesions if les.lesion_class.value == "malignant")
    caption = (f"{len(lesions)} marks ({malignant} malignant) | {detector.model_name} {detector.model_version}"
               + (" | trained on synthetic data" if detector.synthetic_weights else "")
               + " | research use, not a diagnosis")
    monochrome1 = ds is not None and str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1"
    try:
        return str(save_marks_picture(path, pixels, lesions, monochrome1=monochrome1, caption=caption))
    except OSError as exc:
        out.error = f"marks picture {path}: {exc}"
        log_event(logger, "realism_picture_failed", logging.WARNING, path=str(path), error=str(exc))
        return None
