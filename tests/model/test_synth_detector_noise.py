"""DR electronic (read-out) noise as a fixed additive variance, on top of DQE(0)'s quanta (issue 9).

A real a-Se or CsI detector's read-out adds a fixed variance per pixel in detector units, whatever
the dose, so where fewer quanta land (behind dense tissue, the pectoral muscle) it is a larger
share of the noise and the log image's variance rises more than Poisson's 1/N. Synth v16 first drew
the electronics as a share of DQE(0)'s noise, set to 0: a dense region k times darker had exactly
k times the variance of fat. Flat fields here: no scatter or heel (the beam's, not the detector's).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from mammocad.model.synth.acquisition import ELECTRONIC_QUANTA, DrSettings, counted_quanta, detect_dr

#: Line integral of the fat (4 cm of adipose at 20 keV) and the extra of the dense region: a tenth of the fluence.
FAT_LINE, DENSE_EXTRA = 1.82, float(np.log(10.0))
DETECTORS = [("a-Se", 0.07), ("CsI", 0.1)]


def quiet(settings: DrSettings, **changes: Any) -> DrSettings:
    """The detector as drawn, without the beam's scatter and heel."""
    return dataclasses.replace(settings, scatter_to_primary=0.0, heel_drop=0.0, heel_residual=0.0, **changes)


def transfer_power(settings: DrSettings, spacing: float, n: int = 512) -> float:
    """Mean |T|² of the detector's blur over the drawing's band: the share of white noise's variance it keeps."""
    f = np.fft.fftfreq(n, d=spacing)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    radius = np.hypot(fx, fy)
    t = (np.exp(-2 * np.pi ** 2 * settings.mtf_sigma_mm ** 2 * radius ** 2) * np.sinc(fx * settings.pitch_mm)
         * np.sinc(fy * settings.pitch_mm) / (1.0 + (2 * np.pi * settings.phosphor_mm * radius) ** 2))
    return float(np.mean(((1.0 - settings.glare) * t) ** 2))


def fat_and_dense_variance(settings: DrSettings, spacing: float = 0.1, seed: int = 7) -> tuple[float, float]:
    """var(log) inside fat (3/5 of the field: the median exposure, so the drawn kerma) and inside a dense band
    transmitting a tenth of it, both well clear of their edge and the field's."""
    line = np.full((400, 500), FAT_LINE, np.float32)
    line[:, 300:] += DENSE_EXTRA
    out = detect_dr(line, np.ones_like(line), spacing, settings, np.random.default_rng(seed)).astype(np.float64)
    return float(out[30:-30, 30:270].var()), float(out[30:-30, 330:-30].var())


@pytest.mark.parametrize(("detector", "pitch"), DETECTORS)
def test_dense_tissue_has_more_than_poissons_noise_over_fat(detector: str, pitch: float) -> None:
    """var(dense) / var(fat) exceeds the Poisson-only ratio (10 for a tenth of the fluence), for every drawn detector.

    The same seed draws the same quanta with and without the electronics, so the Poisson-only ratio
    is measured on the very same Poisson noise and the comparison holds to a fraction of a per cent.
    """
    for k in range(3):
        drawn = quiet(DrSettings.sample(np.random.default_rng([41, k]), detector=detector, pitch_mm=pitch,
                                        energy_kev=20.0))
        assert ELECTRONIC_QUANTA[0] <= drawn.electronic <= ELECTRONIC_QUANTA[1]
        fat, dense = fat_and_dense_variance(drawn)
        fat_q, dense_q = fat_and_dense_variance(dataclasses.replace(drawn, electronic=0.0))
        assert dense_q / fat_q == pytest.approx(10.0, rel=0.1)  # Poisson alone: the exposure ratio
        n, t2, e2 = drawn.photons_behind, transfer_power(drawn, 0.1), drawn.electronic ** 2
        expected = (t2 * n / 10 + e2) / (t2 * n / 10) / ((t2 * n + e2) / (t2 * n))  # its rise over Poisson's
        assert (dense / fat) / (dense_q / fat_q) == pytest.approx(expected, rel=0.02), (k, drawn)
        assert dense / fat > dense_q / fat_q * (1.0 + 0.5 * (expected - 1.0)), (k, drawn)


@pytest.mark.parametrize(("detector", "pitch"), DETECTORS)
def test_at_the_median_dose_the_electronics_leave_the_noise_within_five_per_cent(detector: str, pitch: float) -> None:
    """At the median kerma, DQE and energy, even the largest electronic noise drawn keeps a 0.1 mm pixel's noise
    std within 5 % of the quanta's alone; at a tenth of that fluence it is higher than Poisson's alone."""
    settings = DrSettings.sample(np.random.default_rng(3), detector=detector, pitch_mm=pitch, energy_kev=20.0)
    settings = quiet(settings, photons_behind=counted_quanta(100.0, 20.0, 0.6), electronic=ELECTRONIC_QUANTA[1])
    fat, dense = fat_and_dense_variance(settings)
    fat_q, dense_q = fat_and_dense_variance(dataclasses.replace(settings, electronic=0.0))
    assert 1.0 < np.sqrt(fat / fat_q) < 1.05
    assert np.sqrt(dense / dense_q) > np.sqrt(fat / fat_q)


@pytest.mark.parametrize(("detector", "pitch"), DETECTORS)
@pytest.mark.parametrize("spacing", [0.05, 0.1])
def test_flat_field_noise_is_the_blurred_quanta_plus_the_read_out_variance(detector: str, pitch: float,
                                                                          spacing: float) -> None:
    """var(log) = (|T|²·N + σ²) / N² for N = photons_behind × (spacing / 0.1)² counted quanta and read-out
    variance σ² = electronic² × (spacing / 0.1)² per drawn pixel: the noise per mm² is the spacing's own."""
    settings = DrSettings.sample(np.random.default_rng(5), detector=detector, pitch_mm=pitch, energy_kev=20.0)
    settings = quiet(settings, electronic=20.0)  # large, so the formula is tested, not the quanta alone
    area = (spacing / 0.1) ** 2
    n, e2 = settings.photons_behind * area, settings.electronic ** 2 * area
    line = np.full((480, 480), FAT_LINE, np.float32)
    out = detect_dr(line, np.ones_like(line), spacing, settings, np.random.default_rng(7))
    expected = (transfer_power(settings, spacing) * n + e2) / n ** 2
    assert float(out[40:-40, 40:-40].astype(np.float64).var()) == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_electronic_noise_is_a_finite_non_negative_std(value: float) -> None:
    settings = DrSettings.sample(np.random.default_rng(5))
    with pytest.raises(ValueError, match="electronic must be the read-out noise std in quanta"):
        dataclasses.replace(settings, electronic=value)
