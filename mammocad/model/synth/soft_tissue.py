"""Soft-tissue findings that screening films show and a calcification detector must leave alone.

Real screening mammograms hold lymph nodes (in the breast, and in the axilla on nearly every
oblique view), cysts, fibroadenomas and now and then a spiculated mass. Synth v2–v8 drew none
of them, and on the CBIS-DDSM films (two mass cases) the shipped detectors put marks on dense
lobulated and stellate blobs (MODEL_CARD.md, "False marks on real film"). Each finding here is
gland-equivalent tissue (a cyst's fluid attenuates about as gland does) that displaces fat
along the beam, so it goes through the projection physics like the glandular tissue: it shows
boldly in a fatty breast and is half hidden in a dense one. None carries a truth box: the
product reports calcifications, and a mass without calcium is background to it.

Shapes: an ellipse (in the image plane) by a depth along the beam, its outline lobulated by
a few angular harmonics; lymph nodes lose a fatty hilum on one flank (the kidney shape that
tells them apart); spiculated masses have an ill-defined core and radiating tapered strands.
Prevalences are chosen so that most breasts hold something to learn from, not measured.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from mammocad.model.synth.texture import tubes, wander

#: Per breast: chance of holding each kind (in the breast, seen on both views).
FINDING_RATES = {"lymph_node": 0.2, "cyst": 0.15, "fibroadenoma": 0.12, "spiculated_mass": 0.05}
#: Chance that an oblique view shows nodes in the axilla (1-3, above the breast, over or beside
#: the pectoral muscle's edge).
AXILLARY_NODE_RATE = 0.6
KINDS = (*FINDING_RATES, "axillary_node")
#: Chance that a cluster seen on both views lies in a mass of its own: a cancer's calcifications
#: inside or at the edge of the tumour, and the popcorn calcifications of an involuting
#: fibroadenoma (the classic benign pair). Other benign kinds lie in plain tissue.
HOST_RATES = {"malignant": 0.3, "popcorn": 0.6}
#: Share of the masses around malignant clusters drawn without spicules: irregular, ill-defined.
ILL_DEFINED_SHARE = 0.4
#: Largest half length (mm) a host mass grows to around a wide cluster.
HOST_MAX_HALF_MM = 25.0


@dataclass(frozen=True)
class SoftFinding:
    """One finding's shape; where it is comes with it at drawing time (canonical view mm)."""

    kind: str
    semi_axes_mm: tuple[float, float]  # in the image plane: half length, half width
    depth_mm: float  # half its extent along the beam
    fill: float  # gland-equivalent share of its chord (the rest is fat)
    lobulation: float  # relative amplitude of the outline's lobes; 0 is a smooth ellipse
    hilum: float  # fatty hilum's size as a share of the node's (0: none)
    spicules: int
    spicule_length_mm: float
    margin_mm: float  # blur of the outline: 0 circumscribed, ~1 ill-defined
    seed: int  # the drawing's own details (orientation, lobes, spicules) per view
    holds_cluster: bool = False  # drawn around a calcification cluster (``sample_host``)

    def extent_mm(self) -> float:
        """Radius (mm) that holds the whole finding, to place it inside the breast."""
        return float(max(self.semi_axes_mm)) * (1.0 + 2 * self.lobulation) + self.spicule_length_mm + 2 * self.margin_mm


def sample_finding(rng: np.random.Generator, kind: str, max_depth_mm: float) -> SoftFinding:
    """A finding of ``kind``; ``max_depth_mm``: half the compressed thickness it must fit in."""
    seed = int(rng.integers(2 ** 31))
    if kind in ("lymph_node", "axillary_node"):
        half = rng.uniform(2.0, 6.0) if kind == "lymph_node" else rng.uniform(3.0, 9.0)
        width = half * rng.uniform(0.5, 0.75)
        hilum = rng.uniform(0.3, 0.55) if kind == "lymph_node" else rng.uniform(0.4, 0.7)
        return SoftFinding(kind, (half, width), min(width, max_depth_mm), float(rng.uniform(0.85, 1.0)),
                           float(rng.uniform(0.0, 0.04)), float(hilum), 0, 0.0, 0.0, seed)
    if kind == "cyst":
        half = rng.uniform(3.0, 12.0)
        return SoftFinding(kind, (half, half * rng.uniform(0.75, 1.0)), min(0.8 * half, max_depth_mm), 1.0,
                           float(rng.uniform(0.0, 0.04)), 0.0, 0, 0.0, float(rng.uniform(0.0, 0.15)), seed)
    if kind == "fibroadenoma":
        half = rng.uniform(5.0, 15.0)
        return SoftFinding(kind, (half, half * rng.uniform(0.55, 0.85)), min(0.6 * half, max_depth_mm),
                           float(rng.uniform(0.9, 1.0)), float(rng.uniform(0.05, 0.15)), 0.0, 0, 0.0,
                           float(rng.uniform(0.1, 0.4)), seed)
    if kind == "spiculated_mass":
        half = rng.uniform(3.0, 8.0)
        return SoftFinding(kind, (half, half * rng.uniform(0.7, 1.0)), min(0.8 * half, max_depth_mm),
                           float(rng.uniform(0.95, 1.0)), float(rng.uniform(0.1, 0.25)), 0.0,
                           int(rng.integers(10, 31)), float(rng.uniform(5.0, 20.0)), float(rng.uniform(0.5, 1.2)),
                           seed)
    raise ValueError(f"unknown soft-tissue finding {kind!r}; known: {', '.join(KINDS)}")


def sample_host(rng: np.random.Generator, cluster_kind: str, malignant: bool, cluster_extent_mm: float,
                max_depth_mm: float) -> SoftFinding | None:
    """The mass a cluster lies in, or None (most clusters lie in plain tissue; ``HOST_RATES``).

    The mass grows until its core's shorter half-axis is 0.7 of the cluster's radius, so most
    specks lie inside it and the widest clusters spill over its edge, as a cancer's
    calcifications do; its centre is the cluster's, give or take (``generate``).
    """
    rate = HOST_RATES["malignant"] if malignant else HOST_RATES.get(cluster_kind, 0.0)
    if rng.random() >= rate:
        return None
    finding = sample_finding(rng, "spiculated_mass" if malignant else "fibroadenoma", max_depth_mm)
    a, b = finding.semi_axes_mm
    grow = min(max(1.0, 0.7 * cluster_extent_mm / b), HOST_MAX_HALF_MM / a)
    finding = replace(finding, semi_axes_mm=(a * grow, b * grow), depth_mm=min(finding.depth_mm * grow, max_depth_mm),
                      holds_cluster=True)
    if malignant and rng.random() < ILL_DEFINED_SHARE:
        finding = replace(finding, spicules=0, spicule_length_mm=0.0, margin_mm=float(rng.uniform(1.0, 2.0)))
    return finding


def sample_breast_findings(rng: np.random.Generator, max_depth_mm: float) -> list[SoftFinding]:
    """The findings one breast holds (its views draw the same ones)."""
    out = []
    for kind, rate in FINDING_RATES.items():
        if rng.random() < rate:
            out += [sample_finding(rng, kind, max_depth_mm) for _ in range(1 + int(rng.random() < 0.25))]
    return out


def draw_findings(shape: tuple[int, int], spacing: float, findings: list[tuple[SoftFinding, tuple[float, float]]],
                  view: str) -> np.ndarray:
    """Gland-equivalent path (mm) of ``findings`` ((finding, centre (row, col) mm) pairs) in ``view``."""
    out = np.zeros(shape, dtype=np.float32)
    for finding, centre in findings:
        rng = np.random.default_rng([finding.seed, 0 if view == "CC" else 1])
        reach = int(np.ceil(finding.extent_mm() / spacing)) + 3
        r0, c0 = int(round(centre[0] / spacing)) - reach, int(round(centre[1] / spacing)) - reach
        patch = _finding_patch(finding, 2 * reach + 1, spacing, rng,
                               (centre[0] / spacing - 0.5 - r0, centre[1] / spacing - 0.5 - c0))
        rs, cs = slice(max(r0, 0), min(r0 + patch.shape[0], shape[0])), slice(max(c0, 0), min(c0 + patch.shape[1], shape[1]))
        if rs.start < rs.stop and cs.start < cs.stop:
            out[rs, cs] += patch[rs.start - r0:rs.stop - r0, cs.start - c0:cs.stop - c0]
    return out


def _finding_patch(finding: SoftFinding, size: int, spacing: float, rng: np.random.Generator,
                   centre_px: tuple[float, float]) -> np.ndarray:
    """The finding's path (mm) on a square patch of ``size`` pixels, centred at ``centre_px``."""
    theta = float(rng.uniform(0.0, np.pi))
    rr, cc = np.mgrid[:size, :size].astype(np.float64)
    dy, dx = (rr - centre_px[0]) * spacing, (cc - centre_px[1]) * spacing
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    a, b = finding.semi_axes_mm
    rho, phi = np.hypot(u / a, v / b), np.arctan2(v / b, u / a)
    edge = np.ones_like(phi)
    if finding.lobulation > 0:
        weights = rng.dirichlet(np.ones(4))
        for k, w in zip(range(3, 7), weights, strict=True):
            edge += finding.lobulation * w * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    chord = 2 * finding.depth_mm * np.sqrt(np.clip(1.0 - (rho / edge) ** 2, 0.0, None))
    if finding.hilum > 0:  # fat entering on one flank: the node's path there is fat
        h = finding.hilum
        hilum = np.hypot(u / (a * h), (v - b * (1.0 - 0.6 * h)) / (b * h))
        chord -= 2 * finding.depth_mm * h * np.sqrt(np.clip(1.0 - hilum ** 2, 0.0, None))
        chord = np.clip(chord, 0.0, None)
    path = (finding.fill * chord).astype(np.float32)
    if finding.margin_mm > 0:
        path = ndimage.gaussian_filter(path, finding.margin_mm / spacing)
    if finding.spicules:
        path += _spicules(finding, size, spacing, rng, centre_px, theta)
    return path


def _spicules(finding: SoftFinding, size: int, spacing: float, rng: np.random.Generator,
              centre_px: tuple[float, float], theta: float) -> np.ndarray:
    """Tapered strands radiating from the core's edge (fibrous reaction), gland-equivalent."""
    a, b = finding.semi_axes_mm
    centre_mm = np.array([(centre_px[0] + 0.5) * spacing, (centre_px[1] + 0.5) * spacing])
    paths, radii = [], []
    for _ in range(finding.spicules):
        ang = rng.uniform(0.0, 2 * np.pi)
        # Start inside the core's outline so the strand grows out of it.
        along = 0.8 * a * b / np.hypot(b * np.cos(ang - theta), a * np.sin(ang - theta))
        start = centre_mm + along * np.array([np.sin(ang), np.cos(ang)])
        length = finding.spicule_length_mm * rng.uniform(0.4, 1.0)
        path = wander(rng, start, ang, length, 0.5 * spacing, 0.04)
        paths.append(path)
        radii.append(np.linspace(rng.uniform(0.35, 0.7), 0.05, len(path)))
    return tubes((size, size), spacing, paths, radii)
