"""Digital (DR) acquisition: line integral → photons → detector → log → vendor processing.

The chain of a full-field digital mammography system, with every setting drawn per image:
1. primary transmission exp(−L) plus scatter (a wide blur of the primary; its scatter-to-primary
   ratio grows with the compressed thickness and an anti-scatter grid cuts it: ``scatter_to_primary``);
2. the heel effect: the beam fades towards the anode over the nipple side, so fewer quanta land
   there (``heel_profile``); quantum (Poisson) noise at a screening dose: the quanta a detector air
   kerma of 50–150 µGy brings, as many as its DQE counts (``counted_quanta``), over the output pixel;
3. the detector's presampling MTF, one of the two kinds screening systems use (``DETECTOR_KINDS``),
   the one the vendor profile in the header names, at its del pitch (synth v16), applied as a continuous transfer function so it is the same at every drawing spacing
   (``mtf``), and the detector's electronic (read-out) noise: a fixed variance per pixel added after
   the blur, on top of DQE(0)'s quanta (``ELECTRONIC_QUANTA``), so it weighs most where fewer quanta land;
4. the flat-field (gain) correction, which divides the heel out of the signal but not out of
   the noise, then the log transform, then "For Presentation" processing: peripheral equalisation (the thin
   edge is lifted towards the interior's level), unsharp masking, and a window/gamma LUT.
``scatter_and_blur``/``exposure_of`` are shared with the film chain (``film``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import ndimage, special

from mammocad.model.synth import physics
from mammocad.model.synth.mtf import apply_mtf, light_spread_transfer
from mammocad.model.synth.texture import upsample

#: Grid (mm) for the wide, smooth operations (scatter, peripheral equalisation).
COARSE_MM = 2.0
#: σ (mm) of the long-range part of a detector's or screen's blur (its low-frequency drop).
GLARE_SIGMA_MM = 1.5
#: The two kinds of FFDM detector (synth v15): direct-conversion amorphous selenium (Hologic Selenia,
#: Siemens Mammomat, Planmed Clarity, Fujifilm AMULET: most screening units) and CsI:Tl on amorphous
#: silicon (GE Senographe / Pristina). Which one an image has, and its del pitch, is the vendor
#: profile's (``dicom_writer.VendorProfile``, synth v16): synth v15 drew both independently of the
#: header, so 74 % of its DR images named one detector and carried another's MTF.
DETECTOR_KINDS = ("a-Se", "CsI")
#: Frequency (cycles/mm) at which a CsI scintillator's light spread alone keeps half the modulation,
#: ``1 / 2πλ`` of ``mtf.light_spread_transfer``: drawn around the 2.7 of Ghetti et al.'s Senographe
#: Essential (``_sample_detector``).
CSI_SPREAD_HALF_CYCLES = (2.55, 2.85)
#: Air kerma (µGy) at the detector behind the breast that screening FFDM units' exposure control
#: aims at: 50–150 µGy (the figure issue 9 gives; Ghetti et al., Med. Phys. 35 (2008) 456,
#: characterised GE Senographe detectors over 25–240 µGy around it).
DETECTOR_KERMA_UGY = (50.0, 150.0)
#: Zero-frequency DQE of the quantum part: the share of those quanta the image's quantum noise is
#: counted from (absorption, Swank factor); the read-out adds to it (``ELECTRONIC_QUANTA``). Ghetti et
#: al. measured up to 0.60 on the GE Senographe Essential at 25–240 µGy, a DQE(0) of everything: at the
#: 50–150 µGy drawn the electronics drawn add only 0.1–1.1 % to its zero-frequency noise.
DQE_ZERO = (0.5, 0.7)
#: Standard deviation of the detector's electronic (read-out) noise, in counted quanta per 0.1 mm
#: pixel, drawn per image: a fixed variance in detector units whatever the dose, added after the blur
#: (white). Where fewer quanta land (behind dense tissue and the pectoral muscle) it becomes a larger
#: share of the noise, so the log image's noise there rises faster than Poisson's 1/N.
#: Published figures: Vedantham et al., Med. Phys. 27 (2000) 558, measured a GE CsI/a-Si prototype's
#: DQE(0) at about 0.55 at 32.8 mR falling to about 0.40 at 1.3 mR (11.4 µGy): additive variance
#: 0.55 / 0.40 − 1 = 0.375 of the 290–360 quanta then counted per 100 µm pixel (17–20 keV), a std of
#: 10–12 quanta; Ghetti et al., Med. Phys. 35 (2008) 456, found the Senographe Essential's NNPS lower
#: "due to a lower electronic noise", and issue 9 puts current units at a few quanta at 0.1 mm. Drawn
#: 2–6: at the median kerma (3230 counted quanta) it adds 0.1–1.1 % of the zero-frequency variance
#: and 0.2–9 % of a 0.1 mm pixel's variance (its std within 4.5 %; most on CsI, whose MTF keeps
#: 0.13–0.16 of the quanta's white variance there, a-Se 0.61–0.74), and at a tenth of that fluence
#: 1–11 % and 2–89 % (``tests/model/test_synth_detector_noise.py``). Synth v16 before this drew
#: it as a share of DQE(0)'s noise set to 0, so electronic noise never rose behind dense tissue; and
#: before that as 0.05–0.3 of the quantum std at the breast's median exposure, a variance that grew
#: with the dose (electronics do not).
ELECTRONIC_QUANTA = (2.0, 6.0)
#: Boone, Lindfors, Cooper & Seibert, "Scatter/primary in mammography: comprehensive results",
#: Med. Phys. 27 (2000) 2408: SPR = 1 / (a + b·D^−1.5 + c·T^−0.5) at the centre of a semicircular
#: breast of diameter D and compressed thickness T (cm), no grid, within about 1 % of their Monte
#: Carlo from 2 to 8 cm and 3 to 30 cm; spectrum and glandularity changed it little.
BOONE_SPR = (-2.35452817439093, 22.3960980055927, 8.85064260299289)
#: The range of thickness (mm) Boone's fit holds for.
BOONE_THICKNESS_MM = (20.0, 80.0)
#: Boone's median screening breast: 52 mm thick, 146 cm² on a CC view (a semicircle √(8A/π) = 193 mm across).
MEDIAN_THICKNESS_MM = 52.0
MEDIAN_DIAMETER_MM = 193.0
#: Distance (mm) from the chest wall over which a heel profile's ``drop`` is reached.
HEEL_SPAN_MM = 240.0
#: Fall of the raw beam from the chest wall (cathode) to ``HEEL_SPAN_MM`` towards the nipple (anode):
#: Terry et al. measured 16–40 % over mammography units' fields (Nascimento et al., J. Digit.
#: Imaging 21 (2008) 177); the brief's 10–25 % for Mo/W targets. Drawn 12–30 %.
HEEL_DROP = (0.12, 0.30)
#: What the flat-field leaves of it in the signal (negative: over-corrected), ``heel_profile``.
HEEL_RESIDUAL = (-0.03, 0.03)
#: Selectivity (primary over scatter transmission) of mammography grids: Xia, Lo & Floyd (Proc. SPIE
#: 5745 (2005)) measured 0.73 / 0.13 = 5.6 on a Siemens FFDM's grid; drawn around it.
GRID_SELECTIVITY = (4.2, 7.1)


@dataclass(frozen=True)
class DrSettings:
    """One DR exposure and its vendor processing.

    The detector's blur is ``detector_blur``'s: a Gaussian core of ``mtf_sigma_mm``, the square
    del aperture ``pitch_mm`` (0: none), a CsI scintillator's light spread of length
    ``phosphor_mm`` (0: none; ``mtf.light_spread_transfer``) and a ``glare`` fraction spread over
    millimetres; ``detector_mtf`` is its transfer. ``sample`` draws the blur of the detector it is given.
    """

    photons_behind: float  # mean counted quanta per 0.1 mm pixel behind the breast (``counted_quanta``)
    scatter_to_primary: float
    scatter_sigma_mm: float
    mtf_sigma_mm: float
    glare: float  # fraction of signal spread by the long-range part (the MTF's low-frequency drop)
    electronic: float  # read-out noise std, counted quanta per 0.1 mm pixel (``ELECTRONIC_QUANTA``)
    equalisation: float  # 0 = none, 1 = the edge fully lifted to the interior's level
    unsharp_gain: float
    unsharp_sigma_mm: float
    gamma: float
    contrast: float  # slope of the sigmoid LUT
    pitch_mm: float = 0.0  # del pitch: each pixel integrates the square it covers
    phosphor_mm: float = 0.0  # length λ of a scintillator's light spread (``mtf.light_spread_transfer``)
    detector: str = "a-Se"
    heel_drop: float = 0.0  # the raw beam's fall towards the nipple side (``heel_profile``)
    heel_residual: float = 0.0  # what of it the flat-field correction leaves in the signal

    def __post_init__(self) -> None:
        if self.detector not in DETECTOR_KINDS:
            raise ValueError(f"detector must be one of {sorted(DETECTOR_KINDS)}, got {self.detector!r}")
        if not 0.0 <= self.glare < 1.0:
            raise ValueError(f"glare must be in [0, 1), got {self.glare}")
        if not 0.0 <= self.electronic < np.inf:
            raise ValueError(f"electronic must be the read-out noise std in quanta per 0.1 mm pixel, >= 0 and "
                             f"finite (ELECTRONIC_QUANTA draws {ELECTRONIC_QUANTA}), got {self.electronic}")
        if min(self.mtf_sigma_mm, self.pitch_mm, self.phosphor_mm, self.scatter_to_primary) < 0.0:
            raise ValueError("mtf_sigma_mm, pitch_mm, phosphor_mm and scatter_to_primary must be >= 0")
        if not 0.0 <= self.heel_drop < 0.5 or abs(self.heel_residual) >= 0.5:
            raise ValueError(f"heel_drop must be in [0, 0.5) and |heel_residual| below 0.5, got "
                             f"{self.heel_drop} and {self.heel_residual}")

    @classmethod
    def sample(cls, rng: np.random.Generator, *, thickness_mm: float = MEDIAN_THICKNESS_MM,
               detector: str = "a-Se", pitch_mm: float = 0.07, energy_kev: float = 20.0) -> DrSettings:
        """One exposure of a breast compressed to ``thickness_mm``, a contact view behind the grid.

        detector, pitch_mm: the kind and del pitch of the unit the header names (its vendor
        profile's); the default is the commonest profile's, Hologic's 70 µm a-Se.
        energy_kev: the beam's effective energy, which sets the quanta per µGy (``counted_quanta``).
        """
        det = _sample_detector(rng, detector, pitch_mm)
        spr = scatter_to_primary(thickness_mm, selectivity=float(rng.uniform(*GRID_SELECTIVITY)))
        photons = counted_quanta(float(rng.uniform(*DETECTOR_KERMA_UGY)), energy_kev, float(rng.uniform(*DQE_ZERO)))
        return cls(photons_behind=photons, scatter_to_primary=spr,
                   scatter_sigma_mm=float(rng.uniform(15, 35)), mtf_sigma_mm=det.sigma_mm, glare=det.glare,
                   electronic=float(rng.uniform(*ELECTRONIC_QUANTA)),
                   equalisation=float(rng.uniform(0.5, 0.95)), unsharp_gain=float(rng.uniform(0.1, 0.6)),
                   unsharp_sigma_mm=float(rng.uniform(1.0, 4.0)), gamma=float(rng.uniform(0.8, 1.3)),
                   contrast=float(rng.uniform(2.5, 5.0)), pitch_mm=det.pitch_mm, phosphor_mm=det.phosphor_mm,
                   detector=det.kind, heel_drop=float(rng.uniform(*HEEL_DROP)),
                   heel_residual=float(rng.uniform(*HEEL_RESIDUAL)))


def counted_quanta(air_kerma_ugy: float, energy_kev: float, dqe: float, *, pixel_mm: float = 0.1) -> float:
    """Quanta the noise of a ``pixel_mm`` pixel is counted from, at detector air kerma ``air_kerma_ugy``.

    Fluence per kerma at 20 keV is 5790 quanta/mm²/µGy (``physics.quanta_per_mm2_per_ugy``, from
    NIST's µen/ρ of air), so 50–150 µGy bring 2.9e5–8.7e5 quanta/mm² to the detector: 2900–8700
    per 0.1 mm pixel (2040–10600 over the 17–22 keV drawn). A detector's noise is that of DQE(0)
    times them: drawn 0.5–0.7, 1020–7420 per 0.1 mm pixel (1140–6930 in 2000 draws, median 3230;
    100 µGy at 20 keV counted at 0.6 is 3470). Synth v2–v15 drew 3000–8000 (median 5500), the incident quanta of about
    100 µGy counted as if every one were detected: not low, but 1.6× the quanta the noise
    of a real detector at that dose is counted from. ``detect_dr`` scales this to the drawn
    pixel's area, so the noise per mm² is the same at every drawing spacing.
    """
    if air_kerma_ugy <= 0.0 or not 0.0 < dqe <= 1.0:
        raise ValueError(f"air_kerma_ugy must be > 0 and dqe in (0, 1], got {air_kerma_ugy} and {dqe}")
    return float(air_kerma_ugy * physics.quanta_per_mm2_per_ugy(energy_kev) * dqe * pixel_mm ** 2)


def scatter_to_primary(thickness_mm: float, *, diameter_mm: float = MEDIAN_DIAMETER_MM,
                       selectivity: float | None = None) -> float:
    """Scatter-to-primary ratio at the middle of a breast ``thickness_mm`` thick (``BOONE_SPR``).

    selectivity: the anti-scatter grid's primary over scatter transmission, which divides the
    ratio (None: no grid). Screening contact views are taken with the grid in: Boone's 0.43 at
    40 mm and 0.96 at 80 mm (no grid) become 0.06–0.10 and 0.14–0.23. Synth v2–v14 drew 0.2–0.6
    whatever the thickness, the dense and thick breast's haze the same as the thin one's.
    """
    low, high = BOONE_THICKNESS_MM
    if not low <= thickness_mm <= high:
        raise ValueError(f"thickness_mm must be within {low:g}–{high:g} mm (Boone's fit), got {thickness_mm}")
    if selectivity is not None and selectivity < 1.0:
        raise ValueError(f"a grid's selectivity is at least 1 (primary over scatter transmission), got {selectivity}")
    a, b, c = BOONE_SPR
    no_grid = 1.0 / (a + b * (diameter_mm / 10.0) ** -1.5 + c * (thickness_mm / 10.0) ** -0.5)
    return float(no_grid / selectivity) if selectivity is not None else float(no_grid)


class _Detector(NamedTuple):
    kind: str
    pitch_mm: float
    sigma_mm: float
    phosphor_mm: float
    glare: float


def _sample_detector(rng: np.random.Generator, detector: str, pitch: float) -> _Detector:
    """The blur of an a-Se or a CsI detector of del pitch ``pitch`` mm, as measured on clinical units (synth v15).

    a-Se converts X-rays to charge drifting straight to the dels, so its pixel aperture dominates:
    ``sinc(f·a)`` (0.95 at 2.5 and 0.80 at 5 cycles/mm for 70 µm; 0.93 and 0.72 for 85 µm), times
    a little Gaussian spread (σ 8–18 µm: K-fluorescence and charge trapping, 6–28 % off at 7
    cycles/mm) and a low-frequency drop of 0–3 %. Hoheisel et al. (IEEE NSS 2004, Siemens
    Novation, 70 µm) measured it "well above 40 %" at the 7.14 cycles/mm Nyquist, near the
    aperture's 0.64; Zhao et al. (Med. Phys. 30 (2003) 254, 85 µm) put K-fluorescence at 15 % off
    at Nyquist. Drawn: 0.86–0.94 at 2.5 cycles/mm, 0.59–0.78 at 5 (70 µm the upper part).
    CsI's light spreads in the scintillator (``mtf.light_spread_transfer``, length 0.055–0.062 mm)
    over the 100 µm del's aperture, plus a 1–4 % low-frequency drop, fitted to the presampling MTF
    Ghetti et al. (Med. Phys. 35 (2008) 456) measured on the large-field GE Senographe Essential,
    the Pristina's detector generation: 0.85 / 0.59 / 0.24 at 1 / 2 / 4 cycles/mm. Drawn: 0.82–0.87,
    0.56–0.62, 0.35–0.40 and 0.21–0.25 at 1, 2, 3 and 4 cycles/mm. Synth v15 fitted a Cauchy spread
    to Vedantham et al. (Med. Phys. 27 (2000) 558: 0.73 / 0.42 / 0.28 at 2 / 4 / 5, a Senographe
    2000D) and widened it towards sharper panels: 0.68–0.78 at 2 cycles/mm and 0.39–0.51 at 4, the
    small-field Senographe DS's curve (Ghetti: 0.76 / 0.46), not the Essential's or the Pristina's.
    Synth v2–v14 drew one Gaussian of σ 0.05–0.1 mm: 0.27–0.72 at 2.5 cycles/mm and 0.005–0.29 at
    5, so its specks were up to three times softer than either kind draws them.
    """
    if detector not in DETECTOR_KINDS:
        raise ValueError(f"detector must be one of {sorted(DETECTOR_KINDS)}, got {detector!r}")
    if not 0.0 < pitch <= 0.2:
        raise ValueError(f"a mammography detector's del pitch is 0.05-0.1 mm, got pitch_mm={pitch}")
    if detector == "a-Se":
        return _Detector(detector, pitch, float(rng.uniform(0.008, 0.018)), 0.0, float(rng.uniform(0.0, 0.03)))
    half_mtf = float(rng.uniform(*CSI_SPREAD_HALF_CYCLES))  # where the light spread alone keeps 1/2
    return _Detector(detector, pitch, 0.0, 1.0 / (2.0 * np.pi * half_mtf), float(rng.uniform(0.01, 0.04)))


def detector_mtf(settings: DrSettings, freq: np.ndarray | float) -> np.ndarray:
    """The presampling MTF ``detect_dr`` applies along a row or a column, at ``freq`` cycles/mm."""
    f = np.abs(np.asarray(freq, dtype=np.float64))
    core = (np.exp(-2.0 * np.pi ** 2 * settings.mtf_sigma_mm ** 2 * f ** 2) * np.sinc(f * settings.pitch_mm)
            * light_spread_transfer(f, settings.phosphor_mm).astype(np.float64))
    wide = np.exp(-2.0 * np.pi ** 2 * GLARE_SIGMA_MM ** 2 * f ** 2)
    return (1.0 - settings.glare) * core + settings.glare * wide


def coarse_blur(values: np.ndarray, spacing: float, sigma_mm: float) -> np.ndarray:
    """Gaussian blur of ``sigma_mm``, done on a grid of up to COARSE_MM (and at most σ/3) and interpolated back."""
    factor = max(int(min(COARSE_MM, sigma_mm / 3.0) / spacing), 1)
    rows, cols = values.shape
    pr, pc = (-rows) % factor, (-cols) % factor
    padded = np.pad(values, ((0, pr), (0, pc)), mode="edge")
    small = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).mean(axis=(1, 3))
    small = ndimage.gaussian_filter(small, sigma_mm / (spacing * factor), mode="nearest")
    return upsample(small, padded.shape)[:rows, :cols]


def exposure_of(line_integral: np.ndarray, mask: np.ndarray, spacing: float, spr: float,
                scatter_sigma_mm: float) -> np.ndarray:
    """Relative exposure (1 = open beam) at the detector: primary + scatter from the breast.

    Each ray scatters in proportion to what it loses, 1 − e^(−L), and what it keeps carries the
    scatter out: its source is primary × (1 − e^(−L)), SPR × primary in the thick middle. So
    the thinning rim scatters little, and an opaque skin marker there stays in shadow, white on
    film, as on real films. (Synth v2–v6 spread SPR × primary from every breast pixel, rim
    included: a lead BB on a fatty breast's rim got 1.5–1.7× the exposure the film was set for.)
    """
    primary = np.exp(-line_integral).astype(np.float32)
    source = primary * -np.expm1(-line_integral) * mask
    scatter = spr * coarse_blur(source.astype(np.float32), spacing, scatter_sigma_mm)
    return (primary + scatter).astype(np.float32)


def detector_blur(values: np.ndarray, spacing: float, sigma_mm: float, glare: float,
                  on_detector: np.ndarray | None = None, *, pitch_mm: float = 0.0,
                  phosphor_mm: float = 0.0) -> np.ndarray:
    """A core (Gaussian of ``sigma_mm``, square del aperture ``pitch_mm``, a scintillator's light spread
    ``phosphor_mm``: ``detector_mtf``) plus a ``glare`` fraction spread over millimetres.

    on_detector: attenuation lying on the detector itself (dust, lint, defective pixels:
    ``confusers``), applied after the blur, which does not reach it.
    """
    core = apply_mtf(values, spacing, gaussian_sigma_mm=sigma_mm, box_mm=pitch_mm, light_spread_mm=phosphor_mm)
    wide = coarse_blur(values, spacing, GLARE_SIGMA_MM) if glare > 0 else values
    blurred = ((1.0 - glare) * core + glare * wide).astype(np.float32)
    if on_detector is not None:
        blurred *= np.exp(-on_detector).astype(np.float32)
    return blurred


def heel_profile(mask: np.ndarray, spacing: float, drop: float) -> np.ndarray:
    """Relative beam intensity along the anode–cathode axis, 1 at the chest wall: row vector (1, cols).

    The cathode sits over the chest wall, the anode over the nipple side; X-rays leaving the
    tilted target towards the anode cross more of it, so the beam fades that way, steepest at
    the anode end: 1 − drop·(d / HEEL_SPAN_MM)^1.5 at d mm from the chest wall (the image edge
    the breast covers most, as ``film.aec_chamber`` finds it).

    A DR detector's flat-field (gain) calibration divides every image by images of the open or
    PMMA-filtered beam, heel included, so the heel leaves the signal of a "for presentation"
    image (Seibert et al., "Flat-field correction technique for digital detectors", Proc. SPIE
    3336 (1998)). What it leaves: the calibration's beam is not the exam's, and the object
    hardens the beam by an amount the calibration did not see ("Limitations to flat-field
    correction methods when using an X-ray spectrum"), so a few per cent may remain either way
    (``HEEL_RESIDUAL``: no study found measures it on clinical images; ±3 % over 240 mm is
    kept small on purpose). What it cannot take away is the quanta: the nipple side was
    counted from fewer photons, and its noise stays 1/√(1 − drop) higher (6–20 % at 240 mm).
    """
    inside = mask > 0.5
    wall_left = inside[:, 0].sum() >= inside[:, -1].sum()
    distance = (np.arange(mask.shape[1]) + 0.5) * spacing
    if not wall_left:
        distance = distance[::-1]
    fall = np.clip(distance / HEEL_SPAN_MM, 0.0, 1.0) ** 1.5
    return (1.0 - drop * fall).astype(np.float32)[None, :]


def detect_dr(line_integral: np.ndarray, mask: np.ndarray, spacing: float, settings: DrSettings,
              rng: np.random.Generator, detector_layer: np.ndarray | None = None) -> np.ndarray:
    """Log signal −ln(counts / open-beam counts) of a DR detector, with its noise and blur.

    Behind the breast (the drawn kerma) ``photons_behind`` quanta per 0.1 mm pixel are counted
    (DQE(0)'s, the quantum part) and blurred with the signal; the read-out adds white noise of
    ``electronic`` quanta per 0.1 mm pixel on top. Both scale with the drawn pixel's area, so the
    noise per mm² is the same at every drawing spacing: a flat field's log variance is
    (|T|²·N + σ²) / N² for N counted quanta and σ² electronic variance per drawn pixel, and where
    the exposure is k times lower, (|T|²·N/k + σ²) / (N/k)²: more than Poisson's k times.

    detector_layer: attenuation at the detector itself (defective pixels, ``confusers``),
    applied after the blur.
    """
    exposure = exposure_of(line_integral, mask, spacing, settings.scatter_to_primary, settings.scatter_sigma_mm)
    inside = mask > 0.99
    behind = float(np.median(exposure[inside])) if inside.any() else 0.3
    area = (spacing / 0.1) ** 2  # drawn pixel over a 0.1 mm pixel
    n0 = settings.photons_behind * area / max(behind, 1e-4)  # DQE(0)'s quanta per drawn pixel in the open beam
    beam = heel_profile(mask, spacing, settings.heel_drop)
    counts = rng.poisson(np.float64(n0) * exposure * beam).astype(np.float32)
    counts = detector_blur(counts, spacing, settings.mtf_sigma_mm, settings.glare, detector_layer,
                           pitch_mm=settings.pitch_mm, phosphor_mm=settings.phosphor_mm)
    if settings.electronic > 0.0:  # read-out: a fixed variance per del, summed over the drawn pixel's dels
        counts += rng.normal(0.0, settings.electronic * np.sqrt(area), counts.shape).astype(np.float32)
    counts *= heel_profile(mask, spacing, settings.heel_residual) / beam  # the flat-field correction
    return (-np.log(np.maximum(counts, 1.0) / np.float32(n0))).astype(np.float32)


def present(log_signal: np.ndarray, mask: np.ndarray, spacing: float, settings: DrSettings) -> np.ndarray:
    """Vendor "For Presentation" processing of a log image → display values 0..1 (bright = dense)."""
    weight = (mask > 0.5).astype(np.float32)
    norm = coarse_blur(weight, spacing, 6.0)
    local = coarse_blur(log_signal * weight, spacing, 6.0) / np.maximum(norm, 1e-3)
    inner = weight * (norm > 0.9)
    ref = float(np.percentile(local[inner > 0], 40)) if inner.any() else float(local.max())
    lift = settings.equalisation * np.clip(ref - local, 0.0, None) * np.clip(norm * 2.0, 0.0, 1.0)
    img = log_signal + lift * weight
    blur = coarse_blur(img, spacing, settings.unsharp_sigma_mm)
    img = img + settings.unsharp_gain * (img - blur) * weight
    if weight.any():
        lo, hi = np.percentile(img[weight > 0], [0.5, 99.7])
    else:
        lo, hi = float(img.min()), float(img.max())
    x = np.clip((img - lo) / max(hi - lo, 1e-6), -0.5, 1.5)
    y = special.expit(settings.contrast * (x - 0.5))
    y0, y1 = special.expit(-settings.contrast * 0.5), special.expit(settings.contrast * 0.5)
    y = np.clip((y - y0) / (y1 - y0), 0.0, 1.0) ** settings.gamma
    return (0.04 + 0.92 * y).astype(np.float32) * np.clip(x * 4 + 0.2, 0.0, 1.0)
