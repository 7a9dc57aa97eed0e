"""Project a 3-D calcification cluster into one view and draw it with anti-aliasing.

Specks are drawn on a supersampled patch (so sub-pixel calcifications keep their
integrated brightness), then blurred by a detector-like PSF. Specks are never drawn
thinner than about one pixel, so they stay visible at the coarse ``small`` spacing.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mammocad.model.synth.anatomy import MLO_ANGLE_DEG
from mammocad.model.synth.calcifications import ClusterSpec

Box = tuple[float, float, float, float]


def project(view: str, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3-D offsets (x toward the nipple, y lateral, z superior; mm) → (drow, dcol) in mm."""
    if view == "CC":
        return -xyz[:, 1], xyz[:, 0]
    a = np.deg2rad(MLO_ANGLE_DEG)
    return -(np.cos(a) * xyz[:, 2] + np.sin(a) * xyz[:, 1]), xyz[:, 0]


def render_cluster(img: np.ndarray, spec: ClusterSpec, view: str, centre_px: tuple[float, float],
                   spacing: float) -> Box | None:
    """Add the cluster to ``img`` (in place); return its box (x1, y1, x2, y2) or None if off-image."""
    cr, cc = centre_px
    discs = _px(view, spec.discs[:, :3], cr, cc, spacing)
    d_rad = np.maximum(spec.discs[:, 3] / spacing, 0.6)
    s0 = _px(view, spec.segments[:, 0:3], cr, cc, spacing)
    s1 = _px(view, spec.segments[:, 3:6], cr, cc, spacing)
    s_w = np.maximum(spec.segments[:, 6] / spacing, 0.9)
    rings = _px(view, spec.rings[:, :3], cr, cc, spacing)
    r_rad = spec.rings[:, 3] / spacing
    r_wall = np.maximum(spec.rings[:, 4] / spacing, 0.7)
    lo, hi = _extent(discs, d_rad, s0, s1, s_w, rings, r_rad, spec)
    rows, cols = img.shape
    pad = 3 + int(np.ceil(3 * spec.haze_mm / spacing))
    r0, c0 = max(int(np.floor(lo[0])) - pad, 0), max(int(np.floor(lo[1])) - pad, 0)
    r1, c1 = min(int(np.ceil(hi[0])) + pad + 1, rows), min(int(np.ceil(hi[1])) + pad + 1, cols)
    if r1 - r0 < 2 or c1 - c0 < 2:
        return None
    ss = 4 if spacing > 0.12 else 2
    sub = np.zeros(((r1 - r0) * ss, (c1 - c0) * ss), dtype=np.float32)
    origin = np.array([r0, c0], dtype=float)
    for k in range(len(discs)):
        _disc(sub, (discs[k] - origin) * ss + (ss - 1) / 2, d_rad[k] * ss, spec.discs[k, 4])
    for k in range(len(s0)):
        _segment(sub, (s0[k] - origin) * ss + (ss - 1) / 2, (s1[k] - origin) * ss + (ss - 1) / 2,
                 s_w[k] * ss, spec.segments[k, 7])
    for k in range(len(rings)):
        _ring(sub, (rings[k] - origin) * ss + (ss - 1) / 2, r_rad[k] * ss, r_wall[k] * ss, spec.rings[k, 5])
    patch = sub.reshape(r1 - r0, ss, c1 - c0, ss).mean(axis=(1, 3))
    sigma = float(np.hypot(0.4, spec.haze_mm / spacing))
    img[r0:r1, c0:c1] += ndimage.gaussian_filter(patch, sigma)
    margin = max(2.0, 0.5 / spacing)
    box = (max(lo[1] - margin, 0.0), max(lo[0] - margin, 0.0),
           min(hi[1] + margin, cols - 1.0), min(hi[0] + margin, rows - 1.0))
    return box if box[0] < box[2] and box[1] < box[3] else None


def _px(view: str, xyz: np.ndarray, cr: float, cc: float, spacing: float) -> np.ndarray:
    if len(xyz) == 0:
        return np.zeros((0, 2))
    dr, dc = project(view, xyz)
    return np.column_stack([cr + dr / spacing, cc + dc / spacing])


def _extent(discs: np.ndarray, d_rad: np.ndarray, s0: np.ndarray, s1: np.ndarray, s_w: np.ndarray,
            rings: np.ndarray, r_rad: np.ndarray, spec: ClusterSpec) -> tuple[np.ndarray, np.ndarray]:
    """Tight extent (row, col) of the visible calcifications (faint vessel walls excluded)."""
    lows, highs = [], []
    if len(discs):
        lows.append((discs - d_rad[:, None]).min(axis=0))
        highs.append((discs + d_rad[:, None]).max(axis=0))
    visible = spec.segments[:, 7] >= 0.2 if len(s0) else np.zeros(0, bool)
    if visible.any():
        ends = np.vstack([s0[visible], s1[visible]])
        w = np.concatenate([s_w[visible], s_w[visible]])[:, None] / 2
        lows.append((ends - w).min(axis=0))
        highs.append((ends + w).max(axis=0))
    if len(rings):
        lows.append((rings - r_rad[:, None]).min(axis=0))
        highs.append((rings + r_rad[:, None]).max(axis=0))
    return np.min(lows, axis=0), np.max(highs, axis=0)


def _window(sub: np.ndarray, centre: np.ndarray, reach: float | np.floating
            ) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    r0 = max(int(centre[0] - reach) - 1, 0)
    c0 = max(int(centre[1] - reach) - 1, 0)
    r1 = min(int(centre[0] + reach) + 2, sub.shape[0])
    c1 = min(int(centre[1] + reach) + 2, sub.shape[1])
    yy, xx = np.mgrid[r0:max(r1, r0), c0:max(c1, c0)]
    return slice(r0, max(r1, r0)), slice(c0, max(c1, c0)), yy, xx


def _disc(sub: np.ndarray, centre: np.ndarray, radius: float, amp: float) -> None:
    rs, cs, yy, xx = _window(sub, centre, radius)
    inside = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius * radius
    sub[rs, cs] = np.maximum(sub[rs, cs], amp * inside)


def _ring(sub: np.ndarray, centre: np.ndarray, radius: float, wall: float, amp: float) -> None:
    rs, cs, yy, xx = _window(sub, centre, radius)
    d = np.sqrt((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2)
    shell = (d <= radius) & (d >= radius - wall)
    core = (d < radius - wall) * 0.25  # the projected shell is faint inside
    sub[rs, cs] = np.maximum(sub[rs, cs], amp * np.maximum(shell, core))


def _segment(sub: np.ndarray, p0: np.ndarray, p1: np.ndarray, width: float, amp: float) -> None:
    mid, half = (p0 + p1) / 2, np.linalg.norm(p1 - p0) / 2 + width
    rs, cs, yy, xx = _window(sub, mid, half)
    d = p1 - p0
    denom = float(d @ d) or 1.0
    t = np.clip(((yy - p0[0]) * d[0] + (xx - p0[1]) * d[1]) / denom, 0.0, 1.0)
    dist2 = (yy - p0[0] - t * d[0]) ** 2 + (xx - p0[1] - t * d[1]) ** 2
    inside = dist2 <= (width / 2) ** 2
    sub[rs, cs] = np.maximum(sub[rs, cs], amp * inside)
