"""What a mammography film carries besides the breast: labels, lead markers, tape, scratches, border.

All of it is drawn in optical density, before the film's grain (``film.add_grain``) and the
digitiser's blur and quantisation, so it carries the grain of its own density and looks scanned
like the rest (synth v2-v14 stamped it over the grain: noiseless). Lead letters and the
flashed identification block leave the film clear (bright when digitised); tape adds a little
density with soft edges; a scratch takes emulsion off (a thin bright line); the film's unexposed
margin is clear. None of it is a
finding: the detector must learn to leave it alone. Dust and lint are calcification look-alikes
and belong to the confuser module, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


@dataclass(frozen=True)
class FilmLabel:
    laterality: str  # "R" or "L"
    view: str  # "CC" or "MLO"


def add_marks(density: np.ndarray, mask: np.ndarray, spacing: float, label: FilmLabel, d_min: float,
              rng: np.random.Generator) -> np.ndarray:
    """Density with the view label, optional lead marker, ID block, tape, scratches and clear border."""
    out = density.copy()
    keep_out = ndimage.binary_dilation(mask > 0.05, iterations=max(int(4.0 / spacing), 1))
    text = str(rng.choice([f"{label.laterality}{label.view}", f"{label.laterality} {label.view}",
                           f"{label.view} {label.laterality}"]))
    _stamp(out, keep_out, _text_mask(text, rng.uniform(6.0, 12.0) / spacing, rng.uniform(-40, 40)), d_min, rng)
    if rng.random() < 0.4:
        _stamp(out, keep_out, _text_mask(label.laterality, rng.uniform(5.0, 9.0) / spacing, 0.0, boxed=True),
               d_min, rng)
    if rng.random() < 0.35:
        _stamp(out, keep_out, _id_block(rng, spacing), d_min + rng.uniform(0.0, 0.4), rng)
    for _ in range(int(rng.choice([0, 0, 1, 2]))):
        out += _tape(out.shape, spacing, rng)
    for _ in range(int(rng.choice([0, 0, 0, 1, 2]))):
        out -= _scratch(out.shape, spacing, rng)
    _border(out, spacing, d_min, rng)
    return np.clip(out, d_min * 0.8, None).astype(np.float32)


def _text_mask(text: str, height_px: float, angle: float, *, boxed: bool = False) -> np.ndarray:
    """Coverage 0..1 of ``text`` about ``height_px`` tall, rotated by ``angle`` degrees."""
    size = max(int(height_px * 1.3), 6)
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = (int(v) for v in font.getbbox(text))
    pad = max(size // 4, 2)
    img = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    draw = ImageDraw.Draw(img)
    draw.text((pad - left, pad - top), text, fill=255, font=font, stroke_width=max(size // 14, 1), stroke_fill=255)
    if boxed:
        draw.rectangle((0, 0, img.width - 1, img.height - 1), outline=255, width=max(size // 10, 1))
    if angle:
        img = img.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    return np.asarray(img, dtype=np.float32) / 255.0


def _id_block(rng: np.random.Generator, spacing: float) -> np.ndarray:
    """The flashed patient-identification block: a few lines of small text in a frame (no real data)."""
    height = max(int(rng.uniform(2.5, 4.0) / spacing), 6)
    font = ImageFont.load_default(size=height)
    date = f"{int(rng.integers(1, 29)):02d}-{MONTHS[int(rng.integers(0, 12))]}-{int(rng.integers(88, 100))}"
    lines = [f"MAMMO {int(rng.integers(1000, 9999))}", date, f"ROOM {int(rng.integers(1, 6))}"]
    width = max(int(font.getlength(line)) for line in lines) + 2 * height
    img = Image.new("L", (width, int(height * (1.4 * len(lines) + 1))), 0)
    draw = ImageDraw.Draw(img)
    for k, line in enumerate(lines):
        draw.text((height, int(height * (0.5 + 1.4 * k))), line, fill=255, font=font)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return 1.0 - arr if rng.random() < 0.5 else arr


def _stamp(density: np.ndarray, keep_out: np.ndarray, coverage: np.ndarray, level: float,
           rng: np.random.Generator) -> None:
    """Blend ``coverage`` in at density ``level`` somewhere off the breast (skipped if nothing fits)."""
    h, w = coverage.shape
    rows, cols = density.shape
    if h >= rows or w >= cols:
        return
    for _ in range(40):
        r, c = int(rng.integers(0, rows - h)), int(rng.integers(0, cols - w))
        if not keep_out[r:r + h, c:c + w].any():
            region = density[r:r + h, c:c + w]
            density[r:r + h, c:c + w] = region + coverage * (level - region)
            return


def _tape(shape: tuple[int, int], spacing: float, rng: np.random.Generator) -> np.ndarray:
    """A strip of tape (20–30 mm wide) along or across the film near an edge: +0.05–0.25 density."""
    rows, cols = shape
    width = rng.uniform(15.0, 30.0) / spacing
    along_rows = rng.random() < 0.5
    n = cols if along_rows else rows
    centre = rng.uniform(0, 0.25) * n if rng.random() < 0.5 else rng.uniform(0.75, 1.0) * n
    coord = np.arange(n, dtype=np.float32)
    profile = ndimage.gaussian_filter1d(((coord > centre - width / 2) & (coord < centre + width / 2)).astype(np.float32),
                                        0.4 / spacing)
    length = rng.uniform(0.1, 0.4) * (rows if along_rows else cols)
    start = rng.uniform(0, 1) * ((rows if along_rows else cols) - length)
    other = np.arange(rows if along_rows else cols, dtype=np.float32)
    extent = ndimage.gaussian_filter1d(((other > start) & (other < start + length)).astype(np.float32), 0.4 / spacing)
    strip = np.outer(extent, profile) if along_rows else np.outer(profile, extent)
    return (rng.uniform(0.05, 0.25) * strip).astype(np.float32)


def _scratch(shape: tuple[int, int], spacing: float, rng: np.random.Generator) -> np.ndarray:
    """A long, gently curved thin line where emulsion was scraped off (density removed)."""
    rows, cols = shape
    n = 400
    t = np.linspace(0.0, 1.0, n)
    p0 = np.array([rng.uniform(0, rows), rng.uniform(0, cols)])
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction)
    length = rng.uniform(30.0, 150.0) / spacing
    bend = np.array([-direction[1], direction[0]]) * rng.normal(0, 0.08) * length
    pts = p0[None, :] + np.outer(t, direction * length) + np.outer(np.sin(np.pi * t), bend)
    layer = np.zeros(shape, dtype=np.float32)
    ri, ci = np.round(pts[:, 0]).astype(int), np.round(pts[:, 1]).astype(int)
    ok = (ri >= 0) & (ri < rows) & (ci >= 0) & (ci < cols)
    layer[ri[ok], ci[ok]] = 1.0
    layer = ndimage.gaussian_filter(layer, max(rng.uniform(0.05, 0.15) / spacing, 0.5))
    peak = float(layer.max())
    return (rng.uniform(0.1, 0.5) * layer / peak).astype(np.float32) if peak > 0 else layer


def _border(density: np.ndarray, spacing: float, d_min: float, rng: np.random.Generator) -> None:
    """The clear unexposed margin of the film along up to three image edges (a few mm, slightly ragged).

    Never all four: a scan is cropped on at least one side, as archive images are.
    """
    rows, cols = density.shape
    n_sides = int(rng.choice([0, 1, 1, 2, 2, 3]))
    for side in sorted(int(x) for x in rng.permutation(4)[:n_sides]):
        n = cols if side < 2 else rows
        width = rng.uniform(0.5, 6.0) / spacing + np.cumsum(rng.normal(0, 0.02, n))
        depth = np.arange(rows if side < 2 else cols, dtype=np.float32)
        if side in (1, 3):
            depth = depth[::-1]
        clear = np.clip(width[None, :] - depth[:, None] + 0.5, 0.0, 1.0)
        if side >= 2:
            clear = clear.T
        density[:] = density + clear * (d_min - density)
