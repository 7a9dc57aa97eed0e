"""Pictures of the detector's marks (``mammocad model realism --marks-pictures``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mammocad.model.marks_picture import CAPTION_PX, COLOURS, MAX_SIDE, save_marks_picture
from mammocad.model.results import Lesion, LesionClass


def _lesion(box: tuple[float, float, float, float], cls: LesionClass, score: float) -> Lesion:
    return Lesion(box=box, lesion_class=cls, probability_malignant=0.9 if cls is LesionClass.MALIGNANT else 0.1,
                  score=score)


def test_the_marks_are_drawn_in_their_class_colour_where_they_fell(tmp_path: Path) -> None:
    # A 2400 x 1000 MONOCHROME1 scan: high stored values are clear film, shown dark.
    pixels = np.full((2400, 1000), 1000, dtype=np.uint16)
    pixels[:, 500:] = 3000
    malignant = _lesion((100.0, 100.0, 180.0, 160.0), LesionClass.MALIGNANT, 0.91)
    speck = _lesion((800.0, 2000.0, 802.0, 2002.0), LesionClass.BENIGN, 0.7)  # 2 px: drawn at least 6 px wide
    out = save_marks_picture(tmp_path / "a" / "marks.png", pixels, [malignant, speck], monochrome1=True,
                             caption="2 marks | test model | not a diagnosis")
    im = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert im.shape == (1200 + CAPTION_PX, 500, 3)  # halved to fit MAX_SIDE, caption band on top
    assert max(im.shape[:2]) <= MAX_SIDE + CAPTION_PX

    def colour_at(x: float, y: float) -> tuple[int, ...]:
        return tuple(im[int(y / 2) + CAPTION_PX, int(x / 2)])

    assert colour_at(100, 130) == COLOURS[LesionClass.MALIGNANT]  # left edge of its box
    assert colour_at(180, 130) == COLOURS[LesionClass.MALIGNANT]
    speck_region = im[1000 + CAPTION_PX - 4:1000 + CAPTION_PX + 5, 400 - 4:400 + 5]
    assert (speck_region == COLOURS[LesionClass.BENIGN]).all(axis=-1).sum() >= 8
    # Away from the boxes the image is grey: low stored values bright, high ones dark.
    left, right = im[600 + CAPTION_PX, 100], im[600 + CAPTION_PX, 400]
    assert left[0] == left[1] == left[2] > 200 and right[0] == right[1] == right[2] < 50
    marked = (im != im[..., :1]).any(axis=-1)  # any non-grey pixel
    assert marked[CAPTION_PX + 200:CAPTION_PX + 900].sum() == 0
    assert (im[:CAPTION_PX] > 200).all(axis=-1).any()  # the caption is written


def test_no_marks_leave_the_image_grey(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 4096, (300, 200), dtype=np.uint16)
    im = np.asarray(Image.open(save_marks_picture(tmp_path / "none.png", pixels, [])).convert("RGB")).astype(int)
    assert im.shape == (300 + CAPTION_PX, 200, 3)
    body = im[CAPTION_PX:]
    assert (body[..., 0] == body[..., 1]).all() and (body[..., 1] == body[..., 2]).all()
