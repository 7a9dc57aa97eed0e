"""X-ray attenuation of breast materials at mammographic energies.

This is the one place where synth v2 turns matter into image contrast. The anatomy and the
calcifications are built as *path lengths* (mm of each material along a ray); the projection
turns them into a line integral of attenuation, ``sum(mu_i * t_i)``, and the acquisition turns
that into exposure and then into stored values. Inserting a calcification into a real image goes
through the same numbers (``calcification_line_integral``), so a speck's contrast follows from its
size and composition, never from a pasted intensity.

Values are linear attenuation coefficients in 1/mm, tabulated at a few effective energies and
interpolated log-log (attenuation falls roughly as E^-3 in this range, so log-log is accurate):
- adipose and fibroglandular tissue: Johns & Yaffe, "X-ray characterisation of normal and
  neoplastic breast tissues", Phys. Med. Biol. 32 (1987) 675, measured values;
- skin: taken as 1.05 × fibroglandular (ICRU 44 skin is slightly denser than gland);
- pectoralis muscle: ICRU 44 skeletal muscle, close to gland;
- calcium hydroxyapatite Ca10(PO4)6(OH)2 at 3.06 g/cm³: µ = ρ Σ wᵢ (µ/ρ)ᵢ from its mass fractions
  (Ca 0.399, P 0.185, O 0.414, H 0.002) and the NIST elemental µ/ρ, 6.56 cm²/g at 20 keV, so
  2.01/mm (``tests/model/test_synth_physics.py`` works it out by hand). Synth v2–v13 tabulated
  2.45/mm there, 20–26 % high across 16–30 keV: every speck was a fifth more opaque than the
  hydroxyapatite it stood for. Breast calcifications are rarely full density, so callers scale
  the thickness by a fill fraction drawn per speck;
- lead, for skin markers (BBs) taped on the breast: NIST XCOM, opaque at any of these energies.
These are approximations for simulation, not dosimetry.
"""

from __future__ import annotations

import numpy as np

#: Effective energies (keV) of the table below.
ENERGIES_KEV = np.array([16.0, 18.0, 20.0, 22.0, 25.0, 30.0])

#: Linear attenuation coefficients, 1/mm, at ENERGIES_KEV.
MU_PER_MM: dict[str, np.ndarray] = {
    "adipose": np.array([0.0727, 0.0558, 0.0456, 0.0390, 0.0322, 0.0264]),
    "glandular": np.array([0.1390, 0.1028, 0.0802, 0.0656, 0.0506, 0.0378]),
    "skin": np.array([0.1460, 0.1079, 0.0842, 0.0689, 0.0531, 0.0397]),
    "muscle": np.array([0.1420, 0.1050, 0.0820, 0.0670, 0.0517, 0.0386]),
    "hydroxyapatite": np.array([3.80, 2.71, 2.01, 1.53, 1.065, 0.642]),
    # Skin markers (lead BBs): NIST XCOM µ/ρ of Pb, 86.4 cm²/g at 20 keV and 30.3 at 30 keV,
    # E^-2.7 between (above the L edges at 13-15.9 keV), times 11.35 g/cm³. Opaque either way.
    "lead": np.array([179.0, 130.0, 98.0, 75.6, 54.4, 34.4]),
}

#: Range of effective energies of screening systems (W/Rh, Mo/Mo, W/Ag spectra after the breast).
ENERGY_RANGE_KEV = (17.0, 22.0)

#: Mass energy-absorption coefficient µen/ρ of dry air (cm²/g) at 15 / 20 / 30 keV: NIST SRD 126
#: (Hubbell & Seltzer, Table 4, "Air, Dry (Near Sea Level)"), interpolated log-log between.
AIR_MU_EN_KEV = np.array([15.0, 20.0, 30.0])
AIR_MU_EN_CM2_PER_G = np.array([1.334, 0.5389, 0.1537])
_KEV_J = 1.602176634e-16


def quanta_per_mm2_per_ugy(energy_kev: float) -> float:
    """Photons per mm² per µGy of air kerma, Φ/K = 1 / (E · µen/ρ_air), for a beam of ``energy_kev``.

    At 20 keV: 1 / (3.204e-15 J × 0.05389 m²/kg) = 5.79e15 per m² per Gy = 5790 per mm² per µGy;
    4080 at 17 keV and 7070 at 22 keV (the ``ENERGY_RANGE_KEV`` this generator draws). The
    effective energy stands for the spectrum behind the breast.
    """
    if not AIR_MU_EN_KEV[0] <= energy_kev <= AIR_MU_EN_KEV[-1]:
        raise ValueError(f"energy_kev must be within {AIR_MU_EN_KEV[0]}..{AIR_MU_EN_KEV[-1]} keV, got {energy_kev}")
    mu_en = float(np.exp(np.interp(np.log(energy_kev), np.log(AIR_MU_EN_KEV), np.log(AIR_MU_EN_CM2_PER_G))))
    per_m2_per_gy = 1.0 / (energy_kev * _KEV_J * mu_en * 0.1)  # cm²/g → m²/kg
    return per_m2_per_gy * 1e-6 * 1e-6  # per mm², per µGy


def attenuation_per_mm(material: str, energy_kev: float) -> float:
    """Linear attenuation coefficient of ``material`` at ``energy_kev`` (1/mm)."""
    if material not in MU_PER_MM:
        raise ValueError(f"material must be one of {sorted(MU_PER_MM)}, got {material!r}")
    if not ENERGIES_KEV[0] <= energy_kev <= ENERGIES_KEV[-1]:
        raise ValueError(f"energy_kev must be within {ENERGIES_KEV[0]}..{ENERGIES_KEV[-1]} keV, got {energy_kev}")
    log_mu = np.interp(np.log(energy_kev), np.log(ENERGIES_KEV), np.log(MU_PER_MM[material]))
    return float(np.exp(log_mu))


def tissue_line_integral(thickness_mm: np.ndarray, glandular_fraction: np.ndarray,
                         energy_kev: float) -> np.ndarray:
    """Line integral of a fat/gland mixture: thickness × (µ_fat + g × (µ_gland − µ_fat)).

    thickness_mm: compressed thickness per pixel (0 outside the breast);
    glandular_fraction: fraction of that path that is fibroglandular tissue, 0..1.
    """
    mu_a = attenuation_per_mm("adipose", energy_kev)
    mu_g = attenuation_per_mm("glandular", energy_kev)
    return (thickness_mm * (mu_a + np.clip(glandular_fraction, 0.0, 1.0) * (mu_g - mu_a))).astype(np.float32)


def calcification_line_integral(calcium_mm: np.ndarray, energy_kev: float,
                                replaced: str = "glandular") -> np.ndarray:
    """Extra line integral of calcium path lengths ``calcium_mm`` that displace ``replaced`` tissue.

    A speck of hydroxyapatite replaces the same path length of soft tissue, so its contrast is
    (µ_HA − µ_tissue) × path length: a 0.2 mm full-density speck at 20 keV adds about 0.39.
    """
    delta = attenuation_per_mm("hydroxyapatite", energy_kev) - attenuation_per_mm(replaced, energy_kev)
    return (np.asarray(calcium_mm, dtype=np.float32) * np.float32(delta)).astype(np.float32)


def transmitted_fraction(line_integral: np.ndarray) -> np.ndarray:
    """Beer–Lambert: primary photons that pass, exp(−∫µ dl)."""
    return np.exp(-np.asarray(line_integral, dtype=np.float32)).astype(np.float32)
