"""Secondary Capture overlays: valid, windowed as displayed, coloured boxes where the lesions are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from mammocad.config import OutputKind
from mammocad.model.results import LesionClass
from mammocad.worker.outputs import build_outputs
from mammocad.worker.overlay_sc import (
    BANNER_RGB,
    BENIGN_RGB,
    MALIGNANT_RGB,
    MAX_SIDE,
    display_gray,
    font_size_for,
)
from tests import validators as V
from tests.factories import make_mammogram
from tests.worker.outputs_fixtures import make_case, write_all

KIND = [OutputKind.SECONDARY_CAPTURE]


def _top(sc: pydicom.Dataset, source_rows: int, scale: float) -> int:
    """Banner height: SC rows minus the scaled image rows."""
    return int(sc.Rows) - round(source_rows * scale)


def _assert_box_edges(sc: pydicom.Dataset, lesion, scale: float, top: int) -> None:  # type: ignore[no-untyped-def]
    px = sc.pixel_array
    colour = MALIGNANT_RGB if lesion.lesion_class is LesionClass.MALIGNANT else BENIGN_RGB
    x1, y1, x2, y2 = (round(v * scale) for v in lesion.box)
    ym = (y1 + y2) // 2 + top
    assert tuple(px[ym, x1]) == colour, f"left edge at ({x1}, {ym}) is {tuple(px[ym, x1])}"
    assert tuple(px[ym, x2]) == colour
    assert tuple(px[y2 + top, (x1 + x2) // 2]) == colour


def test_sc_valid_and_boxes_coloured(tmp_path: Path) -> None:
    study, sources = make_case((3, 2, 0, 1), failed=(3,), photometric="MONOCHROME1")
    outs = build_outputs(study, sources, KIND, device="cpu")
    analysed = [r for r in study.images if r.analysed]
    assert len(outs) == len(analysed)
    paths = write_all(outs, tmp_path)
    assert {p.name: e for p in paths if (e := V.dciodvfy_errors(p))} == {}
    for path, result in zip(paths, analysed, strict=True):
        sc = pydicom.dcmread(path)
        assert sc.PhotometricInterpretation == "RGB" and sc.BurnedInAnnotation == "YES"
        assert sc.ConversionType == "WSD" and sc.Laterality == result.image.laterality
        assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == result.image.sop_instance_uid
        assert "NOT FOR DIAGNOSTIC USE" in sc.SeriesDescription
        assert "device cpu" in sc.ImageComments and "synthetic" in sc.ImageComments
        top = _top(sc, result.image.rows, 1.0)
        assert top > font_size_for(result.image.rows, result.image.columns)
        banner = sc.pixel_array[:top].reshape(-1, 3)
        assert (banner == BANNER_RGB).all(axis=1).sum() > 20, "banner text missing"
        for lesion in result.lesions:
            _assert_box_edges(sc, lesion, 1.0, top)


def test_monochrome1_is_inverted_to_look_like_monochrome2() -> None:
    mono1 = make_mammogram(photometric="MONOCHROME1", seed=3)
    mono2 = make_mammogram(photometric="MONOCHROME2", seed=3)
    a, b = display_gray(mono1).astype(int), display_gray(mono2).astype(int)
    assert np.abs(a - b).max() <= 1
    assert b.mean() > 20  # breast shows bright on black in both


def test_big_image_is_downscaled_with_boxes(tmp_path: Path) -> None:
    study, sources = make_case((2,), datasets=[make_mammogram(rows=3000, columns=2400, laterality="R")])
    result = study.images[0]
    (sc,) = [ds for ds in build_outputs(study, sources, KIND)
             if ds.SourceImageSequence[0].ReferencedSOPInstanceUID == result.image.sop_instance_uid]
    scale = MAX_SIDE / 3000
    assert int(sc.Columns) == round(2400 * scale) and max(int(sc.Rows) - _top(sc, 3000, scale), 0) == 2048
    for lesion in result.lesions:
        _assert_box_edges(sc, lesion, scale, _top(sc, 3000, scale))


def test_sc_needs_pixels(tmp_path: Path) -> None:
    study, sources = make_case((1, 0, 0, 0))
    paths = write_all(list(sources.values()), tmp_path)
    headers = {str(d.SOPInstanceUID): d for d in (pydicom.dcmread(p, stop_before_pixels=True) for p in paths)}
    with pytest.raises(ValueError, match="needs pixel data"):
        build_outputs(study, headers, KIND)
