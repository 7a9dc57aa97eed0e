"""The heel effect on film (synth v15): all of it stays in the film's exposure.

The raw beam fades 12–30 % from the chest wall (cathode) to 240 mm towards the nipple (anode,
``acquisition.heel_profile``). A DR detector's flat-field divides it out of the signal; a
screen-film cassette has nothing that does, so the nipple side gets that much less exposure and
develops lighter. Synth v2–v14's film had no heel at all.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import special

from mammocad.model.synth.acquisition import HEEL_DROP
from mammocad.model.synth.film import FilmSettings, FilmView, expose_film

SPACING = 0.5
SHAPE = (200, 500)  # 100 × 250 mm
VIEW = FilmView(scatter_to_primary=0.0, scatter_sigma_mm=25.0, sensor_from_wall_mm=40.0, aec_error_d=0.0)
SETTINGS = FilmSettings(gamma=3.8, d_min=0.2, d_max=3.9, d_target=1.6, screen_sigma_mm=0.08, screen_glare=0.0,
                        photons_behind=1e6, grain=0.0, scan_pitch_mm=0.05, scan_bits=12, scan_d_max=3.5)


def log_exposure_along(settings: FilmSettings, wall_left: bool) -> tuple[float, float]:
    """log10 exposure, read back through the film's H&D curve, at the chest wall and 240 mm from it,
    on a film of a uniform slab (L = 3) covering the field (up to an offset common to both)."""
    mask = np.ones(SHAPE, np.float32)
    mask[:, -10:] = 0.0  # the breast ends 5 mm short of the nipple-side edge (that side is the anode's)
    line = np.full(SHAPE, 3.0, np.float32)  # attenuated beyond it too: no open-beam edge to blur
    if not wall_left:
        mask, line = mask[:, ::-1].copy(), line[:, ::-1].copy()
    density = expose_film(line, mask, SPACING, settings, VIEW, np.random.default_rng(4))
    span = settings.d_max - settings.d_min
    log_e = special.logit((density.astype(np.float64) - settings.d_min) / span) * span / (4.0 * settings.gamma)
    wall, nipple = (0, int(240 / SPACING) - 1) if wall_left else (SHAPE[1] - 1, SHAPE[1] - int(240 / SPACING))
    return float(log_e[:, wall].mean()), float(log_e[:, nipple].mean())


@pytest.mark.parametrize("wall_left", [True, False])
def test_the_whole_heel_stays_in_the_films_exposure(wall_left: bool) -> None:
    wall, nipple = log_exposure_along(dataclasses.replace(SETTINGS, heel_drop=0.25), wall_left)
    assert nipple - wall == pytest.approx(np.log10(0.75), abs=0.005)  # a 25 % fall: −0.125 in log10
    flat_wall, flat_nipple = log_exposure_along(SETTINGS, wall_left)
    assert flat_nipple - flat_wall == pytest.approx(0.0, abs=0.005)  # no heel, no fall


def test_an_exams_films_share_their_tubes_heel_drawn_as_dr_draws_it() -> None:
    drops = np.array([FilmSettings.sample(np.random.default_rng([8, k])).heel_drop for k in range(100)])
    assert HEEL_DROP[0] <= drops.min() and drops.max() <= HEEL_DROP[1] and np.ptp(drops) > 0.1
