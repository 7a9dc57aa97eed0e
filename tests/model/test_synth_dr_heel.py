"""The heel effect on a DR image (synth v15): the flat-field takes it out of the signal, not out of the noise.

The raw beam fades 12–30 % from the chest wall (cathode) to 240 mm towards the nipple (anode);
a DR detector's gain calibration divides it out of the signal, leaving at most a few per cent,
but the nipple side was still counted from fewer quanta. Synth v2–v14 had no heel at all.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from mammocad.model.synth.acquisition import DrSettings, detect_dr, heel_profile

SPACING = 0.5
SHAPE = (200, 500)  # 100 × 250 mm
COLUMN_AT = {0.0: 0, 240.0: int(240 / SPACING) - 1}


def slab(settings: DrSettings, wall_left: bool = True) -> np.ndarray:
    """A uniform 50 mm slab (L = 3) covering the field, its chest wall on the left or right."""
    mask = np.ones(SHAPE, np.float32)
    mask[:, -10:] = 0.0  # the breast ends 5 mm short of the nipple-side edge
    line = np.where(mask > 0, 3.0, 0.0).astype(np.float32)
    if not wall_left:
        mask, line = mask[:, ::-1].copy(), line[:, ::-1].copy()
    quiet = dataclasses.replace(settings, scatter_to_primary=0.0, electronic=0.0, glare=0.0)
    return detect_dr(line, mask, SPACING, quiet, np.random.default_rng(4))


def band(image: np.ndarray, mm: float, wall_left: bool = True) -> np.ndarray:
    col = COLUMN_AT[mm] if wall_left else SHAPE[1] - 1 - COLUMN_AT[mm]
    return image[:, max(col - 5, 0):col + 6]


def base_settings(**heel: Any) -> DrSettings:
    return dataclasses.replace(DrSettings.sample(np.random.default_rng(0)), **heel)


@pytest.mark.parametrize("wall_left", [True, False])
def test_the_flat_field_removes_the_heel_from_the_signal_but_not_from_the_noise(wall_left: bool) -> None:
    image = slab(base_settings(heel_drop=0.25, heel_residual=0.0), wall_left)
    wall, nipple = band(image, 0.0, wall_left), band(image, 240.0, wall_left)
    assert abs(float(nipple.mean() - wall.mean())) < 0.004  # a 25 % fall would read −ln(0.75) = 0.29
    # 25 % fewer quanta at 240 mm: the noise is 1/√0.75 = 1.155× the chest wall's
    assert float(nipple.std() / wall.std()) == pytest.approx(1 / np.sqrt(0.75), rel=0.05)


def test_what_the_flat_field_leaves_is_the_residual_alone() -> None:
    """A 3 % under-correction: the nipple side reads −ln(0.97) = 0.030 denser than the chest wall."""
    image = slab(base_settings(heel_drop=0.25, heel_residual=0.03))
    shift = float(band(image, 240.0).mean() - band(image, 0.0).mean())
    assert shift == pytest.approx(-np.log(0.97), abs=0.004)


def test_drawn_heels_fall_by_the_published_amount_and_leave_a_few_per_cent() -> None:
    settings = [DrSettings.sample(np.random.default_rng([8, k])) for k in range(100)]
    drops = np.array([s.heel_drop for s in settings])
    residuals = np.array([s.heel_residual for s in settings])
    assert 0.12 <= drops.min() and drops.max() <= 0.30 and np.ptp(drops) > 0.1
    assert np.abs(residuals).max() <= 0.03 and residuals.min() < 0 < residuals.max()
    mask = np.ones((4, 600), np.float32)
    profile = heel_profile(mask, 0.4, 0.2)[0]
    assert profile[0] == pytest.approx(1.0, abs=1e-3) and profile[-1] == pytest.approx(0.8, abs=1e-3)
    assert np.all(np.diff(profile) <= 0) and profile[300] > 0.9  # steepest at the anode end
