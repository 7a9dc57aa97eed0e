"""Strict checks of a built result object, per object, without process-wide switches.

pydicom checks values against their VR only as strictly as a process-wide setting says
(``pydicom.config.settings.*_validation_mode``); switching that setting while a worker
builds outputs also changes how every other thread reads data sets. So each object is
checked explicitly once it is built, with pydicom's per-call validation: every text, date,
time, code string and UID must meet its VR (length, character repertoire, syntax). Values
copied from the received images were already checked or repaired when copied
(``sanitize.py``); only the UIDs that cite the images (study, series, instance) are exempt,
because the object must cite them exactly as the modality wrote them, even when that
modality broke PS3.5 (a UID component with a leading zero).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.dataset import Dataset

from mammocad.results.sanitize import problem

#: Value representations whose values validate_output checks.
_CHECKED_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UI",
                          "UT", "UC", "UR"})


def source_uids(sources: Iterable[Dataset]) -> frozenset[str]:
    """The UIDs that cite the received images (exempt: they must be cited as received)."""
    out = set()
    for ds in sources:
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
            out.add(str(ds.get(keyword, "")).strip().rstrip("\x00"))
    return frozenset(out)


def validate_output(ds: Dataset, source_uids: frozenset[str] = frozenset(), path: str = "") -> None:
    """Raise ValueError naming the first attribute whose value is invalid for its VR.

    ``source_uids``: UIDs copied from the sources to reference them (a Study Instance UID
    with a leading-zero component must still be cited as the PACS holds it).
    """
    for elem in ds:
        where = f"{path}{elem.keyword or elem.tag}"
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value or []):
                validate_output(item, source_uids, f"{where}[{i}].")
            continue
        if elem.VR not in _CHECKED_VRS or elem.value in (None, ""):
            continue
        if elem.VR == "UI" and str(elem.value) in source_uids:
            continue
        value = elem.value
        if elem.VR == "PN":
            value = [str(v) for v in value] if isinstance(value, list) else str(value)
        why = problem(elem.VR, value)
        if why:
            raise ValueError(f"{where} ({elem.VR}) is invalid: {why}")
