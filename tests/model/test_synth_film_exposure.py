"""Film exposure (synth v8): a photo-timer under the breast ends it, and little light spreads in the screen."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from mammocad.model.synth.film import (
    AEC_SENSOR_RADIUS_MM,
    FilmSettings,
    FilmView,
    acquire_film,
    aec_chamber,
    expose_film,
)
from mammocad.model.synth.film_marks import FilmLabel

SPACING = 0.2


def _breast(line_mid: float, wall_left: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A half-disc breast 120 mm deep on a 200 × 160 mm field: uniform ``line_mid`` in the middle,
    thinning to nothing over its outer 20 mm, chest wall on the left (or right)."""
    rows, cols = 1000, 800
    r, c = np.mgrid[:rows, :cols].astype(np.float32)
    dist = np.hypot((r - rows / 2) / 0.9, c) * SPACING  # mm from the middle of the chest wall
    mask = (dist <= 120.0).astype(np.float32)
    line = (line_mid * np.clip((120.0 - dist) / 20.0, 0.0, 1.0)).astype(np.float32) * mask
    if not wall_left:
        return np.ascontiguousarray(line[:, ::-1]), np.ascontiguousarray(mask[:, ::-1])
    return line, mask


def _settings(**changes: Any) -> FilmSettings:
    base = FilmSettings(gamma=3.8, d_min=0.2, d_max=3.9, d_target=1.0, screen_sigma_mm=0.08, screen_glare=0.008,
                        photons_behind=800.0, grain=0.02, scan_pitch_mm=0.05, scan_bits=12, scan_d_max=3.5)
    return dataclasses.replace(base, **changes)


VIEW = FilmView(scatter_to_primary=0.3, scatter_sigma_mm=25.0, sensor_from_wall_mm=40.0, aec_error_d=0.0)


@pytest.mark.parametrize("wall_left", [True, False])
def test_the_sensor_sits_under_the_breast_near_the_chest_wall(wall_left: bool) -> None:
    _, mask = _breast(3.0, wall_left)
    sensor = aec_chamber(mask, SPACING, 40.0)
    rows, cols = np.nonzero(sensor)
    from_wall = cols.mean() if wall_left else mask.shape[1] - 1 - cols.mean()
    assert abs(from_wall * SPACING - 40.0) < 1.0
    assert abs(rows.mean() - mask.shape[0] / 2) < 2
    assert abs(sensor.sum() - np.pi * (AEC_SENSOR_RADIUS_MM / SPACING) ** 2) < 0.05 * sensor.sum()
    assert (mask[sensor] > 0.99).all()


def test_a_short_breast_keeps_the_sensor_within_its_inner_half_and_no_breast_uses_the_field() -> None:
    mask = np.zeros((500, 400), dtype=np.float32)
    mask[200:300, :100] = 1.0  # 20 mm deep
    cols = np.nonzero(aec_chamber(mask, SPACING, 50.0))[1]
    assert cols.mean() <= 50
    assert aec_chamber(np.zeros((50, 40)), SPACING, 40.0).all()


def test_the_photo_timer_lands_fatty_and_dense_breasts_on_the_target_under_its_sensor() -> None:
    """A fixed exposure puts a dense breast 2 units of L (0.87 in log10 exposure) lower on the
    H&D curve than a fatty one: about 3 optical densities. The photo-timer ends each on the target."""
    settings = _settings(grain=0.0)
    medians = []
    for line_mid in (2.5, 4.5):
        line, mask = _breast(line_mid)
        density = expose_film(line, mask, SPACING, settings, VIEW, np.random.default_rng(3))
        sensor = aec_chamber(mask, SPACING, VIEW.sensor_from_wall_mm)
        assert abs(float(density[sensor].mean()) - settings.d_target) < 0.05
        medians.append(float(np.median(density[mask > 0.99])))
    assert abs(medians[0] - medians[1]) < 0.5  # the thinning rims differ, not the exposure


def test_the_photo_timer_error_moves_the_density_under_the_sensor() -> None:
    line, mask = _breast(3.5)
    sensor = aec_chamber(mask, SPACING, VIEW.sensor_from_wall_mm)
    settings = _settings(grain=0.0)
    over = expose_film(line, mask, SPACING, settings, dataclasses.replace(VIEW, aec_error_d=0.15),
                       np.random.default_rng(3))
    assert abs(float(over[sensor].mean()) - (settings.d_target + 0.15)) < 0.05


def _marker_contrast(line_mid: float, from_wall_mm: float, glare: float) -> float:
    """Film value at a 2 mm lead BB on the breast's lower edge ``from_wall_mm`` from the chest
    wall, minus the 95th percentile of the ring 3-13 px outside it."""
    line, mask = _breast(line_mid)
    rr, cc = np.mgrid[:mask.shape[0], :mask.shape[1]]
    row = mask.shape[0] / 2 + 250
    col = float(np.sqrt((from_wall_mm / SPACING) ** 2 - ((row - mask.shape[0] / 2) / 0.9) ** 2))
    radius = 1.0 / SPACING
    dist = np.hypot(rr - row, cc - col)
    line = line.copy()
    line[dist <= radius] = 20.0
    film = acquire_film(line, mask, SPACING, FilmLabel("L", "CC"), np.random.default_rng(5),
                        _settings(screen_glare=glare))
    ring = film[(dist > radius + 3) & (dist < radius + 3 + 2.0 / SPACING)]
    return float(film[int(row), int(col)]) - float(np.percentile(ring, 95))


def test_a_lead_marker_on_the_thin_rim_of_a_fatty_breast_stays_white_on_film() -> None:
    """The rim of a fatty breast gets far more light than the photo-timer ended on and burns out;
    a lead BB there passes only scatter and the screen's spread light, so the film shows it white
    against the black rim. Synth v2-v7 set the exposure for the breast's thickness, not by a
    sensor, and such markers went as dark as the rim (DATASETS.md, "Film exposure")."""
    assert _marker_contrast(2.5, 112.0, 0.008) > 0.3


def test_a_lead_marker_in_the_open_beam_beside_a_dense_breast_stays_white_on_film() -> None:
    """Beside a dense 6 cm breast (L = 5.5) the open beam is about 190 times what the photo-timer
    ends on: 5 % spread light (synth v2-v7) fills a BB there to the black of the open beam. Real
    films show such markers white, so the screen's spread light is nearer 1 % (0.3-1.2 % drawn)."""
    assert _marker_contrast(5.5, 124.0, 0.008) > 0.2
    assert _marker_contrast(5.5, 124.0, 0.05) < 0.1
