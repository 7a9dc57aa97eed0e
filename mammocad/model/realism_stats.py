"""Intensity and calcification statistics of the realism report (companions of ``realism.py``).

Intensities are compared on the detector's input scale (``standardise``: [0, 1]) inside the
usable breast mask. Each image contributes a normalised histogram with equal weight, so one
large breast does not outvote the others; distances between two sets are computed from the
pooled histograms (exact up to the bin width, 1/1000).

Contrast-to-noise (CNR) of a calcification, peak over local background in units of local
noise, on the standardised image:

    CNR = (max over the object − median of a surrounding ring) / (1.4826 · MAD of the ring)

For a speck of diameter d the object is the disc of radius max(d/2, 0.75 px) around its centre
and the ring runs from d/2 + 0.6 mm to d/2 + 1.6 mm; for a lesion box (when the annotations
list no specks) the object is the box and the ring lies 0.5–2 mm outside it. The ring's
spread is the noise a reader (or a detector) must see the object against: quantum noise,
film grain and anatomical texture together. A speck with CNR ≥ 3 counts as detectable
(the Rose criterion's usual threshold in mammography phantom work). A ring flatter than
MIN_RING_NOISE (a 10-bit step) is not noise but saturation: film beyond the digitiser's
range, or the empty background past the skin line. Such a speck has no CNR (NaN, left out
of the size bins); dividing by a floor instead once reported a CNR of 10,636 for dermal
calcifications on saturated skin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Histogram bins over [0, 1] of the standardised intensity.
HIST_BINS = 1000
#: Percentiles reported for the intensity inside the breast.
PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
#: CNR at or above which a speck counts as detectable.
DETECTABLE_CNR = 3.0
#: Speck diameter bins (mm): [lo, hi).
SPECK_SIZE_BINS_MM = ((0.0, 0.2), (0.2, 0.3), (0.3, 0.5), (0.5, 1.0), (1.0, float("inf")))
_MAD_TO_SD = 1.4826
#: Below this ring spread (standardised units) the ring is saturated, not noisy.
MIN_RING_NOISE = 1.0 / 1024


def intensity_histogram(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Normalised histogram (sums to 1; zeros when the mask is empty) of ``image[mask]``."""
    values = np.asarray(image, dtype=np.float64)[mask]
    hist, _ = np.histogram(values, bins=HIST_BINS, range=(0.0, 1.0))
    total = hist.sum()
    return hist / total if total else hist.astype(np.float64)


def histogram_percentiles(hist: np.ndarray, percentiles: tuple[int, ...] = PERCENTILES) -> dict[str, float]:
    """Percentiles (bin centres) of a normalised histogram over [0, 1]."""
    cdf = np.cumsum(hist)
    if cdf[-1] <= 0:
        return {f"p{p}": float("nan") for p in percentiles}
    cdf = cdf / cdf[-1]
    centres = (np.arange(len(hist)) + 0.5) / len(hist)
    return {f"p{p}": float(centres[min(int(np.searchsorted(cdf, p / 100.0)), len(hist) - 1)]) for p in percentiles}


def histogram_distances(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Wasserstein-1 (earth mover's, in intensity units) and Kolmogorov–Smirnov distances
    between two normalised histograms over [0, 1]."""
    if a.sum() <= 0 or b.sum() <= 0:
        return {"wasserstein": float("nan"), "ks": float("nan")}
    cdf_a, cdf_b = np.cumsum(a) / a.sum(), np.cumsum(b) / b.sum()
    diff = np.abs(cdf_a - cdf_b)
    return {"wasserstein": float(diff.sum() / len(a)), "ks": float(diff.max())}


@dataclass(frozen=True)
class Speck:
    """One calcification: centre (x, y) and diameter in the standardised image's pixels."""

    x: float
    y: float
    diameter_px: float


def _ring_stats(image: np.ndarray, inner: np.ndarray, outer: np.ndarray) -> tuple[float, float]:
    ring = image[outer & ~inner]
    if ring.size < 8:
        return float("nan"), float("nan")
    median = float(np.median(ring))
    return median, float(_MAD_TO_SD * np.median(np.abs(ring - median)))


def speck_cnr(image: np.ndarray, speck: Speck, spacing_mm: float) -> float:
    """CNR of one speck (definition in the module docstring); NaN when off the image."""
    radius = max(speck.diameter_px / 2.0, 0.75)
    reach = speck.diameter_px / 2.0 + 1.6 / spacing_mm
    r0, r1 = int(np.floor(speck.y - reach)), int(np.ceil(speck.y + reach)) + 1
    c0, c1 = int(np.floor(speck.x - reach)), int(np.ceil(speck.x + reach)) + 1
    if r0 < 0 or c0 < 0 or r1 > image.shape[0] or c1 > image.shape[1]:
        return float("nan")
    patch = np.asarray(image[r0:r1, c0:c1], dtype=np.float64)
    yy, xx = np.mgrid[r0:r1, c0:c1]
    dist = np.hypot(yy - speck.y, xx - speck.x)
    core = dist <= radius
    if not core.any():
        return float("nan")
    ring_in = speck.diameter_px / 2.0 + 0.6 / spacing_mm
    background, noise = _ring_stats(patch, dist < ring_in, dist <= reach)
    return _cnr(float(patch[core].max()), background, noise)


def box_cnr(image: np.ndarray, box: tuple[float, float, float, float], spacing_mm: float) -> float:
    """Box-level CNR (x1, y1, x2, y2 in the image's pixels); NaN when the ring leaves the image."""
    x1, y1, x2, y2 = box
    gap, outer = 0.5 / spacing_mm, 2.0 / spacing_mm
    r0, r1 = int(np.floor(y1 - outer)), int(np.ceil(y2 + outer)) + 1
    c0, c1 = int(np.floor(x1 - outer)), int(np.ceil(x2 + outer)) + 1
    if r0 < 0 or c0 < 0 or r1 > image.shape[0] or c1 > image.shape[1]:
        return float("nan")
    patch = np.asarray(image[r0:r1, c0:c1], dtype=np.float64)
    yy, xx = np.mgrid[r0:r1, c0:c1]
    inside = (xx >= x1) & (xx <= x2) & (yy >= y1) & (yy <= y2)
    if not inside.any():
        return float("nan")
    near = (xx >= x1 - gap) & (xx <= x2 + gap) & (yy >= y1 - gap) & (yy <= y2 + gap)
    background, noise = _ring_stats(patch, near, np.ones_like(near))
    return _cnr(float(patch[inside].max()), background, noise)


def _cnr(peak: float, background: float, noise: float) -> float:
    if not np.isfinite(background) or not np.isfinite(noise) or noise < MIN_RING_NOISE:
        return float("nan")  # no ring, or a saturated one: nothing to measure the speck against
    return (peak - background) / noise


def size_bin_label(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g} mm" if np.isfinite(hi) else f">={lo:g} mm"


def cnr_by_size(diameters_mm: list[float], cnrs: list[float]) -> list[dict[str, object]]:
    """Per speck-size bin: n, median CNR and the fraction with CNR ≥ DETECTABLE_CNR."""
    d, c = np.asarray(diameters_mm, dtype=np.float64), np.asarray(cnrs, dtype=np.float64)
    ok = np.isfinite(c)
    rows: list[dict[str, object]] = []
    for lo, hi in SPECK_SIZE_BINS_MM:
        sel = ok & (d >= lo) & (d < hi)
        values = c[sel]
        rows.append({"size": size_bin_label(lo, hi), "n": int(sel.sum()),
                     "cnr_median": float(np.median(values)) if values.size else None,
                     "detectable_fraction": float((values >= DETECTABLE_CNR).mean()) if values.size else None})
    return rows
