"""What the node accepts and what it analyses.

Analysed: Digital Mammography X-Ray (For Presentation / For Processing) and Secondary
Capture whose Modality is MG (digitised-film archives store mammograms that way). Every
other storage SOP class is accepted too, so a PACS routing a whole study never sees a
failure, but those instances are only set aside in ``spool/other``.
"""

from __future__ import annotations

from typing import cast

from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AllStoragePresentationContexts
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

MG_PRESENTATION = UID("1.2.840.10008.5.1.4.1.1.1.2")
MG_PROCESSING = UID("1.2.840.10008.5.1.4.1.1.1.2.1")
SECONDARY_CAPTURE = UID("1.2.840.10008.5.1.4.1.1.7")
VERIFICATION = UID(Verification)

#: Always analysed, whatever the Modality says.
MAMMOGRAPHY_SOP_CLASSES = frozenset({MG_PRESENTATION, MG_PROCESSING})

#: Order matters only for logs; DCMTK and pynetdicom negotiate from the requestor's list.
TRANSFER_SYNTAXES: tuple[UID, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
)


def storage_sop_classes() -> list[UID]:
    """Every storage SOP class pynetdicom knows, analysed ones included."""
    # Every context of AllStoragePresentationContexts is built with its abstract syntax.
    classes = [UID(cast(UID, cx.abstract_syntax)) for cx in AllStoragePresentationContexts]
    for uid in (MG_PRESENTATION, MG_PROCESSING, SECONDARY_CAPTURE):
        if uid not in classes:
            classes.append(uid)
    return classes


def is_analysable(sop_class: str, modality: str | None) -> bool:
    """True when the detector should read this instance."""
    if sop_class in MAMMOGRAPHY_SOP_CLASSES:
        return True
    return sop_class == SECONDARY_CAPTURE and (modality or "").strip().upper() == "MG"
