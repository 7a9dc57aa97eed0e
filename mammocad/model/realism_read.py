"""How the realism report reads an image: pixels, and the standardisation every statistic sees.

Every image is standardised to 0.2 mm with the project's standardisation (``crop_breast`` off:
the mask is :func:`mammocad.model.realism.breast_mask`, not the detector's crop). DICOM files
go through ``standardise``; raster files (mini-MIAS PGM, PNG) have no header, so their
laterality, view and pixel size come from the source (``RealismImage``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mammocad.model import realism
from mammocad.model.realism_sources import RealismImage, is_raster
from mammocad.model.standardise import PreprocessSpec, Standardised, standardise, standardise_array


def realism_spec(assumed_spacing_mm: float) -> PreprocessSpec:
    """How every realism statistic sees an image: at 0.2 mm, uncropped (the breast mask, not the
    detector's crop, picks the regions), ``assumed_spacing_mm`` where the header has no pixel size."""
    return PreprocessSpec(working_spacing_mm=realism.REALISM_SPACING_MM, crop_breast=False,
                          fallback_spacing_mm=assumed_spacing_mm, fallback_field_mm=0.0)


def read_standardised(item: RealismImage, spec: PreprocessSpec) -> tuple[Standardised, Any]:
    """(standardised image, the DICOM data set or None for raster files)."""
    if is_raster(item.path):
        return standardise_array(raster_pixels(item), laterality=item.laterality or "L",
                                 spacing_mm=item.pixel_spacing_mm, view=item.view, spec=spec), None
    import pydicom

    ds = pydicom.dcmread(item.path)
    return standardise(ds, spec), ds


def raster_pixels(item: RealismImage) -> np.ndarray:
    """The raster file's pixels as stored (Pillow's reading of PGM/PNG/TIFF/JPEG)."""
    from PIL import Image

    with Image.open(item.path) as im:
        return np.asarray(im)
