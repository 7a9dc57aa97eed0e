"""Screen-film acquisition and digitisation, as in the archives (DDSM/CBIS-DDSM) the detector meets.

1. Exposure behind the breast (primary + scatter, its ratio from the breast's thickness behind
   the grid, and the whole heel effect: the beam's fall towards the nipple side, which no
   flat-field takes out of film; synth v15), with screen unsharpness and a little quantum
   mottle (screens need far fewer photons than DR detectors). A photo-timer ends the exposure
   (synth v8): its sensor sits under the breast 25-55 mm from the chest wall, and the exposure
   stops when what reaches it would develop to the exam's target density, so a fatty breast
   gets a short exposure and a dense one a long one, each landing near the target where the
   sensor is (``aec_chamber``).
2. The film's characteristic (H&D) curve: optical density against log exposure, a sigmoid
   with toe and shoulder and a gamma (maximal slope) of 3.2–4.4 (mammographic film is
   high-contrast; synth v4 raised it from 2.5–3.5, with the tissue's cloud, towards the
   CBIS-DDSM films' tissue power at 2.5–5 mm periods); the photo-timer puts the breast on the
   straight part.
3. Film grain and the digitiser's noise: density noise std ∝ tanh(D / ``GRAIN_KNEE_D``), flat
   in the dark range and falling toward clear film, as the CBIS-DDSM scans show it
   (``grain_std``; synth v2-v14 grew it as sqrt(D), without end in the dark range).
4. What is on the film besides the breast: burned-in labels and lead markers, tape, scratches,
   and the clear, unexposed border (``film_marks``), drawn before the grain so that they carry
   the grain of their own density (``add_grain``, synth v15; before, they had none).
5. The digitiser: a light-transmission scan with a square aperture of 43.5–200 µm, as wide as
   its pitch (as ``mtf.aperture_blur``, synth v13: a 0.2 mm scan keeps 0.76 of the signal at
   2 cycles/mm; synth v2-v12's Gaussian of σ = pitch/2 kept 0.45), and its optics' spread, a
   Gaussian of σ 18-24 µm (synth v15, fitted to the films' noise spectrum), values linear in density over
   its range (dense film → dark), 8–16 bits. Drawn coarser than the scan pitch,
   the image is that scan as the standardiser's resize leaves it (``mtf.resampling_mtf``).
Display values are 0..1, bright = transparent film = dense tissue (MONOCHROME2).
The four films of an exam share one ``FilmSettings`` (film, screens, processor, exposure
setting, digitiser); scatter, the sensor's place and its error are each view's (``FilmView``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from mammocad.model.synth.acquisition import (
    GRID_SELECTIVITY,
    HEEL_DROP,
    MEDIAN_THICKNESS_MM,
    detector_blur,
    exposure_of,
    heel_profile,
    scatter_to_primary,
)
from mammocad.model.synth.film_marks import FilmLabel, add_marks
from mammocad.model.synth.mtf import apply_mtf, resampling_mtf

#: Radius (mm) of the photo-timer's sensor; film units' sensors are a few cm².
AEC_SENSOR_RADIUS_MM = 8.0
#: Where the sensor sits, mm from the chest wall (technologists move it under the densest
#: tissue; it stays within the breast's inner half when the breast is short).
AEC_SENSOR_FROM_WALL_MM = (25.0, 55.0)
#: Range of the exam's target density under the sensor: with 0.7-1.3 the films came out brighter
#: than the CBIS-DDSM films (median 0.61 against 0.52 in the breast, DATASETS.md "Film exposure").
D_TARGET = (0.8, 1.8)
#: Density above which film noise is flat (``grain_std``). Fitted to the 8 CBIS-DDSM scans' noise
#: against stored value (residual to the 4-neighbour mean binned by the 3 × 7 mean, median over
#: the films, relative to its value at 0.3 of full scale; ``tests/model/test_film_grain.py``):
#: 0.93 / 0.85 / 0.67 / 0.51 / 0.38 at 0.5 / 0.6 / 0.7 / 0.8 / 0.85 of full scale. Film wedges
#: give 0.90 / 0.86 / 0.72 / 0.54 / 0.43 with 1.1, 0.87 / 0.81 / 0.67 / 0.48 / 0.38 with 1.3;
#: sqrt(D) gave 0.82 / 0.74 / 0.64 / 0.52 / 0.45.
GRAIN_KNEE_D = 1.2
#: Range of σ (mm) of the digitiser's optical spread (``digitise``). Fitted to the 8 CBIS-DDSM
#: scans' noise power at 0.05 mm in the 3-5 / 5-7.5 / 7.5-10 cycles/mm bands (2360 / 1060 / 489,
#: median over 128-px ROIs at 0.3 of full scale, in stored units² · mm²): with the aperture alone
#: synthetic film gave 2760 / 2370 / 1640 (white to the scan's Nyquist), so its residual to the
#: 4-neighbour mean (the highest frequencies) was 600-1550 of 65535 against the films' 430-530,
#: though its power at 2.5-5 cycles/mm, where the grain is set, was the films'. Lowering the
#: grain instead would take that power, and the 0.2 mm noise the detector sees, to a third of theirs.
SCAN_SPOT_MM = (0.018, 0.024)
#: Range of the quanta absorbed per 0.1 mm pixel behind the breast (``FilmSettings.photons_behind``;
#: 100-310 thousand per mm², fewer than DR). At 0.2 mm the mottle is most of the film's noise at
#: 1.5-2.5 cycles/mm (the realism report's NPS row): with synth v2-v15's 400-1250 the 8 film views
#: of seed 5105 had 1.51× the CBIS-DDSM films' noise power there, 0.68e-6 of their 1.21e-6 mm² the
#: mottle's (0.30e-6 the grain's); 1000-3125 gives 1.00×, β 3.14 → 3.19 (films 3.15). The grain was
#: not the lever: it is set at the scans' own 0.05 mm pitch (``tests/model/test_film_grain.py``),
#: where the screen's blur has taken the mottle away. More mottle flattens the breast's spectrum
#: below real film's β (160-500 gave 2.84 against 3.15) (DATASETS.md, "Film noise").
PHOTONS_BEHIND = (1000.0, 3125.0)


@dataclass(frozen=True)
class FilmSettings:
    """One exam's film, screens, processor, exposure setting and digitiser: its four films share them."""

    gamma: float  # film contrast: largest slope dD/dlog10(E)
    d_min: float  # base + fog
    d_max: float
    d_target: float  # density the photo-timer ends the exposure on, under its sensor
    screen_sigma_mm: float
    # Share of the screen's light spread over millimetres (its low-frequency drop). Small: a
    # lead BB in the open beam beside the breast shows white on real films, though the beam
    # there is up to about 200 times what the photo-timer ends on; synth v2-v7's 5 % filled
    # such a BB with the open beam's light and turned it black.
    screen_glare: float
    # Quanta absorbed per 0.1 mm pixel behind the breast (``PHOTONS_BEHIND``): quantum mottle,
    # white below the screen's blur.
    photons_behind: float
    # Density noise std at D = 1 for a 0.1 mm aperture (``grain_std``): the film's grain plus the digitiser's
    # own noise, set (synth v3) so the noise power at 0.1 mm, 2.5-5 cycles/mm, comes near the
    # CBIS-DDSM films' (MODEL_CARD.md, "Working resolution").
    grain: float
    scan_pitch_mm: float
    scan_bits: int
    scan_d_max: float  # density the digitiser maps to black
    # The raw beam's fall from the chest wall towards the nipple side (``acquisition.heel_profile``),
    # the exam's tube's. Film has no flat-field correction: all of it stays in the exposure.
    heel_drop: float = 0.0
    # σ (mm) of the digitiser's optical spread (its spot or lens) on top of its aperture (``digitise``).
    scan_spot_mm: float = 0.0

    @classmethod
    def sample(cls, rng: np.random.Generator) -> FilmSettings:
        return cls(gamma=float(rng.uniform(3.2, 4.4)), d_min=float(rng.uniform(0.15, 0.25)),
                   d_max=float(rng.uniform(3.6, 4.2)), d_target=float(rng.uniform(*D_TARGET)),
                   screen_sigma_mm=float(rng.uniform(0.06, 0.12)), screen_glare=float(rng.uniform(0.003, 0.012)),
                   photons_behind=float(rng.uniform(*PHOTONS_BEHIND)),
                   grain=float(rng.uniform(0.016, 0.04)), scan_pitch_mm=float(rng.choice([0.05, 0.0435, 0.1, 0.2])),
                   scan_bits=int(rng.choice([8, 12, 12, 16])), scan_d_max=float(rng.uniform(3.0, 3.8)),
                   heel_drop=float(rng.uniform(*HEEL_DROP)), scan_spot_mm=float(rng.uniform(*SCAN_SPOT_MM)))


@dataclass(frozen=True)
class FilmView:
    """What differs between an exam's films: scatter (with the breast's thickness), where the
    technologist put the photo-timer's sensor, and how far its exposure missed the target."""

    scatter_to_primary: float
    scatter_sigma_mm: float
    sensor_from_wall_mm: float
    aec_error_d: float  # density error of the photo-timer at its sensor (QC allows ±0.15)

    @classmethod
    def sample(cls, rng: np.random.Generator, *, thickness_mm: float = MEDIAN_THICKNESS_MM) -> FilmView:
        """One film of a breast compressed to ``thickness_mm``, taken behind the grid.

        Screen-film screening units had the same moving grid as DR ones, and the breast's
        thickness sets the scatter as it does for DR (``acquisition.scatter_to_primary``: 0.06–0.23
        from 40 to 80 mm). Synth v2–v14 drew 0.2–0.6 whatever the thickness: thin breasts 3–6
        times too hazy, and no difference between a thin and a thick one.
        """
        spr = scatter_to_primary(thickness_mm, selectivity=float(rng.uniform(*GRID_SELECTIVITY)))
        return cls(scatter_to_primary=spr, scatter_sigma_mm=float(rng.uniform(15, 35)),
                   sensor_from_wall_mm=float(rng.uniform(*AEC_SENSOR_FROM_WALL_MM)),
                   aec_error_d=float(np.clip(rng.normal(0.0, 0.07), -0.15, 0.15)))


def aec_chamber(mask: np.ndarray, spacing: float, from_wall_mm: float) -> np.ndarray:
    """The photo-timer's sensor: a disc ``from_wall_mm`` from the chest wall (the image edge the
    breast covers most), at the breast's mid-height there, clipped to the breast; never further
    in than half the breast's depth. The whole breast when there is no breast to put it under."""
    inside = mask > 0.99
    if not inside.any():
        return np.ones(mask.shape, dtype=bool)
    cols = np.nonzero(inside.any(axis=0))[0]
    wall_left = inside[:, 0].sum() >= inside[:, -1].sum()
    depth = (cols.max() if wall_left else mask.shape[1] - 1 - cols.min()) + 1
    offset = int(min(from_wall_mm / spacing, 0.5 * depth))
    col = offset if wall_left else mask.shape[1] - 1 - offset
    rows = np.nonzero(inside[:, col])[0]
    if not len(rows):
        return inside
    row = 0.5 * (rows.min() + rows.max())
    rr, cc = np.ogrid[:mask.shape[0], :mask.shape[1]]
    disc = np.hypot(rr - row, cc - col) <= AEC_SENSOR_RADIUS_MM / spacing
    sensor = disc & inside
    return sensor if sensor.any() else inside


def hd_curve(log_exposure: np.ndarray, settings: FilmSettings, log_e0: float) -> np.ndarray:
    """Optical density: a logistic in log10 exposure with slope ``gamma`` at its midpoint ``log_e0``."""
    span = settings.d_max - settings.d_min
    return (settings.d_min + span * special.expit(4.0 * settings.gamma / span * (log_exposure - log_e0))).astype(
        np.float32)


def expose_film(line_integral: np.ndarray, mask: np.ndarray, spacing: float, settings: FilmSettings,
                view: FilmView, rng: np.random.Generator, detector_layer: np.ndarray | None = None) -> np.ndarray:
    """Optical density of the developed film (no labels), with screen blur, mottle and grain."""
    density = develop_film(line_integral, mask, spacing, settings, view, rng, detector_layer)
    return add_grain(density, settings, spacing, rng)


def develop_film(line_integral: np.ndarray, mask: np.ndarray, spacing: float, settings: FilmSettings,
                 view: FilmView, rng: np.random.Generator, detector_layer: np.ndarray | None = None) -> np.ndarray:
    """Optical density the exposure develops to, with screen blur and mottle, before grain (``add_grain``).

    The photo-timer ends the exposure when its sensor (``aec_chamber``) has what develops to
    the exam's target density (give or take its error), so fatty and dense breasts both land
    there under the sensor; tissue fattier than the sensor's comes out darker, denser brighter.
    detector_layer: what lies between screen and film (dust, lint, ``confusers``): it dims the
    screen's light after the screen's blur.
    The heel effect (``settings.heel_drop``) dims the beam towards the nipple side; DR's
    flat-field correction divides it out, film has nothing that does, so the nipple side is
    exposed less (lighter on the film), and the photo-timer senses the beam as it is there.
    """
    exposure = exposure_of(line_integral, mask, spacing, view.scatter_to_primary, view.scatter_sigma_mm)
    exposure = exposure * heel_profile(mask, spacing, settings.heel_drop)
    inside = mask > 0.99
    per_pixel = settings.photons_behind * (spacing / 0.1) ** 2
    behind = float(np.median(exposure[inside])) if inside.any() else 0.3
    n0 = per_pixel / max(behind, 1e-4)
    sensed = float(np.mean(exposure[aec_chamber(mask, spacing, view.sensor_from_wall_mm)]))
    counts = rng.poisson(np.float64(n0) * exposure).astype(np.float32)
    counts = detector_blur(counts, spacing, settings.screen_sigma_mm, settings.screen_glare, detector_layer)
    log_e = np.log10(np.maximum(counts, 0.5) / np.float32(n0))
    span = settings.d_max - settings.d_min
    target = float(np.clip(settings.d_target + view.aec_error_d, settings.d_min + 0.05, settings.d_max - 0.05))
    frac = (target - settings.d_min) / span
    log_e0 = float(np.log10(max(sensed, 1e-12))) - float(special.logit(frac)) * span / (4.0 * settings.gamma)
    return hd_curve(log_e, settings, log_e0)


def add_grain(density: np.ndarray, settings: FilmSettings, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """Film grain and the digitiser's noise at each pixel's final density (``grain_std``).

    Why last: the grain is the developed emulsion's and the digitiser reads it wherever there is
    film, under a burned-in label, on the clear border and on tape alike. Drawn before the marks
    (synth v2-v14), the marks replaced it with one exact density: noiseless patches no real film
    has (the CBIS-DDSM scans' clearest film shows about 65-100 of 65535).
    """
    grain = rng.normal(0.0, 1.0, density.shape).astype(np.float32)
    return density + grain_std(density, settings.grain, spacing) * grain


def grain_std(density: np.ndarray, grain: float, spacing: float) -> np.ndarray:
    """Density noise std at ``density`` for pixels of ``spacing`` mm: ``grain`` at D = 1 and 0.1 mm.

    Why this shape: the CBIS-DDSM scans' noise is flat over the dark (dense-film) half of their
    range and falls about linearly toward clear film (``GRAIN_KNEE_D``); a std growing as
    sqrt(D) made the synthetic films' darkest parts the noisiest and their clear parts too
    noisy. Selwyn: the std falls with the area averaged, the power per mm² does not.
    """
    shape = np.tanh(np.maximum(density, 0.0) / GRAIN_KNEE_D) / np.tanh(1.0 / GRAIN_KNEE_D)
    return (grain * (0.1 / spacing) * shape).astype(np.float32)


def digitise(density: np.ndarray, spacing: float, settings: FilmSettings, rng: np.random.Generator) -> np.ndarray:
    """Scanner output 0..1 (bright = low density), blurred by its aperture (a box as wide as its
    pitch, synth v13) and its optics' spread (a Gaussian of ``scan_spot_mm``, synth v15), and
    quantised to its bits.

    Why the spread: a scanner's spot or lens is not a perfect box, and the films' own noise
    shows it, falling by 5× from 3-5 to 7.5-10 cycles/mm where a box alone keeps it nearly
    white (``SCAN_SPOT_MM``). At 2 cycles/mm it keeps 0.95-0.98 of the signal.
    """
    scanned = apply_mtf(density, spacing, box_mm=settings.scan_pitch_mm, gaussian_sigma_mm=settings.scan_spot_mm)
    value = np.clip(1.0 - scanned / settings.scan_d_max, 0.0, 1.0)
    value += rng.normal(0.0, 0.5 / (1 << settings.scan_bits), value.shape).astype(np.float32)
    levels = (1 << settings.scan_bits) - 1
    return (np.round(np.clip(value, 0.0, 1.0) * levels) / levels).astype(np.float32)


def acquire_film(line_integral: np.ndarray, mask: np.ndarray, spacing: float, label: FilmLabel,
                 rng: np.random.Generator, settings: FilmSettings,
                 detector_layer: np.ndarray | None = None, *,
                 thickness_mm: float = MEDIAN_THICKNESS_MM) -> np.ndarray:
    """The whole film chain for one (already display-oriented) view of an exam filmed and
    scanned with ``settings`` → display values 0..1. thickness_mm: the breast's compressed
    thickness, which sets its scatter (``FilmView.sample``)."""
    view = FilmView.sample(rng, thickness_mm=thickness_mm)
    density = develop_film(line_integral, mask, spacing, settings, view, rng, detector_layer)
    density = add_grain(add_marks(density, mask, spacing, label, settings.d_min, rng), settings, spacing, rng)
    return resampling_mtf(digitise(density, spacing, settings, rng), spacing, settings.scan_pitch_mm)
