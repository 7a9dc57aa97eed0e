"""The node counts each image toward the breast the model analyses it as (dicom.header.breast_from_header).

An RCC whose Image Laterality was set to "L" at the console but whose Patient Orientation is the
right breast's conventional P\\L is analysed and reported as a right breast. The four-views rule
and start-up recovery read Image Laterality only: the study held LCC twice and no RCC, and waited
for the timeout although its four views were in (or, the other way round, went early).
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from pydicom.dataset import Dataset

from mammocad.node.header import read_header
from mammocad.node.receive import data_set_offset
from mammocad.node.requeue import views_of
from mammocad.node.studies import StudyTracker
from mammocad.spool.layout import Spool
from tests import factories


def _study_with_a_mislabelled_rcc() -> list[Dataset]:
    """LCC, LMLO, RMLO, and an RCC (pixels and Patient Orientation P\\L) labelled "L"."""
    views = factories.make_four_view_study()
    rcc = next(ds for ds in views if ds.ImageLaterality == "R" and ds.ViewPosition == "CC")
    rcc.ImageLaterality = "L"
    assert list(rcc.PatientOrientation) == ["P", "L"]
    return views


def _raw(ds: Dataset) -> BytesIO:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf


def test_an_image_counts_toward_patient_orientations_breast_at_receipt() -> None:
    tracker = StudyTracker(timeout_s=3600.0)
    completions = []
    for ds in _study_with_a_mislabelled_rcc():
        raw = _raw(ds)
        header = read_header(raw, str(ds.file_meta.TransferSyntaxUID), data_set_offset(raw))
        completions.append(tracker.image_arrived(header.study_uid, header.sop_uid, header.laterality, header.view,
                                                 None))
    assert completions[:3] == [None, None, None]
    assert completions[3] is not None and completions[3].reason == "four_views"


def test_recovery_reads_the_same_breast(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool").create()
    views = _study_with_a_mislabelled_rcc()
    study = str(views[0].StudyInstanceUID)
    for ds in views:
        factories.write(ds, spool.image_path(study, ds.SOPInstanceUID))
    read = views_of(spool, study, [ds.SOPInstanceUID for ds in views])
    assert sorted(read.values()) == [("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")]
