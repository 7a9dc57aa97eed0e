"""Breast geometry for synthetic views, in millimetres, shared by a breast's CC and MLO.

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

    @classmethod
    def sample(cls, rng: np.random.Generator, field_mm: tuple[float, float],
               density: float) -> Breast:
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
            density=density,
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
        return ellipse * (1.0 + wobble)

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
    """Per-pixel maps of one view in the canonical frame."""

    mask: np.ndarray  # breast coverage 0..1 (anti-aliased edge)
    edge_mm: np.ndarray  # distance to the skin line inside the breast, mm
    pectoral: np.ndarray  # pectoral muscle coverage 0..1 (MLO only)
    nipple: tuple[float, float]  # (row, col) in pixels
    half_height_px: float


def view_maps(breast: Breast, view: str, shape: tuple[int, int], spacing: float) -> ViewMaps:
    """Masks of ``view`` for an image of ``shape`` pixels at ``spacing`` mm."""
    rows, cols = shape
    rows_mm = (np.arange(rows, dtype=np.float32) + 0.5) * spacing
    cols_mm = (np.arange(cols, dtype=np.float32) + 0.5) * spacing
    width = breast.width_profile(view, rows_mm).astype(np.float32)
    mask = np.clip((width[:, None] - cols_mm[None, :]) / spacing + 0.5, 0.0, 1.0)
    edge_mm = _edge_distance(breast, view, shape, spacing)
    pectoral = np.zeros(shape, dtype=np.float32)
    if view != "CC":
        # Convex-edged triangle on the chest wall, widest at the top edge.
        pw, ph = breast.pectoral_width, breast.pectoral_height
        frac = np.clip(1.0 - rows_mm / ph, 0.0, 1.0)
        edge = pw * frac ** 0.85
        pectoral = np.clip((edge[:, None] - cols_mm[None, :]) / spacing + 0.5, 0.0, 1.0) * mask
    depth, centre, half = breast.view_geometry(view)
    return ViewMaps(mask=mask.astype(np.float32), edge_mm=edge_mm, pectoral=pectoral.astype(np.float32),
                    nipple=(centre / spacing, depth / spacing), half_height_px=half / spacing)


def _edge_distance(breast: Breast, view: str, shape: tuple[int, int], spacing: float) -> np.ndarray:
    """Distance to the skin (mm), computed on a 1 mm grid and interpolated up."""
    rows, cols = shape
    grid = 1.0
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
