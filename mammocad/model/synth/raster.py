"""Project a 3-D calcification cluster into one view as calcium path lengths (mm).

``render_cluster`` ADDS, into a map in millimetres of full-density hydroxyapatite, the
length of calcium every ray of the view crosses: the chord 2·sqrt(r² − d²) through a sphere,
its analogue through an ellipsoid, a cylinder, a shell or a cyst's sediment, times each
solid's fill fraction. The caller turns the map into attenuation with
``physics.calcification_line_integral`` and only then blurs and adds noise, so a speck's
contrast follows from its size and composition.

Sub-pixel specks keep the right amount of calcium: each solid is sampled on a sub-pixel grid
fine enough for its smallest dimension, and its samples are then scaled so that their sum
equals the solid's exact volume (a speck smaller than one sub-sample lands whole on the
nearest one). A 0.1 mm speck in a 0.2 mm pixel therefore adds its true volume / pixel area,
not a one-pixel blob. No blur is applied here (the detector's MTF is the caller's), except
the haze of amorphous clusters, which is a property of the calcium itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mammocad.model.synth.anatomy import MLO_ANGLE_DEG
from mammocad.model.synth.calc_primitives import Cylinders, Ellipsoids, Sediments, Shells
from mammocad.model.synth.calcifications import ClusterSpec

Box = tuple[float, float, float, float]

#: Finest sub-pixel sampling of one solid (per axis); the volume rescaling covers the rest.
MAX_SUPERSAMPLE = 12


@dataclass(frozen=True)
class SpeckTruth:
    """Where one solid of a cluster lands in a view, for measurements (contrast-to-noise by size).

    row, col: pixel coordinates of its centre; diameter_mm: diameter of the sphere of the same
    volume (casts, shells and sediments report their own diameter); fill: fraction of full
    density; calcium_mm3: its hydroxyapatite volume at full density (volume × fill).
    """

    row: float
    col: float
    diameter_mm: float
    fill: float
    calcium_mm3: float
    shape: str

    def to_dict(self) -> dict[str, float | str]:
        """As ``AnnotatedImage.extra["specks"]`` entries (x = column, y = row; realism_sources.py)."""
        return {"x": round(self.col, 2), "y": round(self.row, 2), "diameter_mm": round(self.diameter_mm, 4),
                "fill": round(self.fill, 3), "calcium_mm3": round(self.calcium_mm3, 6), "shape": self.shape}


def view_axes(view: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row direction, column direction, ray direction) of ``view`` as unit 3-D vectors."""
    if view == "CC":
        return np.array([0.0, -1.0, 0.0]), np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    if view != "MLO":
        raise ValueError(f"view must be CC or MLO, got {view!r}")
    a = np.deg2rad(MLO_ANGLE_DEG)
    return (np.array([0.0, -np.sin(a), -np.cos(a)]), np.array([1.0, 0.0, 0.0]),
            np.array([0.0, np.cos(a), -np.sin(a)]))


def project(view: str, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3-D offsets (x toward the nipple, y lateral, z superior; mm) → (drow, dcol) in mm."""
    r_hat, c_hat, _ = view_axes(view)
    pts = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    return pts @ r_hat, pts @ c_hat


def render_cluster(calcium_mm: np.ndarray, spec: ClusterSpec, view: str, centre_px: tuple[float, float],
                   spacing: float) -> Box | None:
    """Add the cluster's calcium path lengths (mm) into ``calcium_mm`` in place.

    centre_px: (row, col) of the cluster's origin, pixel centres at integers; spacing: mm per
    pixel. Returns the truth box (x1, y1, x2, y2) in pixels, the tight extent of the
    calcifications plus max(0.5 mm, 2 px), or None when the cluster falls off the image.
    """
    if spacing <= 0:
        raise ValueError(f"spacing must be positive, got {spacing}")
    axes = view_axes(view)
    solids = list(_solids(spec, axes, centre_px, spacing))
    if not solids:
        return None
    lo = np.min([s.lo for s in solids], axis=0)
    hi = np.max([s.hi for s in solids], axis=0)
    pad = 2 + int(np.ceil(3 * spec.haze_mm / spacing))
    r0, c0 = int(np.floor(lo[0])) - pad, int(np.floor(lo[1])) - pad
    r1, c1 = int(np.ceil(hi[0])) + pad + 1, int(np.ceil(hi[1])) + pad + 1
    rows, cols = calcium_mm.shape
    if r1 <= 0 or c1 <= 0 or r0 >= rows or c0 >= cols:
        return None
    patch = np.zeros((r1 - r0, c1 - c0), dtype=np.float64)
    for solid in solids:
        solid.deposit(patch, (r0, c0), centre_px, spacing, axes)
    if spec.haze_mm > 0:
        patch = ndimage.gaussian_filter(patch, spec.haze_mm / spacing, mode="constant")
    rr0, cc0, rr1, cc1 = max(r0, 0), max(c0, 0), min(r1, rows), min(c1, cols)
    calcium_mm[rr0:rr1, cc0:cc1] += patch[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0].astype(calcium_mm.dtype)
    margin = max(2.0, 0.5 / spacing)
    box = (max(lo[1] - margin, 0.0), max(lo[0] - margin, 0.0),
           min(hi[1] + margin, cols - 1.0), min(hi[0] + margin, rows - 1.0))
    return box if box[0] < box[2] and box[1] < box[3] else None


def speck_truth(spec: ClusterSpec, view: str, centre_px: tuple[float, float], spacing: float) -> list[SpeckTruth]:
    """Every speck's projected centre and size in this view.

    The lobes of one irregular speck are reported as one speck (volume-weighted centre, the
    diameter of a sphere of their total volume); casts, shells and sediments each as one.
    """
    out = []
    groups: dict[int, list[_Solid]] = {}
    for solid in _solids(spec, view_axes(view), centre_px, spacing):
        if solid.shape == "ellipsoid":
            groups.setdefault(int(spec.ellipsoids.speck[solid.index]), []).append(solid)
        else:
            out.append(SpeckTruth(float(solid.centre[0]), float(solid.centre[1]), solid.diameter, solid.fill,
                                  solid.volume * solid.fill, solid.shape))
    for lobes in groups.values():
        volumes = np.array([lobe.volume for lobe in lobes])
        centre = (np.array([lobe.centre for lobe in lobes]) * volumes[:, None]).sum(axis=0) / volumes.sum()
        fill = float((np.array([lobe.fill for lobe in lobes]) * volumes).sum() / volumes.sum())
        total = float(volumes.sum())
        out.append(SpeckTruth(float(centre[0]), float(centre[1]), float((6 * total / np.pi) ** (1 / 3)), fill,
                              total * fill, "speck"))
    return out


# --- solids ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Solid:
    """One solid in pixel space: its extent, and how to evaluate its chord on sample points."""

    shape: str
    index: int
    source: Ellipsoids | Cylinders | Shells | Sediments
    centre: np.ndarray  # (row, col) in pixels
    lo: np.ndarray
    hi: np.ndarray
    feature_mm: float  # smallest dimension: sets the sub-pixel sampling
    volume: float
    fill: float
    diameter: float = 0.0

    def deposit(self, patch: np.ndarray, origin: tuple[int, int], centre_px: tuple[float, float], spacing: float,
                axes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Add chord × fill, rescaled to the exact volume, over this solid's window of ``patch``."""
        ss = int(np.clip(np.ceil(2.0 * spacing / max(self.feature_mm, 1e-4)), 2, MAX_SUPERSAMPLE))
        pr0, pc0 = int(np.floor(self.lo[0])) - 1, int(np.floor(self.lo[1])) - 1
        pr1, pc1 = int(np.ceil(self.hi[0])) + 2, int(np.ceil(self.hi[1])) + 2
        sub = (np.arange(ss) + 0.5) / ss - 0.5
        rows = (np.arange(pr0, pr1)[:, None] + sub[None, :]).ravel()
        cols = (np.arange(pc0, pc1)[:, None] + sub[None, :]).ravel()
        dr = (rows - centre_px[0]) * spacing
        dc = (cols - centre_px[1]) * spacing
        r_hat, c_hat, u_hat = axes
        points = dr[:, None, None] * r_hat + dc[None, :, None] * c_hat  # [R, C, 3] on the plane through 0
        chord = _CHORDS[self.shape](self.source, self.index, points, u_hat)
        sample_area = (spacing / ss) ** 2
        total = float(chord.sum()) * sample_area
        if total > 0:
            chord *= self.volume / total
        else:  # smaller than one sub-sample: all of it on the nearest one
            i = int(np.argmin(np.abs(rows - self.centre[0])))
            j = int(np.argmin(np.abs(cols - self.centre[1])))
            chord[i, j] = self.volume / sample_area
        pix = chord.reshape(pr1 - pr0, ss, pc1 - pc0, ss).mean(axis=(1, 3)) * self.fill
        r0, c0 = pr0 - origin[0], pc0 - origin[1]
        patch[r0:r0 + pix.shape[0], c0:c0 + pix.shape[1]] += pix


def _solids(spec: ClusterSpec, axes: tuple[np.ndarray, np.ndarray, np.ndarray], centre_px: tuple[float, float],
            spacing: float) -> list[_Solid]:
    r_hat, c_hat, _ = axes

    def px(xyz: np.ndarray) -> np.ndarray:
        return np.array([centre_px[0] + float(xyz @ r_hat) / spacing, centre_px[1] + float(xyz @ c_hat) / spacing])

    out: list[_Solid] = []
    e = spec.ellipsoids
    for k in range(len(e)):
        c, reach = px(e.centres[k]), float(e.axes[k].max()) / spacing
        out.append(_Solid("ellipsoid", k, e, c, c - reach, c + reach, float(e.axes[k].min()),
                          float(e.volumes()[k]), float(e.fill[k])))
    cy = spec.cylinders
    for k in range(len(cy)):
        a, b, reach = px(cy.p0[k]), px(cy.p1[k]), float(cy.radius[k]) / spacing
        feature = float(cy.radius[k] - cy.inner[k]) if cy.inner[k] > 0 else float(cy.radius[k])
        out.append(_Solid("tube" if cy.inner[k] > 0 else "cast", k, cy, (a + b) / 2, np.minimum(a, b) - reach,
                          np.maximum(a, b) + reach, feature, float(cy.volumes()[k]), float(cy.fill[k]),
                          diameter=2 * float(cy.radius[k])))
    sh = spec.shells
    for k in range(len(sh)):
        c, reach = px(sh.centres[k]), float(sh.radius[k]) / spacing
        out.append(_Solid("shell", k, sh, c, c - reach, c + reach, float(sh.wall[k]), float(sh.volumes()[k]),
                          float(sh.fill[k]), diameter=2 * float(sh.radius[k])))
    sd = spec.sediments
    for k in range(len(sd)):
        c, reach = px(sd.centres[k]), float(sd.radius[k]) / spacing
        out.append(_Solid("sediment", k, sd, c, c - reach, c + reach, float(sd.radius[k] * sd.level[k]),
                          float(sd.volumes()[k]), float(sd.fill[k]), diameter=2 * float(sd.radius[k])))
    return out


def _ellipsoid_chord(e: Ellipsoids, k: int, points: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Length of the ray points + t·u inside the ellipsoid (x − c)ᵀA(x − c) ≤ 1."""
    rot = e.rotations[k]
    a_mat = rot @ np.diag(1.0 / e.axes[k] ** 2) @ rot.T
    w = points - e.centres[k]
    au = a_mat @ u
    alpha = float(u @ au)
    beta = w @ au
    gamma = np.einsum("...i,ij,...j->...", w, a_mat, w) - 1.0
    disc = beta ** 2 - alpha * gamma
    return 2.0 * np.sqrt(np.maximum(disc, 0.0)) / alpha


def _cylinder_chord(cy: Cylinders, k: int, points: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Chord through a cast (rounded ends) or a tube's wall, from the distance to the projected axis.

    A tilted axis is crossed obliquely, lengthening the chord by 1/sin(angle to the ray)
    (capped at 4×); the volume rescaling in ``deposit`` keeps the total exact.
    """
    p0, p1 = cy.p0[k], cy.p1[k]
    axis = p1 - p0
    length = float(np.linalg.norm(axis))
    flat0 = p0 - (p0 @ u) * u
    flat1 = p1 - (p1 @ u) * u
    d = flat1 - flat0
    denom = float(d @ d)
    t = ((points - flat0) @ d) / denom if denom > 1e-12 else np.zeros(points.shape[:-1])
    tc = np.clip(t, 0.0, 1.0)
    dist2 = np.sum((points - flat0 - tc[..., None] * d) ** 2, axis=-1)
    sin_phi = np.sqrt(max(1.0 - (float(axis @ u) / length) ** 2, 0.0)) if length > 0 else 1.0
    stretch = 1.0 / max(sin_phi, 0.25)
    outer = 2.0 * np.sqrt(np.maximum(cy.radius[k] ** 2 - dist2, 0.0))
    if cy.inner[k] <= 0:
        along = np.where((t >= 0) & (t <= 1), stretch, 1.0)
        return outer * along
    inner = 2.0 * np.sqrt(np.maximum(cy.inner[k] ** 2 - dist2, 0.0))
    return (outer - inner) * stretch * ((t >= 0) & (t <= 1))


def _shell_chord(sh: Shells, k: int, points: np.ndarray, u: np.ndarray) -> np.ndarray:
    w = points - sh.centres[k]
    rho2 = np.sum(w ** 2, axis=-1) - (w @ u) ** 2
    outer = 2.0 * np.sqrt(np.maximum(sh.radius[k] ** 2 - rho2, 0.0))
    inner = 2.0 * np.sqrt(np.maximum((sh.radius[k] - sh.wall[k]) ** 2 - rho2, 0.0))
    return outer - inner


def _sediment_chord(sd: Sediments, k: int, points: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The part of each ray inside the cyst sphere AND below the sediment's level (z < level)."""
    c, r = sd.centres[k], float(sd.radius[k])
    w = points - c
    beta = w @ u
    gamma = np.sum(w ** 2, axis=-1) - r * r
    half = np.sqrt(np.maximum(beta ** 2 - gamma, 0.0))
    t1, t2 = -beta - half, -beta + half
    z_level = c[2] - r + 2.0 * r * float(sd.level[k])
    pz, uz = points[..., 2], float(u[2])
    if abs(uz) < 1e-9:
        lo, hi = t1, np.where(pz < z_level, t2, t1)
    elif uz > 0:
        lo, hi = t1, np.minimum(t2, (z_level - pz) / uz)
    else:
        lo, hi = np.maximum(t1, (z_level - pz) / uz), t2
    return np.maximum(hi - lo, 0.0) * (half > 0)


_CHORDS: dict[str, Callable[..., np.ndarray]] = {"ellipsoid": _ellipsoid_chord, "cast": _cylinder_chord, "tube": _cylinder_chord,
           "shell": _shell_chord, "sediment": _sediment_chord}
