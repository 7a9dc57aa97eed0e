"""Film scatter (synth v15): the scatter-to-primary ratio follows the compressed thickness behind the grid.

Screen-film screening units used the same moving grid as DR ones; Boone et al.'s fit
(``acquisition.scatter_to_primary``) divided by the grid's selectivity gives about 0.06–0.10 at
40 mm and 0.14–0.23 at 80 mm. Synth v2–v14 drew 0.2–0.6 whatever the breast's thickness.
"""

from __future__ import annotations

import numpy as np
import pytest

from mammocad.model.synth import generate
from mammocad.model.synth.acquisition import scatter_to_primary
from mammocad.model.synth.anatomy import Breast
from mammocad.model.synth.dicom_writer import PROFILES
from mammocad.model.synth.film import FilmView


def test_drawn_film_views_scatter_with_the_breasts_thickness_behind_a_grid() -> None:
    thin = [FilmView.sample(np.random.default_rng([3, k]), thickness_mm=40.0).scatter_to_primary for k in range(50)]
    thick = [FilmView.sample(np.random.default_rng([3, k]), thickness_mm=80.0).scatter_to_primary for k in range(50)]
    assert 0.05 <= min(thin) and max(thick) <= 0.25, (min(thin), max(thick))
    assert max(thin) <= 0.11 and min(thick) >= 0.13, (max(thin), min(thick))  # v2–v14: 0.2–0.6 for both
    assert np.median(thick) / np.median(thin) == pytest.approx(scatter_to_primary(80.0) / scatter_to_primary(40.0),
                                                               rel=0.01)
    assert all(b > a for a, b in zip(thin, thick, strict=True))  # the same draws, thicker: more scatter


def test_the_generator_hands_the_breasts_compressed_thickness_to_the_film_view(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``render_view`` draws the film's scatter for the breast it drew, as it does the DR exposure's."""
    seen: list[float] = []
    original = FilmView.sample.__func__  # type: ignore[attr-defined]

    def recording(cls: type[FilmView], rng: np.random.Generator, **kwargs: float) -> FilmView:
        seen.append(kwargs["thickness_mm"])
        return original(cls, rng, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(FilmView, "sample", classmethod(recording))
    film = next(p for p in PROFILES if p.secondary_capture)
    breast = Breast.sample(np.random.default_rng(1), (200.0, 160.0), 0.3, compression_rng=np.random.default_rng(2))
    generate.render_view(breast, "L", "CC", (200, 160), 1.0, np.random.default_rng(3), [], film)
    assert seen == [breast.thickness]
