"""Strict write, tolerant read: every value copied from a source image is checked first.

The node accepts what a PACS sends (tolerant read); a result object must still be valid
(strict write), so each attribute taken from a source image passes through here:

* text values are checked against their VR (length, characters) and VM; an over-long
  descriptive text is cut to fit, a code string in lower case is upper-cased when that is
  one of its defined terms ("f" → "F"), a decimal string over 16 characters is written as
  the same number in 16 ("1.6500000000000001" → "1.65", 15 significant digits kept); an
  invalid identifier, date, time, age, code string or number that no such repair makes
  valid is left empty (Type 2) or out (Type 3) — never passed on;
* empty sequences and sequence items that do not validate are dropped;
* a time (TM) is normalised where PS3.5 6.2 lets it be read: the retired ACR-NEMA form with
  colons ("10:15:00"), surrounding spaces, more than six fraction digits (cut to six) and a
  leap second (":60", which dciodvfy and DCMTK reject: written to the minute); a time that
  cannot be read ("25:00", a query range) is left empty or out;
* Patient Orientation is written only when it is two valid direction strings;
* legacy SNOMED-RT (SRT) codes are mapped to SNOMED CT (SCT) where the standard gives the
  mapping;
* text is decoded with the source's character set and re-encoded as UTF-8 (ISO_IR 192),
  so names in ISO 2022 (Japanese, Korean), Latin-1 or GB18030 all arrive intact.

Every repair is logged (``source_attribute_repaired``) with the attribute and the reason,
never the value (it may be a patient name).
"""

from __future__ import annotations

import datetime
import logging
import math
import re

from pydicom import config
from pydicom.datadict import dictionary_VM, dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import IS, DSdecimal, DSfloat, PersonName, validate_value

from mammocad.dicom.views import SRT_VIEW_TO_SCT
from mammocad.logs import log_event

logger = logging.getLogger(__name__)

#: Character set of every object mammocad writes.
CHARSET = "ISO_IR 192"

#: Patient and General Study attributes copied so the output joins the source's study.
PATIENT_STUDY = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
                 "PatientAge", "OtherPatientIDsSequence", "StudyInstanceUID", "StudyDate", "StudyTime",
                 "AccessionNumber", "ReferringPhysicianName", "StudyID", "StudyDescription",
                 "IssuerOfAccessionNumberSequence")
#: Type 2 attributes of the Patient and General Study modules: present, possibly empty.
TYPE2_PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                       "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyID")
#: Free text that may be shortened to fit its VR (identifiers never are).
_TRUNCATABLE = frozenset({"StudyDescription", "SeriesDescription", "BodyPartExamined"})
#: Copied attributes with Enumerated Values: anything else is invalid (dciodvfy rejects it and
#: highdicom raises on it, losing the whole object), e.g. "W" or "FEMALE" for Patient's Sex.
_ENUMERATED = {"PatientSex": frozenset({"M", "F", "O"})}
#: Defined and Enumerated Terms (PS3.3) of the code strings copied from images (the Patient
#: and Study modules, their sequences' items): a lower-case value ("f", "no") is written in
#: upper case when that is one of them, the one repair of a CS that cannot change its meaning.
#: A CS with no entry here is never guessed at: if invalid, it is left out.
_CS_TERMS = {
    **_ENUMERATED,
    "PatientSexNeutered": frozenset({"ALTERED", "UNALTERED"}),  # C.7.1.1
    "SmokingStatus": frozenset({"YES", "NO", "UNKNOWN"}),  # C.7.2.2
    "QualityControlSubject": frozenset({"YES", "NO"}),  # C.7.1.1
    "TypeOfPatientID": frozenset({"TEXT", "RFID", "BARCODE"}),  # C.7.1.1
    "UniversalEntityIDType": frozenset({"DNS", "EUI64", "ISO", "URI", "UUID", "X400", "X500"}),  # 10.14
    "Laterality": frozenset({"R", "L"}),  # C.7.3.1
    "ImageLaterality": frozenset({"R", "L", "U", "B"}),  # C.8.11.7
}
#: A DS as PS3.5 6.2 writes it (a fixed or floating point number), before its 16-character limit.
#: Half a unit in the 15th significant digit, relative to a value whose first digit is 1.
_DS_REL_TOL = 5.1e-15
_DS_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
#: Maximum lengths, counted in bytes of UTF-8: PS3.5 gives them in characters, but dciodvfy
#: counts bytes, and a value re-encoded from Latin-1 or ISO 2022 as UTF-8 grows (a 64-character
#: Latin-1 description with umlauts is more than 64 bytes); within the bytes it is within both.
_MAX_LEN = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "LO": 64, "PN": 64, "SH": 16, "ST": 1024, "LT": 10240, "UI": 64}

#: SNOMED-RT → SNOMED CT for the codes mammography headers carry (PS3.16 Annex O mappings):
#: the views from their one table (mammocad/dicom/views.py), then breast and laterality
#: (SNOMED RT's G-A100 is Right: a map that had it Left turned a copied right side left).
SRT_TO_SCT: dict[str, tuple[str, str]] = {
    **{srt: (code.value, code.meaning) for srt, code in SRT_VIEW_TO_SCT.items()},
    "T-04000": ("76752008", "Breast"),
    "G-A100": ("24028007", "Right"),
    "G-A101": ("7771000", "Left"),
}

_DIRECTION = re.compile(r"^[APRLHF]{1,3}$")
#: Control characters no VR allows (PS3.5 6.1.3, 6.2): pydicom's validation lets them through,
#: dciodvfy rejects them (a tab in a Patient ID). Text VRs (ST, LT, UT) allow TAB, LF, FF, CR;
#: ESC only introduces an ISO 2022 escape, which no decoded value holds any more.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_TEXT_VRS = frozenset({"ST", "LT", "UT"})
_UID_CHARS = re.compile(r"^[0-9.]+$")
#: A time as PS3.5 6.2 TM reads it: HH[MM[SS[.F...]]], or the retired ACR-NEMA HH:MM[:SS[.F...]].
_TIME = re.compile(r"^(?P<h>\d{2})(?::?(?P<m>\d{2})(?::?(?P<s>\d{2})(?:\.(?P<f>\d*))?)?)?$")


def repaired(keyword: str, reason: str, action: str) -> None:
    """One log line per repair: the attribute and why, never its value."""
    log_event(logger, "source_attribute_repaired", attribute=keyword, reason=reason, action=action)


def problem(vr: str, value: object) -> str | None:
    """Why ``value`` is not valid for ``vr`` (pydicom's per-call validation), or None."""
    values = list(value) if isinstance(value, list | tuple | MultiValue) else [value]
    for v in values:
        if isinstance(v, DSfloat | DSdecimal | IS):
            v = str(v)  # as written: a DS read as "1.6500000000000001" keeps that text (18 chars)
        if not isinstance(v, str) or v == "":
            continue  # plain numbers (US, FD...) and None
        if vr == "UI":
            if why := uid_problem(v):
                return why
            continue
        if vr in _MAX_LEN and len(v.encode("utf-8")) > _MAX_LEN[vr]:
            return f"longer than {_MAX_LEN[vr]} bytes in UTF-8"
        if (_TEXT_CONTROL if vr in _TEXT_VRS else _CONTROL).search(v):
            return "control character"
        try:
            validate_value(vr, v, config.RAISE)
        except (ValueError, TypeError) as exc:
            return str(exc).split("\n")[0][:120] or "invalid"
        if vr in ("DA", "DT") and not _calendar_date(v):
            return "not a calendar date"
        if vr == "TM" and normalise_time(v) != v.rstrip():
            return "not a time in HHMMSS.FFFFFF form (leap second, range or colons)"
    return None


def uid_problem(uid: str) -> str | None:
    """Why ``uid`` breaks PS3.5 9.1 (in words, without the value), or None when it is valid.

    pydicom's check lets a component with a leading zero through ("1.2.03"), which dciodvfy
    rejects, and its message quotes the value, which may not be logged.
    """
    text = uid.rstrip("\x00")
    if len(text) > _MAX_LEN["UI"]:
        return f"longer than {_MAX_LEN['UI']} characters"
    if not _UID_CHARS.match(text):
        return "a character other than the digits 0-9 and '.'"
    components = text.split(".")
    if "" in components:
        return "an empty component (a leading, trailing or double '.')"
    if any(c.startswith("0") and c != "0" for c in components):
        return "a component with a leading zero"
    return None


def normalise_time(value: str) -> str | None:
    """A TM value in the form every validator accepts, or None when it cannot be read as a time.

    PS3.5 6.2 TM: HHMMSS.FFFFFF, trailing components may be omitted, at most six fraction
    digits. Read tolerantly: the retired ACR-NEMA form "HH:MM:SS.frac" (PS3.5 recommends
    accepting it), spaces around the value, extra fraction digits (cut, not rounded: rounding
    could carry into the next day) and a "." with no digits. Seconds "60" (a leap second,
    allowed by PS3.5 but rejected by dciodvfy and DCMTK) keep the minute only. Hours past 23,
    minutes past 59 and query ranges ("1015-1030", which pydicom's check lets through) are
    not times.
    """
    match = _TIME.match(value.strip())
    if match is None or (":" in value and not _consistent_colons(value.strip())):
        return None
    hour, minute, second, fraction = match.group("h", "m", "s", "f")
    if int(hour) > 23 or (minute and int(minute) > 59) or (second and int(second) > 60):
        return None
    if second == "60":
        return f"{hour}{minute}"
    out = hour + (minute or "") + (second or "")
    return f"{out}.{fraction[:6]}" if fraction else out


def _consistent_colons(value: str) -> bool:
    """"10:15:00" and "10:15" are the ACR-NEMA form; "10:1500" or "1015:00" are not."""
    head = value.split(".")[0]
    return all(len(part) == 2 for part in head.split(":"))


def _calendar_date(value: str) -> bool:
    """False for a DA/DT whose day does not exist ("20230230", "20230100").

    pydicom checks dates by pattern only, so those pass it; highdicom turns the copied
    patient and study dates into ``datetime.date`` and raises, losing the whole object.
    A DT of year or month precision has no day to check.
    """
    head = value.strip()[:8]
    if len(head) < 8 or not head.isdigit():
        return True
    try:
        datetime.date(int(head[:4]), int(head[4:6]), int(head[6:8]))
    except ValueError:
        return False
    return True


def fit(text: str, limit: int) -> str:
    """The longest start of ``text`` that is at most ``limit`` bytes in UTF-8 (whole characters)."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore").rstrip()


def _vm_ok(keyword: str, value: object) -> bool:
    vm = dictionary_VM(keyword)
    n = len(value) if isinstance(value, list | tuple | MultiValue) else (0 if value in ("", None) else 1)
    if vm == "1":
        return n <= 1
    if vm == "2":
        return n in (0, 2)
    return True


def text_value(source: Dataset, keyword: str) -> object:
    """A copied text value, decoded from the source's character set; PN as plain str."""
    value = source.get(keyword)
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, MultiValue):
        return [str(v) if isinstance(v, PersonName) else v for v in value]
    return value


def copy_checked(target: Dataset, source: Dataset, keyword: str, *, type2: bool = False) -> bool:
    """Copy one attribute if its value is valid (repairing free text); True when written.

    ``type2``: write it empty when the source's value is absent or cannot be repaired.
    """
    if keyword not in source:
        if type2:
            setattr(target, keyword, None)
        return False
    vr = dictionary_VR(keyword)
    if vr == "SQ":
        return _copy_sequence(target, source, keyword)
    try:
        value = text_value(source, keyword)
    except Exception as exc:  # undecodable bytes in the source
        repaired(keyword, f"cannot decode: {type(exc).__name__}", "left empty" if type2 else "left out")
        value = None
    if value is None or value == "":
        if type2:
            setattr(target, keyword, None)
        return False
    if vr == "PN":
        value = _person_name(keyword, value)
    if vr == "TM" and isinstance(value, str):
        value = _time(keyword, value)
    if vr == "CS":
        value = _upper_case(keyword, value)
    if vr == "DS":
        value = _short_decimals(keyword, value)
    why = problem(vr, value) or (None if _vm_ok(keyword, value) else f"VM not {dictionary_VM(keyword)}")
    if not why and keyword in _ENUMERATED and str(value).strip() not in _ENUMERATED[keyword]:
        why = f"not one of {', '.join(sorted(_ENUMERATED[keyword]))}"
    if why and keyword in _TRUNCATABLE and isinstance(value, str) and vr in _MAX_LEN:
        value = fit(_CONTROL.sub(" ", value), _MAX_LEN[vr])
        repaired(keyword, why, "truncated")
        why = problem(vr, value)
    if why:
        repaired(keyword, why, "left empty" if type2 else "left out")
        if type2:
            setattr(target, keyword, None)
        return False
    target[keyword] = DataElement(source[keyword].tag, vr, value)
    return True


def ds_text(value: object) -> str | None:
    """The same number as a valid DS (at most 16 characters), or None when it has no such form.

    "The same number": the same double where that fits ("70.000000000000000" is "70.0"), else
    the same to 15 significant digits, all that a double (DBL_DIG), and so any reader that
    decodes a DS as one, holds reliably: "1.6500000000000001", a float printed with 17
    digits, is "1.65". A number that needs more characters than 16 at that precision
    ("0.000123456789012345") is not rounded further, and text that is no DS ("1,5",
    "inf") is not guessed at: None.
    """
    text = str(value).strip()
    if not isinstance(value, float) and not _DS_TEXT.match(text):
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    for form in (repr(number), f"{number:.15g}", f"{number:.14e}"):
        mantissa, _, exponent = form.partition("e")
        if exponent and "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        short = f"{mantissa}e{int(exponent)}" if exponent else mantissa
        if len(short) <= 16 and math.isclose(float(short), number, rel_tol=_DS_REL_TOL):
            return short
    return None


def _upper_case(keyword: str, value: object) -> object:
    """A CS value ("f", ["no"]) in upper case when that is one of the attribute's terms."""
    terms = _CS_TERMS.get(keyword)
    values = list(value) if isinstance(value, MultiValue | list) else [value]
    if terms is None:
        return value
    fixed = [v.strip().upper() if isinstance(v, str) and v.strip().upper() in terms else v for v in values]
    if fixed == values:
        return value
    repaired(keyword, "code string not in upper case", "upper-cased (a defined term)")
    return fixed if isinstance(value, MultiValue | list) else fixed[0]


def _short_decimals(keyword: str, value: object) -> object:
    """A DS value whose text is invalid (over 16 characters) written as the same number in
    16 (``ds_text``); a value with no such form is returned as it is, and left out."""
    values = list(value) if isinstance(value, MultiValue | list) else [value]
    fixed = []
    for v in values:
        short = ds_text(v) if problem("DS", v) else None
        fixed.append(short if short is not None else v)
    if all(a is b for a, b in zip(fixed, values, strict=True)):
        return value
    repaired(keyword, "decimal string over 16 characters", "shortened to the same number")
    return fixed if isinstance(value, MultiValue | list) else fixed[0]


def _time(keyword: str, value: str) -> str:
    """The normalised time (logged when it changed), or ``value`` itself when it is no time
    (``problem`` then rejects it)."""
    fixed = normalise_time(value)
    if fixed is None or fixed == value.rstrip():
        return value
    repaired(keyword, "time not in HHMMSS.FFFFFF form", "normalised")
    return fixed


def _person_name(keyword: str, value: object) -> object:
    """A name that fits PN as every validator reads it: at most three component groups of at
    most five components (PS3.5 6.2.1), and at most 64 bytes of UTF-8 in all: PS3.5 allows 64
    characters per group, but dciodvfy counts the whole value against 64. Groups that do not
    fit are dropped from the end (phonetic, then ideographic); the alphabetic one is cut."""
    if not isinstance(value, str):
        return value
    groups = ["^".join(g.split("^")[:5]) for g in value.split("=")[:3]]
    out = fit(groups[0], _MAX_LEN["PN"]).rstrip("^")
    for group in groups[1:]:
        if len(f"{out}={group}".encode()) > _MAX_LEN["PN"]:
            break
        out = f"{out}={group}"
    out = out.rstrip("=")
    if out != value:
        repaired(keyword, "over-long or too many name components", "shortened")
    return out


def _copy_sequence(target: Dataset, source: Dataset, keyword: str) -> bool:
    """Copy a sequence whose items all validate; drop empty ones and invalid items."""
    items = []
    for item in source.get(keyword) or []:
        clean = checked_item(item, keyword)
        if clean is not None:
            items.append(clean)
        else:
            repaired(keyword, "item with invalid or no content", "item dropped")
    if not items:
        if keyword in source and source[keyword].value:
            repaired(keyword, "no valid item", "left out")
        return False
    target[keyword] = DataElement(source[keyword].tag, "SQ", items)
    return True


def checked_item(item: Dataset, sequence: str = "") -> Dataset | None:
    """A copy of an item of ``sequence`` with only its valid, non-empty attributes, or None
    when nothing is left or the item is incomplete (``complete_item``)."""
    out = Dataset()
    for elem in item:
        if elem.keyword == "":
            continue
        if elem.VR == "SQ":
            _copy_sequence(out, item, elem.keyword)
        else:
            copy_checked(out, item, elem.keyword)
    if "CodingSchemeDesignator" in out and "CodeValue" in out:
        out = map_code(out)
    return out if len(out) and complete_item(out, sequence) else None


#: Type 1 attributes of the items of copied sequences, beyond the macros complete_item knows.
_ITEM_REQUIRES = {"OtherPatientIDsSequence": ("PatientID", "TypeOfPatientID")}
_CODE_VALUES = ("CodeValue", "LongCodeValue", "URNCodeValue")


def complete_item(item: Dataset, sequence: str) -> bool:
    """Whether a checked item still holds what its macro requires; an invalid attribute left
    out (a Patient ID over 64 characters), or one the source never had, must not leave an
    item dciodvfy rejects.

    A Universal Entity ID without its type (or the type alone) is removed from ``item`` as a
    pair (HL7v2 Hierarchic Designator); a coded entry needs a value, scheme and meaning; a
    SOP reference needs class and instance.
    """
    if ("UniversalEntityID" in item) != ("UniversalEntityIDType" in item):
        for keyword in ("UniversalEntityID", "UniversalEntityIDType"):
            if keyword in item:
                del item[keyword]
                repaired(keyword, "Universal Entity ID without its type or the reverse", "left out")
    if any(k in item for k in (*_CODE_VALUES, "CodingSchemeDesignator", "CodeMeaning")):
        has_value = any(k in item for k in _CODE_VALUES)
        if not has_value or "CodeMeaning" not in item or ("CodingSchemeDesignator" not in item
                                                          and "URNCodeValue" not in item):
            return False
    if ("ReferencedSOPClassUID" in item) != ("ReferencedSOPInstanceUID" in item):
        return False
    return len(item) > 0 and all(k in item for k in _ITEM_REQUIRES.get(sequence, ()))


def map_code(code: Dataset) -> Dataset:
    """A coded entry with SRT codes the standard maps replaced by their SCT equivalents."""
    if str(code.get("CodingSchemeDesignator", "")) != "SRT":
        return code
    mapped = SRT_TO_SCT.get(str(code.CodeValue))
    if mapped is None:
        return code
    out = Dataset()
    out.CodeValue, out.CodeMeaning = mapped
    out.CodingSchemeDesignator = "SCT"
    repaired("CodeValue", "legacy SNOMED-RT code", "mapped to SNOMED CT")
    return out


def copy_patient_study(target: Dataset, source: Dataset) -> None:
    """Copy the Patient and General Study modules, each value checked, in UTF-8.

    The Study Instance UID is written exactly as received, so the output joins the study the
    PACS holds; ``check_identity`` has already refused a study whose UID is not valid.
    """
    target.SpecificCharacterSet = CHARSET
    for keyword in PATIENT_STUDY:
        if keyword == "StudyInstanceUID":
            target.StudyInstanceUID = cited_uid(source, keyword)
            continue
        copy_checked(target, source, keyword, type2=keyword in TYPE2_PATIENT_STUDY)


#: What every output cites of each image (study, class, instance): Type 1, never repaired.
IDENTITY = ("StudyInstanceUID", "SOPClassUID", "SOPInstanceUID")
#: Cited too when present (the SRs' evidence, the GSPS's Referenced Series Sequence).
_SERIES = "SeriesInstanceUID"


def cited_uid(source: Dataset, keyword: str) -> str:
    """A UID of the source as the outputs cite it (padding removed); "" when absent, empty or
    multi-valued, which no reference can cite."""
    value = source.get(keyword)
    if value is None or isinstance(value, MultiValue | list):
        return ""
    return str(value).strip().rstrip("\x00")


def check_identity(sources: dict[str, Dataset]) -> None:
    """Raise ValueError when an image lacks a UID every output must cite it by, or has one
    that is not a valid UID (PS3.5 9.1: over 64 characters, a character other than digits
    and dots, an empty component or one with a leading zero).

    The node refuses absent and malformed UIDs on receipt; a library caller (``mammocad
    model analyze`` on files) may not, and the node accepts a leading zero. A made-up UID
    would cite an image that does not exist, so nothing is built. An invalid one cannot be
    repaired either: the results must cite the UIDs the PACS holds, character for character
    (a "repaired" Study Instance UID starts a second study there), and cited as received
    they make every object invalid (dciodvfy rejects it; a strict PACS refuses the object).
    The error names the image, the attribute and what to do; one line is logged. Neither
    echoes the invalid value (as the node never does): an invalid SOP Instance UID names
    the image by its length.
    """
    for key, source in sources.items():
        for keyword in (*IDENTITY, _SERIES):
            uid = cited_uid(source, keyword)
            if not uid:
                if keyword == _SERIES:
                    continue  # only the GSPS needs it: build_gsps names it
                why = "has several values" if isinstance(source.get(keyword), MultiValue | list) else "is missing"
                raise ValueError(f"image {key}: {keyword} {why}, so the results cannot cite it; correct the "
                                 "image's header at the sender (PS3.3: Type 1, one UID) and send it again")
            invalid = uid_problem(uid)
            if invalid:
                image = key if uid_problem(key) is None else f"<not a valid UID, {len(key)} characters>"
                log_event(logger, "source_uid_refused", logging.ERROR, image=image, attribute=keyword, reason=invalid)
                raise ValueError(f"image {image}: {keyword} is not a valid UID ({invalid}; PS3.5 9.1), and the "
                                 "results must cite it exactly as the PACS holds it, so none is built; correct "
                                 "the UID at the modality, or have the PACS or a router coerce it, and send "
                                 "the study again")


def patient_orientation(source: Dataset) -> tuple[str, str] | None:
    """(row, column) directions when the source's Patient Orientation is valid, else None.

    Valid: two values (VM 2), each of 1-3 letters from A P R L H F. Digitised film often
    writes the view ("CC", VM 1) here instead.
    """
    value = source.get("PatientOrientation")
    if value in (None, ""):
        return None
    values = [str(v).strip().upper() for v in (value if isinstance(value, MultiValue | list) else [value])]
    if len(values) == 2 and all(_DIRECTION.match(v) for v in values):
        return values[0], values[1]
    repaired("PatientOrientation", f"not two direction values (VM {len(values)})", "left empty")
    return None


def first_number(source: Dataset, keyword: str) -> float | None:
    """The first value of a numeric attribute (window centre, width...), None when unusable."""
    value = source.get(keyword)
    if value is None or value == "":
        return None
    first = value[0] if isinstance(value, MultiValue | list) else value
    try:
        return float(first)
    except (TypeError, ValueError):
        repaired(keyword, "not a number", "ignored")
        return None
