"""film_rendering: a scan shown as a coarser, shallower one keeps its truth on its pixels."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset

from mammocad.model.annotations import AnnotatedLesion
from mammocad.model.readers.film_rendering import render_coarser, rendered_lesions, rendered_specks
from mammocad.model.results import LesionClass


def _scan_with_blob(row: float, col: float, shape: tuple[int, int] = (160, 200)) -> tuple[Dataset, np.ndarray]:
    """A 16-bit MONOCHROME2 'scan' holding one smooth bright speck centred at (row, col)."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    stored = (1000 + 40000 * np.exp(-((yy - row) ** 2 + (xx - col) ** 2) / (2 * 3.0 ** 2))).astype(np.uint16)
    ds = Dataset()
    ds.set_pixel_data(stored, "MONOCHROME2", 16)
    return ds, stored


def _centroid(image: np.ndarray) -> tuple[float, float]:
    weight = image.astype(np.float64) - 1000.0
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    return float((weight * yy).sum() / weight.sum()), float((weight * xx).sum() / weight.sum())


@pytest.mark.parametrize("factor", [2, 4])
def test_rendered_specks_and_boxes_sit_on_the_rendered_speck(factor: int) -> None:
    """Pixel centres are at integers in both grids (frame.py): a block mean moves a speck at scan
    position x to (x + 0.5) / factor − 0.5, not x / factor (0.375 px off at 0.05 → 0.2 mm)."""
    row, col = 81.3, 97.8
    ds, stored = _scan_with_blob(row, col)
    assert _centroid(stored) == pytest.approx((row, col), abs=0.01)
    rendered = render_coarser(ds, stored, factor, None).pixel_array
    speck = rendered_specks([{"x": col, "y": row, "diameter_mm": 0.3}], factor)[0]
    seen = _centroid(rendered)
    assert (speck["y"], speck["x"]) == pytest.approx(seen, abs=0.02)
    # A box symmetric about the speck stays symmetric about it.
    box = AnnotatedLesion(box=(col - 12, row - 12, col + 12, row + 12), lesion_class=LesionClass.BENIGN)
    x1, y1, x2, y2 = rendered_lesions([box], factor)[0].box
    assert ((x1 + x2) / 2, (y1 + y2) / 2) == pytest.approx((seen[1], seen[0]), abs=0.02)
    assert x2 - x1 == pytest.approx(24 / factor)
    # A box on the scan's first pixel stays on the rendering (no negative coordinates).
    edge = AnnotatedLesion(box=(0.0, 0.0, 20.0, 20.0), lesion_class=LesionClass.BENIGN)
    assert min(rendered_lesions([edge], factor)[0].box) == 0.0
