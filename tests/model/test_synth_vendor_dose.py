"""DR quantum noise from a screening exposure's detector air kerma (synth v16).

Fluence per air kerma Φ/K = 1 / (E · µen/ρ_air): at 20 keV, with NIST's µen/ρ = 0.5389 cm²/g,
1 / (20 × 1.602e-16 J × 0.05389 m²/kg) = 5.79e15 per m² per Gy = 5790 per mm² per µGy. A detector
air kerma of 50–150 µGy brings 2900–8700 quanta to a 0.1 mm pixel; the image noise is counted from
DQE(0) = 0.5–0.7 of them. Synth v2–v15 drew 3000–8000 per 0.1 mm pixel (median 5500) whatever the
beam: 1.6× the counted quanta at the same dose. DQE(0) counts the quantum part; the read-out's fixed
variance comes on top (``acquisition.ELECTRONIC_QUANTA``, ``tests/model/test_synth_detector_noise.py``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mammocad.model.synth import physics
from mammocad.model.synth.acquisition import (
    DETECTOR_KERMA_UGY,
    DQE_ZERO,
    DrSettings,
    counted_quanta,
    detect_dr,
)
from mammocad.model.synth.dicom_writer import PROFILES


def test_fluence_per_air_kerma_is_worked_out_from_nist_air() -> None:
    assert physics.quanta_per_mm2_per_ugy(20.0) == pytest.approx(5791, rel=0.002)
    low, high = (physics.quanta_per_mm2_per_ugy(e) for e in physics.ENERGY_RANGE_KEV)
    assert 4000 < low < 4200 and 7000 < high < 7150  # softer beams carry fewer quanta per µGy
    with pytest.raises(ValueError, match="energy_kev"):
        physics.quanta_per_mm2_per_ugy(50.0)


def test_drawn_exposures_count_the_quanta_of_their_air_kerma_energy_and_dqe() -> None:
    draws = []
    for k in range(300):
        rng = np.random.default_rng([17, k])
        energy = float(rng.uniform(*physics.ENERGY_RANGE_KEV))
        draws.append((energy, DrSettings.sample(rng, energy_kev=energy).photons_behind))
    for energy, photons in draws:
        per_ugy = physics.quanta_per_mm2_per_ugy(energy) * 0.01  # a 0.1 mm pixel
        assert DETECTOR_KERMA_UGY[0] * DQE_ZERO[0] * per_ugy <= photons <= DETECTOR_KERMA_UGY[1] * DQE_ZERO[1] * per_ugy
    typical = counted_quanta(100.0, 19.5, 0.6)  # the middle of every range
    assert np.median([p for _, p in draws]) == pytest.approx(typical, rel=0.12)


def flat_log_noise(settings: DrSettings, spacing: float, size: int = 480) -> float:
    """Variance of the log signal inside a flat 40 mm slab of fat at the drawn kerma (no scatter or heel:
    the beam's, not the detector's), the detector as ``settings`` has it."""
    quiet = dataclasses.replace(settings, scatter_to_primary=0.0, heel_drop=0.0, heel_residual=0.0)
    line = np.full((size, size), 40.0 * physics.attenuation_per_mm("adipose", 20.0), np.float32)
    out = detect_dr(line, np.ones_like(line), spacing, quiet, np.random.default_rng(7))
    inner = out[40:-40, 40:-40].astype(np.float64)
    return float(inner.var())


def transfer_power(settings: DrSettings, spacing: float, n: int = 512) -> float:
    """Mean |T|² over the drawing's frequency band: the share of white noise's variance the detector's blur keeps.

    The glare's 1.5 mm blur keeps under 0.1 % of white noise's variance at these spacings: only
    the (1 − glare) it takes from the core counts.
    """
    f = np.fft.fftfreq(n, d=spacing)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    radius = np.hypot(fx, fy)
    t = (np.exp(-2 * np.pi ** 2 * settings.mtf_sigma_mm ** 2 * radius ** 2) * np.sinc(fx * settings.pitch_mm)
         * np.sinc(fy * settings.pitch_mm) / (1.0 + (2 * np.pi * settings.phosphor_mm * radius) ** 2))
    return float(np.mean(((1.0 - settings.glare) * t) ** 2))


@pytest.mark.parametrize(("detector", "pitch"), [("a-Se", 0.07), ("CsI", 0.1)])
@pytest.mark.parametrize("spacing", [0.05, 0.1])
def test_flat_field_noise_is_the_poisson_noise_of_the_counted_quanta(detector: str, pitch: float,
                                                                      spacing: float) -> None:
    """var(log) = |T|² / N for N counted quanta per drawn pixel, N = photons_behind × (spacing / 0.1)²."""
    settings = DrSettings.sample(np.random.default_rng(3), detector=detector, pitch_mm=pitch, energy_kev=20.0)
    settings = dataclasses.replace(settings, electronic=0.0, glare=0.0)
    quanta = settings.photons_behind * (spacing / 0.1) ** 2
    expected = transfer_power(settings, spacing) / quanta
    assert flat_log_noise(settings, spacing) == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("profile", [p for p in PROFILES if not p.secondary_capture], ids=lambda p: p.model)
def test_a_drawn_exposures_flat_field_noise_is_its_quanta_and_its_read_out(profile) -> None:  # type: ignore[no-untyped-def]
    """Every DR unit as drawn, electronics and glare included: var(log) = (|T|²·N + σ²) / N² at the drawn
    kerma, N counted quanta and σ the read-out's std in quanta per 0.1 mm pixel."""
    for k in range(3):
        settings = DrSettings.sample(np.random.default_rng([29, k]), detector=profile.detector,
                                     pitch_mm=profile.full_spacing_mm, energy_kev=19.0)
        quanta = settings.photons_behind
        expected = (transfer_power(settings, 0.1) * quanta + settings.electronic ** 2) / quanta ** 2
        assert flat_log_noise(settings, 0.1) == pytest.approx(expected, rel=0.03), (k, settings)
