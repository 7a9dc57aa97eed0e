"""Image results for images that could not be analysed, citing them as well as their header allows.

A failed image still appears in the study's report ("CAD failed" for that image), so it
needs an :class:`~mammocad.model.results.ImageRef`, read from its header as the model
reads it (:meth:`ImageRef.from_header`, the one header rule), naming the breast the model
would have analysed it as.
"""

from __future__ import annotations

from pydicom import dcmread

from mammocad.model.results import ImageRef, ImageResult
from mammocad.spool.studies import StudyFiles


def failed_result(files: StudyFiles, sop_uid: str, error: str) -> ImageResult:
    """An ImageResult with ``error`` set, citing the image as well as its header allows.

    Its breast is Patient Orientation's when that names one, as for an analysed image (whose
    results cite the breast analysed): with Image Laterality alone, an image with only Patient
    Orientation to say its breast was cited with none, and a mislabelled one with the other
    breast than the node counted it toward and an analysed copy would be reported as.
    """
    try:
        ds = dcmread(files.image(sop_uid), stop_before_pixels=True)
        ref = ImageRef.from_header(ds)
    except Exception:
        ref = ImageRef(study_uid=files.study_uid, series_uid="", sop_instance_uid=sop_uid,
                       sop_class_uid="", laterality="", view="", rows=0, columns=0)
    return ImageResult(image=ref, error=error)
