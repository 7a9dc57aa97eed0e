"""Things that look like calcifications and are not: drawn with no label at all.

A detector trained only on breasts whose every bright dot is a calcification fires on dust,
lint and film defects in real images. Confusers are drawn as attenuation (line integral
L = ∫µ dl: positive = more attenuation = brighter in a MONOCHROME2 display) into one of two
maps, by where the object sits:
- **in the breast or above it** (fibrous crossings, dust on the compression paddle): into
  the projection's line integral, so the X-ray optics and the detector blur them like any
  anatomy;
- **at the detector** (dust between screen and film, lint, emulsion pick-off, pressure
  marks, defective DR pixels): into ``detector_layer``, which the acquisition applies
  *after* its blur (``exposure × e^(−layer)``), so they keep edges sharper than anything the
  optics could draw. A light-blocking particle on a screen lowers the light the film
  receives by a factor t, the same as −ln(t) in the layer; emulsion picked off the film
  leaves clear base, the same as a very large value.

Kinds (``mode``):
- ``film``: dust (sharp, irregular, 0.05-0.4 mm), lint fibres (thin curved lines), emulsion
  pick-off (small, clear, very bright), dark spots (pressure / static marks: darker), and
  bright fibrous crossings (two tissue strands overlapping: a soft bright knot, anatomy).
- ``dr``: fibrous crossings, dust on the compression paddle (out of focus: soft and faint)
  and defective detector pixels (single bright or dark pixels).
- both: **skin markers**, lead spheres (BBs) 1-2.5 mm across taped on the skin over the nipple,
  a mole or a scar. They lie on the breast, so they join the line integral; lead is opaque, so
  they are the brightest round discs on the image, and only scatter fills them in. A detector
  trained without them marked one on a real film at 0.98 (docs/DATASETS.md, "Skin markers").
  Half sit on the skin line, where a marked nipple or a mole on the edge projects, half anywhere
  over the breast (a marker on the compressed surface). ``SKIN_MARKERS_PER_VIEW`` on average.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mammocad.model.synth import physics

MODES = ("film", "dr")
#: Light transmission of a dust particle on the screen (0: opaque).
DUST_TRANSMISSION = (0.1, 0.7)
#: Line integral equivalent to clear film base (the film saturates long before).
PICK_OFF_L = 4.0
#: Skin markers (lead BBs) per view, on average; diameters in mm (commercial nipple and mole
#: markers are 1.5 and 2.3 mm; smaller BBs exist).
SKIN_MARKERS_PER_VIEW = 0.25
SKIN_MARKER_MM = (1.0, 2.5)
#: Cap on a marker's line integral: e^-20 of the primary passes, which is none for any film or
#: detector, and keeps the arithmetic finite.
MARKER_L_MAX = 20.0


@dataclass(frozen=True)
class Confuser:
    """One drawn confuser: kind, centre (row, col) in pixels and size in mm. Never a truth box."""

    kind: str
    row: float
    col: float
    size_mm: float

    def to_dict(self) -> dict[str, float | str]:
        return {"kind": self.kind, "row": round(self.row, 1), "col": round(self.col, 1),
                "size_mm": round(self.size_mm, 3)}


def add_confusers(rng: np.random.Generator, line_integral: np.ndarray, detector_layer: np.ndarray,
                  mask: np.ndarray, spacing: float, mode: str, *, energy_kev: float = 19.0,
                  rate: float = 1.0) -> list[Confuser]:
    """Add confusers (in place) into ``line_integral`` or ``detector_layer`` (float arrays of
    one shape, see the module docstring) and list what was drawn.

    mask: breast coverage (bool or 0..1) of the same shape; fibrous crossings go inside it,
    detector and film defects anywhere. spacing: mm per pixel. rate: multiplies the expected
    number of each kind (0 draws nothing).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if line_integral.shape != mask.shape:
        raise ValueError(f"mask shape {mask.shape} differs from the image's {line_integral.shape}")
    if detector_layer.shape != line_integral.shape:
        raise ValueError(f"detector layer shape {detector_layer.shape} differs from the image's "
                         f"{line_integral.shape}")
    if spacing <= 0 or rate < 0:
        raise ValueError("spacing must be positive and rate >= 0")
    breast = np.asarray(mask) > 0.5
    inside = np.argwhere(breast)
    drawn: list[Confuser] = []
    for _ in range(rng.poisson(7 * rate)):
        if len(inside):
            drawn.append(_crossing(rng, line_integral, inside, spacing, energy_kev))
    if mode == "film":
        for _ in range(rng.poisson(6 * rate)):
            drawn.append(_speck(rng, detector_layer, spacing, "dust", (0.05, 0.4),
                                float(-np.log(rng.uniform(*DUST_TRANSMISSION)))))
        for _ in range(rng.poisson(1.0 * rate)):
            drawn.append(_fibre(rng, detector_layer, spacing))
        for _ in range(rng.poisson(0.8 * rate)):
            drawn.append(_speck(rng, detector_layer, spacing, "emulsion_pick_off", (0.1, 0.6), PICK_OFF_L))
        for _ in range(rng.poisson(1.5 * rate)):
            drawn.append(_speck(rng, detector_layer, spacing, "dark_spot", (0.1, 0.5), -rng.uniform(0.3, 1.2),
                                soften=0.6))
    else:
        for _ in range(rng.poisson(1.5 * rate)):
            drawn.append(_speck(rng, line_integral, spacing, "paddle_dust", (0.2, 0.8), rng.uniform(0.03, 0.12),
                                soften=2.0))
        for _ in range(rng.poisson(1.0 * rate)):
            r, c = (int(rng.integers(0, n)) for n in line_integral.shape)
            detector_layer[r, c] += rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 2.0)
            drawn.append(Confuser("defective_pixel", float(r), float(c), spacing))
    for _ in range(rng.poisson(SKIN_MARKERS_PER_VIEW * rate)):
        if len(inside):
            drawn.append(_skin_marker(rng, line_integral, breast, inside, spacing, energy_kev))
    return drawn


def _skin_marker(rng: np.random.Generator, image: np.ndarray, breast: np.ndarray, inside: np.ndarray,
                 spacing: float, energy_kev: float) -> Confuser:
    """A lead sphere on the skin: line integral µ_Pb × chord, capped (see MARKER_L_MAX)."""
    diameter = float(rng.uniform(*SKIN_MARKER_MM))
    pool = inside
    if rng.random() < 0.5:  # on the skin line (the image border is the chest wall, not skin)
        edge = np.argwhere(breast & ~ndimage.binary_erosion(breast, iterations=2, border_value=1))
        pool = edge if len(edge) else inside
    row, col = (float(v) for v in pool[int(rng.integers(len(pool)))])
    radius = diameter / 2 / spacing
    ss = 4
    half = int(np.ceil(radius)) + 1
    g = (np.arange((2 * half + 1) * ss) + 0.5) / ss - (half + 0.5)
    yy, xx = np.meshgrid(g, g, indexing="ij")
    chord_mm = 2.0 * np.sqrt(np.maximum(radius ** 2 - yy ** 2 - xx ** 2, 0.0)) * spacing
    n = 2 * half + 1
    line = np.minimum(chord_mm * physics.attenuation_per_mm("lead", energy_kev), MARKER_L_MAX)
    # Mean transmission over each pixel, not mean attenuation: an opaque disc's edge pixel
    # passes the share of the pixel it does not cover.
    passed = np.exp(-line).reshape(n, ss, n, ss).mean(axis=(1, 3))
    _add(image, -np.log(np.maximum(passed, np.exp(-MARKER_L_MAX))), int(round(row)), int(round(col)))
    return Confuser("skin_marker", row, col, diameter)


def _coverage(rng: np.random.Generator, size_px: float, ss: int = 4) -> np.ndarray:
    """Area coverage 0..1 of an irregular blob (1-3 overlapping ellipses) of diameter ~size_px."""
    n = int(np.ceil(size_px * 1.6)) + 3
    g = (np.arange(n * ss) + 0.5) / ss - n / 2
    yy, xx = np.meshgrid(g, g, indexing="ij")
    inside = np.zeros(yy.shape, bool)
    for j in range(int(rng.integers(1, 4))):
        a = size_px / 2 * (1.0 if j == 0 else rng.uniform(0.4, 0.8))
        b = a * rng.uniform(0.4, 1.0)
        th = rng.uniform(0, np.pi)
        oy, ox = (0.0, 0.0) if j == 0 else rng.normal(0, size_px * 0.25, 2)
        u = (xx - ox) * np.cos(th) + (yy - oy) * np.sin(th)
        v = -(xx - ox) * np.sin(th) + (yy - oy) * np.cos(th)
        inside |= (u / max(a, 0.1)) ** 2 + (v / max(b, 0.1)) ** 2 <= 1.0
    return np.asarray(inside.reshape(n, ss, n, ss).mean(axis=(1, 3)), dtype=np.float64)


def _add(image: np.ndarray, patch: np.ndarray, row: int, col: int) -> None:
    """Add ``patch`` centred at (row, col), cut at the image edges."""
    h, w = patch.shape
    r0, c0 = row - h // 2, col - w // 2
    rr0, cc0 = max(r0, 0), max(c0, 0)
    rr1, cc1 = min(r0 + h, image.shape[0]), min(c0 + w, image.shape[1])
    if rr1 > rr0 and cc1 > cc0:
        image[rr0:rr1, cc0:cc1] += patch[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0].astype(image.dtype)


def _speck(rng: np.random.Generator, image: np.ndarray, spacing: float, kind: str, size_mm: tuple[float, float],
           amplitude: float, soften: float = 0.0) -> Confuser:
    size = float(rng.uniform(*size_mm))
    patch = _coverage(rng, size / spacing) * amplitude
    if soften > 0:
        patch = ndimage.gaussian_filter(np.pad(patch, int(3 * soften) + 1), soften)
    row, col = (int(rng.integers(0, n)) for n in image.shape)
    _add(image, patch, row, col)
    return Confuser(kind, float(row), float(col), size)


def _fibre(rng: np.random.Generator, image: np.ndarray, spacing: float) -> Confuser:
    """A lint fibre (10-40 µm, 1-8 mm long, curling) lying on the screen: a sharp thin line."""
    length = rng.uniform(1.0, 8.0)
    width = rng.uniform(0.01, 0.04)
    amp = float(-np.log(rng.uniform(0.2, 0.6)))
    ss = 4
    steps = max(int(length / spacing * 2), 8)
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.15, steps))
    pts = np.cumsum(np.column_stack([np.sin(heading), np.cos(heading)]) * (length / steps / spacing), axis=0)
    pts -= pts.mean(axis=0)
    half = int(np.ceil(np.abs(pts).max())) + 2
    n = 2 * half + 1
    sub = np.zeros((n * ss, n * ss))
    rows = np.clip(((pts[:, 0] + half) * ss).astype(int), 0, n * ss - 1)
    cols = np.clip(((pts[:, 1] + half) * ss).astype(int), 0, n * ss - 1)
    sub[rows, cols] = 1.0
    radius_sub = max(width / spacing * ss / 2, 0.5)
    thick = ndimage.distance_transform_edt(sub == 0) <= radius_sub
    cover = thick.reshape(n, ss, n, ss).mean(axis=(1, 3))
    # A fibre thinner than the sampling keeps its true projected area (width × length).
    area = float(cover.sum()) * spacing ** 2
    cover *= min(1.0, width * length / max(area, 1e-9))
    row, col = (int(rng.integers(0, s)) for s in image.shape)
    _add(image, cover * amp, row, col)
    return Confuser("lint_fibre", float(row), float(col), length)


def _crossing(rng: np.random.Generator, image: np.ndarray, inside: np.ndarray, spacing: float,
              energy_kev: float) -> Confuser:
    """Two fibroglandular strands (cylinders of gland in fat) crossing: brightest where they overlap."""
    delta_mu = physics.attenuation_per_mm("glandular", energy_kev) - physics.attenuation_per_mm("adipose", energy_kev)
    row, col = (float(v) for v in inside[int(rng.integers(len(inside)))])
    half = int(np.ceil(8.0 / spacing))
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64) * spacing
    patch = np.zeros(yy.shape)
    base = rng.uniform(0, np.pi)
    for angle in (base, base + rng.uniform(0.4, 1.2) * rng.choice([-1, 1])):
        r = rng.uniform(0.3, 1.0)
        length = rng.uniform(5.0, 14.0)
        along = xx * np.cos(angle) + yy * np.sin(angle)
        across = -xx * np.sin(angle) + yy * np.cos(angle)
        taper = np.clip(1.0 - np.abs(along) / (length / 2), 0.0, 1.0) ** 0.5
        patch += 2.0 * np.sqrt(np.maximum(r * r - across ** 2, 0.0)) * taper * delta_mu
    _add(image, patch, int(row), int(col))
    return Confuser("fibrous_crossing", row, col, 2.0)
