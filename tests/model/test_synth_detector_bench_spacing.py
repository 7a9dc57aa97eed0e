"""bench/bench_resolution.py draws its test images at the spacing it compares, as training draws.

It drew each at the unit's own pitch: a Fujifilm AMULET at 50 µm, four times the pixels of 0.1 mm,
its 0.1 mm figures a 2x resize of that drawing while a GE's were none, so the units entered the
0.1 vs 0.2 mm comparison unalike. The product's drawing (``generate.drawing_spacing``) is unchanged.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from mammocad.model.synth import dicom_writer, generate
from mammocad.model.synth.dicom_writer import PROFILES

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_resolution  # noqa: E402

FUJI = next(p for p in PROFILES if p.full_spacing_mm == 0.05)


def bench_args(*argv: str) -> argparse.Namespace:
    return bench_resolution.build_parser().parse_args(list(argv))


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.model)
def test_every_unit_is_drawn_at_the_finest_spacing_compared(profile: dicom_writer.VendorProfile) -> None:
    assert bench_resolution.drawing_spacing_mm(profile, bench_args()) == 0.1
    assert bench_resolution.drawing_spacing_mm(profile, bench_args("--spacings", "0.2", "0.15")) == 0.15
    assert bench_resolution.drawing_spacing_mm(profile, bench_args("--draw-spacing", "0.085")) == 0.085
    # The product still draws a full field at the unit's own pitch when no spacing is asked for.
    assert generate.drawing_spacing("full", None, profile) == profile.full_spacing_mm


def test_a_fujifilm_test_image_is_drawn_and_labelled_at_0_1_mm(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole drawing path of one test image, on a small field to stay cheap: header and pixels at 0.1 mm."""
    monkeypatch.setitem(generate.FIELDS_MM, "full", generate.FIELDS_MM["small"])
    monkeypatch.setattr(dicom_writer, "sample_profile", lambda rng: FUJI)
    args = bench_args("--specks-per-size", "1", "--clusters", "1")
    ds, _, _, film = bench_resolution._pattern_image(0, args)
    assert not film and ds.Manufacturer == FUJI.manufacturer
    assert [float(v) for v in ds.PixelSpacing] == [0.1, 0.1]
    field = generate.FIELDS_MM["small"]
    assert (ds.Rows, ds.Columns) == (round(field[0] / 0.1), round(field[1] / 0.1))
