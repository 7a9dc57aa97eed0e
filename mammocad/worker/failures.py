"""Image results for images that could not be analysed, citing them as well as their header allows.

A failed image still appears in the study's report ("CAD failed" for that image), so it
needs an :class:`~mammocad.model.results.ImageRef`; the header is read with the one
header reader (:mod:`mammocad.dicom.header`) so laterality and view agree with the node's
and the model's reading.
"""

from __future__ import annotations

from pydicom import dcmread
from pydicom.dataset import Dataset

from mammocad.dicom.header import laterality_view
from mammocad.model.results import ImageRef, ImageResult
from mammocad.spool.studies import StudyFiles


def image_ref_from_header(ds: Dataset) -> ImageRef:
    """What a report needs to cite an image, from its header alone (no pixel decoding)."""
    lat, view = laterality_view(ds)
    return ImageRef(
        study_uid=str(ds.get("StudyInstanceUID", "")),
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        sop_class_uid=str(ds.get("SOPClassUID", "")),
        laterality=lat,
        view=view,
        rows=int(ds.get("Rows", 0) or 0),
        columns=int(ds.get("Columns", 0) or 0),
    )


def failed_result(files: StudyFiles, sop_uid: str, error: str) -> ImageResult:
    """An ImageResult with ``error`` set, citing the image as well as its header allows."""
    try:
        ref = image_ref_from_header(dcmread(files.image(sop_uid), stop_before_pixels=True))
    except Exception:
        ref = ImageRef(study_uid=files.study_uid, series_uid="", sop_instance_uid=sop_uid,
                       sop_class_uid="", laterality="", view="", rows=0, columns=0)
    return ImageResult(image=ref, error=error)

