"""Compose one view: anatomy + parenchyma + vessels + calcifications → attenuation 0..1.

The value model is that of a processed ("For Presentation") image in MONOCHROME2 sense:
background near 0, fat grey, fibroglandular tissue and pectoral muscle bright,
calcifications brightest. Peripheral equalisation is imitated by a soft fall-off of
brightness in the last centimetre before the skin.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from mammocad.model.synth.anatomy import Breast, view_maps
from mammocad.model.synth.calcifications import ClusterSpec
from mammocad.model.synth.raster import Box, render_cluster
from mammocad.model.synth.texture import (
    draw_curves,
    power_law_noise,
    radial_strands,
    upsample,
    vessel_curves,
)

TEXTURE_GRID_MM = 0.2


def compose_view(breast: Breast, view: str, shape: tuple[int, int], spacing: float,
                 rng: np.random.Generator,
                 clusters: list[tuple[ClusterSpec, tuple[float, float]]]) -> tuple[np.ndarray, list[Box | None]]:
    """Float image in the canonical frame and each cluster's box (None when not drawn).

    clusters: (spec, centre in mm as (row, col)) pairs.
    """
    maps = view_maps(breast, view, shape, spacing)
    thick = 1.0 - np.exp(-maps.edge_mm / 9.0)
    img = maps.mask * (0.26 + 0.14 * thick)
    img += maps.mask * thick * _background(breast, view, shape, spacing, rng)
    img += maps.mask * 0.05 * np.exp(-maps.edge_mm / 0.8)  # skin line
    img += maps.pectoral * (0.16 + 0.06 * _soft_gradient(shape))
    boxes = []
    for spec, (row_mm, col_mm) in clusters:
        centre_px = (row_mm / spacing - 0.5, col_mm / spacing - 0.5)
        boxes.append(render_cluster(img, spec, view, centre_px, spacing))
    img += rng.normal(0.0, 0.006, size=shape).astype(np.float32) * (0.3 + maps.mask)
    return np.clip(img, 0.0, 1.0).astype(np.float32), boxes


def _background(breast: Breast, view: str, shape: tuple[int, int], spacing: float,
                rng: np.random.Generator) -> np.ndarray:
    """Parenchyma and vessels, made on a grid of at least 0.2 mm and interpolated up.

    Texture statistics are then the same in mm whatever the output spacing, and a
    full-size image costs little more than a small one.
    """
    step = max(spacing, TEXTURE_GRID_MM)
    tex_shape = (max(int(round(shape[0] * spacing / step)), 8), max(int(round(shape[1] * spacing / step)), 8))
    depth, centre, half = breast.view_geometry(view)
    nipple = (centre / step, depth / step)
    tex = 0.85 * _parenchyma(breast.density, nipple, half / step, tex_shape, rng)
    curves = vessel_curves(rng, depth_px=nipple[1], half_height_px=half / step,
                           centre_row=nipple[0], count=int(rng.integers(3, 8)))
    tex += draw_curves(tex_shape, curves, rng.uniform(1.0, 2.2) / step, rng.uniform(0.035, 0.06))
    return tex if tex_shape == shape else upsample(tex, shape)


def _parenchyma(density: float, nipple: tuple[float, float], half_height_px: float,
                shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Fibroglandular tissue: thresholded 1/f^3 noise whose local fraction follows density."""
    rows, cols = shape
    nr, nc = nipple
    rr = (np.arange(rows, dtype=np.float32)[:, None] - nr) / max(half_height_px, 1.0)
    cc = np.arange(cols, dtype=np.float32)[None, :] / max(nc, 1.0)
    across = np.exp(-((rr + 0.1) / 0.6) ** 2)
    along = 0.35 + 0.65 * np.maximum(np.sin(np.pi * np.clip(0.15 + 0.75 * cc, 0.0, 1.0)), 0.0) ** 0.7
    frac = np.clip(density * 1.5 * across * along, 0.01, 0.97)
    noise = power_law_noise(shape, 3.0, rng, min_freq=4.0)
    fine = power_law_noise(shape, 2.2, rng, min_freq=8.0)
    gland = special.expit((noise + 0.35 * fine - special.ndtri(1.0 - frac)) / 0.35)
    strands = radial_strands(shape, nipple, rng)
    return (0.36 * gland + 0.035 * strands * (0.3 + across) + 0.02 * fine).astype(np.float32)


def _soft_gradient(shape: tuple[int, int]) -> np.ndarray:
    rows, cols = shape
    return (1.0 - np.arange(cols, dtype=np.float32)[None, :] / cols) * np.ones((rows, 1), np.float32)
