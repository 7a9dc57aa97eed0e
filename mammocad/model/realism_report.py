"""The realism report: one side's images → per-image statistics → one summary per side.

The report's parts, a module each: ``realism_sources`` (which images, with what truth),
``realism_read`` (reading and standardising an image), ``realism_measure`` (an image's
statistics), ``realism_marks`` (the detector's false marks), ``realism_summary`` (a side's
summary and the comparison of two), ``realism_spread`` (the spread over exams). This module
names the report's format and method and is where the command (``mammocad model realism``)
and callers import them from.
"""

from __future__ import annotations

from typing import Any

from mammocad.model import realism, realism_layout, realism_shape, realism_spread, realism_stats
from mammocad.model.realism_marks import Rendering, with_fallback_spacing
from mammocad.model.realism_measure import ImageMeasure, measure_image, measure_set
from mammocad.model.realism_read import read_standardised, realism_spec
from mammocad.model.realism_summary import compare, public, summarise

FORMAT = "mammocad-realism/1"


def method() -> dict[str, Any]:
    """The fixed parameters of every figure (part of the JSON so a number is never orphaned)."""
    return {"spacing_mm": realism.REALISM_SPACING_MM, "roi_px": realism.ROI_PX,
            "beta_band_cycles_per_mm": list(realism.BETA_BAND), "nps_band_cycles_per_mm": list(realism.NPS_BAND),
            "nps_fine_band_cycles_per_mm": list(realism.FINE_NPS_BAND), "nps_fine_spacing_mm": realism.FINE_SPACING_MM,
            "tissue_band_cycles_per_mm": list(realism.TISSUE_BAND), "tissue_roi_px": realism.TISSUE_ROI_PX,
            "curvature_sigma_mm": realism_shape.CURVATURE_SIGMA_MM, "curvature_line_ratio": realism_shape.LINE_RATIO,
            "curvature_blob_ratio": realism_shape.BLOB_RATIO,
            "layout_sigma_mm": realism_layout.LAYOUT_SIGMA_MM, "layout_band_mm": realism_layout.BAND_MM,
            "layout_max_depth_mm": realism_layout.MAX_DEPTH_MM,
            "nps_units": "intensity^2 mm^2 on the standardised [0, 1] scale",
            "intensity_scale": "mammocad.model.standardise at 0.2 mm, inside the usable breast mask",
            "cnr": "(peak - ring median) / (1.4826 MAD of ring), see mammocad/model/realism_stats.py",
            "detectable_cnr": realism_stats.DETECTABLE_CNR, "bootstrap": realism_spread.method()}


__all__ = ["FORMAT", "ImageMeasure", "Rendering", "compare", "measure_image", "measure_set", "method", "public",
           "read_standardised", "realism_spec", "summarise", "with_fallback_spacing"]
