"""Digital (DR) acquisition: line integral → photons → detector → log → vendor processing.

The chain of a full-field digital mammography system, with every setting drawn per image:
1. primary transmission exp(−L) plus scatter (a wide blur of the primary, scatter-to-primary
   ratio 0.2–0.6 behind an anti-scatter grid);
2. quantum (Poisson) noise at a realistic dose: a few thousand photons per 0.1 mm pixel behind
   the breast, counted over the output pixel;
3. detector blur (MTF: a Gaussian core of 0.05–0.1 mm plus a little long-range glare, applied as
   a continuous transfer function so it is the same at every drawing spacing: ``mtf``) and
   electronic noise;
4. the log transform, then "For Presentation" processing: peripheral equalisation (the thin
   edge is lifted towards the interior's level), unsharp masking, and a window/gamma LUT.
``scatter_and_blur``/``exposure_of`` are shared with the film chain (``film``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, special

from mammocad.model.synth.mtf import gaussian_blur
from mammocad.model.synth.texture import upsample

#: Grid (mm) for the wide, smooth operations (scatter, peripheral equalisation).
COARSE_MM = 2.0


@dataclass(frozen=True)
class DrSettings:
    photons_behind: float  # mean photons per 0.1 mm pixel behind the breast
    scatter_to_primary: float
    scatter_sigma_mm: float
    mtf_sigma_mm: float
    glare: float  # fraction of signal spread by the long-range (Lorentzian-like) tail
    electronic: float  # electronic noise std, relative to the quantum std behind the breast
    equalisation: float  # 0 = none, 1 = the edge fully lifted to the interior's level
    unsharp_gain: float
    unsharp_sigma_mm: float
    gamma: float
    contrast: float  # slope of the sigmoid LUT

    @classmethod
    def sample(cls, rng: np.random.Generator) -> DrSettings:
        return cls(photons_behind=float(rng.uniform(3000, 8000)), scatter_to_primary=float(rng.uniform(0.2, 0.6)),
                   scatter_sigma_mm=float(rng.uniform(15, 35)), mtf_sigma_mm=float(rng.uniform(0.05, 0.1)),
                   glare=float(rng.uniform(0.02, 0.1)), electronic=float(rng.uniform(0.05, 0.3)),
                   equalisation=float(rng.uniform(0.5, 0.95)), unsharp_gain=float(rng.uniform(0.1, 0.6)),
                   unsharp_sigma_mm=float(rng.uniform(1.0, 4.0)), gamma=float(rng.uniform(0.8, 1.3)),
                   contrast=float(rng.uniform(2.5, 5.0)))


def coarse_blur(values: np.ndarray, spacing: float, sigma_mm: float) -> np.ndarray:
    """Gaussian blur of ``sigma_mm``, done on a grid of up to COARSE_MM (and at most σ/3) and interpolated back."""
    factor = max(int(min(COARSE_MM, sigma_mm / 3.0) / spacing), 1)
    rows, cols = values.shape
    pr, pc = (-rows) % factor, (-cols) % factor
    padded = np.pad(values, ((0, pr), (0, pc)), mode="edge")
    small = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).mean(axis=(1, 3))
    small = ndimage.gaussian_filter(small, sigma_mm / (spacing * factor), mode="nearest")
    return upsample(small, padded.shape)[:rows, :cols]


def exposure_of(line_integral: np.ndarray, mask: np.ndarray, spacing: float, spr: float,
                scatter_sigma_mm: float) -> np.ndarray:
    """Relative exposure (1 = open beam) at the detector: primary + scatter from the breast.

    Each ray scatters in proportion to what it loses, 1 − e^(−L), and what it keeps carries the
    scatter out: its source is primary × (1 − e^(−L)), SPR × primary in the thick middle. So
    the thinning rim scatters little, and an opaque skin marker there stays in shadow, white on
    film, as on real films. (Synth v2–v6 spread SPR × primary from every breast pixel, rim
    included: a lead BB on a fatty breast's rim got 1.5–1.7× the exposure the film was set for.)
    """
    primary = np.exp(-line_integral).astype(np.float32)
    source = primary * -np.expm1(-line_integral) * mask
    scatter = spr * coarse_blur(source.astype(np.float32), spacing, scatter_sigma_mm)
    return (primary + scatter).astype(np.float32)


def detector_blur(values: np.ndarray, spacing: float, sigma_mm: float, glare: float,
                  on_detector: np.ndarray | None = None) -> np.ndarray:
    """Gaussian core of ``sigma_mm`` plus a ``glare`` fraction spread over millimetres.

    on_detector: attenuation lying on the detector itself (dust, lint, defective pixels:
    ``confusers``), applied after the blur, which does not reach it.
    """
    core = gaussian_blur(values, spacing, sigma_mm)
    wide = coarse_blur(values, spacing, 1.5) if glare > 0 else values
    blurred = ((1.0 - glare) * core + glare * wide).astype(np.float32)
    if on_detector is not None:
        blurred *= np.exp(-on_detector).astype(np.float32)
    return blurred


def detect_dr(line_integral: np.ndarray, mask: np.ndarray, spacing: float, settings: DrSettings,
              rng: np.random.Generator, detector_layer: np.ndarray | None = None) -> np.ndarray:
    """Log signal −ln(counts / open-beam counts) of a DR detector, with its noise and blur.

    detector_layer: attenuation at the detector itself (defective pixels, ``confusers``),
    applied after the blur.
    """
    exposure = exposure_of(line_integral, mask, spacing, settings.scatter_to_primary, settings.scatter_sigma_mm)
    inside = mask > 0.99
    behind = float(np.median(exposure[inside])) if inside.any() else 0.3
    per_pixel = settings.photons_behind * (spacing / 0.1) ** 2
    n0 = per_pixel / max(behind, 1e-4)
    counts = rng.poisson(np.float64(n0) * exposure).astype(np.float32)
    counts = detector_blur(counts, spacing, settings.mtf_sigma_mm, settings.glare, detector_layer)
    counts += rng.normal(0.0, settings.electronic * np.sqrt(per_pixel), counts.shape).astype(np.float32)
    return (-np.log(np.maximum(counts, 1.0) / np.float32(n0))).astype(np.float32)


def present(log_signal: np.ndarray, mask: np.ndarray, spacing: float, settings: DrSettings) -> np.ndarray:
    """Vendor "For Presentation" processing of a log image → display values 0..1 (bright = dense)."""
    weight = (mask > 0.5).astype(np.float32)
    norm = coarse_blur(weight, spacing, 6.0)
    local = coarse_blur(log_signal * weight, spacing, 6.0) / np.maximum(norm, 1e-3)
    inner = weight * (norm > 0.9)
    ref = float(np.percentile(local[inner > 0], 40)) if inner.any() else float(local.max())
    lift = settings.equalisation * np.clip(ref - local, 0.0, None) * np.clip(norm * 2.0, 0.0, 1.0)
    img = log_signal + lift * weight
    blur = coarse_blur(img, spacing, settings.unsharp_sigma_mm)
    img = img + settings.unsharp_gain * (img - blur) * weight
    if weight.any():
        lo, hi = np.percentile(img[weight > 0], [0.5, 99.7])
    else:
        lo, hi = float(img.min()), float(img.max())
    x = np.clip((img - lo) / max(hi - lo, 1e-6), -0.5, 1.5)
    y = special.expit(settings.contrast * (x - 0.5))
    y0, y1 = special.expit(-settings.contrast * 0.5), special.expit(settings.contrast * 0.5)
    y = np.clip((y - y0) / (y1 - y0), 0.0, 1.0) ** settings.gamma
    return (0.04 + 0.92 * y).astype(np.float32) * np.clip(x * 4 + 0.2, 0.0, 1.0)
