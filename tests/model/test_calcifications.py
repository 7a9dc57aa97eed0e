"""Calcifications as physical objects: the calcium each view receives is the solids' true volume."""

from __future__ import annotations

import numpy as np
import pytest

from mammocad.model.results import LesionClass
from mammocad.model.synth import calcifications as calc
from mammocad.model.synth import physics, raster
from mammocad.model.synth.calc_primitives import Ellipsoids, Sediments, Shells

ALL_KINDS = {**calc.MALIGNANT_KINDS, **calc.BENIGN_KINDS, **calc.UNLABELLED_KINDS}


def _sphere(radius: float, fill: float = 1.0) -> calc.ClusterSpec:
    e = Ellipsoids.build(np.zeros((1, 3)), np.full((1, 3), radius), np.eye(3)[None], np.array([fill]))
    return calc.ClusterSpec("test", LesionClass.BENIGN, "one sphere", ellipsoids=e)


@pytest.mark.parametrize("kind", sorted(ALL_KINDS))
@pytest.mark.parametrize("spacing", [0.05, 0.2])
def test_every_kind_deposits_its_exact_calcium_volume_inside_its_box(kind: str, spacing: float) -> None:
    spec = ALL_KINDS[kind](np.random.default_rng(11))
    n = int(round(140 / spacing))
    calcium = np.zeros((n, n), np.float32)
    box = raster.render_cluster(calcium, spec, "MLO", (n / 2, n / 2), spacing)
    assert box is not None
    deposited = float(calcium.sum(dtype=np.float64)) * spacing ** 2
    assert deposited == pytest.approx(spec.calcium_volume_mm3(), rel=2e-3)
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    inside = float(calcium[y1:y2 + 1, x1:x2 + 1].sum(dtype=np.float64)) * spacing ** 2
    assert inside >= 0.97 * deposited  # only the haze of amorphous clusters may spill out


def test_sphere_profile_is_its_chord_length() -> None:
    spacing, r, fill = 0.01, 0.4, 0.6
    calcium = np.zeros((121, 121))
    raster.render_cluster(calcium, _sphere(r, fill), "CC", (60.0, 60.0), spacing)
    d = np.abs(np.arange(121) - 60) * spacing
    expected = 2 * np.sqrt(np.maximum(r * r - d * d, 0)) * fill
    inner = d < r - 2 * spacing  # the rim pixels are partly covered
    assert np.allclose(calcium[60][inner], expected[inner], atol=0.01)
    assert calcium[60, 60] == pytest.approx(2 * r * fill, rel=0.01)


def test_a_sub_pixel_speck_keeps_its_mass_and_its_contrast_follows_the_physics() -> None:
    spacing, r = 0.2, 0.05
    calcium = np.zeros((11, 11))
    raster.render_cluster(calcium, _sphere(r), "CC", (5.0, 5.0), spacing)
    volume = 4 / 3 * np.pi * r ** 3
    assert calcium.sum() * spacing ** 2 == pytest.approx(volume, rel=1e-6)
    assert calcium[5, 5] == pytest.approx(volume / spacing ** 2, rel=0.05)  # centred: one pixel holds it
    # Contrast is calcium × (µ_HA − µ_tissue): a 0.1 mm speck is far fainter than a 0.4 mm one.
    big = np.zeros((11, 11))
    raster.render_cluster(big, _sphere(0.2), "CC", (5.0, 5.0), spacing)
    small_l = physics.calcification_line_integral(calcium, 20.0).max()
    big_l = physics.calcification_line_integral(big, 20.0).max()
    assert 5 < big_l / small_l < 64


def test_rim_is_brighter_than_its_centre_and_milk_of_calcium_settles_downward_on_mlo() -> None:
    spacing = 0.02
    shell = calc.ClusterSpec("rim", LesionClass.BENIGN, "shell", shells=Shells.build(
        np.zeros((1, 3)), np.array([1.0]), np.array([0.15]), np.array([1.0])))
    img = np.zeros((121, 121))
    raster.render_cluster(img, shell, "CC", (60.0, 60.0), spacing)
    assert img[60, 60 + 43] > 3 * img[60, 60] > 0
    cyst = calc.ClusterSpec("milk", LesionClass.BENIGN, "sediment", sediments=Sediments.build(
        np.zeros((1, 3)), np.array([1.0]), np.array([0.3]), np.array([0.5])))
    rows = np.arange(121)[:, None]
    for view in ("CC", "MLO"):
        img = np.zeros((121, 121))
        raster.render_cluster(img, cyst, view, (60.0, 60.0), spacing)
        centroid = float((img * rows).sum() / img.sum())
        if view == "CC":  # seen from above: a round smudge centred on the cyst
            assert centroid == pytest.approx(60.0, abs=0.5)
        else:  # seen obliquely: a crescent in the lower half (gravity is -z, rows grow downward)
            assert centroid > 60.0 + 0.2 / spacing


def test_a_cluster_sits_at_the_same_depth_in_both_views_and_off_image_gives_none() -> None:
    spec = calc.fine_pleomorphic(np.random.default_rng(4))
    cols = {}
    for view in ("CC", "MLO"):
        img = np.zeros((600, 600))
        raster.render_cluster(img, spec, view, (300.0, 300.0), 0.1)
        cols[view] = float((img.sum(axis=0) * np.arange(600)).sum() / img.sum())
    assert cols["CC"] == pytest.approx(cols["MLO"], abs=0.5)
    assert raster.render_cluster(np.zeros((50, 50)), spec, "CC", (900.0, 900.0), 0.1) is None


def test_same_generator_state_same_cluster_and_classes_follow_the_taxonomy() -> None:
    a = calc.sample_cluster(np.random.default_rng(7), malignant=True)
    b = calc.sample_cluster(np.random.default_rng(7), malignant=True)
    ia, ib = np.zeros((400, 400)), np.zeros((400, 400))
    raster.render_cluster(ia, a, "MLO", (200.0, 200.0), 0.1)
    raster.render_cluster(ib, b, "MLO", (200.0, 200.0), 0.1)
    assert np.array_equal(ia, ib) and ia.sum() > 0
    for name, make in calc.MALIGNANT_KINDS.items():
        assert make(np.random.default_rng(1)).lesion_class is LesionClass.MALIGNANT, name
    for name, make in calc.BENIGN_KINDS.items():
        spec = make(np.random.default_rng(1))
        assert spec.lesion_class is LesionClass.BENIGN and spec.labelled, name
    for name in calc.UNLABELLED_KINDS:
        assert not calc.sample_unlabelled(np.random.default_rng(1), name).labelled


def test_speck_sizes_and_fill_stay_in_the_physical_ranges() -> None:
    rng = np.random.default_rng(3)
    for make in (calc.fine_pleomorphic, calc.amorphous, calc.coarse_heterogeneous, calc.punctate):
        for _ in range(5):
            e = make(rng).ellipsoids
            assert np.all(2 * e.axes.max(axis=1) <= 1.0 + 1e-9)  # individual specks 0.1-1 mm
            assert np.all((e.fill >= 0.3) & (e.fill <= 1.0))
    spec = calc.punctate(rng)
    truth = raster.speck_truth(spec, "CC", (100.0, 100.0), 0.1)
    assert len(truth) == len(spec.ellipsoids) and all(0.05 < t.diameter_mm <= 1.0 for t in truth)
    assert sum(t.calcium_mm3 for t in truth) == pytest.approx(spec.calcium_volume_mm3())
    assert set(truth[0].to_dict()) == {"x", "y", "diameter_mm", "fill", "calcium_mm3", "shape"}
    # The lobes of an irregular speck are one speck: as many as the distribution placed.
    pleo = calc.fine_pleomorphic(np.random.default_rng(2))
    specks = raster.speck_truth(pleo, "MLO", (100.0, 100.0), 0.1)
    assert len(specks) == len(set(pleo.ellipsoids.speck.tolist())) < len(pleo.ellipsoids)
