"""Power-law exponent β of breast texture, measured as /work/shared/README.md "Realism statistics" says.

The image is resampled to 0.2 mm; 256×256 regions lying fully inside the breast are taken;
each has its mean removed, a 2-D Hann window applied, and its |FFT|² radially averaged; log P
is fitted against log f over 0.15–0.8 cycles/mm and β is minus the slope. Real film measures
β ≈ 3.0–3.2, so this is how synth v2 is checked against real mammograms.

TODO(realism): ``mammocad.model.realism.power_spectrum_beta`` is being written for the realism
report; once it is on main, this module should go and its callers use that one.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

WORK_SPACING_MM = 0.2
ROI_PX = 256
BAND_CYCLES_PER_MM = (0.15, 0.8)


def roi_betas(image: np.ndarray, spacing_mm: float, mask: np.ndarray | None = None, *,
              max_rois: int = 12) -> list[float]:
    """β of each 256² region at 0.2 mm that lies fully inside ``mask`` (all of the image if None).

    image: 2-D array, any polarity (β does not depend on it); mask: True inside the breast.
    Regions are taken on a half-overlapping grid, at most ``max_rois`` of them.
    """
    img = np.asarray(image, dtype=np.float64)
    zoom = spacing_mm / WORK_SPACING_MM
    if abs(zoom - 1.0) > 1e-6:
        img = ndimage.zoom(img, zoom, order=1)
    inside = np.ones(img.shape, bool) if mask is None else _resample_mask(mask, img.shape)
    step = ROI_PX // 8
    betas = []
    for r in range(0, img.shape[0] - ROI_PX + 1, step):
        for c in range(0, img.shape[1] - ROI_PX + 1, step):
            if inside[r:r + ROI_PX, c:c + ROI_PX].all():
                betas.append(roi_beta(img[r:r + ROI_PX, c:c + ROI_PX]))
    if len(betas) > max_rois:
        keep = np.linspace(0, len(betas) - 1, max_rois).round().astype(int)
        betas = [betas[i] for i in keep]
    return betas


def power_spectrum_beta(image: np.ndarray, spacing_mm: float, mask: np.ndarray | None = None) -> float:
    """Median β over the breast regions of ``image``; NaN when no region fits inside the breast."""
    betas = roi_betas(image, spacing_mm, mask)
    return float(np.median(betas)) if betas else float("nan")


def roi_beta(roi: np.ndarray) -> float:
    """β of one square region sampled at 0.2 mm."""
    n = roi.shape[0]
    win = np.outer(np.hanning(n), np.hanning(n))
    spec = np.abs(np.fft.fftshift(np.fft.fft2((roi - roi.mean()) * win))) ** 2
    freq = np.fft.fftshift(np.fft.fftfreq(n, d=WORK_SPACING_MM))
    f = np.hypot(freq[:, None], freq[None, :])
    edges = np.linspace(0.0, 1.0 / (2 * WORK_SPACING_MM), n // 2 + 1)
    which = np.digitize(f.ravel(), edges)
    power = np.bincount(which, weights=spec.ravel(), minlength=len(edges) + 1)
    count = np.bincount(which, minlength=len(edges) + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    radial = power[1:len(edges)] / np.maximum(count[1:len(edges)], 1)
    lo, hi = BAND_CYCLES_PER_MM
    sel = (centres >= lo) & (centres <= hi) & (radial > 0)
    slope = np.polyfit(np.log(centres[sel]), np.log(radial[sel]), 1)[0]
    return float(-slope)


def _resample_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    rows = (np.arange(shape[0]) * mask.shape[0] / shape[0]).astype(int)
    cols = (np.arange(shape[1]) * mask.shape[1] / shape[1]).astype(int)
    return np.asarray(mask, bool)[np.ix_(rows, cols)]
