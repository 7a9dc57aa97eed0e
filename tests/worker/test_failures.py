"""An image that fails before analysis is cited with the breast the model would have analysed it as.

Failure reports ("CAD failed" for that image, the Summary of Analyses) cite the image through
``worker.failures.failed_result``, which read Image Laterality only: an image with only Patient
Orientation to say its breast got no breast, and a mislabelled one the other breast than an
analysed copy of it would have had.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mammocad.spool.layout import Spool
from mammocad.spool.studies import StudyFiles
from mammocad.worker.failures import failed_result
from tests import factories


@pytest.mark.parametrize(("laterality", "orientation", "expected"), [
    ("", ["A", "R"], "L"),     # no laterality in the header, only the left breast's orientation
    ("R", ["A", "R"], "L"),    # labelled right, the left breast's orientation (the model says L)
    ("R", ["P", "L"], "R"),
    ("L", "CC", "L"),          # invalid Patient Orientation (digitised film): the label stands
])
def test_a_failed_image_names_the_breast(tmp_path: Path, laterality: str, orientation: object,
                                         expected: str) -> None:
    spool = Spool(tmp_path / "spool").create()
    ds = factories.make_mammogram(laterality="L", view="MLO")
    ds.ImageLaterality = laterality
    ds.PatientOrientation = orientation
    study, sop = str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)
    factories.write(ds, spool.image_path(study, sop))
    result = failed_result(StudyFiles(spool.root, study), sop, "not decoded: test")
    assert result.error == "not decoded: test"
    assert (result.image.laterality, result.image.view, result.image.sop_instance_uid) == (expected, "MLO", sop)


def test_an_unreadable_image_is_still_cited(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool").create()
    study, sop = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"
    path = spool.image_path(study, sop)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not DICOM")
    result = failed_result(StudyFiles(spool.root, study), sop, "cannot read")
    assert (result.image.sop_instance_uid, result.image.laterality, result.error) == (sop, "", "cannot read")
