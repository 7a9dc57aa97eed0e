"""Texture statistics that say how much a mammogram looks like a real one.

Everything here works on one grayscale image in the detector's picture (``standardise``:
float in [0, 1], bright = dense, chest wall at column 0) and is what the realism report
(``mammocad model realism``) computes per image; synthetic and real images go through the
same code so their figures can be set side by side.

Anatomical noise (β), exactly as ``shared/README.md`` "Realism statistics" defines it:
resample to 0.2 mm, take 256×256 regions fully inside the breast (and clear of film labels,
markers and borders, see :func:`breast_mask`), subtract each region's mean, apply a 2-D Hann
window, radially average |FFT|², fit log P against log f over 0.15–0.8 cycles/mm; β is minus
the slope. Real breast tissue gives β ≈ 3 (literature 2.8–3.2). The breast mask (and what it
keeps ROIs away from) is ``breast_mask.breast_mask``.

High-frequency noise power (``nps_hf``): the same spectra, normalised as a noise power
spectrum (|FFT|² · Δx·Δy / Σw², units intensity²·mm² on the [0, 1] scale), averaged over
1.5–2.5 cycles/mm. At 0.2 mm that band ends at Nyquist and includes the resampling's
anti-alias filter on purpose: it is the fine-grain noise the detector actually sees.
The fine band (``FINE_NPS_BAND``, 2.5–5 cycles/mm) is measured the same way at 0.1 mm, on
images acquired at 0.1 mm or finer: it is where film grain and quantum noise dominate.

Tissue contrast (``tissue_power``): the same normalised spectra of smaller 128×128 regions
(25.6 mm; five times as many fit in a film's breast as 51.2 mm ones), averaged over
0.2–0.4 cycles/mm: how much the anatomy varies at 2.5–5 mm periods, the scale of lobules and
strands that a calcification cluster sits in. β says how the power falls with frequency, not
how much there is: synth v3's film had the films' β with a third of their tissue power.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mammocad.model.breast_mask import BreastMask, breast_mask

#: Pixel size at which β and the noise power are measured (shared/README.md).
REALISM_SPACING_MM = 0.2
#: Side of a square region of interest in pixels at REALISM_SPACING_MM (51.2 mm).
ROI_PX = 256
#: Frequency band of the power-law fit, cycles/mm.
BETA_BAND = (0.15, 0.8)
#: Frequency band of the high-frequency noise power, cycles/mm.
NPS_BAND = (1.5, 2.5)
#: The fine band: measured at FINE_SPACING_MM on images acquired at that pixel size or finer.
#: 0.2 mm cannot hold it, and it is where grain and quantum noise, not anatomy, set the power.
FINE_SPACING_MM = 0.1
FINE_NPS_BAND = (2.5, 5.0)
#: Tissue contrast: power at 2.5-5 mm periods, in regions this many pixels wide at REALISM_SPACING_MM.
TISSUE_BAND = (0.2, 0.4)
TISSUE_ROI_PX = 128


def roi_origins(usable: np.ndarray, roi_px: int = ROI_PX, *, max_overlap: float = 0.5,
                step: int = 16) -> list[tuple[int, int]]:
    """(row, col) of square ROIs lying wholly in ``usable``, overlapping each other by at most
    ``max_overlap`` of a side along either axis (greedy, raster order, deterministic)."""
    rows, cols = usable.shape
    if rows < roi_px or cols < roi_px:
        return []
    bad = np.pad((~usable).astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    min_gap = int(np.ceil(roi_px * (1.0 - max_overlap)))
    chosen: list[tuple[int, int]] = []
    for r in range(0, rows - roi_px + 1, step):
        for c in range(0, cols - roi_px + 1, step):
            n_bad = bad[r + roi_px, c + roi_px] - bad[r, c + roi_px] - bad[r + roi_px, c] + bad[r, c]
            if n_bad:
                continue
            if all(abs(r - r2) >= min_gap or abs(c - c2) >= min_gap for r2, c2 in chosen):
                chosen.append((r, c))
    return chosen


def radial_power_spectrum(roi: np.ndarray, spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(f in cycles/mm, radially averaged NPS) of one square region.

    Mean subtracted, 2-D Hann window, |FFT|²·Δx·Δy/Σw² (a noise power spectrum: a white
    noise of variance σ² gives σ²·Δx·Δy at every frequency). Bins are 1/(N·Δx) wide.
    """
    roi = np.asarray(roi, dtype=np.float64)
    n_rows, n_cols = roi.shape
    if n_rows != n_cols:
        raise ValueError(f"ROI must be square, got {roi.shape}")
    window = np.outer(np.hanning(n_rows), np.hanning(n_cols))
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2((roi - roi.mean()) * window))) ** 2
    spectrum *= spacing_mm * spacing_mm / float((window**2).sum())
    freq = np.fft.fftshift(np.fft.fftfreq(n_rows, d=spacing_mm))
    radius = np.hypot(freq[:, None], freq[None, :])
    df = 1.0 / (n_rows * spacing_mm)
    index = np.rint(radius / df).astype(np.int64).ravel()
    counts = np.bincount(index)
    sums = np.bincount(index, weights=spectrum.ravel())
    keep = counts > 0
    return (np.arange(len(counts)) * df)[keep], sums[keep] / counts[keep]


def fit_beta(freq: np.ndarray, power: np.ndarray, band: tuple[float, float] = BETA_BAND) -> float:
    """β = −slope of log P against log f over ``band`` (cycles/mm); NaN when under 3 bins."""
    sel = (freq >= band[0]) & (freq <= band[1]) & (power > 0)
    if int(sel.sum()) < 3:
        return float("nan")
    slope = np.polyfit(np.log(freq[sel]), np.log(power[sel]), 1)[0]
    return float(-slope)


def band_power(freq: np.ndarray, power: np.ndarray, band: tuple[float, float] = NPS_BAND) -> float:
    """Mean of the radial NPS over ``band`` (cycles/mm); NaN when the band holds no bin."""
    sel = (freq >= band[0]) & (freq <= band[1])
    return float(power[sel].mean()) if sel.any() else float("nan")


@dataclass(frozen=True)
class SpectrumStats:
    """Per-ROI β and high-frequency noise power of one image (or pooled over many).

    origins: (row, col) of each ROI in the resampled image; betas/nps_hf in the same order.
    """

    betas: tuple[float, ...] = ()
    nps_hf: tuple[float, ...] = ()
    origins: tuple[tuple[int, int], ...] = field(default=())

    @property
    def n(self) -> int:
        return len(self.betas)

    @property
    def beta_mean(self) -> float:
        return float(np.mean(self.betas)) if self.betas else float("nan")

    @property
    def beta_sd(self) -> float:
        return float(np.std(self.betas, ddof=1)) if len(self.betas) > 1 else float("nan")


def resample(image: np.ndarray, spacing_mm: float, target_mm: float = REALISM_SPACING_MM) -> np.ndarray:
    """Resize to ``target_mm`` pixels the way ``standardise`` does (bilinear, anti-aliased)."""
    if abs(spacing_mm - target_mm) < 1e-9:
        return np.asarray(image, dtype=np.float32)
    import torch
    import torch.nn.functional as F

    rows, cols = image.shape
    out_shape = (max(1, round(rows * spacing_mm / target_mm)), max(1, round(cols * spacing_mm / target_mm)))
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    out = F.interpolate(t, size=out_shape, mode="bilinear", align_corners=False, antialias=target_mm > spacing_mm)
    return out[0, 0].numpy()


def spectrum_stats(image: np.ndarray, usable: np.ndarray, *, spacing_mm: float = REALISM_SPACING_MM,
                   roi_px: int = ROI_PX, beta_band: tuple[float, float] = BETA_BAND,
                   nps_band: tuple[float, float] = NPS_BAND) -> SpectrumStats:
    """β and high-frequency NPS of every ROI that fits in ``usable`` (image already resampled)."""
    origins = roi_origins(usable, roi_px)
    betas, nps = [], []
    for r, c in origins:
        freq, power = radial_power_spectrum(image[r:r + roi_px, c:c + roi_px], spacing_mm)
        betas.append(fit_beta(freq, power, beta_band))
        nps.append(band_power(freq, power, nps_band))
    return SpectrumStats(betas=tuple(betas), nps_hf=tuple(nps), origins=tuple(origins))


def tissue_power(image: np.ndarray, usable: np.ndarray) -> tuple[float, ...]:
    """Per-ROI power in TISSUE_BAND of 128×128 regions in ``usable`` (image at 0.2 mm)."""
    return spectrum_stats(image, usable, roi_px=TISSUE_ROI_PX, nps_band=TISSUE_BAND).nps_hf


def power_spectrum_beta(image: np.ndarray, spacing_mm: float, mask: np.ndarray | None = None, *,
                        roi_px: int = ROI_PX, band: tuple[float, float] = BETA_BAND) -> SpectrumStats:
    """β of the breast's power spectrum, the shared/README.md way (reusable in tests).

    image: 2-D array at ``spacing_mm``, bright = dense (any scale: β does not depend on it).
    mask: where ROIs may lie (True = breast, same shape as ``image``); None segments the
        breast with :func:`breast_mask` (after resampling; labels and borders avoided).
    Resamples to 0.2 mm first. Returns every ROI's β: ``.beta_mean``, ``.beta_sd``, ``.n``
    (``n == 0`` and NaN mean when no 256×256 region fits).
    """
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {arr.shape}")
    if spacing_mm <= 0:
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
    lo, hi = float(arr.min()), float(arr.max())
    work = resample((arr - lo) / (hi - lo) if hi > lo else arr * 0.0, spacing_mm)
    if mask is None:
        usable = breast_mask(work, REALISM_SPACING_MM).usable
    else:
        if mask.shape != arr.shape:
            raise ValueError(f"mask shape {mask.shape} differs from image shape {arr.shape}")
        # A resampled pixel is usable only when everything it averages was.
        usable = resample(np.asarray(mask, dtype=np.float32), spacing_mm) > 0.999
    return spectrum_stats(work, usable, roi_px=roi_px, beta_band=band)


__all__ = ["BETA_BAND", "FINE_NPS_BAND", "FINE_SPACING_MM", "NPS_BAND", "REALISM_SPACING_MM", "ROI_PX", "TISSUE_BAND",
           "TISSUE_ROI_PX", "BreastMask", "SpectrumStats", "band_power", "breast_mask", "fit_beta",
           "power_spectrum_beta", "radial_power_spectrum", "resample", "roi_origins", "spectrum_stats",
           "tissue_power"]
