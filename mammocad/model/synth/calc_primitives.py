"""The solid shapes a calcification cluster is made of, in 3-D millimetres.

Calcifications are physical objects of calcium hydroxyapatite: a speck is an ellipsoid with
real semi-axes, a ductal cast or a vessel wall is a cylinder (solid, or a tube whose walls
project as parallel tracks), an eggshell calcification is a spherical shell, and milk of
calcium is sediment lying in the bottom of a cyst. ``raster.py`` integrates their chord
lengths along each view's rays. ``fill`` is the fraction of full hydroxyapatite density
(0.3-1.0: real calcifications are porous and mixed with organic matrix), so the calcium path
length a ray sees is chord × fill.

Axes: x toward the nipple, y lateral, z superior (gravity points to -z in an upright
examination, which is where milk of calcium settles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _rows(a: np.ndarray | list[list[float]], cols: int) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64).reshape(-1, cols)
    return arr


@dataclass(frozen=True)
class Ellipsoids:
    """Solid specks. centres [N, 3]; axes [N, 3] semi-axes (mm); rotations [N, 3, 3] whose
    columns are the directions of the three axes; fill [N] in 0..1; speck [N]: which speck
    each ellipsoid belongs to (an irregular speck is a union of overlapping lobes)."""

    centres: np.ndarray
    axes: np.ndarray
    rotations: np.ndarray
    fill: np.ndarray
    speck: np.ndarray

    def __len__(self) -> int:
        return len(self.centres)

    @classmethod
    def empty(cls) -> Ellipsoids:
        return cls(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3, 3)), np.zeros(0), np.zeros(0, dtype=np.int64))

    @classmethod
    def build(cls, centres: np.ndarray, axes: np.ndarray, rotations: np.ndarray, fill: np.ndarray,
              speck: np.ndarray | None = None) -> Ellipsoids:
        """speck None: every ellipsoid is a speck of its own."""
        n = len(centres)
        ids = np.arange(n) if speck is None else np.asarray(speck, dtype=np.int64).reshape(n)
        out = cls(_rows(centres, 3), _rows(axes, 3), np.asarray(rotations, float).reshape(n, 3, 3),
                  np.asarray(fill, float).reshape(n), ids)
        if np.any(out.axes <= 0) or np.any((out.fill <= 0) | (out.fill > 1)):
            raise ValueError("ellipsoid semi-axes must be > 0 and fill in (0, 1]")
        return out

    def volumes(self) -> np.ndarray:
        return 4.0 / 3.0 * np.pi * np.prod(self.axes, axis=1)

    def concat(self, other: Ellipsoids) -> Ellipsoids:
        offset = int(self.speck.max()) + 1 if len(self) else 0
        return Ellipsoids(np.vstack([self.centres, other.centres]), np.vstack([self.axes, other.axes]),
                          np.concatenate([self.rotations, other.rotations]), np.concatenate([self.fill, other.fill]),
                          np.concatenate([self.speck, other.speck + offset]))


@dataclass(frozen=True)
class Cylinders:
    """Casts and vessel walls: axis p0 → p1 [N, 3], outer radius [N], inner radius [N]
    (0: a solid cast with rounded ends; > 0: a tube, open-ended, e.g. a calcified artery),
    fill [N]."""

    p0: np.ndarray
    p1: np.ndarray
    radius: np.ndarray
    inner: np.ndarray
    fill: np.ndarray

    def __len__(self) -> int:
        return len(self.p0)

    @classmethod
    def empty(cls) -> Cylinders:
        return cls(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros(0))

    @classmethod
    def build(cls, p0: np.ndarray | list[list[float]], p1: np.ndarray | list[list[float]],
              radius: np.ndarray | list[float], inner: np.ndarray | list[float],
              fill: np.ndarray | list[float]) -> Cylinders:
        out = cls(_rows(p0, 3), _rows(p1, 3), np.asarray(radius, float).ravel(), np.asarray(inner, float).ravel(),
                  np.asarray(fill, float).ravel())
        if np.any(out.radius <= 0) or np.any((out.inner < 0) | (out.inner >= out.radius)):
            raise ValueError("cylinder radius must be > 0 and 0 <= inner < radius")
        return out

    def lengths(self) -> np.ndarray:
        return np.linalg.norm(self.p1 - self.p0, axis=1)

    def volumes(self) -> np.ndarray:
        solid = self.inner <= 0
        caps = np.where(solid, 4.0 / 3.0 * np.pi * self.radius ** 3, 0.0)
        return np.pi * (self.radius ** 2 - self.inner ** 2) * self.lengths() + caps


@dataclass(frozen=True)
class Shells:
    """Eggshell (rim) calcifications: hollow spheres. centres [N, 3], outer radius, wall, fill."""

    centres: np.ndarray
    radius: np.ndarray
    wall: np.ndarray
    fill: np.ndarray

    def __len__(self) -> int:
        return len(self.centres)

    @classmethod
    def empty(cls) -> Shells:
        return cls(np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros(0))

    @classmethod
    def build(cls, centres: np.ndarray, radius: np.ndarray, wall: np.ndarray, fill: np.ndarray) -> Shells:
        out = cls(_rows(centres, 3), np.asarray(radius, float).ravel(), np.asarray(wall, float).ravel(),
                  np.asarray(fill, float).ravel())
        if np.any(out.wall <= 0) or np.any(out.wall > out.radius):
            raise ValueError("shell wall must be > 0 and <= radius")
        return out

    def volumes(self) -> np.ndarray:
        return 4.0 / 3.0 * np.pi * (self.radius ** 3 - (self.radius - self.wall) ** 3)


@dataclass(frozen=True)
class Sediments:
    """Milk of calcium: calcium sediment filling a spherical cyst (centre, radius) up to
    ``level`` × diameter from its lowest point (gravity along -z). In a cranio-caudal view the
    ray runs along gravity and the sediment is a faint round smudge; in the oblique view it is
    a crescent ("teacup")."""

    centres: np.ndarray
    radius: np.ndarray
    level: np.ndarray
    fill: np.ndarray

    def __len__(self) -> int:
        return len(self.centres)

    @classmethod
    def empty(cls) -> Sediments:
        return cls(np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros(0))

    @classmethod
    def build(cls, centres: np.ndarray, radius: np.ndarray, level: np.ndarray, fill: np.ndarray) -> Sediments:
        out = cls(_rows(centres, 3), np.asarray(radius, float).ravel(), np.asarray(level, float).ravel(),
                  np.asarray(fill, float).ravel())
        if np.any((out.level <= 0) | (out.level > 1)):
            raise ValueError("sediment level must be in (0, 1]")
        return out

    def volumes(self) -> np.ndarray:
        h = 2.0 * self.radius * self.level
        return np.pi * h ** 2 * (3.0 * self.radius - h) / 3.0


def random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """n uniformly random 3-D rotation matrices [n, 3, 3] (QR of Gaussian matrices)."""
    q, r = np.linalg.qr(rng.normal(size=(n, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    det = np.linalg.det(q)
    q[:, :, 2] *= det[:, None]
    return q
