"""DR scatter (synth v15): the scatter-to-primary ratio follows the compressed thickness and the grid.

Published: without a grid about 0.3–0.5 at 4 cm rising to 0.6–1.0 at 8 cm (Boone, Lindfors, Cooper
& Seibert, Med. Phys. 27 (2000) 2408; Dance); a mammography grid (selectivity about 5.6, Xia et al.
2005) leaves about 0.05–0.25. Synth v2–v14 drew 0.2–0.6 whatever the thickness.
"""

from __future__ import annotations

import numpy as np
import pytest

from mammocad.model.synth import generate
from mammocad.model.synth.acquisition import DrSettings, scatter_to_primary
from mammocad.model.synth.anatomy import Breast
from mammocad.model.synth.dicom_writer import PROFILES


def boone_by_hand(thickness_cm: float, diameter_cm: float) -> float:
    """Boone et al.'s fit, SPR = 1 / (a + b·D^−1.5 + c·T^−0.5), written out from their abstract."""
    return 1.0 / (-2.35452817439093 + 22.3960980055927 * diameter_cm ** -1.5 + 8.85064260299289 * thickness_cm ** -0.5)


@pytest.mark.parametrize(("thickness_mm", "low", "high"), [(40.0, 0.3, 0.5), (60.0, 0.5, 0.8), (80.0, 0.6, 1.0)])
def test_without_a_grid_the_ratio_is_boones_and_grows_with_thickness(thickness_mm: float, low: float,
                                                                    high: float) -> None:
    spr = scatter_to_primary(thickness_mm)
    assert spr == pytest.approx(boone_by_hand(thickness_mm / 10, 19.3), rel=1e-3)
    assert low <= spr <= high, spr


def test_the_grid_divides_it_by_its_selectivity_and_bad_values_are_refused() -> None:
    assert scatter_to_primary(52.0, selectivity=5.6) == pytest.approx(scatter_to_primary(52.0) / 5.6)
    assert scatter_to_primary(52.0, diameter_mm=120.0) < scatter_to_primary(52.0, diameter_mm=275.0)  # bigger field
    with pytest.raises(ValueError, match="thickness_mm must be within 20–80 mm"):
        scatter_to_primary(95.0)
    with pytest.raises(ValueError, match="selectivity is at least 1"):
        scatter_to_primary(52.0, selectivity=0.5)


def test_drawn_exposures_scatter_with_the_breasts_thickness_behind_a_grid() -> None:
    """Every contact view has its grid in: 0.05–0.25; a thick breast's haze is about twice a thin one's."""
    thin = [DrSettings.sample(np.random.default_rng([3, k]), thickness_mm=40.0).scatter_to_primary for k in range(50)]
    thick = [DrSettings.sample(np.random.default_rng([3, k]), thickness_mm=80.0).scatter_to_primary for k in range(50)]
    assert 0.05 <= min(thin) and max(thick) <= 0.25, (min(thin), max(thick))
    assert np.median(thick) / np.median(thin) == pytest.approx(0.963 / 0.428, rel=0.15)
    assert all(b > a for a, b in zip(thin, thick, strict=True))  # the same draws, thicker: more scatter


def test_the_generator_hands_the_breasts_compressed_thickness_to_the_dr_exposure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``render_view`` draws the DR exposure for the breast it drew, not for an average one."""
    seen: list[float] = []
    original = DrSettings.sample.__func__  # type: ignore[attr-defined]

    def recording(cls: type[DrSettings], rng: np.random.Generator, **kwargs: float) -> DrSettings:
        seen.append(kwargs["thickness_mm"])
        return original(cls, rng, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(DrSettings, "sample", classmethod(recording))
    dr = next(p for p in PROFILES if not p.secondary_capture)
    breast = Breast.sample(np.random.default_rng(1), (200.0, 160.0), 0.3, compression_rng=np.random.default_rng(2))
    generate.render_view(breast, "L", "CC", (200, 160), 1.0, np.random.default_rng(3), [], dr)
    assert seen == [breast.thickness]
