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
from typing import TYPE_CHECKING, Any

from mammocad.dicom.views import VIEW_BY_CODE_VALUE

if TYPE_CHECKING:  # pydicom loads numpy and Pillow: not at import (tests/test_cli_help.py)
    from pydicom.dataset import Dataset

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
#: A magnification above this is a magnification view. Contact views write an Estimated
#: Radiographic Magnification Factor (SID / SOD, SOD measured to the breast support: PS3.3
#: C.8.11.7) of about 1.0-1.15; magnification views 1.5-2.0.
MAGNIFICATION_VIEW_FACTOR = 1.25
#: PS3.3 10.7.1.2: Pixel Spacing corrected for geometric magnification or calibrated on a fiducial.
_CALIBRATION_TYPES = ("GEOMETRY", "FIDUCIAL")


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


def _positive(ds: Dataset, keyword: str) -> float | None:
    """A single positive finite number from ``keyword``; None when absent or not one."""
    try:
        value = float(ds.get(keyword))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if value > 0 and math.isfinite(value) else None


def magnification_from_header(ds: Dataset) -> tuple[float, str] | None:
    """(geometric magnification of the breast onto the detector, the attribute): Estimated
    Radiographic Magnification Factor, else Distance Source to Detector / Distance Source to
    Patient (its definition, PS3.3 C.8.11.5/C.8.11.7); None when the header says neither."""
    factor = _positive(ds, "EstimatedRadiographicMagnificationFactor")
    if factor is not None:
        return factor, "EstimatedRadiographicMagnificationFactor"
    sid, sod = _positive(ds, "DistanceSourceToDetector"), _positive(ds, "DistanceSourceToPatient")
    if sid is not None and sod is not None:
        return sid / sod, "DistanceSourceToDetector/DistanceSourceToPatient"
    return None


def _calibrated_spacing(ds: Dataset) -> tuple[float, float] | None:
    """Pixel Spacing when the header says it is corrected to the breast (PS3.3 10.7.1.1-2): a
    Pixel Spacing Calibration Type, and a value other than Imager Pixel Spacing's (equal values
    mean "not corrected" whatever the type says)."""
    pixel = usable_spacing(ds, ("PixelSpacing",))
    calibration = str(ds.get("PixelSpacingCalibrationType", "") or "").strip().upper()
    if pixel is None or calibration not in _CALIBRATION_TYPES:
        return None
    imager = usable_spacing(ds, ("ImagerPixelSpacing",))
    return None if imager is not None and _same(imager[0], pixel[0]) else pixel[0]


def _same(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all(math.isclose(x, y, rel_tol=1e-3) for x, y in zip(a, b, strict=True))


def breast_spacing(ds: Dataset) -> tuple[tuple[float, float], str] | None:
    """((row, column) pixel size in mm, where it came from), at the scale the detector was
    trained on; None when the header holds no usable pixel size.

    Contact views (magnification absent or up to :data:`MAGNIFICATION_VIEW_FACTOR`): the
    first usable of :data:`SPACING_KEYWORDS`, Imager Pixel Spacing first, as the training
    images were read. Magnification views: the size in the breast, since Imager Pixel
    Spacing is at the detector (PS3.3 C.8.11.4, never corrected) and a view magnified 1.8x
    would show every calcification 1.8x its size. Pixel Spacing when it is calibrated
    (PS3.3 10.7.1.1-2), else Imager Pixel Spacing / the magnification. A calibrated Pixel
    Spacing finer than Imager Pixel Spacing by more than the threshold marks a
    magnification view by itself.
    """
    imager = usable_spacing(ds, ("ImagerPixelSpacing",))
    calibrated = _calibrated_spacing(ds)
    found = magnification_from_header(ds)
    if found is None and imager is not None and calibrated is not None:
        found = (imager[0][0] / calibrated[0] + imager[0][1] / calibrated[1]) / 2, "PixelSpacing"
    if found is None or found[0] <= MAGNIFICATION_VIEW_FACTOR:
        return usable_spacing(ds)
    factor, factor_source = found
    if calibrated is not None:
        return calibrated, "PixelSpacing (calibrated, magnification view)"
    if imager is not None:
        return (imager[0][0] / factor, imager[0][1] / factor), f"ImagerPixelSpacing/{factor_source}"
    return usable_spacing(ds)


def pixel_aspect_ratio(ds: Dataset) -> float:
    """Pixel Aspect Ratio (vertical \\ horizontal size of a pixel) as one number; 1 when absent or unusable.

    One reading for the standardiser and the real-background reader, so a film with non-square
    pixels is drawn on and analysed at the same pitch.
    """
    value = ds.get("PixelAspectRatio")
    try:
        ratio = float(value[0]) / float(value[1])
    except (TypeError, ValueError, IndexError, ZeroDivisionError):
        return 1.0
    return ratio if math.isfinite(ratio) and ratio > 0 else 1.0


def spacing_from_header(ds: Dataset, fallback_mm: float) -> tuple[tuple[float, float], str]:
    """((row spacing, column spacing) in mm, source): :func:`breast_spacing`, else the fallback."""
    return breast_spacing(ds) or ((fallback_mm, fallback_mm), "fallback")


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


#: Each breast's medio-lateral oblique plane, by its oblique axis either way along it (the axis of
#: the image that is not the anterior-posterior one). The beam of an LMLO runs superomedial to
#: inferolateral (towards F and L), so its image plane holds A/P and the FR-HL axis; an RMLO's
#: holds FL-HR. A plane, not a layout: turning or mirroring the image keeps it.
_OBLIQUE_PLANES: dict[frozenset[str], str] = {
    frozenset("FR"): "L", frozenset("HL"): "L", frozenset("FL"): "R", frozenset("HR"): "R",
}
#: Views whose beam crosses the MLO's (inferomedial to superolateral and back): the left breast's
#: image lies in the right breast's MLO plane. The latero-medial oblique reverses the MLO's beam
#: along it and keeps its plane.
_CROSSED_OBLIQUE_VIEWS = ("SIO", "ISO")
#: The conventional cranio-caudal layouts, as modalities write and viewers hang them: lateral
#: side at the top, the left breast's chest wall on the left.
_CONVENTIONAL_AXIAL = {("A", "R"): "L", ("P", "L"): "R"}
_OPPOSITES = (frozenset("AP"), frozenset("RL"), frozenset("HF"))


def _direction(value: str) -> bool:
    """A Patient Orientation value (PS3.3 C.7.6.1.1.1): letters of A P R L H F, each at most once,
    never two opposite ones."""
    letters = frozenset(value)
    return (bool(value) and len(letters) == len(value) and letters <= frozenset("APRLHF")
            and not any(pair <= letters for pair in _OPPOSITES))


def _anterior_posterior_first(row_dir: str, col_dir: str) -> tuple[str, str] | None:
    """(A or P, the other direction) of a mammographic Patient Orientation: one value is the
    anterior-posterior axis alone, the other none of it. A turned pair (A or P down the columns)
    is transposed, as the model analyses it (``standardise.stored_turned``). None otherwise."""
    if not (_direction(row_dir) and _direction(col_dir)):
        return None
    if row_dir in ("A", "P") and not set(col_dir) & {"A", "P"}:
        return row_dir, col_dir
    if col_dir in ("A", "P") and not set(row_dir) & {"A", "P"}:
        return col_dir, row_dir
    return None


def breast_from_orientation(row_dir: str, col_dir: str, *, view: str = "") -> str:
    """The breast Patient Orientation (row direction, column direction) names: "L", "R", or "".

    Patient Orientation gives the patient directions of the rows and the columns (PS3.3
    C.7.6.1.1.1); a mammogram's are the anterior-posterior axis and one across the breast, in the
    conventional layouts LCC A\\R, RCC P\\L, LMLO A\\FR, RMLO P\\FL. Which breast they imply:

    * Oblique views (the other value holds L or R *and* H or F): the breast whose image plane
      holds that axis (``_OBLIQUE_PLANES``), in every layout: turned, mirrored, upside down. The
      superolateral/inferomedial obliques (``view`` SIO or ISO) lie in the other breast's plane.
    * Cranio-caudal views (L or R alone): both breasts' images lie in one plane, so only the
      conventional layouts name a breast, A\\R the left, P\\L the right (and the same stored
      transposed, R\\A, L\\P). Any other layout is one breast's mirrored and the other's turned
      (A\\L: an RCC mirrored to put its chest wall on the left, or an LCC upside down; R\\P: an LCC
      turned anticlockwise or an RCC clockwise): "".
    * Lateral views (H or F alone): one plane for both breasts too, and the conventional A\\F
      (left) is also the right breast's mirrored to the left, as exports that normalise do: "".

    A turned pair (A or P down the columns) names what its transposed pair names, since the model
    transposes such an image before asking; ``view`` "" reads obliques as MLO.

    Why it can overrule Image Laterality: Patient Orientation is the attribute that describes the
    image's geometry, Image Laterality only names the breast (C.8.11.7) and is the one a
    technologist picks at the console. A header saying "right breast" with the left breast's
    A\\R would otherwise be taken for a right breast rotated 180 degrees, its CC upside down.
    """
    pair = _anterior_posterior_first(row_dir, col_dir)
    if pair is None:
        return ""
    if len(pair[1]) == 2:
        breast = _OBLIQUE_PLANES.get(frozenset(pair[1]), "")
        if breast and view in _CROSSED_OBLIQUE_VIEWS:
            return "R" if breast == "L" else "L"
        return breast
    return _CONVENTIONAL_AXIAL.get(pair, "")


def breast_from_header(ds: Dataset) -> tuple[str, str]:
    """("L"|"R"|"", source): the breast an image shows, by its header alone.

    Patient Orientation's breast (:func:`breast_from_orientation`) when it names one, else
    :func:`laterality_from_header`'s. The header-level half of the model's rule
    (``standardise._oriented_breast``), for the readers that have no pixels: the node's
    four-views rule and start-up recovery, and the worker citing an image it could not analyse.
    Why they must use it: an image whose Patient Orientation names the other breast than its
    Image Laterality is analysed and reported as Patient Orientation's breast, so a reader that
    took Image Laterality would count it toward the other breast (a study declared complete
    early, or left waiting for the timeout) and name the other breast in a failure report.

    The one difference from the model: the model also checks that the pixels put the chest wall
    on Patient Orientation's side before believing it; this rule cannot, and believes the header.
    """
    laterality, source = laterality_from_header(ds)
    row_dir, col_dir = orientation_from_header(ds)
    named = breast_from_orientation(row_dir, col_dir, view=view_from_header(ds)[0])
    if named and named != laterality:
        return named, "PatientOrientation"
    return laterality, source


def breast_view(ds: Dataset) -> tuple[str, str]:
    """(breast "L"|"R"|"" by :func:`breast_from_header`, view e.g. "CC"|"MLO"|"") without the sources."""
    return breast_from_header(ds)[0], view_from_header(ds)[0]


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
