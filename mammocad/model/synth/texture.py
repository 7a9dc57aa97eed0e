"""Background structures of a synthetic mammogram: parenchyma and vessels.

Real breast parenchyma has a power-law spectrum (P(f) ~ 1/f^beta, beta close to 3), so
that is what the texture is made of; vessels are smooth, bright, slowly curving lines.
Everything works on float32 arrays in the *canonical frame* (chest wall at column 0).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def power_law_noise(shape: tuple[int, int], beta: float, rng: np.random.Generator,
                    *, min_freq: float = 2.0, aniso: float = 1.0) -> np.ndarray:
    """Zero-mean, unit-std noise with spectrum 1/f^beta (f in cycles per longest side).

    min_freq caps the largest structures (else one blob fills the breast);
    aniso > 1 stretches structures along the columns (x axis).
    """
    rows, cols = shape
    scale = float(max(rows, cols))
    fy = np.fft.fftfreq(rows)[:, None] * scale
    fx = np.fft.rfftfreq(cols)[None, :] * scale * aniso
    f = np.sqrt(fx * fx + fy * fy)
    amp = (np.maximum(f, min_freq)) ** (-beta / 2.0)
    phase = rng.uniform(0, 2 * np.pi, size=amp.shape)
    spec = amp * np.exp(1j * phase)
    spec[0, 0] = 0.0
    out = np.fft.irfft2(spec, s=shape).astype(np.float32)
    out -= out.mean()
    std = float(out.std())
    return out / (std if std > 0 else 1.0)


def radial_strands(shape: tuple[int, int], nipple: tuple[float, float],
                   rng: np.random.Generator) -> np.ndarray:
    """Streaks converging on the nipple (ducts, Cooper's ligaments), zero mean, unit std.

    Made as anisotropic noise in (radius, angle) space and warped back to the image.
    """
    rows, cols = shape
    small = (256, 256)
    polar = power_law_noise(small, 2.6, rng, min_freq=3.0, aniso=0.25)
    yy, xx = np.mgrid[0:rows:4, 0:cols:4].astype(np.float32)
    dy, dx = yy - nipple[0], xx - nipple[1]
    radius = np.sqrt(dx * dx + dy * dy) / max(rows, cols) * (small[1] - 1)
    angle = (np.arctan2(dy, -dx) / np.pi + 1.0) * 0.5 * (small[0] - 1)
    low = ndimage.map_coordinates(polar, [angle, radius], order=1, mode="wrap")
    return upsample(low, shape)


def upsample(low: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    zoom = (shape[0] / low.shape[0], shape[1] / low.shape[1])
    up = ndimage.zoom(low, zoom, order=1)
    out = np.zeros(shape, dtype=np.float32)
    r, c = min(shape[0], up.shape[0]), min(shape[1], up.shape[1])
    out[:r, :c] = up[:r, :c]
    if r < shape[0]:
        out[r:, :] = out[r - 1:r, :]
    if c < shape[1]:
        out[:, c:] = out[:, c - 1:c]
    return out


def vessel_curves(rng: np.random.Generator, *, depth_px: float, half_height_px: float,
                  centre_row: float, count: int) -> list[np.ndarray]:
    """Smooth polylines (N×2 as row, col) from near the chest wall toward the nipple."""
    curves = []
    for _ in range(count):
        n = 200
        t = np.linspace(0.0, 1.0, n)
        start_row = centre_row + rng.uniform(-0.7, 0.7) * half_height_px
        end_row = centre_row + rng.uniform(-0.4, 0.4) * half_height_px
        length = rng.uniform(0.4, 0.9) * depth_px
        col = rng.uniform(0.0, 0.15) * depth_px + t * length
        bend = rng.normal(0, 0.06) * half_height_px * np.sin(np.pi * t * rng.uniform(0.8, 2.2))
        row = start_row + (end_row - start_row) * t + bend
        curves.append(np.stack([row, col], axis=1))
    return curves


def draw_curves(shape: tuple[int, int], curves: list[np.ndarray], width_px: float,
                amplitude: float) -> np.ndarray:
    """Render curves as soft bright lines of Gaussian profile ``width_px`` wide (FWHM)."""
    layer = np.zeros(shape, dtype=np.float32)
    for curve in curves:
        seg = np.diff(curve, axis=0)
        length = float(np.sum(np.sqrt((seg ** 2).sum(axis=1))))
        n = max(int(length * 2), 2)
        t = np.linspace(0, len(curve) - 1, n)
        rows = np.interp(t, np.arange(len(curve)), curve[:, 0])
        cols = np.interp(t, np.arange(len(curve)), curve[:, 1])
        taper = np.linspace(1.0, 0.4, n)
        ri, ci = np.round(rows).astype(int), np.round(cols).astype(int)
        ok = (ri >= 0) & (ri < shape[0]) & (ci >= 0) & (ci < shape[1])
        np.add.at(layer, (ri[ok], ci[ok]), taper[ok] * 0.5)
    sigma = max(width_px / 2.355, 0.6)
    layer = ndimage.gaussian_filter(layer, sigma)
    peak = 1.0 / (np.sqrt(2 * np.pi) * sigma)
    return np.minimum(layer / peak, 1.5) * amplitude
