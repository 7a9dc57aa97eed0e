"""Strict checks of a built result object, per object, without process-wide switches.

pydicom checks values against their VR only as strictly as a process-wide setting says
(``pydicom.config.settings.*_validation_mode``); switching that setting while a worker
builds outputs also changes how every other thread reads data sets. So each object is
checked explicitly once it is built: every value this code generated must meet its VR
(length, character repertoire, UID syntax). Values copied verbatim from the received
images (patient and study attributes, references to the images themselves) are exempt:
the object must cite them exactly as the modality wrote them, even when that modality
broke PS3.5 (a UID component with a leading zero, an over-long name).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.config import RAISE
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import VALIDATORS, validate_value

#: Value representations that hold bytes or nested items: nothing to check as text.
_SKIPPED = frozenset({"SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN",
                      "US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT"})  # binary numbers: typed already


def received_values(sources: Iterable[Dataset]) -> set[str]:
    """Every top-level text value of the received headers (allowed to appear unchanged)."""
    out: set[str] = set()
    for ds in sources:
        for elem in ds:
            if elem.VR in _SKIPPED or elem.VR not in VALIDATORS or elem.is_empty:
                continue
            values = elem.value if isinstance(elem.value, MultiValue) else [elem.value]
            out.update(str(v) for v in values)
    return out


def validate_output(ds: Dataset, received: set[str]) -> None:
    """Raise ValueError naming the attribute when a value ``ds`` generated breaks its VR.

    ``received``: values copied from the source images (see :func:`received_values`).
    """
    for elem in ds.iterall():
        if elem.VR in _SKIPPED or elem.VR not in VALIDATORS or elem.is_empty:
            continue
        values = elem.value if isinstance(elem.value, MultiValue) else [elem.value]
        for value in values:
            if value is None or str(value) in received:
                continue
            try:
                validate_value(elem.VR, str(value), RAISE)
            except ValueError as exc:
                raise ValueError(f"{elem.keyword or elem.tag} ({elem.VR}): {exc}") from None
