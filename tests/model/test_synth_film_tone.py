"""Synthetic film's tone and dense regions against the CBIS-DDSM films (issue 9).

Synth v15's refit gland (``tissue.GLAND_PEAK``) lowered the dense regions' extra gland with it:
on the realism report's 8 film views of seed 5105 the brightest tissue (intensity p95) was 0.73
against the films' 0.87 and the patch contrast 0.67× theirs. ``tissue.LAYOUT_PEAK`` 1.2 with the
patchiness squared (``LAYOUT_DENSITY_POWER``) gives 0.85 and 0.93×. That peak asks for
fibroglandular fractions up to 3, and the hard clip at 1 left 8-25 % of a BI-RADS C breast's gland
pixels flat; ``tissue._saturate`` compresses them instead (LAYOUT_PEAK 1.4 keeps p95 and patch).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from mammocad.model import realism, realism_stats
from mammocad.model.realism_layout import layout_contrast
from mammocad.model.realism_report import realism_spec
from mammocad.model.realism_sources import default_real_folder
from mammocad.model.standardise import standardise
from mammocad.model.synth import generate_study, tissue
from mammocad.model.synth.anatomy import Breast, view_maps


def _tone(datasets: Sequence[Dataset]) -> tuple[dict[str, float], float]:
    """(pooled intensity percentiles in the usable breast, mean patch contrast), as the realism
    report computes them: each image standardised to 0.2 mm, its histogram weighing the same."""
    spec = realism_spec(0.05)
    hists, patches = [], []
    for ds in datasets:
        image = standardise(ds, spec).image
        mask = realism.breast_mask(image, realism.REALISM_SPACING_MM)
        hists.append(realism_stats.intensity_histogram(image, mask.usable))
        patches.append(layout_contrast(image, mask.breast, mask.usable)[0])
    return realism_stats.histogram_percentiles(np.mean(hists, axis=0)), float(np.nanmean(patches))


# About 30 s of CPU: two film studies drawn at 0.2 mm and the 8 real 4700-row films standardised.
@pytest.mark.timeout(900)
def test_film_views_are_as_bright_and_as_patchy_as_the_cbis_films() -> None:
    real = [pydicom.dcmread(p) for p in sorted(default_real_folder().rglob("*.dcm"))]
    assert len(real) == 8
    film: list[Dataset] = []
    for index in (0, 3):  # the film studies among seed 5105's first four: the report's 8 views
        drawn = generate_study(index, seed=5105, size="small")
        film += [ds for ds, a in zip(drawn.datasets, drawn.annotations, strict=True)
                 if a.extra["acquisition"] == "film"]
    assert len(film) == 8
    (syn, syn_patch), (films, real_patch) = _tone(film), _tone(real)
    # Before: p5 0.21 / p95 0.73 against 0.22 / 0.87, patch contrast 0.67× (0.057 against 0.084).
    assert abs(syn["p95"] - films["p95"]) <= 0.05, (syn["p95"], films["p95"])
    assert abs(syn["p5"] - films["p5"]) <= 0.05, (syn["p5"], films["p5"])
    assert 0.8 <= syn_patch / real_patch <= 1.25, (syn_patch, real_patch)


def test_the_saturation_keeps_every_fraction_apart_below_one() -> None:
    """A hard clip sent every fraction above 1 to 1; the soft map keeps them in order and under 1."""
    f = np.linspace(0.0, 4.0, 4001)
    out = tissue._saturate(f)
    below = f <= tissue.GLAND_KNEE
    np.testing.assert_array_equal(out[below], f[below])
    assert np.all(np.diff(out) > 0) and out.max() < 0.999
    assert tissue._saturate(np.array([-0.1]))[0] == 0.0


def test_a_heterogeneously_dense_breast_keeps_few_gland_pixels_at_a_fraction_of_one() -> None:
    """A BI-RADS C breast whose CC view had 31 % of its gland pixels (fraction ≥ 0.1) clipped at 1."""
    spacing, field = 0.2, (240.0, 192.0)
    shape = (int(field[0] / spacing), int(field[1] / spacing))
    breast = Breast.sample(np.random.default_rng(100), field, 0.55, compression_rng=np.random.default_rng(200))
    maps = view_maps(breast, "CC", shape, spacing)
    drawn = tissue.build_tissue(breast, "CC", maps, shape, spacing, np.random.default_rng(300),
                                np.random.default_rng(400))
    gland = drawn.glandular[(maps.mask > 0.5) & (maps.edge_mm > 3.0)]
    gland = gland[gland >= 0.1]
    flat = float(np.mean(gland >= 0.999))
    assert flat < 0.03, flat
    assert np.mean(gland >= 0.85) > 0.05  # the dense regions are still there, only not flat
