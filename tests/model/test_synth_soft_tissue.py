"""Soft-tissue findings (synth v9): lymph nodes, cysts, fibroadenomas, spiculated masses, with no truth;
masses around clusters (synth v10)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from mammocad.model.synth import generate as gen
from mammocad.model.synth import physics, soft_tissue
from mammocad.model.synth.anatomy import Breast
from mammocad.model.synth.calcifications import sample_cluster
from mammocad.model.synth.soft_tissue import SoftFinding, draw_findings, sample_finding, sample_host
from mammocad.model.synth.views import project_view

SPACING = 0.1
FIELD = gen.FIELDS_MM["small"]


def _finding(kind: str, seed: int = 3, **changes: Any) -> SoftFinding:
    return dataclasses.replace(sample_finding(np.random.default_rng(seed), kind, 25.0), **changes)


def _alone(finding: SoftFinding, size_mm: float = 80.0) -> np.ndarray:
    n = int(size_mm / SPACING)
    return draw_findings((n, n), SPACING, [(finding, (size_mm / 2, size_mm / 2))], "CC")


def test_a_cyst_is_its_chord_of_fluid_an_ellipse_of_full_depth_at_its_centre() -> None:
    cyst = _finding("cyst", semi_axes_mm=(8.0, 6.0), depth_mm=5.0, lobulation=0.0, margin_mm=0.0)
    path = _alone(cyst)
    assert path.max() == pytest.approx(2 * cyst.depth_mm * cyst.fill, rel=0.02)
    # An ellipsoid's chords integrate to its volume: 4/3 π a b c.
    assert path.sum() * SPACING ** 2 == pytest.approx(4 / 3 * np.pi * 8.0 * 6.0 * 5.0, rel=0.03)
    covered = (path > 0).sum() * SPACING ** 2
    assert covered == pytest.approx(np.pi * 8.0 * 6.0, rel=0.05)


def test_a_lymph_node_loses_a_fatty_hilum_on_one_flank() -> None:
    node = _finding("lymph_node", semi_axes_mm=(5.0, 3.0), depth_mm=3.0, hilum=0.45)
    whole = _alone(dataclasses.replace(node, hilum=0.0))
    path = _alone(node)
    fat = whole - path
    assert fat.min() >= -1e-5
    assert fat.sum() > 0.05 * whole.sum()
    rows, cols = np.nonzero(fat > 0.05 * fat.max())
    centre = (np.array(whole.shape) - 1) / 2
    offset = np.hypot(rows.mean() - centre[0], cols.mean() - centre[1]) * SPACING
    assert offset > 0.3 * 3.0  # off the middle, towards the node's flank


def test_a_spiculated_mass_radiates_thin_strands_beyond_its_core() -> None:
    mass = _finding("spiculated_mass", semi_axes_mm=(5.0, 4.5), spicules=24, spicule_length_mm=15.0)
    core = _alone(dataclasses.replace(mass, spicules=0, spicule_length_mm=0.0))
    strands = _alone(mass) - core
    n = strands.shape[0]
    rr, cc = np.mgrid[:n, :n]
    dy, dx = (rr - (n - 1) / 2) * SPACING, (cc - (n - 1) / 2) * SPACING
    radius, angle = np.hypot(dy, dx), np.arctan2(dy, dx)
    ring = (radius > 9.0) & (radius < 13.0)  # beyond the core and its blurred margin
    assert core[ring].max() < 0.01 * core.max()
    lit = ring & (strands > 0.05)
    sectors = np.unique(((angle[lit] + np.pi) / (2 * np.pi) * 12).astype(int) % 12)
    assert len(sectors) >= 6  # all round, not one streak
    assert lit.sum() < 0.3 * ring.sum()  # thin strands, not a halo


def test_every_kind_is_drawn_and_an_unknown_one_says_which_exist() -> None:
    for kind in soft_tissue.KINDS:
        finding = sample_finding(np.random.default_rng(1), kind, 20.0)
        assert finding.depth_mm <= 20.0
        assert _alone(finding, 2 * finding.extent_mm() + 10).max() > 0
    with pytest.raises(ValueError, match="cyst"):
        sample_finding(np.random.default_rng(1), "lipoma", 20.0)


def _line_change(density: float, finding: SoftFinding) -> tuple[np.ndarray, np.ndarray]:
    breast = Breast.sample(np.random.default_rng(11), FIELD, density)
    shape = (int(FIELD[0] / SPACING), int(FIELD[1] / SPACING))
    depth, centre_row, _ = breast.view_geometry("CC")
    centre = (centre_row, 0.45 * depth)
    energy = 19.0
    bare = project_view(breast, "CC", shape, SPACING, np.random.default_rng(5), [], energy)
    with_it = project_view(breast, "CC", shape, SPACING, np.random.default_rng(5), [], energy, [(finding, centre)])
    drawn = draw_findings(shape, SPACING, [(finding, centre)], "CC")
    return with_it.line_integral - bare.line_integral, drawn


def test_a_finding_displaces_fat_so_it_shows_in_a_fatty_breast_and_hides_in_a_dense_one() -> None:
    cyst = _finding("cyst", semi_axes_mm=(8.0, 8.0), depth_mm=6.0, lobulation=0.0, margin_mm=0.0)
    fatty, drawn = _line_change(0.1, cyst)
    dense, _ = _line_change(0.85, cyst)
    inside, outside = drawn > 0, drawn == 0
    assert np.abs(fatty[outside]).max() < 1e-5 and np.abs(dense[outside]).max() < 1e-5
    assert fatty[inside].min() >= -1e-5
    # At most the chord's worth of gland in place of fat, through the same physics.
    contrast = physics.attenuation_per_mm("glandular", 19.0) - physics.attenuation_per_mm("adipose", 19.0)
    assert fatty[inside].max() <= contrast * drawn.max() * 1.001
    assert fatty[inside].mean() > 0.3 * contrast * drawn[inside].mean()
    assert dense[inside].mean() < 0.8 * fatty[inside].mean()  # 0.77x (v14 0.65x): gland there already


#: What a study lists (its findings, clusters and boxes' existence) is drawn before any pixel, so
#: the listing tests draw at 0.5 mm: the same lists as at the default 0.2 mm for a sixth of the pixels.
LISTING_SPACING_MM = 0.5


def test_studies_list_their_findings_with_no_truth_and_keep_their_clusters(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, int] = {}
    with_findings = []
    for index in range(6):
        study = gen.generate_study(index, seed=4242, spacing_mm=LISTING_SPACING_MM)
        with_findings.append(study)
        by_breast: dict[str, dict[str, list[str]]] = {}
        for ann in study.annotations:
            kinds = ann.extra["soft_tissue"]
            for k in kinds:
                seen[k] = seen.get(k, 0) + 1
            if ann.view == "CC":
                assert "axillary_node" not in kinds
            by_breast.setdefault(ann.laterality, {})[ann.view] = [k for k in kinds if k != "axillary_node"]
        for views in by_breast.values():  # a breast's own findings show on both views
            assert views["CC"] == views["MLO"]
    assert seen.get("axillary_node", 0) >= 2 and len(seen) >= 3, seen
    # Without any finding, every study keeps its clusters and their boxes: own random streams.
    monkeypatch.setattr(gen, "AXILLARY_NODE_RATE", 0.0)
    for rates in (soft_tissue.FINDING_RATES, soft_tissue.HOST_RATES):
        for kind in list(rates):
            monkeypatch.setitem(rates, kind, 0.0)
    for index, study in enumerate(with_findings):
        bare = gen.generate_study(index, seed=4242, spacing_mm=LISTING_SPACING_MM)
        assert all(not ann.extra["soft_tissue"] for ann in bare.annotations)
        assert [ann.lesions for ann in bare.annotations] == [ann.lesions for ann in study.annotations]


def test_a_host_mass_is_drawn_round_a_cancer_or_a_popcorn_cluster_and_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(soft_tissue.HOST_RATES, "malignant", 1.0)
    monkeypatch.setitem(soft_tissue.HOST_RATES, "popcorn", 1.0)
    rng = np.random.default_rng(2)
    for extent in (2.0, 12.0, 60.0):
        mass = sample_host(rng, "fine_pleomorphic", True, extent, 25.0)
        assert mass is not None and mass.kind == "spiculated_mass" and mass.holds_cluster
        a, b = mass.semi_axes_mm
        # Most of the cluster inside the core, never a mass larger than HOST_MAX_HALF_MM.
        assert b >= min(0.7 * extent, soft_tissue.HOST_MAX_HALF_MM * b / a) - 1e-9
        assert a <= soft_tissue.HOST_MAX_HALF_MM + 1e-9 and mass.depth_mm <= 25.0
    fibroadenoma = sample_host(rng, "popcorn", False, 3.0, 25.0)
    assert fibroadenoma is not None and fibroadenoma.kind == "fibroadenoma" and fibroadenoma.holds_cluster
    assert sample_host(rng, "punctate", False, 3.0, 25.0) is None
    monkeypatch.setattr(soft_tissue, "ILL_DEFINED_SHARE", 1.0)
    ill = sample_host(rng, "amorphous", True, 5.0, 25.0)
    assert ill is not None and ill.spicules == 0 and ill.margin_mm >= 1.0


def test_host_masses_sit_on_their_clusters_seen_on_both_views(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(soft_tissue.HOST_RATES, "malignant", 1.0)
    breast = Breast.sample(np.random.default_rng(11), FIELD, 0.3)
    rng = np.random.default_rng(5)
    cancer = gen._Lesion(sample_cluster(rng, malignant=True), (0.4 * breast.depth_cc, 0.0, 0.0), ("CC", "MLO"))
    one_view = gen._Lesion(sample_cluster(rng, malignant=True), (0.5 * breast.depth_cc, 5.0, 5.0), ("CC",))
    hosts = gen._host_masses(np.random.default_rng(1), breast, [cancer, one_view], FIELD)
    assert len(hosts) == 1
    mass, position = hosts[0]
    assert np.abs(np.subtract(position, cancer.position)).max() <= 0.2 * min(mass.semi_axes_mm) + 1e-9


def test_studies_list_the_masses_that_hold_their_clusters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(soft_tissue.HOST_RATES, "malignant", 1.0)
    monkeypatch.setitem(soft_tissue.HOST_RATES, "popcorn", 1.0)
    hosted = 0
    for index in range(4):
        for ann in gen.generate_study(index, seed=4242, spacing_mm=LISTING_SPACING_MM).annotations:
            masses = ann.extra["calcified_masses"]
            hosted += len(masses)
            assert all(kind in ann.extra["soft_tissue"] for kind in masses)
            if masses:  # only breasts with a cancer or popcorn cluster get one
                assert ann.breast_malignant or "popcorn" in ann.extra["kinds"]
    assert hosted >= 2
