"""The geometric link between an original image and the model frame.

Standardisation transposes, flips, crops and resamples an image; every lesion the model finds
must be reported in the *original* pixel grid (``results.py``: pixel centres at integer positions).
:class:`FrameTransform` records those steps and maps boxes both ways exactly, so training
(ground truth → model frame) and inference (detections → original) share one definition.

Order of operations, original → model:
  0. transpose (``(x, y) → (y, x)``) for an image stored turned by 90 degrees: then the "oriented
     grid" below has the original's columns as rows (``oriented_shape``),
  1. flips in the oriented grid (``x → W-1-x``, ``y → H-1-y``: :func:`flip_coordinates`),
  2. crop: subtract the crop origin (in the flipped grid),
  3. resample: ``x → (x + 0.5)·sx − 0.5`` (half-pixel aligned, as area/bilinear resizing
     with ``align_corners=False`` samples).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FrameTransform:
    """original_shape: (rows, cols) of the original image, as stored.
    transpose: the original's rows and columns were swapped first (an image stored turned by 90
        degrees, ``standardise``); flips and crop are then in that transposed grid.
    crop: (x0, y0, x1, y1), half-open, in the flipped oriented grid.
    scale: (sx, sy) model pixels per original pixel (model_cols / crop width, ...).
    model_shape: (rows, cols) of the standardised image.
    """

    original_shape: tuple[int, int]
    flip_h: bool
    flip_v: bool
    crop: tuple[int, int, int, int]
    scale: tuple[float, float]
    model_shape: tuple[int, int]
    transpose: bool = False

    def __post_init__(self) -> None:
        rows, cols = self.oriented_shape
        x0, y0, x1, y1 = self.crop
        if not (0 <= x0 < x1 <= cols and 0 <= y0 < y1 <= rows):
            raise ValueError(f"crop {self.crop} must lie inside the {'transposed ' if self.transpose else ''}"
                             f"original image {cols}x{rows} (x, y)")
        if self.scale[0] <= 0 or self.scale[1] <= 0:
            raise ValueError(f"scale must be positive, got {self.scale}")

    @property
    def oriented_shape(self) -> tuple[int, int]:
        """(rows, cols) of the grid the flips and the crop are in: the original's, transposed or not."""
        rows, cols = self.original_shape
        return (cols, rows) if self.transpose else (rows, cols)

    def _points_to_model(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows, cols = self.oriented_shape
        if self.transpose:
            x, y = y, x
        if self.flip_h:
            x = flip_coordinates(x, cols)
        if self.flip_v:
            y = flip_coordinates(y, rows)
        x = x - self.crop[0]
        y = y - self.crop[1]
        return (x + 0.5) * self.scale[0] - 0.5, (y + 0.5) * self.scale[1] - 0.5

    def _points_to_original(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows, cols = self.oriented_shape
        x = (x + 0.5) / self.scale[0] - 0.5 + self.crop[0]
        y = (y + 0.5) / self.scale[1] - 0.5 + self.crop[1]
        if self.flip_h:
            x = flip_coordinates(x, cols)
        if self.flip_v:
            y = flip_coordinates(y, rows)
        return (y, x) if self.transpose else (x, y)

    def to_model(self, boxes: np.ndarray) -> np.ndarray:
        """boxes: float[N, 4] (x1, y1, x2, y2) in original pixels → model-frame pixels."""
        return _map_boxes(boxes, self._points_to_model)

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """boxes: float[N, 4] (x1, y1, x2, y2) in model-frame pixels → original pixels."""
        return _map_boxes(boxes, self._points_to_original)

    def clip_original(self, boxes: np.ndarray) -> np.ndarray:
        """Clip original-frame boxes to the pixel-centre range [0, W-1] × [0, H-1]."""
        rows, cols = self.original_shape
        out = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, cols - 1)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, rows - 1)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"original_shape": list(self.original_shape), "flip_h": self.flip_h, "flip_v": self.flip_v,
                "crop": list(self.crop), "scale": list(self.scale), "model_shape": list(self.model_shape),
                "transpose": self.transpose}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrameTransform:
        return cls(original_shape=tuple(d["original_shape"]), flip_h=bool(d["flip_h"]),  # type: ignore[arg-type]
                   flip_v=bool(d["flip_v"]), crop=tuple(d["crop"]),  # type: ignore[arg-type]
                   scale=tuple(float(v) for v in d["scale"]),  # type: ignore[arg-type]
                   model_shape=tuple(d["model_shape"]),  # type: ignore[arg-type]
                   transpose=bool(d.get("transpose", False)))  # absent in transforms saved before it existed


def _map_boxes(boxes: np.ndarray, fn: Any) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    xa, ya = fn(b[:, 0], b[:, 1])
    xb, yb = fn(b[:, 2], b[:, 3])
    # Flips swap the corners; re-sort so x1 <= x2 and y1 <= y2 hold in every frame.
    return np.stack([np.minimum(xa, xb), np.minimum(ya, yb), np.maximum(xa, xb), np.maximum(ya, yb)], axis=1)


def flip_coordinates(values: np.ndarray, size: int) -> np.ndarray:
    """Positions along an axis of ``size`` pixels, mirrored: ``size - 1 - v``.

    Why this and not ``size - v``: mammocad's pixel centres are at integers (``results.py``), so
    the axis spans [-0.5, size - 0.5] and its mirror is about (size - 1) / 2. Every flip of a box
    (standardisation, training augmentation, test-time orientations) goes through here: with
    ``size - v`` in one of them, training and inference put the same lesion's box 1 px apart.
    """
    return (size - 1) - np.asarray(values, dtype=np.float64)


def flip_boxes(boxes: np.ndarray, shape: tuple[int, int], *, horizontal: bool = False,
               vertical: bool = False) -> np.ndarray:
    """boxes: float[N, 4] (x1, y1, x2, y2, pixel centres at integers) in an image of ``shape``
    (rows, cols), as they lie in that image mirrored left-right and/or top-bottom; a new array
    with x1 <= x2 and y1 <= y2 (:func:`flip_coordinates`)."""
    rows, cols = shape
    out = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    if horizontal:
        out[:, [0, 2]] = flip_coordinates(out[:, [2, 0]], cols)
    if vertical:
        out[:, [1, 3]] = flip_coordinates(out[:, [3, 1]], rows)
    return out
