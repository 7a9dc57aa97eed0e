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

import logging
import re

from pydicom.datadict import dictionary_VM, dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from mammocad.dicom.views import SRT_VIEW_TO_SCT
from mammocad.logs import log_event
from mammocad.results.values import CONTROL, MAX_LEN, ds_text, fit, normalise_time, problem, uid_problem

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
def repaired(keyword: str, reason: str, action: str) -> None:
    """One log line per repair: the attribute and why, never its value."""
    log_event(logger, "source_attribute_repaired", attribute=keyword, reason=reason, action=action)


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
    if why and keyword in _TRUNCATABLE and isinstance(value, str) and vr in MAX_LEN:
        value = fit(CONTROL.sub(" ", value), MAX_LEN[vr])
        repaired(keyword, why, "truncated")
        why = problem(vr, value)
    if why:
        repaired(keyword, why, "left empty" if type2 else "left out")
        if type2:
            setattr(target, keyword, None)
        return False
    target[keyword] = DataElement(source[keyword].tag, vr, value)
    return True


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
    out = fit(groups[0], MAX_LEN["PN"]).rstrip("^")
    for group in groups[1:]:
        if len(f"{out}={group}".encode()) > MAX_LEN["PN"]:
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
    model analyze`` on files, or a spool an older node filled) may not. A made-up UID
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
