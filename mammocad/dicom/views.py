"""CID 4014 "View for Mammography": the one table of view names and their codes.

Read and written in three places: the header reader names each image's view from its View
Code Sequence (``mammocad.dicom.header``), the results cite it in the CAD SR and the
Secondary Capture (``mammocad.results.codes``), and the results map an older system's
SNOMED RT view code to SNOMED CT when they copy it (``mammocad.results.sanitize``). Three
hand-copied tables had drifted apart: the reader called a superolateral-to-inferomedial
oblique image "XCCM", an inferomedial-to-superolateral one "CV", and a medially exaggerated
cranio-caudal one "XCCL", and the SNOMED RT map paired two of the codes with the other view's
meaning. tests/dicom/test_views.py checks every row against pydicom's copy of PS3.16
(``codes.CID4014``) and its SNOMED RT → SNOMED CT mapping.

The names are the ACR / MQSA view abbreviations that View Position (0018,5101) and film
labels carry. Cleavage, axillary tail, rolled, spot and magnification views are view
*modifiers* (CID 4015), not views: they are not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from mammocad.dicom.codes import Code


@dataclass(frozen=True)
class MammographyView:
    """One view of CID 4014: its abbreviation, SNOMED CT code and retired SNOMED RT code."""

    name: str
    code: Code
    srt: str


MAMMOGRAPHY_VIEWS: tuple[MammographyView, ...] = (
    MammographyView("CC", Code("399162004", "SCT", "cranio-caudal"), "R-10242"),
    MammographyView("MLO", Code("399368009", "SCT", "medio-lateral oblique"), "R-10226"),
    MammographyView("ML", Code("399260004", "SCT", "medial-lateral"), "R-10224"),
    MammographyView("LM", Code("399352003", "SCT", "latero-medial"), "R-10228"),
    MammographyView("LMO", Code("399099002", "SCT", "latero-medial oblique"), "R-10230"),
    MammographyView("XCCL", Code("399192008", "SCT", "cranio-caudal exaggerated laterally"), "R-1024A"),
    MammographyView("XCCM", Code("399101009", "SCT", "cranio-caudal exaggerated medially"), "R-1024B"),
    MammographyView("FB", Code("399196006", "SCT", "caudo-cranial"), "R-10244"),
    MammographyView("SIO", Code("399188001", "SCT", "superolateral to inferomedial oblique"), "R-102D0"),
    MammographyView("ISO", Code("441555000", "SCT", "inferomedial to superolateral oblique"), "R-40AAA"),
)

#: View abbreviation → its SNOMED CT code, for writing.
VIEW_CODES: dict[str, Code] = {view.name: view.code for view in MAMMOGRAPHY_VIEWS}
#: SNOMED CT or SNOMED RT code value → view abbreviation, for reading.
VIEW_BY_CODE_VALUE: dict[str, str] = {
    **{view.code.value: view.name for view in MAMMOGRAPHY_VIEWS},
    **{view.srt: view.name for view in MAMMOGRAPHY_VIEWS},
}
#: SNOMED RT view code → the SNOMED CT code of the same view.
SRT_VIEW_TO_SCT: dict[str, Code] = {view.srt: view.code for view in MAMMOGRAPHY_VIEWS}
