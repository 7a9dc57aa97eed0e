"""Where the breast is in a standardised image (bright = dense, values in [0, 1]).

One segmentation for the three that need it: the breast crop of ``standardise``, the
realism mask and the detector's marks-outside-the-breast rule (``breast_mask``), and the
real-background maps. It sits below all of them, so none imports another to cut the same way.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Where the breast starts for the crop and for the detector's marks: just above the background,
#: this share of the way to Otsu's threshold (the realism mask uses 0.5, see breast_mask.py).
BREAST_CUT = 0.05
#: Bright strips narrower than twice this (film borders, tape) are opened off the breast.
STRIP_MM = 2.0


def mm_to_px(mm: float, spacing_mm: float) -> int:
    """``mm`` in whole pixels of ``spacing_mm``, at least one (a radius, a step, a margin)."""
    return max(1, int(round(mm / spacing_mm)))


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1] (between-class variance maximum); shared by the breast
    crop, the realism mask and the real-background maps so all three cut the same way."""
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    hist = hist.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = np.divide(m0, w0, out=np.zeros_like(m0), where=w0 > 0)
    mu1 = np.divide(m0[-1] - m0, w1, out=np.zeros_like(m0), where=w1 > 0)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centres[int(np.argmax(between))])


def segment_breast(img: np.ndarray, spacing_mm: float, strip_mm: float, *, cut: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """(foreground, breast): what is brighter than the background by ``cut`` of the way to
    Otsu's threshold, and its largest component once strips narrower than ``2·strip_mm`` are
    opened away, holes filled (all False when there is no foreground)."""
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {img.shape}")
    px = mm_to_px(strip_mm, spacing_mm)
    smooth = ndimage.gaussian_filter(img, max(0.5, 0.4 / spacing_mm))
    # Otsu alone splits fat from dense tissue on film and drops the skin-line fall-off, which
    # belongs to the breast: the cut sits between the background and Otsu's threshold.
    background = float(np.percentile(smooth[::4, ::4], 5))
    foreground = smooth > background + cut * (otsu_threshold(smooth) - background)
    opened = dilate(erode(foreground, px), px)
    labels, n = ndimage.label(opened)
    if n == 0:
        return foreground, np.zeros(img.shape, dtype=bool)
    sizes = ndimage.sum_labels(opened, labels, index=np.arange(1, n + 1))
    return foreground, ndimage.binary_fill_holes(labels == int(np.argmax(sizes)) + 1)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a disc of ``radius`` px (a distance transform: O(pixels), any radius)."""
    if not mask.any():
        return np.zeros(mask.shape, dtype=bool)
    return np.asarray(ndimage.distance_transform_edt(~mask) <= radius)


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion by a disc; outside the image counts as inside the mask (no edge effect)."""
    return ~dilate(~mask, radius)
