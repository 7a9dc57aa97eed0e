"""Secondary Capture overlays: valid, windowed as displayed, coloured boxes where the lesions are."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
import pytest

from mammocad.config import OutputKind
from mammocad.model.results import LesionClass
from mammocad.results.outputs import build_outputs
from mammocad.results.overlay_sc import (
    BANNER_RGB,
    BENIGN_RGB,
    MALIGNANT_RGB,
    MAX_SIDE,
    display_gray,
    font_size_for,
)
from tests import validators as V
from tests.factories import make_mammogram
from tests.results.outputs_fixtures import make_case, write_all

KIND = [OutputKind.SECONDARY_CAPTURE]


def _top(sc: pydicom.Dataset, source_rows: int, scale: float) -> int:
    """Banner height: SC rows minus the scaled image rows (a partial last block counts)."""
    return int(sc.Rows) - math.ceil(source_rows * scale - 1e-9)


def _is_colour(pixel: np.ndarray, colour: tuple[int, int, int], tolerance: int) -> bool:
    """Exact (tolerance 0) or, for JPEG, near ``colour`` and nearer it than to the other mark colour."""
    d = np.abs(pixel.astype(int) - colour).max()
    other = BENIGN_RGB if colour == MALIGNANT_RGB else MALIGNANT_RGB
    return bool(d <= tolerance and d < np.abs(pixel.astype(int) - other).max())


def _assert_box_edges(sc: pydicom.Dataset, lesion, scale: float, top: int,  # type: ignore[no-untyped-def]
                      tolerance: int = 0) -> None:
    px = sc.pixel_array
    colour = MALIGNANT_RGB if lesion.lesion_class is LesionClass.MALIGNANT else BENIGN_RGB
    x1, y1, x2, y2 = (round(v * scale) for v in lesion.box)
    ym = (y1 + y2) // 2 + top
    assert _is_colour(px[ym, x1], colour, tolerance), f"left edge at ({x1}, {ym}) is {tuple(px[ym, x1])}"
    assert _is_colour(px[ym, x2], colour, tolerance)
    assert _is_colour(px[y2 + top, (x1 + x2) // 2], colour, tolerance)


@pytest.mark.parametrize(("quality", "lossless"), [(0, False), (90, False), (90, True)])
def test_sc_valid_and_boxes_coloured(tmp_path: Path, quality: int, lossless: bool) -> None:
    study, sources = make_case((3, 2, 0, 1), failed=(3,), photometric="MONOCHROME1")
    outs = build_outputs(study, sources, KIND, device="cpu", sc_jpeg_quality=quality, sc_lossless=lossless)
    if lossless:
        quality = 0  # pixels must come back exactly
    analysed = [r for r in study.images if r.analysed]
    assert len(outs) == len(analysed)
    paths = write_all(outs, tmp_path)
    assert {p.name: e for p in paths if (e := V.dciodvfy_errors(p))} == {}
    for path, result in zip(paths, analysed, strict=True):
        sc = pydicom.dcmread(path)
        assert sc.Modality == "MG" and sc.ImageType == ["DERIVED", "SECONDARY"]
        if lossless:
            assert sc.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80" and sc.LossyImageCompression == "00"
        elif quality:
            assert sc.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
            assert sc.PhotometricInterpretation == "YBR_FULL_422" and sc.LossyImageCompression == "01"
            assert sc.LossyImageCompressionMethod == "ISO_10918_1" and float(sc.LossyImageCompressionRatio) > 2
        else:
            assert sc.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and sc.LossyImageCompression == "00"
            assert sc.PhotometricInterpretation == "RGB"
        assert sc.BurnedInAnnotation == "YES"
        assert sc.ConversionType == "WSD" and sc.Laterality == result.image.laterality
        assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == result.image.sop_instance_uid
        assert "NOT FOR DIAGNOSTIC USE" in sc.SeriesDescription
        assert "device cpu" in sc.ImageComments and "synthetic" in sc.ImageComments
        top = _top(sc, result.image.rows, 1.0)
        assert top > font_size_for(result.image.rows, result.image.columns)
        banner = sc.pixel_array[:top].reshape(-1, 3).astype(int)
        assert (np.abs(banner - BANNER_RGB).max(axis=1) <= (60 if quality else 0)).sum() > 20, "banner text missing"
        for lesion in result.lesions:
            _assert_box_edges(sc, lesion, 1.0, top, tolerance=80 if quality else 0)


def test_monochrome1_is_inverted_to_look_like_monochrome2() -> None:
    mono1 = make_mammogram(photometric="MONOCHROME1", seed=3)
    mono2 = make_mammogram(photometric="MONOCHROME2", seed=3)
    a, b = display_gray(mono1).astype(int), display_gray(mono2).astype(int)
    assert np.abs(a - b).max() <= 1
    assert b.mean() > 20  # breast shows bright on black in both


@pytest.mark.parametrize(("rows", "columns", "factor"), [(3000, 2400, 2), (4915, 4096, 3), (2048, 1600, 1)])
def test_big_image_is_reduced_by_an_integer_factor_with_boxes(rows: int, columns: int, factor: int) -> None:
    study, sources = make_case((2,), datasets=[make_mammogram(rows=rows, columns=columns, laterality="R")])
    result = study.images[0]
    (sc,) = [ds for ds in build_outputs(study, sources, KIND, sc_jpeg_quality=0)
             if ds.SourceImageSequence[0].ReferencedSOPInstanceUID == result.image.sop_instance_uid]
    scale = 1 / factor
    top = _top(sc, rows, scale)
    assert int(sc.Columns) == -(-columns // factor) and int(sc.Rows) - top == -(-rows // factor) <= MAX_SIDE
    assert result.lesions
    for lesion in result.lesions:
        _assert_box_edges(sc, lesion, scale, top)


def test_sc_needs_pixels(tmp_path: Path) -> None:
    study, sources = make_case((1, 0, 0, 0))
    paths = write_all(list(sources.values()), tmp_path)
    headers: dict[str, pydicom.Dataset] = {str(d.SOPInstanceUID): d
                                           for d in (pydicom.dcmread(p, stop_before_pixels=True) for p in paths)}
    with pytest.raises(ValueError, match="needs pixel data"):
        build_outputs(study, headers, KIND)


def _reference_grey(ds: pydicom.Dataset) -> np.ndarray:
    """The display chain computed per pixel in float64 (what the lookup table must equal)."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    arr = ds.pixel_array
    values = apply_modality_lut(arr, ds).astype(np.float64)
    if "WindowCenter" in ds:
        scaled = (values - (float(ds.WindowCenter) - 0.5)) / max(float(ds.WindowWidth) - 1.0, 1.0) + 0.5
    else:
        if "VOILUTSequence" in ds:
            values = apply_voi_lut(arr, ds).astype(np.float64)
        scaled = (values - values.min()) / max(values.max() - values.min(), 1.0)
    out = np.clip(scaled, 0.0, 1.0)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        out = 1.0 - out
    return np.round(out * 255.0).astype(np.uint8)


@pytest.mark.parametrize("voi", ["window", "lut-sequence", "none"])
@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_lookup_table_display_equals_the_per_pixel_chain(voi: str, photometric: str) -> None:
    from pydicom.dataset import Dataset

    ds = make_mammogram(photometric=photometric, seed=5)
    arr = ds.pixel_array.astype(np.uint16)
    arr[:10, :10] = 200  # a non-zero minimum: the table is offset by it
    ds.PixelData = (arr + 200).tobytes()
    ds.RescaleSlope, ds.RescaleIntercept = 2, -100
    for keyword in ("WindowCenter", "WindowWidth", "VOILUTSequence"):
        if keyword in ds:
            del ds[keyword]
    if voi == "window":
        ds.WindowCenter, ds.WindowWidth = 2500, 3000
    elif voi == "lut-sequence":
        item = Dataset()
        item.LUTDescriptor = [4096, 0, 12]
        item.LUTData = [min(4095, int(4095 * (v / 4095) ** 0.5)) for v in range(4096)]
        ds.VOILUTSequence = [item]
    got = display_gray(ds)
    assert got.dtype == np.uint8 and got.shape == arr.shape
    assert np.array_equal(got, _reference_grey(ds))
    assert got.min() < 30 and got.max() > 200  # a real spread of grey levels


@pytest.mark.parametrize("keyword", ["PhotometricInterpretation", "BitsAllocated", "PixelRepresentation"])
def test_an_image_whose_pixels_cannot_be_decoded_gets_a_clear_error(keyword: str) -> None:
    """Without a Type 1 Image Pixel attribute pydicom's decoder raised AttributeError naming a
    tag and not the image; the build now says which image and attribute, and what to do."""
    study, sources = make_case()
    first = study.images[0].image.sop_instance_uid
    del sources[first][keyword]
    with pytest.raises(ValueError, match=f"secondary capture of {first}: the image's {keyword} is missing"):
        build_outputs(study, sources, [OutputKind.SECONDARY_CAPTURE])
