"""Unlabelled confusers: deterministic, where they belong (anatomy in the line integral, defects
at the detector, applied after its blur)."""

from __future__ import annotations

import numpy as np
import pytest

from mammocad.model.synth.acquisition import DrSettings, detect_dr
from mammocad.model.synth.confusers import PICK_OFF_L, add_confusers


def _mask() -> np.ndarray:
    mask = np.zeros((400, 300), bool)
    mask[50:350, :200] = True
    return mask


def _draw(seed: int, mask: np.ndarray, spacing: float, mode: str, rate: float):  # type: ignore[no-untyped-def]
    line, layer = np.zeros(mask.shape), np.zeros(mask.shape)
    drawn = add_confusers(np.random.default_rng(seed), line, layer, mask, spacing, mode, rate=rate)
    return line, layer, drawn


def test_film_confusers_are_deterministic_and_crossings_stay_in_the_breast() -> None:
    line_a, layer_a, drawn_a = _draw(3, _mask(), 0.1, "film", 3.0)
    line_b, layer_b, drawn_b = _draw(3, _mask(), 0.1, "film", 3.0)
    assert np.array_equal(line_a, line_b) and np.array_equal(layer_a, layer_b) and drawn_a == drawn_b
    kinds = {c.kind for c in drawn_a}
    assert {"dust", "fibrous_crossing"} <= kinds
    assert line_a.min() >= 0 and line_a[_mask()].any()  # tissue crossings only: dark spots are at the film
    assert layer_a.max() <= PICK_OFF_L + 3.0  # nothing brighter than clear film plus overlaps
    if "dark_spot" in kinds:
        assert layer_a.min() < 0
    for c in drawn_a:
        if c.kind == "fibrous_crossing":
            assert _mask()[int(c.row), int(c.col)]
        assert set(c.to_dict()) == {"kind", "row", "col", "size_mm"}


def test_dust_is_sharp_and_dr_mode_has_no_film_defects() -> None:
    line, layer, drawn = _draw(5, np.zeros((400, 300), bool), 0.05, "film", 4.0)
    dust = [c for c in drawn if c.kind == "dust"]
    assert dust and not line.any()  # no breast: no crossings, and dust is never in the line integral
    r, c = int(dust[0].row), int(dust[0].col)
    assert layer[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2].max() > 0.3  # -ln(0.7) at least, not blurred away
    _, _, dr = _draw(5, _mask(), 0.1, "dr", 4.0)
    assert {c.kind for c in dr} <= {"fibrous_crossing", "paddle_dust", "defective_pixel", "skin_marker"}


def test_a_defect_at_the_detector_stays_sharper_than_the_same_attenuation_in_the_breast() -> None:
    """The detector's MTF blurs what the X-rays carry, not what lies on the detector."""
    shape, spacing = (64, 64), 0.05
    mask = np.ones(shape)
    settings = DrSettings(photons_behind=1e6, scatter_to_primary=0.0, scatter_sigma_mm=20.0, mtf_sigma_mm=0.1,
                          glare=0.0, electronic=0.0, equalisation=0.0, unsharp_gain=0.0, unsharp_sigma_mm=1.0,
                          gamma=1.0, contrast=3.0)
    base = np.full(shape, 2.0)
    speck = np.zeros(shape)
    speck[32, 32] = 1.0
    in_breast = detect_dr(base + speck, mask, spacing, settings, np.random.default_rng(0))
    at_detector = detect_dr(base, mask, spacing, settings, np.random.default_rng(0), detector_layer=speck)
    background = float(np.median(at_detector))
    assert at_detector[32, 32] - background > 0.9  # the full −ln(t) of the defect
    assert in_breast[32, 32] - background < 0.2  # spread over the MTF's σ = 2 pixels


def test_rate_zero_draws_nothing_and_bad_arguments_are_refused() -> None:
    line, layer, drawn = _draw(1, np.ones((100, 100), bool), 0.1, "film", 0.0)
    assert drawn == [] and not line.any() and not layer.any()
    img = np.zeros((100, 100))
    with pytest.raises(ValueError, match="mode"):
        add_confusers(np.random.default_rng(1), img, img.copy(), np.ones((100, 100)), 0.1, "cr")
    with pytest.raises(ValueError, match="mask shape"):
        add_confusers(np.random.default_rng(1), img, img.copy(), np.ones((10, 10)), 0.1, "film")
    with pytest.raises(ValueError, match="detector layer shape"):
        add_confusers(np.random.default_rng(1), img, np.zeros((10, 10)), np.ones((100, 100)), 0.1, "film")


def test_a_skin_marker_is_an_opaque_disc_on_the_breast_that_film_shows_bright(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lead BBs on the skin: a real film's BB drew a 0.98 mark from a detector that never saw one.

    The film's own marks (``film_marks``: a clear border up to 6 mm and ragged, scratches, labels)
    are left out of this film: they land wherever the generator's draws put them, and are as
    bright as clear film; with them, whether the BB beat the breast's 99th percentile hung on
    where a draw put a border (the screens' quanta changed the draws, synth v16, and a 6.4 mm
    border strip inside the compared region failed it)."""
    from mammocad.model.synth import film as film_module
    from mammocad.model.synth.confusers import MARKER_L_MAX, SKIN_MARKER_MM
    from mammocad.model.synth.film import FilmSettings, acquire_film
    from mammocad.model.synth.film_marks import FilmLabel

    monkeypatch.setattr(film_module, "add_marks", lambda density, *args, **kwargs: density)

    mask, spacing = _mask(), 0.1
    markers = []
    for seed in range(20):
        line, layer = np.where(mask, 3.0, 0.0), np.zeros(mask.shape)
        rng = np.random.default_rng(seed)
        markers = [c for c in add_confusers(rng, line, layer, mask, spacing, "film", rate=4.0)
                   if c.kind == "skin_marker"]
        if markers:
            break
    assert markers
    m = markers[0]
    r, c = int(round(m.row)), int(round(m.col))
    assert SKIN_MARKER_MM[0] <= m.size_mm <= SKIN_MARKER_MM[1]
    assert mask[r, c] and c > 2  # on the breast or its skin line, never on the chest-wall border
    radius = m.size_mm / 2 / spacing
    assert line[r, c] >= MARKER_L_MAX  # lead: opaque, capped
    near = np.hypot(*np.mgrid[-r:mask.shape[0] - r, -c:mask.shape[1] - c]) <= radius + 1
    opaque = (line >= 8.0) & near
    assert 0.75 * np.pi * radius ** 2 <= opaque.sum() <= 1.25 * np.pi * radius ** 2
    film = acquire_film(line, mask, spacing, FilmLabel("L", "CC"), rng, FilmSettings.sample(rng), layer)
    # Brighter than 99 % of the breast away from the film's edges.
    inner = np.zeros_like(mask)
    inner[50:-50, 50:-50] = mask[50:-50, 50:-50]
    assert film[r, c] > np.percentile(film[inner], 99) > np.median(film[inner])
