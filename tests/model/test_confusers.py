"""Unlabelled confusers: drawn into the line-integral map, deterministic, where they belong."""

from __future__ import annotations

import numpy as np
import pytest

from mammocad.model.synth.confusers import PICK_OFF_L, add_confusers


def _mask() -> np.ndarray:
    mask = np.zeros((400, 300), bool)
    mask[50:350, :200] = True
    return mask


def test_film_confusers_are_deterministic_and_crossings_stay_in_the_breast() -> None:
    a, b = np.zeros((400, 300)), np.zeros((400, 300))
    drawn_a = add_confusers(np.random.default_rng(3), a, _mask(), 0.1, "film", rate=3.0)
    drawn_b = add_confusers(np.random.default_rng(3), b, _mask(), 0.1, "film", rate=3.0)
    assert np.array_equal(a, b) and drawn_a == drawn_b
    kinds = {c.kind for c in drawn_a}
    assert {"dust", "fibrous_crossing"} <= kinds
    assert a.max() <= PICK_OFF_L + 3.0  # nothing brighter than clear film plus overlaps
    if "dark_spot" in kinds:
        assert a.min() < 0
    for c in drawn_a:
        if c.kind == "fibrous_crossing":
            assert _mask()[int(c.row), int(c.col)]
        assert set(c.to_dict()) == {"kind", "row", "col", "size_mm"}


def test_dust_is_sharp_and_dr_mode_has_no_film_defects() -> None:
    film = np.zeros((400, 300))
    drawn = add_confusers(np.random.default_rng(5), film, np.zeros((400, 300), bool), 0.05, "film", rate=4.0)
    dust = [c for c in drawn if c.kind == "dust"]
    assert dust
    r, c = int(dust[0].row), int(dust[0].col)
    assert film[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2].max() > 0.3  # -ln(0.7) at least, not blurred away
    dr = np.zeros((400, 300))
    kinds = {c.kind for c in add_confusers(np.random.default_rng(5), dr, _mask(), 0.1, "dr", rate=4.0)}
    assert kinds <= {"fibrous_crossing", "paddle_dust", "defective_pixel"}


def test_rate_zero_draws_nothing_and_bad_arguments_are_refused() -> None:
    img = np.zeros((100, 100))
    assert add_confusers(np.random.default_rng(1), img, np.ones((100, 100)), 0.1, "film", rate=0.0) == []
    assert not img.any()
    with pytest.raises(ValueError, match="mode"):
        add_confusers(np.random.default_rng(1), img, np.ones((100, 100)), 0.1, "cr")
    with pytest.raises(ValueError, match="mask shape"):
        add_confusers(np.random.default_rng(1), img, np.ones((10, 10)), 0.1, "film")
