"""Attenuation physics of the synthetic generator against the published tables, by hand.

Units are per mm throughout (``physics.MU_PER_MM``); the tables below are per cm or in cm²/g
and are converted here, so a units slip in either place shows as a factor of 10.
"""

from __future__ import annotations

import numpy as np
import pytest

from mammocad.model.results import LesionClass
from mammocad.model.synth import physics, raster
from mammocad.model.synth.calc_primitives import Ellipsoids
from mammocad.model.synth.calcifications import ClusterSpec

#: Elemental mass attenuation coefficients µ/ρ (cm²/g, total with coherent scattering) at
#: 16, 20 and 30 keV: the NIST photon cross sections (Hubbell & Seltzer, NISTIR 5632), as
#: tabulated by Elam, Ravel & Sieber (Radiat. Phys. Chem. 63 (2002) 121).
MU_RHO = {
    "H": (0.3750, 0.3695, 0.3570), "C": (0.6952, 0.4420, 0.2562), "N": (1.046, 0.6179, 0.3067),
    "O": (1.538, 0.8653, 0.3779), "Na": (3.889, 2.057, 0.7199), "Mg": (5.262, 2.763, 0.9305),
    "P": (10.26, 5.354, 1.700), "S": (12.85, 6.710, 2.113), "Ca": (24.78, 13.06, 4.080),
}
ENERGIES = (16.0, 20.0, 30.0)
ATOMIC_MASS = {"H": 1.008, "O": 15.999, "P": 30.974, "Ca": 40.078}
#: Ca10(PO4)6(OH)2: 10 Ca, 6 P, 26 O, 2 H.
HYDROXYAPATITE_ATOMS = {"Ca": 10, "P": 6, "O": 26, "H": 2}
HYDROXYAPATITE_DENSITY = 3.06  # g/cm³, as physics.py states
#: ICRU 44 cortical bone (mass fractions) and NIST's own table 4 µ/ρ for it at 20 and 30 keV:
#: anchors MU_RHO to a compound value NIST publishes.
CORTICAL_BONE = {"H": 0.034, "C": 0.155, "N": 0.042, "O": 0.435, "Na": 0.001, "Mg": 0.002, "P": 0.103,
                 "S": 0.003, "Ca": 0.225}
CORTICAL_BONE_NIST = {20.0: 4.001, 30.0: 1.331}


def _mixture_mu_rho(fractions: dict[str, float], energy: float) -> float:
    k = ENERGIES.index(energy)
    return sum(w * MU_RHO[el][k] for el, w in fractions.items())


def _hydroxyapatite_per_mm(energy: float) -> float:
    mass = {el: n * ATOMIC_MASS[el] for el, n in HYDROXYAPATITE_ATOMS.items()}
    total = sum(mass.values())
    mu_rho = _mixture_mu_rho({el: m / total for el, m in mass.items()}, energy)
    return mu_rho * HYDROXYAPATITE_DENSITY / 10.0  # 1/cm → 1/mm


@pytest.mark.parametrize("energy", [20.0, 30.0])
def test_the_elemental_table_reproduces_nists_cortical_bone(energy: float) -> None:
    assert _mixture_mu_rho(CORTICAL_BONE, energy) == pytest.approx(CORTICAL_BONE_NIST[energy], rel=0.01)


@pytest.mark.parametrize("energy", ENERGIES)
def test_hydroxyapatite_attenuation_is_its_composition_times_its_density(energy: float) -> None:
    """µ_HA = ρ Σ wᵢ (µ/ρ)ᵢ: 2.01/mm at 20 keV. Synth v2–v13 tabulated 2.45 (22 % high), so every
    calcification was a fifth more opaque than the hydroxyapatite it stands for."""
    assert physics.attenuation_per_mm("hydroxyapatite", energy) == pytest.approx(
        _hydroxyapatite_per_mm(energy), rel=0.02)


@pytest.mark.parametrize(("energy", "adipose", "glandular"), [(18.0, 0.558, 1.028), (20.0, 0.456, 0.802),
                                                              (30.0, 0.264, 0.378)])
def test_breast_tissues_are_johns_and_yaffes_measured_values_per_mm(energy: float, adipose: float,
                                                                    glandular: float) -> None:
    """Johns & Yaffe (Phys. Med. Biol. 32 (1987) 675) measured them in 1/cm; the table is in 1/mm."""
    assert physics.attenuation_per_mm("adipose", energy) == pytest.approx(adipose / 10, rel=0.01)
    assert physics.attenuation_per_mm("glandular", energy) == pytest.approx(glandular / 10, rel=0.01)


def test_a_speck_adds_its_chord_times_the_attenuation_it_brings() -> None:
    """A 0.3 mm full-density hydroxyapatite sphere in gland at 20 keV, drawn on a 0.01 mm grid: the
    ray through its centre crosses 0.3 mm of it, ΔL = 0.3 × (µ_HA − µ_gland), and passes
    e^(−ΔL) of the primary the tissue beside it passes (Beer–Lambert)."""
    spacing, diameter, energy = 0.01, 0.3, 20.0
    sphere = Ellipsoids.build(np.zeros((1, 3)), np.full((1, 3), diameter / 2), np.eye(3)[None], np.ones(1))
    spec = ClusterSpec("test", LesionClass.BENIGN, "one sphere", ellipsoids=sphere)
    calcium = np.zeros((61, 61))
    raster.render_cluster(calcium, spec, "CC", (30.0, 30.0), spacing)
    delta = physics.calcification_line_integral(calcium, energy)
    by_hand = diameter * (_hydroxyapatite_per_mm(energy) - 0.0802)
    assert float(delta.max()) == pytest.approx(by_hand, rel=0.03)
    tissue = np.full(1, 3.0, np.float32)  # any background line integral
    ratio = physics.transmitted_fraction(tissue + delta.max()) / physics.transmitted_fraction(tissue)
    assert float(ratio[0]) == pytest.approx(np.exp(-by_hand), rel=0.03)
