"""A picture of where a detector put its marks on one image, for a person to look at.

The realism report counts the marks a detector puts on images without lesions, and issue 9
judges every training change by that count; a count does not say what fooled the detector (a
crossing of strands, a lymph node, a film label, a real calcification nobody annotated). These
pictures do: the image as stored, windowed for the eye, with each reported box drawn and
labelled with its score and class, and a caption that names the model and says it is not a
diagnosis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mammocad.model.results import Lesion, LesionClass

#: Longest side of a picture (px): a 4700-row film scan comes down by block means to this.
MAX_SIDE = 1200
COLOURS = {LesionClass.MALIGNANT: (255, 40, 40), LesionClass.BENIGN: (255, 200, 0)}
CAPTION_PX = 18


def display_grey(pixels: np.ndarray, monochrome1: bool) -> np.ndarray:
    """8-bit grey, bright = dense, windowed on the 0.5-99.5 percentiles of the stored values."""
    a = np.asarray(pixels)
    if a.ndim == 3:  # colour (Secondary Capture RGB) or frames: one grey plane
        a = a.mean(axis=-1) if a.shape[-1] in (3, 4) else a[0]
    a = a.astype(np.float32)
    lo, hi = np.percentile(a, [0.5, 99.5])
    grey = np.clip((a - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0)
    if monochrome1:
        grey = 1.0 - grey
    return (grey * 255).round().astype(np.uint8)


def save_marks_picture(path: Path, pixels: np.ndarray, lesions: Sequence[Lesion], *, monochrome1: bool = False,
                       caption: str = "") -> Path:
    """Write ``path`` (PNG): ``pixels`` (as stored) with ``lesions``' boxes (in those pixels) drawn."""
    from PIL import Image, ImageDraw

    grey = display_grey(pixels, monochrome1)
    factor = max(1, math.ceil(max(grey.shape) / MAX_SIDE))
    image = Image.fromarray(grey)
    if factor > 1:
        image = image.resize((max(1, grey.shape[1] // factor), max(1, grey.shape[0] // factor)), Image.Resampling.BOX)
    canvas = Image.new("RGB", (image.width, image.height + CAPTION_PX))
    canvas.paste(image.convert("RGB"), (0, CAPTION_PX))
    draw = ImageDraw.Draw(canvas)
    for lesion in lesions:
        x1, y1, x2, y2 = (v / factor for v in lesion.box)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        half_w, half_h = max((x2 - x1) / 2, 3.0), max((y2 - y1) / 2, 3.0)  # a speck's box stays visible
        box = (cx - half_w, cy - half_h + CAPTION_PX, cx + half_w, cy + half_h + CAPTION_PX)
        colour = COLOURS[lesion.lesion_class]
        draw.rectangle(box, outline=colour, width=2)
        draw.text((box[0], max(box[1] - 12, CAPTION_PX)), f"{lesion.score:.2f} {lesion.lesion_class.value}", fill=colour)
    draw.text((4, 3), caption or f"{len(lesions)} marks", fill=(255, 255, 255))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG")
    return path
