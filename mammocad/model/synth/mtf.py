"""Blurs applied as continuous transfer functions, so that they are the same at every drawing spacing.

Why not ``ndimage.gaussian_filter``: a detector's or screen's blur (σ 0.05–0.12 mm) is a quarter
to half a pixel at 0.2 mm, where a sampled Gaussian kernel hardly blurs at all. Drawn at 0.2 mm,
synth v2's noise kept 1.9× the power at 1.5–2.5 cycles/mm it kept drawn at 0.1 mm
(MODEL_CARD.md, "Working resolution"). Multiplying the spectrum by the continuous MTF
``exp(−2π²σ²f²)`` blurs by the same amount in millimetres whatever the pixel size.

``resampling_mtf`` is the other half: every real image reaches the detector through the
standardiser's anti-aliased bilinear resize (``standardise._resize``), a separable tent one
output pixel wide on each side, whose transfer is ``sinc²(f·s)`` per axis. An image drawn at a
pitch coarser than the detector's own is that resize's output, so it carries that transfer.
"""

from __future__ import annotations

import numpy as np
from scipy import fft

#: Below this, a σ (mm) blurs nothing a pixel ≥ 0.03 mm can hold.
MIN_SIGMA_MM = 1e-4


def apply_mtf(values: np.ndarray, spacing: float, *, gaussian_sigma_mm: float = 0.0,
              tent_mm: float = 0.0, box_mm: float = 0.0, light_spread_mm: float = 0.0) -> np.ndarray:
    """``values`` through a Gaussian blur of ``gaussian_sigma_mm``, a tent resize of ``tent_mm``,
    a square aperture ``box_mm`` wide (transfer ``sinc(f·a)`` per axis) and a scintillator's
    light spread of length ``light_spread_mm`` (``light_spread_transfer``).

    All are applied in one Fourier pass on an edge-reflected pad wide enough that the
    periodic wrap of the transform never reaches the image. Returns float32, same shape.
    """
    sigma = max(float(gaussian_sigma_mm), 0.0)
    tent = max(float(tent_mm), 0.0)
    box = max(float(box_mm), 0.0)
    spread = max(float(light_spread_mm), 0.0)
    arr = np.asarray(values, dtype=np.float32)
    if sigma < MIN_SIGMA_MM and tent <= 0.0 and box <= 0.0 and spread < MIN_SIGMA_MM:
        return arr.copy()
    # The light spread's kernel K0(r/λ) falls as exp(−r/λ)/√r: beyond 12 λ lies 3e-5 of it (12·K1(12)).
    margin = int(np.ceil((4.0 * sigma + 2.0 * tent + box + 12.0 * spread) / spacing)) + 2
    rows, cols = arr.shape
    shape = (fft.next_fast_len(rows + 2 * margin, real=True), fft.next_fast_len(cols + 2 * margin, real=True))
    pad = ((margin, shape[0] - rows - margin), (margin, shape[1] - cols - margin))
    spectrum = fft.rfft2(np.pad(arr, pad, mode="reflect"))
    fy = np.fft.fftfreq(shape[0], d=spacing).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(shape[1], d=spacing).astype(np.float32)[None, :]
    transfer = np.exp(np.float32(-2.0 * np.pi ** 2 * sigma ** 2) * (fy ** 2 + fx ** 2))
    if tent > 0.0:
        transfer = transfer * (np.sinc(fy * tent) ** 2 * np.sinc(fx * tent) ** 2).astype(np.float32)
    if box > 0.0:
        transfer = transfer * (np.sinc(fy * box) * np.sinc(fx * box)).astype(np.float32)
    if spread >= MIN_SIGMA_MM:
        transfer = transfer * light_spread_transfer(np.sqrt(fy ** 2 + fx ** 2), spread)
    out = fft.irfft2(spectrum * transfer, s=shape)
    return np.ascontiguousarray(out[margin:margin + rows, margin:margin + cols], dtype=np.float32)


def light_spread_transfer(freq: np.ndarray | float, length_mm: float) -> np.ndarray:
    """``1 / (1 + (2π·λ·f)²)``: the transfer of a CsI:Tl scintillator's light spread of length ``λ``.

    Its line spread is ``exp(−|x|/λ) / 2λ`` (point spread ``K0(r/λ) / 2πλ²``): light fanning out
    down the needles and across them near the photodiodes. Ghetti et al. (Med. Phys. 35 (2008) 456,
    GE Senographe Essential, 100 µm CsI/a-Si, edge presampling MTF at RQA-M2) measured 0.85, 0.59
    and 0.24 at 1, 2 and 4 cycles/mm: the log MTF bends down between 0 and 2 cycles/mm and then falls
    about linearly. This form over the del's sinc, with λ = 0.059 mm (1 / 2πλ = 2.7 cycles/mm) and a
    2 % glare, gives 0.85, 0.59, 0.38 and 0.23 at 1 to 4 cycles/mm. Synth v15's Cauchy spread
    (``exp(−2π·b·f)``, log MTF linear from 0) cannot: with any Gaussian core and glare ≥ 0, the one
    that keeps their 2 and 4 cycles/mm keeps at most 0.73 at 1, and the one that keeps 1 and 2 keeps
    0.15 at 4.
    """
    f = np.asarray(freq, dtype=np.float32)
    return (1.0 / (1.0 + (np.float32(2.0 * np.pi * length_mm) * f) ** 2)).astype(np.float32)


def gaussian_blur(values: np.ndarray, spacing: float, sigma_mm: float) -> np.ndarray:
    """The continuous Gaussian blur of ``sigma_mm``, exact at any ``spacing`` (no sub-pixel cut-off)."""
    return apply_mtf(values, spacing, gaussian_sigma_mm=sigma_mm)


def aperture_blur(values: np.ndarray, spacing: float, aperture_mm: float) -> np.ndarray:
    """A scanner's square sampling aperture ``aperture_mm`` wide, exact at any ``spacing``.

    Each scanned pixel averages the film under its aperture, a box as wide as the pitch, whose
    transfer ``sinc(f·a)`` keeps 0.76 at 2 cycles/mm for a 0.2 mm pitch. Synth v2-v12 drew it as
    a Gaussian of σ = a/2 (0.45 there), 1.7 times the blur of the box's own σ (a/√12).
    """
    return apply_mtf(values, spacing, box_mm=aperture_mm)


def resampling_tent_mm(spacing: float, native_pitch_mm: float) -> float:
    """The tent of the resize from the detector's ``native_pitch_mm`` to ``spacing``; 0 when not coarser.

    A drawing within 1.5× of the native pitch stands for the native image itself (the
    standardiser resizes it once, later); a coarser one stands for its resize.
    """
    return float(spacing) if spacing > 1.5 * native_pitch_mm else 0.0


def resampling_mtf(values: np.ndarray, spacing: float, native_pitch_mm: float) -> np.ndarray:
    """``values`` as the standardiser's resize from ``native_pitch_mm`` would have left them."""
    tent = resampling_tent_mm(spacing, native_pitch_mm)
    return apply_mtf(values, spacing, tent_mm=tent) if tent else np.asarray(values, dtype=np.float32)


__all__ = ["aperture_blur", "apply_mtf", "gaussian_blur", "light_spread_transfer", "resampling_mtf",
           "resampling_tent_mm"]
