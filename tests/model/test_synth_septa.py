"""Synth v12's septa: curved bright lines on the walls between fat lobules, no truth touched."""

from __future__ import annotations

import numpy as np
import pytest

from mammocad.model import realism, realism_shape
from mammocad.model.synth import generate_study, tissue
from mammocad.model.synth.anatomy import Breast
from mammocad.model.synth.film import FilmLabel, FilmSettings, acquire_film
from mammocad.model.synth.texture import lobule_cells
from mammocad.model.synth.views import project_view

SPACING = 0.2


def _film_curvature_shape(density: float) -> tuple[float, float]:
    breast = Breast.sample(np.random.default_rng(7), (200.0, 160.0), density, compression_rng=np.random.default_rng(8))
    proj = project_view(breast, "CC", (1000, 800), SPACING, np.random.default_rng(9), [], 19.0,
                        layout_rng=np.random.default_rng(10))
    img = acquire_film(proj.line_integral, proj.maps.mask, SPACING, FilmLabel("L", "CC"), np.random.default_rng(11),
                       FilmSettings.sample(np.random.default_rng(12)))
    return realism_shape.curvature_shape(img, realism.breast_mask(img, SPACING).usable)


def test_septa_lie_on_the_walls_between_lobules() -> None:
    cells = lobule_cells((300, 300), SPACING, 12.0, np.random.default_rng(3), warp=0.25)
    septa = tissue._septa(cells.gap_mm, 12.0, (300, 300), SPACING, np.random.default_rng(4))
    on_wall, in_lobule = septa[cells.gap_mm < 0.1], septa[cells.gap_mm > 1.5]
    assert on_wall.size and in_lobule.size
    assert float(on_wall.mean()) > 20 * float(in_lobule.mean()), (on_wall.mean(), in_lobule.mean())
    assert 0.0 <= float(septa.min()) and float(septa.max()) < 3 * tissue.SEPTA_PATH_MM
    # Fragmented: stretches of wall fade where the sheet is tilted to the beam.
    assert float(np.mean(on_wall < 0.2 * tissue.SEPTA_PATH_MM)) > 0.05


def test_septa_turn_a_scattered_breasts_texture_from_blobs_to_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CBIS films: line share 0.373, blob share 0.044 (``test_synth``'s figures). One density-B/C
    film view, the same draws with and without the septa: 0.424 / 0.045 against 0.377 / 0.064."""
    line, blob = _film_curvature_shape(0.4)
    monkeypatch.setattr(tissue, "SEPTA_PATH_MM", 0.0)
    bare_line, bare_blob = _film_curvature_shape(0.4)
    assert line > bare_line + 0.025 and blob < bare_blob - 0.01, (line, bare_line, blob, bare_blob)


def test_the_septa_leave_every_truth_of_a_seed_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = [generate_study(i, seed=4243, spacing_mm=0.5) for i in range(3)]
    monkeypatch.setattr(tissue, "SEPTA_PATH_MM", 0.0)
    bare = [generate_study(i, seed=4243, spacing_mm=0.5) for i in range(3)]
    assert sum(len(a.lesions) for s in drawn for a in s.annotations) > 0
    for a, b in zip(drawn, bare, strict=True):
        assert a.annotations == b.annotations
        assert not all(np.array_equal(x.pixel_array, y.pixel_array) for x, y in zip(a.datasets, b.datasets, strict=True))
