"""Synthetic film's noise and tone against the 8 CBIS-DDSM films (issue 9), the realism report's way.

The report's film views (``mammocad model realism --seed 5105 --studies 4 --acquisition film``:
the film studies 0 and 3, 8 views drawn at 0.2 mm) measured as it measures them: each image
standardised to 0.2 mm, the breast mask's usable part, ROIs and histograms as in
``realism_report.measure_image``. Synth v16 before these changes: noise power at 1.5-2.5
cycles/mm 1.51× the films'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from mammocad.model import realism, realism_stats
from mammocad.model.realism_layout import layout_contrast
from mammocad.model.realism_report import realism_spec
from mammocad.model.realism_sources import default_real_folder
from mammocad.model.standardise import standardise
from mammocad.model.synth import generate_study


@dataclass(frozen=True)
class Tone:
    """One side's figures: pooled intensity percentiles, mean NPS, mean patch and roll-off contrast."""

    percentiles: dict[str, float]
    nps: float
    patch: float
    rolloff: float


def _tone(datasets: Sequence[Dataset]) -> Tone:
    spec = realism_spec(0.05)
    hists, layouts = [], []
    nps: list[float] = []
    for ds in datasets:
        image = standardise(ds, spec).image
        mask = realism.breast_mask(image, realism.REALISM_SPACING_MM)
        hists.append(realism_stats.intensity_histogram(image, mask.usable))
        nps += realism.spectrum_stats(image, mask.usable).nps_hf
        layouts.append(layout_contrast(image, mask.breast, mask.usable))
    patch, rolloff = np.nanmean(np.array(layouts), axis=0)
    return Tone(realism_stats.histogram_percentiles(np.mean(hists, axis=0)), float(np.mean(nps)),
                float(patch), float(rolloff))


# About a minute of CPU: two film studies drawn at 0.2 mm and the 8 real 4700-row films standardised.
@pytest.fixture(scope="module")
def tones() -> tuple[Tone, Tone]:
    real = [pydicom.dcmread(p) for p in sorted(default_real_folder().rglob("*.dcm"))]
    assert len(real) == 8
    film: list[Dataset] = []
    for index in (0, 3):  # the film studies among seed 5105's first four: the report's 8 views
        drawn = generate_study(index, seed=5105, size="small")
        film += [ds for ds, a in zip(drawn.datasets, drawn.annotations, strict=True)
                 if a.extra["acquisition"] == "film"]
    assert len(film) == 8
    return _tone(film), _tone(real)


@pytest.mark.timeout(900)
def test_film_noise_power_at_0_2_mm_is_the_films(tones: tuple[Tone, Tone]) -> None:
    """The quantum mottle was most of it (``film.PHOTONS_BEHIND``): 1.51× the films' before, 1.00× after."""
    synthetic, films = tones
    assert 0.75 <= synthetic.nps / films.nps <= 1.3, (synthetic.nps, films.nps)


@pytest.mark.timeout(900)
def test_film_dense_regions_are_as_bright_and_as_patchy_as_the_films(tones: tuple[Tone, Tone]) -> None:
    """Synth v15's lower gland peak left them fainter: patch contrast 0.67×, p95 0.73 against 0.87.
    The lobules thinning out in dense regions (``tissue.LAYOUT_LOBULE_FAT``) gave 0.81× and 0.79 through
    the DR window the film headers then carried; without it, as the films (no VOI), 0.78× and 0.81
    (p50 0.44 → 0.48, films 0.52)."""
    synthetic, films = tones
    assert 0.74 <= synthetic.patch / films.patch <= 1.25, (synthetic.patch, films.patch)
    assert abs(synthetic.percentiles["p95"] - films.percentiles["p95"]) <= 0.1, (synthetic.percentiles, films.percentiles)
    assert abs(synthetic.percentiles["p5"] - films.percentiles["p5"]) <= 0.05, (synthetic.percentiles, films.percentiles)


@pytest.mark.timeout(900)
def test_film_rolloff_towards_the_skin_is_within_the_films_spread(tones: tuple[Tone, Tone]) -> None:
    """The image darkening towards the skin line as the compressed breast thins (``realism_layout``).

    These 8 views (two exams) give 0.096 against the films' 0.126 (0.76×), and synth v10, v11 and
    v12 gave them 0.091: the figure did not fall after v11; seed 8111's 72 film views gave 0.118 at
    v11 and 0.117 at v14 and v16, and two exams drawn from those range 0.081-0.142 (p5-p95), the
    films' own two 0.109 and 0.142 (DATASETS.md, "Roll-off"). The band catches what flattens the
    skin line's darkening: v14's anatomy under v15's film scatter and heel gave these views 0.64×.
    """
    synthetic, films = tones
    assert 0.68 <= synthetic.rolloff / films.rolloff <= 1.3, (synthetic.rolloff, films.rolloff)
