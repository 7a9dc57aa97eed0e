"""Breast geometry for synthetic views, in millimetres, shared by a breast's CC and MLO.

The compressed breast is a slab of ``thickness`` mm between the paddles whose edge is a
half-ellipse: thickness is uniform in the middle and falls to zero at the skin line over
``rolloff`` mm, which is why real mammograms darken towards the skin before processing.
Skin is a shell of ``skin`` mm (seen tangentially at the edge as a brighter line); on MLO the
pectoral muscle's path length grows smoothly from its edge, displacing breast tissue.

Canonical frame: the chest wall is column 0 and the nipple points toward increasing
columns; rows go from the top of the image down. For a CC view the top is lateral, for
an MLO view the top is superior (axilla). ``generate`` flips right-breast images so that,
as stored, the chest wall of an R image is on the image's right and of an L image on the
left; PatientOrientation then reads RCC ``P\\L``, LCC ``A\\R``, RMLO ``P\\F``, LMLO ``A\\F``
(row direction, column direction: the direction of increasing column, then of increasing
row), as PS3.3 defines Patient Orientation; mammocad.dicom.header reads it back so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

MLO_ANGLE_DEG = 45.0
#: Fraction of the pectoral muscle's path that replaces breast tissue rather than adding to it.
MUSCLE_DISPLACES = 0.7


@dataclass(frozen=True)
class Breast:
    """Physical shape of one breast; every length in mm."""

    depth_cc: float  # chest wall to nipple in CC
    half_height_cc: float
    centre_cc: float  # row of the nipple in CC, from the top
    depth_mlo: float
    half_height_mlo: float  # below the nipple row, to the inframammary fold
    centre_mlo: float
    axilla_frac: float  # breast depth at the top edge of the MLO, as a fraction of depth_mlo
    pectoral_width: float
    pectoral_height: float
    exponent: float
    wobble_seed: int
    density: float  # fibroglandular fraction 0.05-0.9 (BI-RADS a-d)
    thickness: float = 55.0  # compressed thickness, mm
    rolloff: float = 25.0  # in-plane width of the thinning edge band, mm
    skin: float = 1.5  # skin thickness, mm
    nipple: float = 5.0  # nipple protrusion beyond the contour, mm
    muscle: float = 20.0  # largest pectoral path length on MLO, mm
    muscle_edge: float = 8.0  # distance over which the muscle path grows from 0, mm
    pectoral_exponent: float = 0.85  # shape of the muscle edge: < 1 convex, 1 straight

    @classmethod
    def sample(cls, rng: np.random.Generator, field_mm: tuple[float, float],
               density: float, compression_rng: np.random.Generator | None = None) -> Breast:
        """A breast drawn from ``rng``; thickness, skin and muscle from ``compression_rng``.

        The separate stream keeps the v1 draws (outline, lesions) of a seed unchanged.
        """
        height, width = field_mm
        depth_cc = float(rng.uniform(0.42, 0.78) * min(width, 165.0))
        depth_mlo = min(depth_cc * rng.uniform(1.05, 1.15), 0.92 * width)
        half_cc = float(min(rng.uniform(0.26, 0.4) * height, 0.47 * height, 0.9 * depth_cc + 25))
        return cls(
            depth_cc=depth_cc, half_height_cc=half_cc,
            centre_cc=height / 2 + rng.uniform(-0.04, 0.04) * height,
            depth_mlo=float(depth_mlo), half_height_mlo=float(min(half_cc * rng.uniform(0.8, 1.0), 0.4 * height)),
            centre_mlo=float(rng.uniform(0.50, 0.56) * height),
            axilla_frac=float(rng.uniform(0.35, 0.55)),
            pectoral_width=float(depth_mlo * rng.uniform(0.25, 0.45)),
            pectoral_height=float(height * rng.uniform(0.3, 0.5)),
            exponent=float(rng.uniform(1.8, 2.6)), wobble_seed=int(rng.integers(0, 2**31)),
            density=density, **_compression(compression_rng or rng, density),
        )

    def view_geometry(self, view: str) -> tuple[float, float, float]:
        """(depth, centre row, half height) of the view, in mm."""
        if view == "CC":
            return self.depth_cc, self.centre_cc, self.half_height_cc
        return self.depth_mlo, self.centre_mlo, self.half_height_mlo

    def width_profile(self, view: str, rows_mm: np.ndarray) -> np.ndarray:
        """Breast extent from the chest wall (mm) at each row."""
        depth, centre, half = self.view_geometry(view)
        rel = (rows_mm - centre) / half
        ellipse = depth * np.clip(1.0 - np.abs(rel) ** self.exponent, 0.0, None) ** (1.0 / self.exponent)
        if view != "CC":
            # Upper MLO: the breast runs on into the axilla instead of closing.
            upper = rows_mm < centre
            frac = np.clip(rows_mm / centre, 0.0, 1.0)
            axilla = depth * (self.axilla_frac + (1 - self.axilla_frac) * np.sin(0.5 * np.pi * frac) ** 1.5)
            ellipse = np.where(upper, np.maximum(ellipse, axilla), ellipse)
        wobble_rng = np.random.default_rng(self.wobble_seed + (0 if view == "CC" else 1))
        knots = wobble_rng.normal(0.0, 0.025, size=9)
        wobble = np.interp(rows_mm, np.linspace(rows_mm.min(), rows_mm.max(), 9), knots)
        # The nipple: a small rounded bump in profile on the nipple row.
        bump = self.nipple * np.sqrt(np.clip(1.0 - ((rows_mm - centre) / (1.4 * self.nipple + 2.0)) ** 2, 0.0, None))
        return ellipse * (1.0 + wobble) + bump

    def pectoral_edge(self, rows_mm: np.ndarray) -> np.ndarray:
        """Column (mm from the chest wall) of the pectoral muscle's edge on MLO at each row."""
        frac = np.clip(1.0 - np.asarray(rows_mm, dtype=np.float64) / self.pectoral_height, 0.0, 1.0)
        wobble_rng = np.random.default_rng(self.wobble_seed + 2)
        knots = wobble_rng.normal(0.0, 0.03, size=6)
        wobble = np.interp(frac, np.linspace(0.0, 1.0, 6), knots)
        return (self.pectoral_width * frac ** self.pectoral_exponent * (1.0 + wobble)).astype(np.float32)

    def to_view_mm(self, view: str, point: tuple[float, float, float]) -> tuple[float, float]:
        """Breast point (depth from nipple, lateral, superior) in mm → (row, col) in mm."""
        d_nipple, lateral, superior = point
        depth, centre, _ = self.view_geometry(view)
        if view == "CC":
            return centre - lateral, depth - d_nipple
        a = np.deg2rad(MLO_ANGLE_DEG)
        return centre - (np.cos(a) * superior + np.sin(a) * lateral), depth - d_nipple


@dataclass(frozen=True)
class ViewMaps:
    """Per-pixel maps of one view in the canonical frame; path lengths in mm."""

    mask: np.ndarray  # breast coverage 0..1 (anti-aliased edge)
    edge_mm: np.ndarray  # distance to the skin line inside the breast, mm
    pectoral: np.ndarray  # pectoral muscle coverage 0..1 (MLO only)
    nipple: tuple[float, float]  # (row, col) in pixels
    half_height_px: float
    tissue_mm: np.ndarray  # adipose + glandular path between the skin layers
    skin_mm: np.ndarray  # skin path (top and bottom, longer where the edge is tangential)
    muscle_mm: np.ndarray  # pectoral muscle path (MLO only)


def view_maps(breast: Breast, view: str, shape: tuple[int, int], spacing: float) -> ViewMaps:
    """Masks and path lengths of ``view`` for an image of ``shape`` pixels at ``spacing`` mm."""
    rows, cols = shape
    rows_mm = (np.arange(rows, dtype=np.float32) + 0.5) * spacing
    cols_mm = (np.arange(cols, dtype=np.float32) + 0.5) * spacing
    width = breast.width_profile(view, rows_mm).astype(np.float32)
    mask = np.clip((width[:, None] - cols_mm[None, :]) / spacing + 0.5, 0.0, 1.0)
    # The exact horizontal distance to the contour keeps the thin edge band sharp.
    edge_mm = np.clip(np.minimum(_edge_distance(breast, view, shape, spacing),
                                 width[:, None] - cols_mm[None, :]), 0.0, None).astype(np.float32)
    total, inner = _slab(breast, edge_mm)
    skin_mm = (total - inner) * mask
    pectoral = np.zeros(shape, dtype=np.float32)
    muscle_mm = np.zeros(shape, dtype=np.float32)
    if view != "CC":
        # Convex-edged triangle on the chest wall, widest at the top edge; the muscle's path
        # length grows from 0 at its edge (a wedge seen obliquely), so there is no hard step.
        edge = breast.pectoral_edge(rows_mm)
        inside = edge[:, None] - cols_mm[None, :]
        pectoral = np.clip(inside / spacing + 0.5, 0.0, 1.0) * mask
        grow = np.clip(inside / breast.muscle_edge, 0.0, None)
        muscle_mm = breast.muscle * (1.0 - np.exp(-grow - 0.5 * grow ** 2)) * mask
        muscle_mm *= _fibres(breast, shape, spacing)
        muscle_mm = np.minimum(muscle_mm, 0.9 * inner)
    # The muscle mostly displaces breast tissue; the rest (the axillary tail is thicker) adds path.
    tissue_mm = np.clip(inner - MUSCLE_DISPLACES * muscle_mm, 0.0, None) * mask
    depth, centre, half = breast.view_geometry(view)
    return ViewMaps(mask=mask.astype(np.float32), edge_mm=edge_mm, pectoral=pectoral.astype(np.float32),
                    nipple=(centre / spacing, depth / spacing), half_height_px=half / spacing,
                    tissue_mm=tissue_mm.astype(np.float32), skin_mm=skin_mm.astype(np.float32),
                    muscle_mm=muscle_mm.astype(np.float32))


def _slab(breast: Breast, edge_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Path through the whole breast and through the part inside the skin at ``edge_mm`` from the skin line.

    The edge is a half-ellipse with semi-axes ``rolloff`` (in plane) and thickness/2; the
    inner (sub-skin) surface is the same ellipse shrunk by the skin thickness.
    """
    half_t, width, skin = breast.thickness / 2, breast.rolloff, breast.skin
    u = np.clip(1.0 - edge_mm / width, 0.0, 1.0)
    total = 2 * half_t * np.sqrt(1.0 - u * u)
    v = np.clip((width - edge_mm) / (width - skin), 0.0, 1.0)
    inner = np.where(edge_mm > skin, 2 * (half_t - skin) * np.sqrt(1.0 - v * v), 0.0)
    return total.astype(np.float32), inner.astype(np.float32)


def _compression(rng: np.random.Generator, density: float) -> dict[str, float]:
    """Compressed thickness, edge and skin of one breast (dense breasts compress less)."""
    thickness = float(np.clip(rng.normal(52.0 + 12.0 * density, 8.0), 40.0, 80.0))
    return {"thickness": thickness, "rolloff": float(thickness * rng.uniform(0.6, 1.1)),
            "skin": float(rng.uniform(1.0, 2.0)), "nipple": float(rng.uniform(2.0, 6.0)),
            "muscle": float(thickness * rng.uniform(0.3, 0.75)), "muscle_edge": float(rng.uniform(4.0, 14.0)),
            "pectoral_exponent": float(rng.uniform(0.6, 1.05))}


def _fibres(breast: Breast, shape: tuple[int, int], spacing: float) -> np.ndarray:
    """Muscle fibre bundles: ±6 % of the muscle's path, streaks along the muscle (down and in)."""
    rng = np.random.default_rng(breast.wobble_seed + 3)
    coarse = (max(shape[0] // 4, 8), max(shape[1] // 4, 8))
    fy = np.fft.fftfreq(coarse[0], d=4 * spacing)[:, None]
    fx = np.fft.rfftfreq(coarse[1], d=4 * spacing)[None, :]
    along, across = (fy + fx) / np.sqrt(2), (fy - fx) / np.sqrt(2)
    amp = np.maximum(np.hypot(4.0 * along, across), 0.05) ** -1.5
    noise = np.fft.irfft2(amp * (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)), s=coarse)
    noise = (noise - noise.mean()) / max(float(noise.std()), 1e-9)
    up = ndimage.zoom(noise, (shape[0] / coarse[0], shape[1] / coarse[1]), order=1)[:shape[0], :shape[1]]
    up = np.pad(up, ((0, shape[0] - up.shape[0]), (0, shape[1] - up.shape[1])), mode="edge")
    return (1.0 + 0.06 * up).astype(np.float32)


def _edge_distance(breast: Breast, view: str, shape: tuple[int, int], spacing: float) -> np.ndarray:
    """Distance to the skin (mm), computed on a 1 mm grid and interpolated up."""
    rows, cols = shape
    grid = 0.5
    r_mm = np.arange(int(np.ceil(rows * spacing / grid)) + 1) * grid
    c_mm = np.arange(int(np.ceil(cols * spacing / grid)) + 1) * grid
    width = breast.width_profile(view, r_mm)
    coarse = c_mm[None, :] < width[:, None]
    # The chest wall and image edges are not skin: pad them as inside.
    padded = np.pad(coarse, ((1, 1), (1, 0)), mode="edge")
    padded[:, 0] = True
    dist = ndimage.distance_transform_edt(padded)[1:-1, 1:] * grid
    # Separable linear interpolation: rows first, then columns (cheap at full size).
    sr = (np.arange(rows) + 0.5) * spacing / grid - 0.5
    sc = (np.arange(cols) + 0.5) * spacing / grid - 0.5
    r0 = np.clip(np.floor(sr).astype(int), 0, dist.shape[0] - 2)
    wr = np.clip(sr - r0, 0.0, 1.0)[:, None]
    by_row = (dist[r0] * (1 - wr) + dist[r0 + 1] * wr).astype(np.float32)
    c0 = np.clip(np.floor(sc).astype(int), 0, dist.shape[1] - 2)
    wc = np.clip(sc - c0, 0.0, 1.0)[None, :].astype(np.float32)
    return by_row[:, c0] * (1 - wc) + by_row[:, c0 + 1] * wc
