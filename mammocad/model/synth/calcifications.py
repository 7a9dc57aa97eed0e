"""Calcification clusters after BI-RADS 5th edition morphology and distribution, as 3-D objects.

A cluster is built once in 3-D (mm, axes: x toward the nipple, y lateral, z superior) from the
solids of ``calc_primitives`` with real sizes and a fill fraction of full hydroxyapatite
density. Each view projects the same cluster (``raster.render_cluster``), so a lesion seen on CC
and MLO is the same object at a consistent depth from the nipple, and its contrast follows from
its size and composition through ``physics``, never from a drawn intensity.

Classes follow how a radiologist reports them (``../shared/README.md`` "Detector notes"):
suspicious morphologies (amorphous, coarse heterogeneous, fine pleomorphic, fine-linear
branching) are MALIGNANT; typically benign ones that are reported (round/punctate, popcorn, rim,
large rod-like, milk of calcium) are BENIGN; vascular and skin calcifications are usually not
reported and are drawn as background with no label (``labelled=False``, from
:func:`sample_unlabelled`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mammocad.model.results import LesionClass
from mammocad.model.synth.calc_primitives import (
    Cylinders,
    Ellipsoids,
    Sediments,
    Shells,
    random_rotations,
)


@dataclass(frozen=True)
class ClusterSpec:
    """One cluster (or one group of unreported calcifications when ``labelled`` is False)."""

    kind: str
    lesion_class: LesionClass
    description: str
    distribution: str = "grouped"
    ellipsoids: Ellipsoids = field(default_factory=Ellipsoids.empty)
    cylinders: Cylinders = field(default_factory=Cylinders.empty)
    shells: Shells = field(default_factory=Shells.empty)
    sediments: Sediments = field(default_factory=Sediments.empty)
    #: Amorphous calcifications are clouds of particles below the detector's resolution; their
    #: calcium is spread by a Gaussian of this sigma (mm) so the cloud looks hazy.
    haze_mm: float = 0.0
    #: False for calcifications a radiologist would not report (vascular, skin): background.
    labelled: bool = True

    def extent_mm(self) -> float:
        """Radius (mm) of a sphere around the origin holding the whole cluster, to place it."""
        reach = [1.0]
        e = self.ellipsoids
        if len(e):
            reach.append(float((np.linalg.norm(e.centres, axis=1) + e.axes.max(axis=1)).max()))
        c = self.cylinders
        if len(c):
            ends = np.maximum(np.linalg.norm(c.p0, axis=1), np.linalg.norm(c.p1, axis=1))
            reach.append(float((ends + c.radius).max()))
        for s in (self.shells, self.sediments):
            if len(s):
                reach.append(float((np.linalg.norm(s.centres, axis=1) + s.radius).max()))
        return max(reach)

    def calcium_volume_mm3(self) -> float:
        """Hydroxyapatite volume (mm³ at full density) in the cluster: what its contrast integrates."""
        return float(sum(float((p.volumes() * p.fill).sum())
                         for p in (self.ellipsoids, self.cylinders, self.shells, self.sediments)))


# --- distributions: where the specks of a cluster lie (offsets from its centre, mm) ---------

def _ball(rng: np.random.Generator, n: int, radius: float, squash: float = 1.0) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    pts = v * (radius * rng.uniform(0, 1, n) ** (1 / 3))[:, None]
    pts[:, 2] *= squash
    return pts


def _line(rng: np.random.Generator, n: int, length: float) -> np.ndarray:
    """Along a gently curved duct running toward the nipple (+x)."""
    t = np.sort(rng.uniform(-0.5, 0.5, n)) * length
    bend = rng.normal(0, 0.08, 2)
    pts = np.column_stack([t, bend[0] * t ** 2 / max(length, 1.0), bend[1] * t ** 2 / max(length, 1.0)])
    return pts + rng.normal(0, 0.35, (n, 3))


def _segment(rng: np.random.Generator, n: int, length: float) -> np.ndarray:
    """A wedge of a duct system: narrow toward the nipple (+x), widening toward the chest wall."""
    t = rng.uniform(-0.5, 0.5, n)
    half_width = (0.55 - t) * length * 0.18
    lateral = rng.uniform(-1, 1, (n, 2)) * half_width[:, None]
    return np.column_stack([t * length, lateral])


def _distribute(rng: np.random.Generator, n: int, choices: dict[str, float]) -> tuple[str, np.ndarray]:
    name = str(rng.choice(list(choices), p=list(choices.values())))
    if name == "grouped":  # BI-RADS: at least 5 calcifications within 1 cm
        return name, _ball(rng, n, rng.uniform(2.0, 4.5))
    if name == "linear":
        return name, _line(rng, n, rng.uniform(8.0, 22.0))
    if name == "segmental":
        return name, _segment(rng, n, rng.uniform(15.0, 35.0))
    return name, _ball(rng, n, rng.uniform(9.0, 18.0), squash=0.8)  # regional: > 2 cm


# --- specks ---------------------------------------------------------------------------------

def _specks(rng: np.random.Generator, centres: np.ndarray, semi: tuple[float, float], elongation: float,
            fill: tuple[float, float], lobes: tuple[int, int] = (1, 1)) -> Ellipsoids:
    """One speck per centre, each a union of 1..k ellipsoids (irregular, pleomorphic shapes).

    semi: range of the largest semi-axis (mm); elongation: the other axes are shorter by a
    factor up to this; lobes overlap so a speck's outline is irregular, not a sum of discs.
    """
    rows_c, rows_a, fills, ids = [], [], [], []
    for speck, c in enumerate(centres):
        k = int(rng.integers(lobes[0], lobes[1] + 1))
        big = rng.uniform(*semi)
        f = rng.uniform(*fill)
        for j in range(k):
            a = big * (1.0 if j == 0 else rng.uniform(0.4, 0.8))
            axes = a * np.concatenate([[1.0], rng.uniform(1.0 / elongation, 1.0, 2)])
            offset = np.zeros(3) if j == 0 else rng.normal(0, 0.6 * big, 3)
            rows_c.append(c + offset)
            rows_a.append(axes)
            fills.append(f)
            ids.append(speck)
    n = len(rows_c)
    return Ellipsoids.build(np.asarray(rows_c), np.asarray(rows_a), random_rotations(rng, n), np.asarray(fills),
                            np.asarray(ids))


def fine_pleomorphic(rng: np.random.Generator) -> ClusterSpec:
    dist, pts = _distribute(rng, int(rng.integers(8, 36)), {"grouped": 0.6, "linear": 0.15, "segmental": 0.25})
    specks = _specks(rng, pts, (0.08, 0.25), 2.5, (0.6, 1.0), (1, 3))
    return ClusterSpec("fine_pleomorphic", LesionClass.MALIGNANT,
                       f"fine pleomorphic calcifications, {dist} distribution (BI-RADS 4C)", dist, specks)


def _cast(rng: np.random.Generator, start: np.ndarray, direction: np.ndarray, length: float,
          out: list[tuple[np.ndarray, np.ndarray, float, float]]) -> None:
    """Interrupted thin casts filling a duct lumen: dashes of 0.5-3 mm with small gaps."""
    d = direction / np.linalg.norm(direction)
    pos, done = start.astype(float), 0.0
    radius, fill = rng.uniform(0.05, 0.15), rng.uniform(0.5, 0.95)  # casts 0.1-0.35 mm wide
    while done < length:
        dash = rng.uniform(0.5, 3.0)
        d = d + rng.normal(0, 0.12, 3)
        d /= np.linalg.norm(d)
        end = pos + d * dash
        out.append((pos, end, radius * rng.uniform(0.7, 1.2), fill))
        gap = rng.uniform(0.2, 1.2)
        pos = end + d * gap
        done += dash + gap


def fine_linear_branching(rng: np.random.Generator) -> ClusterSpec:
    casts: list[tuple[np.ndarray, np.ndarray, float, float]] = []
    length = rng.uniform(8, 22)
    trunk = np.array([1.0, rng.normal(0, 0.25), rng.normal(0, 0.25)])
    _cast(rng, -trunk * length / 2, trunk, length, casts)
    for _ in range(int(rng.integers(2, 6))):
        start = -trunk * length / 2 + trunk * length * rng.uniform(0.1, 0.8)
        _cast(rng, start, trunk + rng.normal(0, 0.6, 3), rng.uniform(2, 7), casts)
    dots = _specks(rng, _ball(rng, int(rng.integers(3, 10)), length / 3), (0.05, 0.15), 2.0, (0.5, 0.9))
    cyl = Cylinders.build(np.array([c[0] for c in casts]), np.array([c[1] for c in casts]),
                          np.array([c[2] for c in casts]), np.zeros(len(casts)), np.array([c[3] for c in casts]))
    dist = "linear" if rng.random() < 0.6 else "segmental"
    return ClusterSpec("fine_linear_branching", LesionClass.MALIGNANT,
                       f"fine-linear branching calcifications, {dist} distribution (BI-RADS 5)", dist,
                       dots, cyl)


def amorphous(rng: np.random.Generator) -> ClusterSpec:
    dist, pts = _distribute(rng, int(rng.integers(20, 70)), {"grouped": 0.75, "linear": 0.1, "segmental": 0.15})
    specks = _specks(rng, pts, (0.05, 0.15), 1.5, (0.3, 0.7))
    return ClusterSpec("amorphous", LesionClass.MALIGNANT,
                       f"amorphous calcifications, {dist} distribution (BI-RADS 4B)", dist, specks,
                       haze_mm=float(rng.uniform(0.05, 0.12)))


def coarse_heterogeneous(rng: np.random.Generator) -> ClusterSpec:
    pts = _ball(rng, int(rng.integers(6, 16)), rng.uniform(2.5, 5.0))
    specks = _specks(rng, pts, (0.25, 0.5), 2.0, (0.5, 0.9), (2, 3))
    return ClusterSpec("coarse_heterogeneous", LesionClass.MALIGNANT,
                       "coarse heterogeneous calcifications, grouped distribution (BI-RADS 4B)", "grouped", specks)


def punctate(rng: np.random.Generator) -> ClusterSpec:
    dist, pts = _distribute(rng, int(rng.integers(5, 20)), {"regional": 0.5, "grouped": 0.5})
    specks = _specks(rng, pts, (0.1, 0.5), 1.2, (0.6, 1.0))
    return ClusterSpec("punctate", LesionClass.BENIGN,
                       f"round and punctate calcifications, {dist} distribution (BI-RADS 2)", dist, specks)


def popcorn(rng: np.random.Generator) -> ClusterSpec:
    parts = Ellipsoids.empty()
    for c in _ball(rng, int(rng.integers(1, 3)), 4.0):
        lobes = c + _ball(rng, int(rng.integers(4, 10)), rng.uniform(1.2, 2.5))
        parts = parts.concat(_specks(rng, lobes, (0.5, 1.2), 1.8, (0.7, 1.0)))
    return ClusterSpec("popcorn", LesionClass.BENIGN,
                       "coarse popcorn-like calcifications (involuting fibroadenoma), BI-RADS 2", "grouped", parts)


def rim(rng: np.random.Generator) -> ClusterSpec:
    n = int(rng.integers(1, 4))
    radius = rng.uniform(1.0, 4.0, n)
    shells = Shells.build(_ball(rng, n, 5.0), radius, np.minimum(rng.uniform(0.1, 0.35, n), radius),
                          rng.uniform(0.6, 1.0, n))
    return ClusterSpec("rim", LesionClass.BENIGN, "rim (eggshell) calcifications, BI-RADS 2", "grouped",
                       shells=shells)


def rod(rng: np.random.Generator) -> ClusterSpec:
    centres = _ball(rng, int(rng.integers(2, 8)), 8.0)
    d = np.column_stack([np.ones(len(centres)), rng.normal(0, 0.2, (len(centres), 2))])
    d *= (rng.uniform(3, 10, len(centres)) / 2 / np.linalg.norm(d, axis=1))[:, None]
    radius = rng.uniform(0.25, 0.6, len(centres))
    # Periductal (secretory) rods often have a lucent centre: a tube.
    inner = np.where(rng.random(len(centres)) < 0.3, radius * rng.uniform(0.3, 0.6, len(centres)), 0.0)
    cyl = Cylinders.build(centres - d, centres + d, radius, inner, rng.uniform(0.8, 1.0, len(centres)))
    return ClusterSpec("rod", LesionClass.BENIGN,
                       "large rod-like (secretory) calcifications, ductal orientation, BI-RADS 2", "segmental",
                       cylinders=cyl)


def milk_of_calcium(rng: np.random.Generator) -> ClusterSpec:
    n = int(rng.integers(3, 11))
    # The sediment is calcium suspended in cyst fluid: dilute (fill 0.2-0.4), so the CC view shows
    # a faint smudge; the oblique view sees the layer edge-on, a longer path: a brighter crescent.
    sed = Sediments.build(_ball(rng, n, rng.uniform(4.0, 10.0)), rng.uniform(0.5, 2.0, n),
                          rng.uniform(0.1, 0.3, n), rng.uniform(0.2, 0.4, n))
    return ClusterSpec("milk_of_calcium", LesionClass.BENIGN,
                       "milk of calcium (sedimented, teacup-shaped on the oblique view), BI-RADS 2", "regional",
                       sediments=sed)


def vascular(rng: np.random.Generator) -> ClusterSpec:
    """A calcified artery: patchy plaques in the wall of a curved tube.

    Plaques on the sides of the tube are crossed edge-on by the rays, so the projection shows
    the two parallel tracks typical of vascular calcification in every view.
    """
    length = rng.uniform(15, 40)
    bend_amp, bend_freq = rng.uniform(2, 6), rng.uniform(1, 2)
    radius = rng.uniform(0.6, 1.2)
    n = int(rng.integers(25, 70))
    s = rng.uniform(-0.5, 0.5, n)
    theta = rng.uniform(0, 2 * np.pi, n)

    def centre_line(t: np.ndarray) -> np.ndarray:
        bend = bend_amp * np.sin(np.pi * t * bend_freq)
        return np.column_stack([t * length, bend, 0.3 * bend])

    axis_pts = centre_line(s)
    tangent = centre_line(s + 1e-3) - centre_line(s - 1e-3)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    helper = np.where(np.abs(tangent[:, 2:3]) < 0.9, np.array([[0.0, 0.0, 1.0]]), np.array([[0.0, 1.0, 0.0]]))
    e1 = np.cross(tangent, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(tangent, e1)
    radial = np.cos(theta)[:, None] * e1 + np.sin(theta)[:, None] * e2
    around = np.cross(tangent, radial)
    centres = axis_pts + radius * radial
    axes = np.column_stack([rng.uniform(0.3, 1.5, n), rng.uniform(0.04, 0.12, n), rng.uniform(0.2, 0.5, n)])
    rotations = np.stack([tangent, radial, around], axis=2)
    plaques = Ellipsoids.build(centres, axes, rotations, rng.uniform(0.5, 0.9, n))
    return ClusterSpec("vascular", LesionClass.BENIGN, "vascular calcifications (parallel tracks), not reported",
                       "linear", plaques, labelled=False)


def skin(rng: np.random.Generator) -> ClusterSpec:
    """Dermal calcifications: small round specks with lucent centres (the caller puts them near the skin)."""
    n = int(rng.integers(3, 11))
    radius = rng.uniform(0.3, 1.0, n)
    shells = Shells.build(_ball(rng, n, rng.uniform(4.0, 12.0)), radius,
                          np.minimum(rng.uniform(0.1, 0.3, n), radius), rng.uniform(0.5, 0.9, n))
    return ClusterSpec("skin", LesionClass.BENIGN, "skin calcifications (lucent centres), not reported", "regional",
                       shells=shells, labelled=False)


MALIGNANT_KINDS: dict[str, Callable[[np.random.Generator], ClusterSpec]] = {
    "fine_pleomorphic": fine_pleomorphic, "fine_linear_branching": fine_linear_branching,
    "amorphous": amorphous, "coarse_heterogeneous": coarse_heterogeneous,
}
BENIGN_KINDS: dict[str, Callable[[np.random.Generator], ClusterSpec]] = {
    "punctate": punctate, "popcorn": popcorn, "rim": rim, "rod": rod, "milk_of_calcium": milk_of_calcium,
}
UNLABELLED_KINDS: dict[str, Callable[[np.random.Generator], ClusterSpec]] = {"vascular": vascular, "skin": skin}
MALIGNANT_WEIGHTS = (0.4, 0.25, 0.2, 0.15)
BENIGN_WEIGHTS = (0.4, 0.15, 0.15, 0.15, 0.15)


def sample_cluster(rng: np.random.Generator, malignant: bool) -> ClusterSpec:
    """A reportable cluster: suspicious morphology when ``malignant``, else typically benign."""
    kinds = MALIGNANT_KINDS if malignant else BENIGN_KINDS
    weights = MALIGNANT_WEIGHTS if malignant else BENIGN_WEIGHTS
    name = list(kinds)[int(rng.choice(len(kinds), p=weights))]
    return kinds[name](rng)


def sample_unlabelled(rng: np.random.Generator, kind: str | None = None) -> ClusterSpec:
    """Vascular or skin calcifications: drawn into the image, never given a truth box."""
    name = kind or str(rng.choice(list(UNLABELLED_KINDS)))
    if name not in UNLABELLED_KINDS:
        raise ValueError(f"kind must be one of {sorted(UNLABELLED_KINDS)}, got {name!r}")
    return UNLABELLED_KINDS[name](rng)
