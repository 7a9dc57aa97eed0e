"""Put a simulated calcification cluster into a real mammogram through the same physics.

A real image's stored values are not line integrals, but near the breast they are a smooth,
monotone function of L = ∫µ dl, which this module approximates from the image itself
(:class:`ValueModel`):

- **For Processing (raw)** data are linear in exposure, so L = −ln(v − pedestal) exactly.
- **DR "For Presentation"** data are log-like before the VOI LUT (which only changes the display):
  v ≈ v0 ± k·L, with + for MONOCHROME2 and − for MONOCHROME1. The slope k (stored units per unit
  of L) is not in the header; it is estimated from the breast's own tissue: the spread between the
  5th and 95th percentile of the smoothed breast interior is taken to be a difference in
  glandular fraction of ``gland_span`` (≈ 0.45) over the compressed thickness T, i.e.
  ΔL = T · (µ_gland − µ_fat) · gland_span. The calcification-to-tissue contrast ratio,
  (µ_HA − µ_gland) / (µ_gland − µ_fat) ≈ 56, hardly changes between 17 and 22 keV, so the
  energy drawn matters little; T and gland_span are drawn per image and set the contrast.
- **Digitised film**: stored values are an optical-density scale (bright = low density in
  MONOCHROME2). The film's characteristic (H&D) curve makes the slope fall towards the toe and
  the shoulder; it is modelled as a logistic between ``low`` (the density of direct exposure)
  and ``high`` (clear film), whose asymptotes stand for the film's maximum density and its
  base + fog, ``FILM_DENSITY_SPAN`` apart. Its steepness is the film's gamma (the largest
  dD/dlog10 E), drawn per image in ``FILM_GAMMA`` (screening film such as Kodak Min-R: about
  3–4.5), not read off the tissue: fitting it to the tissue percentiles with a drawn thickness
  and glandular span (insertion version ≤ 7) gave the 8 CBIS-DDSM films gammas of 1.1–8.4, as
  the tissue spread of a fatty or a dense breast is not the 0.35–0.6 glandular difference
  assumed. A large speck saturates toward clear film instead of growing without bound, and
  specks in the dark periphery have low contrast, as on real film.

The speck's calcium map (``raster.render_cluster``, exact volume) is turned into ΔL by
``physics.calcification_line_integral``; its transmission exp(−ΔL) is blurred by a Gaussian PSF
(the system's MTF: screen and digitiser for film, pixel and focal spot for DR: they spread light,
not attenuation, :func:`blurred_line_integral`) and the result mapped through the model. Its noise:

- **Film**: a pixel's noise (quantum mottle through the curve, grain, the digitiser's own) is a
  function of the density it ends on, not of why it got there: a speck that leaves a pixel at
  the density of dense tissue leaves it the noise dense tissue has on that film. The image's
  own noise against value is measured on the whole film (:func:`noise_profile`; on the CBIS-DDSM
  scans it is flat in the dark range and falls about linearly toward clear film), only the
  smooth background (Gaussian, ``GRAIN_SCALE_PX``) goes through the curve, and the film's own
  grain on top of it is kept, rescaled to what the film shows at the new value. Mapping the
  noisy pixels through the curve instead flattened the grain with the curve's slope: specks
  near clear film came out noiseless, a cue no real calcification carries.
- **DR**: v ≈ v0 + k·L has a constant slope; the lost photons raise the quantum noise in L by
  exp(ΔL/2), so noise of std σ·sqrt(exp(ΔL) − 1) is added (σ: the image's own local noise from
  the residual to the 4-neighbour mean), white noise blurred by the PSF.
- **Raw**: values are counts; the image's noise is scaled with them by exp(−ΔL) and the
  binomial thinning's σ·sqrt(exp(−ΔL)·(1 − exp(−ΔL))) is added, so the variance stays ∝ mean.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage, special

from mammocad.model.synth import physics
from mammocad.model.synth.calcifications import ClusterSpec
from mammocad.model.synth.raster import Box, render_cluster

ACQUISITIONS = ("film", "dr", "raw")
#: Draw ranges per acquisition: effective energy (keV), PSF sigma (mm).
ENERGY_KEV = {"film": (17.0, 20.0), "dr": (18.0, 22.0), "raw": (18.0, 22.0)}
PSF_SIGMA_MM = {"film": (0.06, 0.12), "dr": (0.04, 0.08), "raw": (0.04, 0.08)}
THICKNESS_MM = (40.0, 70.0)
GLAND_SPAN = (0.35, 0.6)
#: Gamma (largest slope of optical density against log10 exposure) of screening film.
FILM_GAMMA = (3.0, 4.5)
#: Optical densities between a film's base + fog (about 0.2) and its maximum (about 3.9):
#: what the film curve's asymptotes stand for (``film.FilmSettings`` draws 3.4-4.0).
FILM_DENSITY_SPAN = 3.7


@dataclass(frozen=True)
class Acquisition:
    """The per-image physics draw: effective energy, compressed thickness, the glandular-fraction
    difference the tissue percentiles stand for (DR), the PSF, and the film's gamma (film)."""

    energy_kev: float
    thickness_mm: float
    gland_span: float
    psf_sigma_mm: float
    film_gamma: float = sum(FILM_GAMMA) / 2

    @classmethod
    def sample(cls, rng: np.random.Generator, acquisition: str,
               psf_sigma_mm: tuple[float, float] | None = None) -> Acquisition:
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {ACQUISITIONS}, got {acquisition!r}")
        return cls(energy_kev=float(rng.uniform(*ENERGY_KEV[acquisition])),
                   thickness_mm=float(rng.uniform(*THICKNESS_MM)), gland_span=float(rng.uniform(*GLAND_SPAN)),
                   psf_sigma_mm=float(rng.uniform(*(psf_sigma_mm or PSF_SIGMA_MM[acquisition]))),
                   **({"film_gamma": float(rng.uniform(*FILM_GAMMA))} if acquisition == "film" else {}))

    def tissue_span_l(self) -> float:
        """ΔL between the breast's fattier and denser tissue (5th → 95th percentile)."""
        delta = (physics.attenuation_per_mm("glandular", self.energy_kev)
                 - physics.attenuation_per_mm("adipose", self.energy_kev))
        return self.thickness_mm * delta * self.gland_span


@dataclass(frozen=True)
class ValueModel:
    """Stored value ↔ line integral near the breast (see the module docstring).

    Values are first *oriented* so that they grow with L (MONOCHROME1: ``vmax − v``); ``raw``
    data are used as they are (linear in exposure). ``slope``: film, the logistic's rate; dr,
    stored units per unit of L. ``low``/``high``: film, the asymptotes; raw, ``low`` is the pedestal.
    """

    acquisition: str
    inverted: bool
    slope: float
    low: float
    high: float
    vmax: float

    def orient(self, stored: np.ndarray) -> np.ndarray:
        v = np.asarray(stored, dtype=np.float64)
        return self.vmax - v if self.inverted else v

    def add_line_integral(self, oriented: np.ndarray, delta_l: np.ndarray) -> np.ndarray:
        """Oriented values after adding ``delta_l`` to the line integral."""
        if self.acquisition == "raw":
            exposure = np.maximum(oriented - self.low, 1e-6)
            return self.low + exposure * np.exp(-delta_l)
        if self.acquisition == "dr":
            return oriented + self.slope * delta_l
        span = self.high - self.low
        frac = np.clip((oriented - self.low) / span, 1e-6, 1 - 1e-6)
        return self.low + span * special.expit(special.logit(frac) + self.slope * delta_l)

    def slope_at(self, oriented: np.ndarray) -> np.ndarray:
        """d(oriented value)/dL at these values (dr: constant; film: the logistic's slope)."""
        if self.acquisition == "film":
            span = self.high - self.low
            frac = np.clip((oriented - self.low) / span, 0.0, 1.0)
            return self.slope * span * frac * (1.0 - frac)
        if self.acquisition == "raw":
            return np.maximum(oriented - self.low, 0.0)
        return np.full(np.shape(oriented), self.slope)

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def estimate_value_model(stored: np.ndarray, interior: np.ndarray, acquisition: str, acq: Acquisition, *,
                         inverted: bool, vmax: float) -> ValueModel:
    """Fit the model to one image. stored: the image (any resolution, e.g. a reduced copy);
    interior: bool mask of the breast away from the skin line (same shape)."""
    if acquisition not in ACQUISITIONS:
        raise ValueError(f"acquisition must be one of {ACQUISITIONS}, got {acquisition!r}")
    if acquisition == "raw":
        pedestal = float(np.percentile(stored, 0.1)) - 1.0
        return ValueModel("raw", False, 1.0, pedestal, vmax, vmax)
    values = np.asarray(stored, dtype=np.float64)
    oriented = vmax - values if inverted else values
    tissue = oriented[interior]
    if tissue.size < 100:
        raise ValueError("the breast interior is too small to estimate the image's contrast scale")
    lo_t, hi_t = (float(v) for v in np.percentile(tissue, [5.0, 95.0]))
    if hi_t - lo_t <= 1e-6 * max(vmax, 1.0):
        raise ValueError("the breast has no contrast (flat image): cannot estimate its value scale")
    if acquisition == "dr":
        return ValueModel("dr", inverted, (hi_t - lo_t) / acq.tissue_span_l(), 0.0, vmax, vmax)
    # Film: logistic H&D curve between direct exposure (low) and clear film (high).
    low = min(float(np.percentile(oriented, 0.5)), lo_t - 0.05 * (hi_t - lo_t))
    high = max(float(np.percentile(oriented, 99.95)) * 1.02, hi_t + 0.1 * (hi_t - lo_t))
    high = min(high, vmax * 1.05)
    return ValueModel("film", inverted, film_rate(acq.film_gamma), low, high, vmax)


def film_rate(gamma: float) -> float:
    """The film logistic's rate per unit of L for a film of this gamma: its largest slope,
    rate · FILM_DENSITY_SPAN / 4 in density per unit of L, is gamma / ln 10 (L = −ln E)."""
    if not FILM_GAMMA[0] * 0.5 <= gamma <= FILM_GAMMA[1] * 2:
        raise ValueError(f"film gamma must be near {FILM_GAMMA[0]}-{FILM_GAMMA[1]} (screening film), got {gamma}")
    return 4.0 * gamma / (np.log(10.0) * FILM_DENSITY_SPAN)


def local_noise(oriented: np.ndarray) -> float:
    """Noise std (oriented units) from the residual to the 4-neighbour mean (robust MAD)."""
    v = np.asarray(oriented, dtype=np.float64)
    if min(v.shape) < 3:
        return 0.0
    resid = v[1:-1, 1:-1] - 0.25 * (v[:-2, 1:-1] + v[2:, 1:-1] + v[1:-1, :-2] + v[1:-1, 2:])
    mad = float(np.median(np.abs(resid - np.median(resid))))
    return 1.4826 * mad / np.sqrt(1.25)


#: Gaussian sigma (pixels) that splits a film patch into the background that goes through the
#: H&D curve and the grain that stays on top of it: at 3 px about 0.1 of white noise's std is left
#: in the background (on a 0.05 mm scan 0.15 mm, finer than the screen blur, so anatomy barely
#: enters the grain).
GRAIN_SCALE_PX = 3.0


@dataclass(frozen=True)
class NoiseProfile:
    """An image's pixel noise (std, oriented units, :func:`local_noise`'s measure) against its
    local mean value, on increasing ``values``; held constant beyond the measured range."""

    values: np.ndarray
    sigmas: np.ndarray

    def at(self, oriented: np.ndarray) -> np.ndarray:
        return np.interp(oriented, self.values, self.sigmas)


def noise_profile(stored: np.ndarray, model: ValueModel, *, row_step: int = 4, bins: int = 48,
                  min_count: int = 400) -> NoiseProfile | None:
    """Measure the image's noise against its value on every ``row_step``-th row of the whole image.

    The whole image, not the breast alone: labels and the clear border hold the bright end of
    the film's range, where inserted specks land. Per value bin the robust std (MAD) of the
    residual to the 4-neighbour mean, binned by a 3 × 7 local mean; bins with fewer than
    ``min_count`` samples are left out. None when no bin has enough (a tiny image).
    """
    rows = np.arange(1, stored.shape[0] - 1, row_step)
    if stored.shape[1] < 9 or not len(rows):
        return None
    band = np.stack([model.orient(stored[rows + k]) for k in (-1, 0, 1)])  # (3, n rows, cols)
    resid = band[1, :, 1:-1] - 0.25 * (band[0, :, 1:-1] + band[2, :, 1:-1] + band[1, :, :-2] + band[1, :, 2:])
    mean = ndimage.uniform_filter1d(band.mean(axis=0), 7, axis=1)[:, 1:-1]
    lo, hi = np.percentile(mean, [0.1, 99.9])
    if hi <= lo:
        return None
    which = np.clip(((mean - lo) / (hi - lo) * bins).astype(np.int64), 0, bins - 1).ravel()
    order = np.argsort(which, kind="stable")
    starts = np.searchsorted(which[order], np.arange(bins + 1))
    flat_mean, flat_resid = mean.ravel()[order], resid.ravel()[order]
    values, sigmas = [], []
    for b in range(bins):
        part = flat_resid[starts[b]:starts[b + 1]]
        if len(part) >= min_count:
            values.append(float(np.median(flat_mean[starts[b]:starts[b + 1]])))
            sigmas.append(1.4826 * float(np.median(np.abs(part - np.median(part)))) / np.sqrt(1.25))
    if not values:
        return None
    return NoiseProfile(np.array(values), np.array(sigmas))


def _film_values(oriented: np.ndarray, delta_l: np.ndarray, model: ValueModel, profile: NoiseProfile) -> np.ndarray:
    """The film patch with the speck: the smooth background through the H&D curve, the film's
    grain kept on top, rescaled to the noise the film shows at the new value; untouched where
    ΔL is 0."""
    smooth = ndimage.gaussian_filter(oriented, GRAIN_SCALE_PX, mode="nearest")
    lit = delta_l > 0
    lifted = np.where(lit, model.add_line_integral(smooth, delta_l), smooth)
    scale = np.where(lit, profile.at(lifted) / np.maximum(profile.at(smooth), 1e-12), 1.0)
    return oriented + (lifted - smooth) + (scale - 1.0) * (oriented - smooth)


def value_levels(stored: np.ndarray, *, row_step: int = 4) -> np.ndarray | None:
    """The stored values an integer image uses when they sit on a grid coarser than one unit, else
    None: CBIS-DDSM's 16-bit films hold about 2900 levels 22-23 apart (12-bit scans rescaled),
    and inserted pixels on the values in between would mark the speck. Sampled on every
    ``row_step``-th row; continued above the brightest by the median gap, up to the dtype's top."""
    if not np.issubdtype(stored.dtype, np.integer):
        return None
    levels = np.unique(stored[::row_step]).astype(np.float64)
    if len(levels) < 3:
        return None
    gap = float(np.median(np.diff(levels)))
    if gap < 1.5:
        return None
    top = float(np.iinfo(stored.dtype).max)
    above = np.rint(levels[-1] + gap * np.arange(1, int((top - levels[-1]) // gap) + 1))
    return np.concatenate([levels, above])


def snap_to_levels(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Each value moved to the nearest of the increasing ``levels``."""
    right = np.clip(np.searchsorted(levels, values), 1, len(levels) - 1)
    lower, upper = levels[right - 1], levels[right]
    return np.where(values - lower <= upper - values, lower, upper)


@dataclass(frozen=True)
class Insertion:
    """The changed rectangle of one image: origin (row, col) and the new stored values there."""

    origin: tuple[int, int]
    values: np.ndarray
    box: Box
    peak_delta_l: float


def render_calcium(shape: tuple[int, int], spec: ClusterSpec, view: str, centre_px: tuple[float, float],
                   spacing: tuple[float, float]) -> tuple[np.ndarray, Box | None]:
    """Calcium path lengths (mm, per pixel) of ``spec`` on a grid of ``shape`` and (row, column)
    pitch ``spacing``, and its truth box (``raster.render_cluster``).

    Pixels taller than wide (a film scanned with a Pixel Aspect Ratio): the cluster is drawn on
    square pixels of the column pitch, and each taller pixel takes the mean of the rows it
    covers, so a round speck stays round in millimetres and keeps its volume.
    """
    ratio = spacing[0] / spacing[1]
    if abs(ratio - 1.0) < 1e-9:
        calcium = np.zeros(shape, dtype=np.float64)
        return calcium, render_cluster(calcium, spec, view, centre_px, spacing[1])
    fine = np.zeros((int(np.ceil(shape[0] * ratio)), shape[1]), dtype=np.float64)
    box = render_cluster(fine, spec, view, (square_row(centre_px[0], ratio), centre_px[1]), spacing[1])
    if box is None:
        return np.zeros(shape, dtype=np.float64), None
    edges = np.arange(shape[0] + 1) * ratio  # of each tall pixel, in square rows from the top edge
    below = np.minimum(np.floor(edges).astype(np.int64), len(fine) - 1)
    cum = np.concatenate([np.zeros((1, shape[1])), np.cumsum(fine, axis=0)])
    at_edges = cum[below] + (edges - below)[:, None] * fine[below]
    x1, y1, x2, y2 = box
    return np.diff(at_edges, axis=0) / ratio, (x1, max(tall_row(y1, ratio), 0.0), x2,
                                               min(tall_row(y2, ratio), shape[0] - 1.0))


def square_row(row: float, ratio: float) -> float:
    """A row of pixels ``ratio`` times taller than wide → the row on square pixels of their width."""
    return (row + 0.5) * ratio - 0.5


def tall_row(row: float, ratio: float) -> float:
    """The inverse of :func:`square_row`."""
    return (row + 0.5) / ratio - 0.5


def insert_cluster(stored: np.ndarray, model: ValueModel, spec: ClusterSpec, view: str,
                   centre_px: tuple[float, float], spacing: float | tuple[float, float], acq: Acquisition,
                   rng: np.random.Generator, profile: NoiseProfile | None = None) -> Insertion | None:
    """Simulate ``spec`` at ``centre_px`` of the real image ``stored``; the image is not changed.

    spacing: mm per pixel, or (row, column) mm for pixels that are not square.
    profile: film only, the image's :func:`noise_profile` (measured from ``stored`` when None).

    Returns the new values of the affected rectangle (same dtype as ``stored``) and the truth
    box in the image's pixels, or None when the cluster falls off the image.
    """
    pitch = (float(spacing), float(spacing)) if np.isscalar(spacing) else tuple(spacing)  # type: ignore[arg-type]
    rows, cols = stored.shape
    reach_mm = spec.extent_mm() + 4 * acq.psf_sigma_mm + spec.haze_mm * 3
    reach_r, reach_c = (int(np.ceil(reach_mm / p)) + 4 for p in pitch)
    r0, c0 = max(int(centre_px[0]) - reach_r, 0), max(int(centre_px[1]) - reach_c, 0)
    r1, c1 = min(int(centre_px[0]) + reach_r + 1, rows), min(int(centre_px[1]) + reach_c + 1, cols)
    if r1 - r0 < 3 or c1 - c0 < 3:
        return None
    calcium, box = render_calcium((r1 - r0, c1 - c0), spec, view, (centre_px[0] - r0, centre_px[1] - c0),
                                  (pitch[0], pitch[1]))
    if box is None:
        return None
    sigma_px = (acq.psf_sigma_mm / pitch[0], acq.psf_sigma_mm / pitch[1])
    delta_l = blurred_line_integral(physics.calcification_line_integral(calcium, acq.energy_kev), sigma_px)
    oriented = model.orient(stored[r0:r1, c0:c1])
    if model.acquisition == "film":
        if profile is None:
            profile = noise_profile(stored, model)
        if profile is None:
            raise ValueError("the image is too small to measure its noise against its value")
        out = _film_values(oriented, delta_l, model, profile)
    else:
        out = model.add_line_integral(oriented, delta_l) + _quantum_noise(oriented, delta_l, model, sigma_px, rng)
    back = model.vmax - out if model.inverted else out
    info = np.iinfo(stored.dtype) if np.issubdtype(stored.dtype, np.integer) else None
    if info is not None:
        back = np.clip(np.rint(back), info.min, min(info.max, model.vmax))
        levels = value_levels(stored)
        if levels is not None:
            changed = back != stored[r0:r1, c0:c1]
            back[changed] = snap_to_levels(back[changed], levels)
    x1, y1, x2, y2 = box
    return Insertion((r0, c0), back.astype(stored.dtype), (x1 + c0, y1 + r0, x2 + c0, y2 + r0),
                     float(delta_l.max()))


def blurred_line_integral(delta_l: np.ndarray, sigma_px: float | tuple[float, float]) -> np.ndarray:
    """The line integral the detector records behind a speck of sharp line integral ``delta_l``.

    The screen (film) or the detector (DR) spreads the *transmitted* light, exp(−ΔL), not the
    attenuation: blurring ΔL and exponentiating after made a speck too dark where it is thick
    and too faint around it, so 0.2–0.5 mm specks came out with up to 16 % more peak contrast
    than the physics gives (insertion version ≤ 7). The absorbed fraction 1 − exp(−ΔL) is
    blurred (it is 0 off the speck, so the patch's edge needs no padding) and turned back
    into an effective ΔL, which the value models take as before.
    """
    absorbed = -np.expm1(-np.asarray(delta_l, dtype=np.float64))
    absorbed = ndimage.gaussian_filter(absorbed, sigma_px, mode="constant")
    return np.asarray(-np.log1p(-np.clip(absorbed, 0.0, 1.0 - 1e-12)))


def _quantum_noise(oriented: np.ndarray, delta_l: np.ndarray, model: ValueModel, psf_px: tuple[float, float],
                   rng: np.random.Generator) -> np.ndarray:
    """DR and raw: the extra quantum noise of the photons the speck absorbed (module docstring)."""
    sigma = local_noise(oriented)
    if sigma <= 0:
        return np.zeros(delta_l.shape)
    noise = ndimage.gaussian_filter(rng.normal(size=delta_l.shape), [max(p, 0.5) * 0.5 for p in psf_px])
    noise /= max(float(noise.std()), 1e-12)
    if model.acquisition == "raw":
        return sigma * np.sqrt(np.exp(-delta_l) * -np.expm1(-delta_l)) * noise
    return sigma * np.sqrt(np.expm1(np.maximum(delta_l, 0.0))) * noise
