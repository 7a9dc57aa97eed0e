"""What a mammogram's header says about laterality, view, orientation and pixel size.

The one header reader of mammocad: the node (four-views rule, start-up recovery), the
worker (citing failed images) and the model (standardisation, inference) all read
laterality and view here, so they cannot disagree about which image is which.

Headers vary: modern DR writes Image Laterality and the View Code Sequence (SCT codes,
or the older SRT designator with the same values); digitised film (CBIS-DDSM) may only
have Laterality, or the view only in a description. Each reader returns the value *and*
where it came from, so the result can say how it knew. A reader that parses only part of
a data set (the node's C-STORE path) must read at least :data:`HEADER_KEYWORDS`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydicom.dataset import Dataset

from mammocad.dicom.views import VIEW_BY_CODE_VALUE

#: Code Meanings of the two screening views, for codes outside CID 4014 (a local scheme).
_VIEW_MEANINGS = {"CRANIO-CAUDAL": "CC", "MEDIO-LATERAL OBLIQUE": "MLO"}
_VIEW_WORDS = ("XCCL", "XCCM", "MLO", "LMO", "CC", "ML", "LM", "FB", "SIO", "AT")
_TEXT_FIELDS = ("SeriesDescription", "ProtocolName", "ImageComments", "AcquisitionDeviceProcessingDescription",
                "StudyDescription")

#: Every attribute :func:`laterality_from_header`, :func:`view_from_header` and
#: :func:`orientation_from_header` look at, for readers that parse only some tags.
HEADER_KEYWORDS: tuple[str, ...] = (
    "ImageLaterality", "Laterality", "SharedFunctionalGroupsSequence", "ViewCodeSequence", "ViewPosition",
    "PatientOrientation", *_TEXT_FIELDS,
)


def _text(ds: Dataset, keyword: str) -> str:
    value: Any = ds.get(keyword, "")
    if value is None:
        return ""
    if not isinstance(value, str) and hasattr(value, "__iter__"):
        value = "\\".join(str(v) for v in value)
    return str(value).strip().upper()


def laterality_from_header(ds: Dataset) -> tuple[str, str]:
    """("L"|"R"|"", source). Image Laterality wins, then Laterality (series), then
    Frame Laterality of the shared functional groups, then a description text."""
    for keyword in ("ImageLaterality", "Laterality"):
        value = _text(ds, keyword)
        if value in ("L", "R"):
            return value, keyword
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        for item in shared[0].get("FrameAnatomySequence", []):
            value = _text(item, "FrameLaterality")
            if value in ("L", "R"):
                return value, "FrameLaterality"
    for keyword in _TEXT_FIELDS:
        text = _text(ds, keyword)
        match = re.search(r"(?:^|[^A-Z])(L|R)[ _-]?(?:CC|MLO|ML|LM|XCCL)(?:$|[^A-Z])", text)
        if match:
            return match.group(1), keyword
        if re.search(r"\bLEFT\b", text):
            return "L", keyword
        if re.search(r"\bRIGHT\b", text):
            return "R", keyword
    return "", "unknown"


def view_from_header(ds: Dataset) -> tuple[str, str]:
    """(view, source): View Code Sequence (SCT), then View Position, then description text."""
    for item in ds.get("ViewCodeSequence", []) or []:
        code = str(item.get("CodeValue", "")).strip()
        if code in VIEW_BY_CODE_VALUE:
            return VIEW_BY_CODE_VALUE[code], "ViewCodeSequence"
        meaning = _text(item, "CodeMeaning")
        if meaning in _VIEW_MEANINGS:
            return _VIEW_MEANINGS[meaning], "ViewCodeSequence"
    position = _text(ds, "ViewPosition")
    if position:
        return position, "ViewPosition"
    for keyword in _TEXT_FIELDS:
        text = _text(ds, keyword)
        for word in _VIEW_WORDS:
            if re.search(rf"(?:^|[^A-Z]|[LR]){word}(?:$|[^A-Z])", text):
                return word, keyword
    return "", "unknown"


def laterality_view(ds: Dataset) -> tuple[str, str]:
    """(laterality "L"|"R"|"", view e.g. "CC"|"MLO"|"") without the sources."""
    return laterality_from_header(ds)[0], view_from_header(ds)[0]


#: Where a pixel size is read, best first: Imager Pixel Spacing (at the detector) is what
#: mammography systems fill reliably; Pixel Spacing may be calibrated to the breast or absent.
SPACING_KEYWORDS = ("ImagerPixelSpacing", "PixelSpacing", "NominalScannedPixelSpacing")


def usable_spacing(ds: Dataset, keywords: tuple[str, ...] = SPACING_KEYWORDS
                   ) -> tuple[tuple[float, float], str] | None:
    """((row spacing, column spacing) in mm, the attribute) from the first of ``keywords``
    that holds two positive finite numbers; None when none does.

    A value that is not (0\\0, "inf" or "1e999": valid DS text seen in CR and converter
    output) is no pixel size: the next attribute is read. The one test of a usable spacing,
    for the detector's input and for the sizes the result objects state.
    """
    for keyword in keywords:
        value = ds.get(keyword)
        if value is None:
            continue
        try:
            row_mm, col_mm = float(value[0]), float(value[1])
        except (TypeError, ValueError, IndexError):
            continue
        if row_mm > 0 and col_mm > 0 and math.isfinite(row_mm) and math.isfinite(col_mm):
            return (row_mm, col_mm), keyword
    return None


def spacing_from_header(ds: Dataset, fallback_mm: float) -> tuple[tuple[float, float], str]:
    """((row spacing, column spacing) in mm, source): :func:`usable_spacing`, else the fallback."""
    return usable_spacing(ds) or ((fallback_mm, fallback_mm), "fallback")


def orientation_from_header(ds: Dataset) -> tuple[str, str]:
    """Patient Orientation (row direction, column direction), e.g. ("A", "R"); "" when absent."""
    value = ds.get("PatientOrientation")
    if not value or isinstance(value, str) or len(value) < 2:
        return "", ""
    return str(value[0]).strip().upper(), str(value[1]).strip().upper()


def chest_wall_left_from_header(laterality: str, row_dir: str) -> tuple[bool | None, str]:
    """Is the chest wall at column 0 according to the header?

    Patient Orientation's row direction points from the first to the last column: "A"
    (towards the nipple) means the chest wall is at column 0, "P" at the last column.
    Without it, PS3.3's mammography convention (LCC "A\\R", RCC "P\\L") gives: left breast →
    chest wall at column 0, right breast → at the last column.
    """
    if "A" in row_dir and "P" not in row_dir:
        return True, "PatientOrientation"
    if "P" in row_dir and "A" not in row_dir:
        return False, "PatientOrientation"
    if laterality in ("L", "R"):
        return laterality == "L", "laterality convention"
    return None, "unknown"


def needs_vertical_flip(laterality: str, view: str, col_dir: str) -> bool:
    """True when Patient Orientation says the image is upside down.

    Oblique and lateral views should have the feet ("F") down the columns; "H" without "F"
    means flipped. CC views should run lateral → medial down the columns (LCC "R", RCC "L").
    """
    if not col_dir:
        return False
    if view in ("MLO", "ML", "LM", "LMO", "SIO"):
        return "H" in col_dir and "F" not in col_dir
    if view in ("CC", "XCCL", "XCCM", "XCC", "FB") and laterality in ("L", "R"):
        lateral_dir = laterality  # down the columns towards the same side = lateral-ward
        return col_dir == lateral_dir
    return False
