"""Synth v11's dense regions: they gather the gland without touching any truth of a seed."""

from __future__ import annotations

import numpy as np
import pytest

from mammocad.model import realism
from mammocad.model.realism_layout import layout_contrast
from mammocad.model.synth import generate_study, tissue
from mammocad.model.synth.anatomy import Breast
from mammocad.model.synth.film import FilmLabel, FilmSettings, acquire_film
from mammocad.model.synth.views import project_view

SPACING = 0.2


def _film_patch_contrast(density: float) -> float:
    breast = Breast.sample(np.random.default_rng(7), (200.0, 160.0), density, compression_rng=np.random.default_rng(8))
    proj = project_view(breast, "CC", (1000, 800), SPACING, np.random.default_rng(9), [], 19.0,
                        layout_rng=np.random.default_rng(10))
    img = acquire_film(proj.line_integral, proj.maps.mask, SPACING, FilmLabel("L", "CC"), np.random.default_rng(11),
                       FilmSettings.sample(np.random.default_rng(12)))
    mask = realism.breast_mask(img, SPACING)
    return layout_contrast(img, mask.breast, mask.usable)[0]


def _without_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tissue, "LAYOUT_COVERAGE", 0.0)
    monkeypatch.setattr(tissue, "LAYOUT_PEAK", 0.0)


def test_dense_regions_raise_the_patch_contrast_of_a_scattered_breast(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CBIS films: 0.084; synth v10 film 0.034. One density-B/C film view, the same draws."""
    with_layout = _film_patch_contrast(0.4)
    _without_layout(monkeypatch)
    even = _film_patch_contrast(0.4)
    assert even < 0.045 and with_layout > 1.5 * even, (even, with_layout)


def test_the_layout_leaves_every_truth_of_a_seed_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = [generate_study(i, seed=4242, spacing_mm=0.5) for i in range(3)]
    _without_layout(monkeypatch)
    even = [generate_study(i, seed=4242, spacing_mm=0.5) for i in range(3)]
    assert sum(len(a.lesions) for s in drawn for a in s.annotations) > 0
    for a, b in zip(drawn, even, strict=True):
        assert a.annotations == b.annotations
        assert not all(np.array_equal(x.pixel_array, y.pixel_array) for x, y in zip(a.datasets, b.datasets, strict=True))
