"""Synth v3's blurs and noise are the same in millimetres whatever pixel size a study is drawn at.

Synth v2 drew detector and screen blurs with sampled Gaussian kernels, which hardly blur when σ
is under half a pixel, and skipped the resize every real image goes through: drawn at 0.2 mm,
its noise had about 4× the power at 1.5–2.5 cycles/mm of the same chain drawn at 0.05 mm and
resized to 0.2 mm (MODEL_CARD.md, "Working resolution"). These tests measure noise power on
flat phantoms through the real acquisition chains.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mammocad.model import realism
from mammocad.model.synth.acquisition import DrSettings, detect_dr
from mammocad.model.synth.film import FilmSettings, FilmView, digitise, expose_film
from mammocad.model.synth.mtf import apply_mtf, gaussian_blur, resampling_mtf, resampling_tent_mm

FIELD_MM = 76.8
WORKING_MM = 0.2
BANDS = ((0.5, 1.5), (1.5, 2.5))


def band_nps(image: np.ndarray, band: tuple[float, float]) -> float:
    """Median noise power (intensity²·mm²) over 128-px ROIs, measured as the realism report measures it."""
    everywhere = np.ones(image.shape, dtype=bool)
    return float(np.median(realism.spectrum_stats(image, everywhere, spacing_mm=WORKING_MM, roi_px=128,
                                                  nps_band=band).nps_hf))


def flat_view(kind: str, spacing: float, native_mm: float) -> np.ndarray:
    """A uniform 2-mm-line-integral phantom through the DR or film chain, seen at the working spacing."""
    n = int(round(FIELD_MM / spacing))
    line = np.full((n, n), 2.0, np.float32)
    mask = np.ones((n, n), np.float32)
    rng = np.random.default_rng(5)
    if kind == "dr":
        image = detect_dr(line, mask, spacing, DrSettings.sample(np.random.default_rng(1)), rng)
    else:
        settings = dataclasses.replace(FilmSettings.sample(np.random.default_rng(1)), scan_pitch_mm=native_mm,
                                       scan_bits=16)
        view = FilmView.sample(np.random.default_rng(2))
        image = digitise(expose_film(line, mask, spacing, settings, view, rng), spacing, settings, rng)
    return realism.resample(resampling_mtf(image, spacing, native_mm), spacing, WORKING_MM)


@pytest.mark.parametrize("kind", ["dr", "film"])
def test_noise_power_per_mm2_does_not_depend_on_the_drawing_spacing(kind: str) -> None:
    native = 0.05
    fine, coarse = flat_view(kind, 0.05, native), flat_view(kind, WORKING_MM, native)
    for band in BANDS:
        ratio = band_nps(coarse, band) / band_nps(fine, band)
        # synth v2 gave 4.1 (DR) and 3.4 (film) in the upper band
        assert 0.75 < ratio < 1.35, (kind, band, ratio)


def grating(freq: float, spacing: float, cols: int, rows: int) -> np.ndarray:
    """A cosine of ``freq`` cycles/mm along the rows (an integer number of periods keeps it clean)."""
    return np.cos(2 * np.pi * freq * np.arange(cols) * spacing).astype(np.float32)[None, :].repeat(rows, axis=0)


def gain(out: np.ndarray, wave: np.ndarray, span: slice) -> float:
    """How much of ``wave`` (one row, over ``span``) survives in ``out``: the projection of one on the other."""
    return float(np.dot(out[span], wave[span]) / np.dot(wave[span], wave[span]))


def test_gaussian_blur_is_exact_below_half_a_pixel() -> None:
    spacing, sigma = 0.2, 0.075  # σ is 0.375 px: a sampled kernel is nearly a delta
    for freq in (0.5, 1.5, 2.0):  # cycles/mm, an integer number of periods over the row
        wave = grating(freq, spacing, 400, 64)
        out = gaussian_blur(wave, spacing, sigma)
        assert gain(out[32], wave[32], slice(50, 350)) == pytest.approx(np.exp(-2 * np.pi ** 2 * sigma ** 2 * freq ** 2), abs=0.01)


def test_the_resize_tent_matches_the_standardisers_resize() -> None:
    """White noise at 0.05 mm resized to 0.2 mm, against white noise drawn at 0.2 mm through the tent."""
    rng = np.random.default_rng(2)
    native = rng.normal(0.0, 0.01, (2048, 2048)).astype(np.float32)
    resized = realism.resample(native, 0.05, WORKING_MM)
    drawn = resampling_mtf(rng.normal(0.0, 0.01 * 0.05 / WORKING_MM, (512, 512)).astype(np.float32),
                           WORKING_MM, 0.05)
    for band in BANDS:
        assert band_nps(drawn, band) / band_nps(resized, band) == pytest.approx(1.0, abs=0.25), band


def test_a_drawing_at_the_detectors_own_pitch_is_not_resized() -> None:
    assert resampling_tent_mm(0.1, 0.085) == 0.0
    assert resampling_tent_mm(0.2, 0.085) == 0.2
    image = np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32)
    assert np.array_equal(resampling_mtf(image, 0.1, 0.1), image)
    assert np.allclose(apply_mtf(image, 0.1), image)
    flat = np.full((40, 30), 3.0, np.float32)  # blurs keep the mean and the edges (no wrap)
    assert np.allclose(apply_mtf(flat, 0.2, gaussian_sigma_mm=0.1, tent_mm=0.2), 3.0, atol=1e-4)


@pytest.mark.parametrize("pitch", [0.1, 0.2])
def test_the_digitiser_scans_through_a_box_as_wide_as_its_pitch(pitch: float) -> None:
    """A density grating through ``digitise``: the scan keeps sinc(f·pitch) of it, a square
    aperture's transfer, not the exp(−2π²(pitch/2)²f²) of synth v2-v12's Gaussian (0.45 at
    2 cycles/mm for a 0.2 mm pitch, where the box keeps 0.76)."""
    spacing = 0.05
    settings = dataclasses.replace(FilmSettings.sample(np.random.default_rng(1)), scan_pitch_mm=pitch, scan_bits=16)
    for freq in (1.0, 2.0):
        wave = grating(freq, spacing, 1600, 32)
        scanned = digitise(1.5 + 0.2 * wave, spacing, settings, np.random.default_rng(3))
        density = -(scanned[16] - scanned[16, 200:1400].mean()) * settings.scan_d_max / 0.2  # back to density
        kept = gain(density, wave[16], slice(200, 1400))
        optics = np.exp(-2 * np.pi ** 2 * settings.scan_spot_mm ** 2 * freq ** 2)  # its spot: synth v15
        assert kept == pytest.approx(np.sinc(freq * pitch) * optics, abs=0.02), (freq, kept)
    gaussian = np.exp(-2 * np.pi ** 2 * (pitch / 2) ** 2 * 2.0 ** 2)
    assert kept / optics - gaussian > 0.1, (kept, optics, gaussian)  # the aperture's part  # at 2 cycles/mm the two differ by 0.13 to 0.31
