"""Strict checks of a built result object, per object, without process-wide switches.

pydicom checks values against their VR only as strictly as a process-wide setting says
(``pydicom.config.settings.*_validation_mode``); switching that setting while a worker
builds outputs also changes how every other thread reads data sets. So each object is
checked explicitly once it is built, with pydicom's per-call validation: every text, date,
time, code string and UID must meet its VR (length, character repertoire, syntax). Values
copied from the received images were already checked or repaired when copied
(``sanitize.py``). Nothing is exempt: the UIDs that cite the images must be cited as
received, so an image whose UID breaks PS3.5 9.1 is refused before anything is built
(``check_identity``), never cited invalidly.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from mammocad.results.sanitize import problem

#: Value representations whose values validate_output checks.
_CHECKED_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UI",
                          "UT", "UC", "UR"})


def validate_output(ds: Dataset, path: str = "") -> None:
    """Raise ValueError naming the first attribute whose value is invalid for its VR."""
    for elem in ds:
        where = f"{path}{elem.keyword or elem.tag}"
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value or []):
                validate_output(item, f"{where}[{i}].")
            continue
        if elem.VR not in _CHECKED_VRS or elem.value in (None, ""):
            continue
        value = elem.value
        if elem.VR == "PN":
            value = [str(v) for v in value] if isinstance(value, list) else str(value)
        why = problem(elem.VR, value)
        if why:
            raise ValueError(f"{where} ({elem.VR}) is invalid: {why}")
