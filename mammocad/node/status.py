"""The C-STORE failure statuses the node answers, and how it words them (PS3.4 B.2.3).

A failure is a status with an ErrorComment, never an exception: the association goes on
and the sender learns what to fix. The log line carries the full text; the comment is cut
to its VR's length.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from mammocad.spool.layout import is_uid

#: Refused: Out of Resources; the sender should retry later (disk full, spool not writable).
OUT_OF_RESOURCES = 0xA700
#: Error: Data Set does not match SOP Class (the Affected SOP Instance/Class or context differ,
#: a mammogram without Pixel Data).
DATA_SET_MISMATCH = 0xA900
#: Error: Cannot understand (PS3.4 B.2.3 Cxxx): an unusable data set, a node error.
CANNOT_UNDERSTAND = 0xC000
#: Error: Cannot understand: an identifying UID that is not a DICOM UID.
BAD_UID = 0xC001
#: Error: Cannot understand: more pixels or decoded bytes than the node's limits.
TOO_LARGE = 0xC002
#: Error: Cannot understand: the SOP Instance UID is held under another study.
DUPLICATE_ELSEWHERE = 0xC003


def failure(status: int, comment: str) -> Dataset:
    """The status data set pynetdicom answers with: ``status`` and its ErrorComment."""
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:64]  # LO: 64 characters at most; the log has the full text
    return ds


def safe_uid(value: object) -> str:
    """A UID from the command set, for the logs; anything else is not echoed."""
    text = str(value or "").strip().rstrip("\x00")
    return text if is_uid(text) else f"<not a UID, {len(text)} characters>"
