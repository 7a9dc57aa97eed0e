"""Screen-film acquisition and digitisation, as in the archives (DDSM/CBIS-DDSM) the detector meets.

1. Exposure behind the breast (primary + scatter), with screen unsharpness and a little quantum
   mottle (screens need far fewer photons than DR detectors).
2. The film's characteristic (H&D) curve: optical density against log exposure, a sigmoid
   with toe and shoulder and a gamma (maximal slope) of 3.2–4.4 (mammographic film is
   high-contrast; synth v4 raised it from 2.5–3.5, with the tissue's cloud, towards the
   CBIS-DDSM films' tissue power at 2.5–5 mm periods); the exposure is set so the breast lies on
   the straight part, as an automatic exposure control does.
3. Film grain (density noise growing with density).
4. What is on the film besides the breast: burned-in labels and lead markers, tape, scratches,
   and the clear, unexposed border (``film_marks``).
5. The digitiser: a light-transmission scan with an aperture of 50–200 µm, values linear in
   density over its range (dense film → dark), 8–16 bits. Drawn coarser than the scan pitch,
   the image is that scan as the standardiser's resize leaves it (``mtf.resampling_mtf``).
Display values are 0..1, bright = transparent film = dense tissue (MONOCHROME2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from mammocad.model.synth.acquisition import detector_blur, exposure_of
from mammocad.model.synth.film_marks import FilmLabel, add_marks
from mammocad.model.synth.mtf import gaussian_blur, resampling_mtf


@dataclass(frozen=True)
class FilmSettings:
    gamma: float  # film contrast: largest slope dD/dlog10(E)
    d_min: float  # base + fog
    d_max: float
    d_breast: float  # density the exposure control aims at in the fatty part of the breast
    scatter_to_primary: float
    scatter_sigma_mm: float
    screen_sigma_mm: float
    # Quanta absorbed per 0.1 mm pixel behind the breast (40-125 thousand per mm², fewer than
    # DR): quantum mottle, white below the screen's blur. More mottle than this flattens the
    # breast's spectrum below real film's β (160-500 gave 2.84 against 3.15).
    photons_behind: float
    # Density noise std at D = 1 for a 0.1 mm aperture: the film's grain plus the digitiser's
    # own noise, set (synth v3) so the noise power at 0.1 mm, 2.5-5 cycles/mm, comes near the
    # CBIS-DDSM films' (MODEL_CARD.md, "Working resolution").
    grain: float
    scan_pitch_mm: float
    scan_bits: int
    scan_d_max: float  # density the digitiser maps to black

    @classmethod
    def sample(cls, rng: np.random.Generator) -> FilmSettings:
        return cls(gamma=float(rng.uniform(3.2, 4.4)), d_min=float(rng.uniform(0.15, 0.25)),
                   d_max=float(rng.uniform(3.6, 4.2)), d_breast=float(rng.uniform(0.7, 1.3)),
                   scatter_to_primary=float(rng.uniform(0.2, 0.6)), scatter_sigma_mm=float(rng.uniform(15, 35)),
                   screen_sigma_mm=float(rng.uniform(0.06, 0.12)), photons_behind=float(rng.uniform(400, 1250)),
                   grain=float(rng.uniform(0.016, 0.04)), scan_pitch_mm=float(rng.choice([0.05, 0.0435, 0.1, 0.2])),
                   scan_bits=int(rng.choice([8, 12, 12, 16])), scan_d_max=float(rng.uniform(3.0, 3.8)))


def hd_curve(log_exposure: np.ndarray, settings: FilmSettings, log_e0: float) -> np.ndarray:
    """Optical density: a logistic in log10 exposure with slope ``gamma`` at its midpoint ``log_e0``."""
    span = settings.d_max - settings.d_min
    return (settings.d_min + span * special.expit(4.0 * settings.gamma / span * (log_exposure - log_e0))).astype(
        np.float32)


def expose_film(line_integral: np.ndarray, mask: np.ndarray, spacing: float, settings: FilmSettings,
                rng: np.random.Generator, aec_line_integral: float,
                detector_layer: np.ndarray | None = None) -> np.ndarray:
    """Optical density of the developed film (before labels), with screen blur, mottle and grain.

    aec_line_integral: the line integral the automatic exposure control was set for (the
    breast's thickness of a typical fat/gland mix): that path lands on ``d_breast``, so fatty
    breasts come out darker and dense ones brighter, as on real film. detector_layer: what
    lies between screen and film (dust, lint, ``confusers``): it dims the screen's light
    after the screen's blur.
    """
    exposure = exposure_of(line_integral, mask, spacing, settings.scatter_to_primary, settings.scatter_sigma_mm)
    inside = mask > 0.99
    per_pixel = settings.photons_behind * (spacing / 0.1) ** 2
    behind = float(np.median(exposure[inside])) if inside.any() else 0.3
    n0 = per_pixel / max(behind, 1e-4)
    counts = rng.poisson(np.float64(n0) * exposure).astype(np.float32)
    counts = detector_blur(counts, spacing, settings.screen_sigma_mm, 0.05, detector_layer)
    log_e = np.log10(np.maximum(counts, 0.5) / np.float32(n0))
    ref = float(np.log10(np.exp(-aec_line_integral) * (1.0 + settings.scatter_to_primary)))
    span = settings.d_max - settings.d_min
    frac = (settings.d_breast - settings.d_min) / span
    log_e0 = ref - float(special.logit(frac)) * span / (4.0 * settings.gamma)
    density = hd_curve(log_e, settings, log_e0)
    grain = rng.normal(0.0, 1.0, density.shape).astype(np.float32)
    scale = settings.grain * (0.1 / spacing)  # Selwyn: std falls with the area averaged, power per mm² does not
    return density + scale * np.sqrt(np.maximum(density, 0.05)) * grain


def digitise(density: np.ndarray, spacing: float, settings: FilmSettings, rng: np.random.Generator) -> np.ndarray:
    """Scanner output 0..1 (bright = low density), blurred by its aperture and quantised to its bits."""
    scanned = gaussian_blur(density, spacing, 0.5 * settings.scan_pitch_mm)
    value = np.clip(1.0 - scanned / settings.scan_d_max, 0.0, 1.0)
    value += rng.normal(0.0, 0.5 / (1 << settings.scan_bits), value.shape).astype(np.float32)
    levels = (1 << settings.scan_bits) - 1
    return (np.round(np.clip(value, 0.0, 1.0) * levels) / levels).astype(np.float32)


def acquire_film(line_integral: np.ndarray, mask: np.ndarray, spacing: float, label: FilmLabel,
                 rng: np.random.Generator, aec_line_integral: float,
                 detector_layer: np.ndarray | None = None) -> np.ndarray:
    """The whole film chain for one (already display-oriented) view → display values 0..1."""
    settings = FilmSettings.sample(rng)
    density = expose_film(line_integral, mask, spacing, settings, rng, aec_line_integral, detector_layer)
    density = add_marks(density, mask, spacing, label, settings.d_min, rng)
    return resampling_mtf(digitise(density, spacing, settings, rng), spacing, settings.scan_pitch_mm)
