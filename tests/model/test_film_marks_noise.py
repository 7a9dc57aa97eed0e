"""Labels and the clear border carry the film's grain at their density (synth v15).

The CBIS-DDSM scans' clearest film (0.91-0.94 of full scale, burned-in labels and clear margins)
shows a residual noise of about 65-100 of 65535, measured as ``test_film_grain`` measures it.
Synth v2-v14 stamped labels, ID blocks and the clear border over the grain at one exact density:
after the digitiser, only its quantisation was left there.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mammocad.model.synth.film import FilmSettings, acquire_film, add_grain, digitise
from mammocad.model.synth.film_marks import FilmLabel

SPACING = 0.05
FULL = 65535.0
SETTINGS = FilmSettings(gamma=3.8, d_min=0.2, d_max=3.9, d_target=1.4, screen_sigma_mm=0.08, screen_glare=0.008,
                        photons_behind=800.0, grain=0.025, scan_pitch_mm=0.05, scan_bits=16, scan_d_max=3.5)


def residual_std(values: np.ndarray, where: np.ndarray) -> float:
    """Robust std of each pixel's residual to its 4-neighbour mean, over ``where`` (stored units)."""
    v = values.astype(np.float64) * FULL
    resid = v[1:-1, 1:-1] - 0.25 * (v[:-2, 1:-1] + v[2:, 1:-1] + v[1:-1, :-2] + v[1:-1, 2:])
    part = resid[where[1:-1, 1:-1]]
    assert part.size > 2000, part.size
    return float(1.4826 * np.median(np.abs(part - np.median(part))))


def clear_film(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A film of a small breast (chest wall left) with its marks, and where it is clear film:
    at the base's density and well inside a label, ID block or border."""
    rows, cols = 1400, 1100  # 70 × 55 mm
    r, c = np.mgrid[:rows, :cols].astype(np.float32)
    mask = (np.hypot((r - rows / 2) / 1.3, c) * SPACING <= 25.0).astype(np.float32)
    line = (3.5 * mask).astype(np.float32)
    film = acquire_film(line, mask, SPACING, FilmLabel("L", "CC"), np.random.default_rng(seed), SETTINGS)
    clear_value = 1.0 - SETTINGS.d_min / SETTINGS.scan_d_max
    near = np.abs(ndimage.uniform_filter(film.astype(np.float64), 15) - clear_value) < 0.002
    return film, ndimage.binary_erosion(near, iterations=4)


@pytest.mark.parametrize("seed", [1, 2])
def test_clear_film_under_labels_and_borders_shows_the_films_grain(seed: int) -> None:
    film, clear = clear_film(seed)
    flat = np.full((400, 400), SETTINGS.d_min, np.float32)  # the grain and scan of plain clear film
    rng = np.random.default_rng(0)
    expected = residual_std(digitise(add_grain(flat, SETTINGS, SPACING, rng), SPACING, SETTINGS, rng),
                            np.ones(flat.shape, bool))
    seen = residual_std(film, clear)
    assert seen == pytest.approx(expected, rel=0.15), (seen, expected)  # synth v2-v14: about 1 (quantisation)
    assert 30 <= seen <= 200, seen  # the CBIS-DDSM films' clearest film: about 65-100
