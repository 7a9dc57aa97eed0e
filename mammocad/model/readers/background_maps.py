"""Where a simulated cluster may go in a real mammogram: breast mask, skin distance, labels, pectoral.

Computed on a copy reduced to about 0.5 mm per pixel (block means), which is enough to place a
cluster and to measure the tissue's value range, and costs little even for 5000 × 4000 images.
The breast is the largest bright component after an opening (which cuts it from thin film
edges and rulers); other bright components are labels, markers or tape, and clusters keep away
from them. The chest wall is not skin: distances are measured to the breast's own edge only.
The pectoral muscle of an MLO view is where the detector's own finder
(``breast_mask.pectoral_mask``, which inference uses to drop marks deep in the muscle) puts it,
plus a margin, and never less than a generous upper chest-wall triangle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mammocad.model.breast_mask import pectoral_mask
from mammocad.model.segment import mm_to_px, otsu_threshold

REDUCED_SPACING_MM = 0.5
#: Clusters keep this far (beyond their own radius) from the skin line and from other bright objects.
SKIN_MARGIN_MM = 6.0
LABEL_MARGIN_MM = 10.0
#: The value model is fitted to the breast this far inside the skin line (where the thickness is full).
INTERIOR_MM = 10.0
#: The pectoral muscle found in the pixels is grown by this much (its edge is a fitted straight line).
PECTORAL_MARGIN_MM = 3.0


@dataclass(frozen=True)
class BreastMaps:
    """Maps on the reduced grid. factor: full-resolution pixels per reduced pixel."""

    factor: int
    spacing_mm: float  # of the reduced grid
    reduced: np.ndarray  # stored values, block means
    breast: np.ndarray
    interior: np.ndarray
    skin_mm: np.ndarray  # distance to the skin line inside the breast
    other_mm: np.ndarray  # distance to the nearest bright object that is not the breast
    pectoral: np.ndarray


def block_mean(stored: np.ndarray, factor: int) -> np.ndarray:
    """Means over ``factor`` × ``factor`` blocks (float64); rows and columns past the last whole block are dropped."""
    rows, cols = (stored.shape[0] // factor) * factor, (stored.shape[1] // factor) * factor
    arr = stored[:rows, :cols].astype(np.float64)
    return arr.reshape(rows // factor, factor, cols // factor, factor).mean(axis=(1, 3)) if factor > 1 else arr


def breast_maps(stored: np.ndarray, spacing: float, *, invert: bool, vmax: float, view: str) -> BreastMaps:
    """invert: True when the breast is *darker* than the background in stored values
    (MONOCHROME1 presentation data, or raw data, which are linear in exposure)."""
    f = mm_to_px(REDUCED_SPACING_MM, spacing)
    reduced = block_mean(stored, f)
    step = f * spacing
    bright = vmax - reduced if invert else reduced
    smooth = ndimage.gaussian_filter(bright, 1.0 / step)
    lo, hi = np.percentile(smooth, [0.5, 99.5])
    x = np.clip((smooth - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    above = x > otsu_threshold(x)
    opened = ndimage.binary_opening(above, structure=_disk(mm_to_px(2.0, step)))
    labels, n = ndimage.label(opened)
    if n == 0:
        raise ValueError("no breast found in the image (nothing brighter than the background)")
    sizes = ndimage.sum_labels(opened, labels, index=np.arange(1, n + 1))
    breast = ndimage.binary_fill_holes(labels == int(np.argmax(sizes)) + 1)
    near_breast = ndimage.binary_dilation(breast, structure=_disk(mm_to_px(2.0, step)))
    other = above & ~near_breast
    skin_mm = ndimage.distance_transform_edt(breast) * step
    other_mm = ndimage.distance_transform_edt(~other) * step if other.any() else np.full(breast.shape, np.inf)
    pectoral = _pectoral(breast, x, step) if view == "MLO" else np.zeros_like(breast)
    interior = (skin_mm >= INTERIOR_MM) & ~pectoral & (other_mm >= LABEL_MARGIN_MM)
    if interior.sum() < 100:
        interior = breast & (skin_mm >= 3.0)
    return BreastMaps(f, step, reduced, breast, interior, skin_mm, other_mm, pectoral)


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return np.asarray(yy ** 2 + xx ** 2 <= radius ** 2)


def _pectoral(breast: np.ndarray, bright: np.ndarray, step_mm: float) -> np.ndarray:
    """Where the pectoral muscle of an MLO view lies: the muscle ``breast_mask.pectoral_mask``
    finds in ``bright`` (0..1, bright = dense), grown by ``PECTORAL_MARGIN_MM``, joined to the
    upper chest-wall triangle reaching 0.4 of the breast's depth at the top and nothing at
    mid-height. Why both: the triangle alone missed the muscle of broad-muscled MLOs (on the
    CBIS film 1-131, a cluster went 8 mm deep into it), and the finder gives up on a faint edge."""
    rows, cols = breast.shape
    band = max(1, cols // 5)
    chest_left = breast[:, :band].mean() >= breast[:, -band:].mean()
    filled = np.nonzero(breast.any(axis=1))[0]
    if len(filled) == 0:
        return np.zeros_like(breast)
    top, bottom = int(filled[0]), int(filled[-1])
    depth = int(breast.sum(axis=1).max())
    r = np.arange(rows)[:, None]
    c = np.arange(cols)[None, :]
    from_chest = c if chest_left else cols - 1 - c
    reach = 0.4 * depth * np.clip(1.0 - (r - top) / max(0.5 * (bottom - top), 1.0), 0.0, 1.0)
    # pectoral_mask wants the chest wall at column 0, as the standardiser leaves an image.
    muscle = pectoral_mask(bright if chest_left else bright[:, ::-1], breast if chest_left else breast[:, ::-1],
                           step_mm)
    muscle = muscle if chest_left else muscle[:, ::-1]
    if muscle.any():
        muscle = ndimage.binary_dilation(muscle, structure=_disk(mm_to_px(PECTORAL_MARGIN_MM, step_mm)))
    return np.asarray(((from_chest < reach) | muscle) & breast)


def pick_centre(maps: BreastMaps, extent_mm: float, taken: list[tuple[tuple[float, float], float]],
                rng: np.random.Generator) -> tuple[float, float] | None:
    """A full-resolution (row, col) for a cluster of radius ``extent_mm``, or None if none fits.

    taken: (centre, radius in full-resolution pixels) of clusters already placed; a new one
    keeps 2 mm clear of them.
    """
    f = maps.factor
    rows, cols = maps.breast.shape
    border = (extent_mm + SKIN_MARGIN_MM) / maps.spacing_mm  # the image edge: the chest wall, or cut off
    rr, cc = np.mgrid[0:rows, 0:cols]
    inside = (rr >= border) & (rr < rows - border) & (cc >= border) & (cc < cols - border)
    ok = ((maps.skin_mm >= extent_mm + SKIN_MARGIN_MM) & (maps.other_mm >= extent_mm + LABEL_MARGIN_MM)
          & ~maps.pectoral & maps.breast & inside)
    if taken:
        for (row, col), radius_px in taken:
            gap = (radius_px + extent_mm / (maps.spacing_mm / f) + 2.0 / (maps.spacing_mm / f)) / f
            ok &= (rr + 0.5 - row / f) ** 2 + (cc + 0.5 - col / f) ** 2 > gap ** 2
    candidates = np.argwhere(ok)
    if len(candidates) == 0:
        return None
    r, c = candidates[int(rng.integers(len(candidates)))]
    return float((r + rng.uniform()) * f - 0.5), float((c + rng.uniform()) * f - 0.5)
