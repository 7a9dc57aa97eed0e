"""The Fujifilm AMULET Innovality profile's pixels are its 50 µm, and a header states what was drawn.

Synth v2–v15 wrote the AMULET's images at 0.1 mm (the unit outputs 50 µm) and so drew them with
no resize from 50 µm when a study was drawn at 0.1 mm. Training draws at a ``spacing_mm`` override
(0.1 mm), which must still win, with the header stating that pitch, not the unit's.
"""

from __future__ import annotations

import numpy as np
import pytest

from mammocad.model.synth import generate_study
from mammocad.model.synth.dicom_writer import PROFILES, sample_profile
from mammocad.model.synth.generate import SMALL_SPACING_MM, drawing_spacing
from mammocad.model.synth.mtf import resampling_tent_mm

FUJI = next(p for p in PROFILES if p.model == "AMULET Innovality")
SEED, FUJI_INDEX = 3, 8  # study 8 of seed 3 is an AMULET study (checked below)


def test_the_amulet_profile_writes_its_50_um_pixels_at_full_size() -> None:
    assert FUJI.full_spacing_mm == pytest.approx(0.05)
    assert drawing_spacing("full", None, FUJI) == pytest.approx(0.05)
    assert drawing_spacing("small", None, FUJI) == pytest.approx(SMALL_SPACING_MM)


@pytest.mark.parametrize("profile", [p for p in PROFILES if not p.secondary_capture], ids=lambda p: p.model)
def test_a_callers_spacing_wins_over_every_units_pitch(profile) -> None:  # type: ignore[no-untyped-def]
    for size in ("small", "full"):
        assert drawing_spacing(size, 0.1, profile) == pytest.approx(0.1)


def test_an_amulet_study_drawn_at_0_1_mm_carries_the_resize_from_50_um() -> None:
    """The standardiser resizes a real 50 µm image to 0.1 mm with its tent: so must the drawing."""
    assert resampling_tent_mm(0.1, FUJI.full_spacing_mm) == pytest.approx(0.1)


def test_an_overridden_amulet_study_states_the_drawn_pitch_in_its_header() -> None:
    assert sample_profile(np.random.default_rng([SEED, FUJI_INDEX])) is FUJI
    study = generate_study(FUJI_INDEX, seed=SEED, spacing_mm=0.5)
    for ds in study.datasets:
        assert ds.Manufacturer == FUJI.manufacturer and ds.PixelSpacingCalibrationType == "GEOMETRY"
        assert [float(v) for v in ds.PixelSpacing] == [0.5, 0.5]
        assert (ds.Rows, ds.Columns) == (400, 320)  # the small field, 200 x 160 mm, at 0.5 mm
