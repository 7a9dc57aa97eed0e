"""Calcification clusters after BI-RADS 5th edition morphology and distribution.

A cluster is built once in 3-D (mm, axes: depth from the nipple, lateral, superior) from
three primitives: discs (round specks), segments (linear / rod / vessel-wall casts) and
rings (eggshell). Each view projects the same cluster, so a lesion seen on CC and MLO
is the same object at a consistent depth from the nipple.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mammocad.model.results import LesionClass

# Columns: discs (x, y, z, radius, amp); segments (x0, y0, z0, x1, y1, z1, width, amp);
# rings (x, y, z, radius, wall, amp). x = toward the nipple, y = lateral, z = superior.


@dataclass(frozen=True)
class ClusterSpec:
    kind: str
    lesion_class: LesionClass
    description: str
    discs: np.ndarray
    segments: np.ndarray
    rings: np.ndarray
    haze_mm: float = 0.0  # extra blur (amorphous calcifications look hazy)

    def extent_mm(self) -> float:
        """Radius (mm) of a sphere holding the whole cluster, to place it in the breast."""
        pts = [np.abs(self.discs[:, :3]).max(initial=0) + 1.0]
        if len(self.segments):
            pts.append(np.abs(self.segments[:, :6]).max() + 1.0)
        if len(self.rings):
            pts.append(np.abs(self.rings[:, :3]).max() + self.rings[:, 3].max())
        return float(max(pts))


def _ball(rng: np.random.Generator, n: int, radius: float, squash: float = 1.0) -> np.ndarray:
    """n points uniform in a ball (z squashed), mm."""
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    r = radius * rng.uniform(0, 1, n) ** (1 / 3)
    pts = v * r[:, None]
    pts[:, 2] *= squash
    return pts


def _irregular(rng: np.random.Generator, centres: np.ndarray, r_lo: float, r_hi: float,
               amp: tuple[float, float], lobes: tuple[int, int]) -> np.ndarray:
    """Irregular specks: each a few overlapping small discs (pleomorphic shapes)."""
    out = []
    for c in centres:
        k = int(rng.integers(lobes[0], lobes[1] + 1))
        r = rng.uniform(r_lo, r_hi, k)
        off = rng.normal(0, r_hi * 0.7, (k, 3))
        a = rng.uniform(*amp)
        for j in range(k):
            out.append([*(c + off[j]), r[j], a])
    return np.asarray(out, dtype=np.float64).reshape(-1, 5)


def _empty(cols: int) -> np.ndarray:
    return np.zeros((0, cols))


def fine_pleomorphic(rng: np.random.Generator) -> ClusterSpec:
    segmental = rng.random() < 0.3
    n = int(rng.integers(8, 31))
    if segmental:  # wedge pointing at the nipple
        pts = _ball(rng, n, 1.0) * np.array([rng.uniform(8, 14), 3.5, 3.5])
    else:
        pts = _ball(rng, n, rng.uniform(2.5, 5.0))
    discs = _irregular(rng, pts, 0.06, 0.22, (0.35, 0.6), (1, 3))
    dist = "segmental" if segmental else "grouped"
    return ClusterSpec("fine_pleomorphic", LesionClass.MALIGNANT,
                       f"fine pleomorphic calcifications, {dist} distribution (BI-RADS 4C)",
                       discs, _empty(8), _empty(6))


def fine_linear_branching(rng: np.random.Generator) -> ClusterSpec:
    segs: list[list[float]] = []
    length = rng.uniform(8, 22)
    trunk_dir = np.array([1.0, rng.normal(0, 0.25), rng.normal(0, 0.25)])
    _casting(rng, -trunk_dir * length / 2, trunk_dir, length, segs)
    for _ in range(int(rng.integers(2, 6))):
        start = -trunk_dir * length / 2 + trunk_dir * length * rng.uniform(0.1, 0.8)
        d = trunk_dir + rng.normal(0, 0.6, 3)
        _casting(rng, start, d, rng.uniform(2, 7), segs)
    specks = _irregular(rng, _ball(rng, int(rng.integers(3, 10)), length / 3), 0.06, 0.15, (0.35, 0.55), (1, 2))
    return ClusterSpec("fine_linear_branching", LesionClass.MALIGNANT,
                       "fine-linear branching calcifications, linear distribution (BI-RADS 5)",
                       specks, np.asarray(segs).reshape(-1, 8), _empty(6))


def _casting(rng: np.random.Generator, start: np.ndarray, direction: np.ndarray, length: float,
             segs: list[list[float]]) -> None:
    """Interrupted thin casts along a duct: dashes of 0.5-3 mm with small gaps."""
    d = direction / np.linalg.norm(direction)
    pos, done = start.astype(float), 0.0
    while done < length:
        dash = rng.uniform(0.5, 3.0)
        d = d + rng.normal(0, 0.12, 3)
        d /= np.linalg.norm(d)
        end = pos + d * dash
        segs.append([*pos, *end, rng.uniform(0.12, 0.3), rng.uniform(0.35, 0.55)])
        gap = rng.uniform(0.2, 1.2)
        pos = end + d * gap
        done += dash + gap


def amorphous(rng: np.random.Generator) -> ClusterSpec:
    pts = _ball(rng, int(rng.integers(15, 45)), rng.uniform(3.0, 6.0))
    discs = _irregular(rng, pts, 0.06, 0.15, (0.3, 0.42), (1, 1))
    return ClusterSpec("amorphous", LesionClass.MALIGNANT,
                       "amorphous calcifications, grouped distribution (BI-RADS 4B)",
                       discs, _empty(8), _empty(6), haze_mm=0.07)


def coarse_heterogeneous(rng: np.random.Generator) -> ClusterSpec:
    pts = _ball(rng, int(rng.integers(6, 16)), rng.uniform(3.0, 5.0))
    discs = _irregular(rng, pts, 0.2, 0.4, (0.4, 0.6), (2, 4))
    return ClusterSpec("coarse_heterogeneous", LesionClass.MALIGNANT,
                       "coarse heterogeneous calcifications, grouped distribution (BI-RADS 4B)",
                       discs, _empty(8), _empty(6))


def punctate(rng: np.random.Generator) -> ClusterSpec:
    pts = _ball(rng, int(rng.integers(5, 18)), rng.uniform(6.0, 14.0))
    r = rng.uniform(0.12, 0.45, len(pts))
    discs = np.column_stack([pts, r, rng.uniform(0.45, 0.7, len(pts))])
    return ClusterSpec("punctate", LesionClass.BENIGN,
                       "round and punctate calcifications, regional distribution (BI-RADS 2)",
                       discs, _empty(8), _empty(6))


def popcorn(rng: np.random.Generator) -> ClusterSpec:
    clumps = _ball(rng, int(rng.integers(1, 3)), 4.0)
    parts = []
    for c in clumps:
        blobs = c + _ball(rng, int(rng.integers(4, 9)), rng.uniform(1.5, 3.0))
        parts.append(np.column_stack([blobs, rng.uniform(0.5, 1.4, len(blobs)),
                                      np.full(len(blobs), rng.uniform(0.6, 0.8))]))
    return ClusterSpec("popcorn", LesionClass.BENIGN,
                       "coarse popcorn-like calcifications (involuting fibroadenoma), BI-RADS 2",
                       np.vstack(parts), _empty(8), _empty(6))


def rim(rng: np.random.Generator) -> ClusterSpec:
    n = int(rng.integers(1, 4))
    centres = _ball(rng, n, 5.0)
    rings = np.column_stack([centres, rng.uniform(1.0, 4.0, n), rng.uniform(0.3, 0.6, n),
                             rng.uniform(0.45, 0.65, n)])
    return ClusterSpec("rim", LesionClass.BENIGN, "rim (eggshell) calcifications, BI-RADS 2",
                       _empty(5), _empty(8), rings)


def vascular(rng: np.random.Generator) -> ClusterSpec:
    length = rng.uniform(15, 35)
    t = np.linspace(-0.5, 0.5, 24)
    bend = rng.uniform(2, 6) * np.sin(np.pi * t * rng.uniform(1, 2))
    axis = np.column_stack([t * length, bend, 0.3 * bend])
    half = rng.uniform(0.6, 1.1)
    segs = [[*axis[i], *axis[i + 1], 2 * half + 0.4, 0.05] for i in range(len(axis) - 1)]
    for side in (-1, 1):
        for i in range(len(axis) - 1):
            if rng.random() < 0.75:
                off = np.array([0, side * half, side * half * 0.3])
                segs.append([*(axis[i] + off), *(axis[i + 1] + off), rng.uniform(0.2, 0.4), rng.uniform(0.4, 0.55)])
    return ClusterSpec("vascular", LesionClass.BENIGN,
                       "vascular calcifications (parallel tracks), BI-RADS 2",
                       _empty(5), np.asarray(segs), _empty(6))


def rod(rng: np.random.Generator) -> ClusterSpec:
    segs = []
    for c in _ball(rng, int(rng.integers(2, 7)), 8.0):
        d = np.array([1.0, rng.normal(0, 0.2), rng.normal(0, 0.2)])
        d = d / np.linalg.norm(d) * rng.uniform(3, 10) / 2
        segs.append([*(c - d), *(c + d), rng.uniform(0.8, 1.5), rng.uniform(0.6, 0.8)])
    return ClusterSpec("rod", LesionClass.BENIGN,
                       "large rod-like (secretory) calcifications, ductal orientation, BI-RADS 2",
                       _empty(5), np.asarray(segs), _empty(6))


MALIGNANT_KINDS: dict[str, Callable[[np.random.Generator], ClusterSpec]] = {
    "fine_pleomorphic": fine_pleomorphic, "fine_linear_branching": fine_linear_branching,
    "amorphous": amorphous, "coarse_heterogeneous": coarse_heterogeneous,
}
BENIGN_KINDS: dict[str, Callable[[np.random.Generator], ClusterSpec]] = {
    "punctate": punctate, "popcorn": popcorn, "rim": rim, "vascular": vascular, "rod": rod,
}
MALIGNANT_WEIGHTS = (0.4, 0.25, 0.2, 0.15)
BENIGN_WEIGHTS = (0.35, 0.2, 0.15, 0.15, 0.15)


def sample_cluster(rng: np.random.Generator, malignant: bool) -> ClusterSpec:
    kinds = MALIGNANT_KINDS if malignant else BENIGN_KINDS
    weights = MALIGNANT_WEIGHTS if malignant else BENIGN_WEIGHTS
    name = list(kinds)[int(rng.choice(len(kinds), p=weights))]
    return kinds[name](rng)
