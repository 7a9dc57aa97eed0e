"""Whether the node may keep a received C-STORE data set, and where.

Each check answers one question the sender can act on, in the order the handler asks them:
does the data set match its command and presentation context (PS3.7 9.1.1.1), is it within
the node's size limits, can the worker analyse a mammogram (Pixel Data, series, decodable),
are its UIDs usable as spool paths, is the instance held under another study, and was it
held before (in the spool, or covered by a report before retention pruned its study). A
refusal is a :class:`HeaderError` carrying the C-STORE status to answer.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom.dimse_primitives import C_STORE

from mammocad.dicom.frame_size import DecodeBudgetError, check_budget, check_stream_size
from mammocad.dicom.sop_classes import is_analysable
from mammocad.logs import log_event
from mammocad.metrics.faults import count_fault
from mammocad.node.header import Header, HeaderError, check_series
from mammocad.node.status import (
    BAD_UID,
    CANNOT_UNDERSTAND,
    DATA_SET_MISMATCH,
    DUPLICATE_ELSEWHERE,
    TOO_LARGE,
    failure,
    safe_uid,
)
from mammocad.spool.layout import InvalidUIDError, Spool
from mammocad.spool.retention_moves import moved_away

logger = logging.getLogger("mammocad.node")


def check(header: Header, request: C_STORE, context_class: str, *, max_pixels: int, max_decoded_mb: float) -> bool:
    """Raise :class:`HeaderError` when the node must refuse the data set; else return whether
    it is an image to analyse (the rest are set aside, never queued)."""
    check_identity(header, request, context_class)
    if header.pixels > max_pixels:
        raise HeaderError(TOO_LARGE, f"too many pixels: {header.pixels} > node.max_pixels {max_pixels} "
                                     "(Rows x Columns x frames); raise the limit to accept it")
    analysable = is_analysable(header.sop_class, header.modality)
    if analysable and not header.has_pixels:
        raise HeaderError(DATA_SET_MISMATCH, "no Pixel Data (7FE0,0010) in a mammography image: nothing to analyse")
    if analysable:
        check_series(header)
        check_decodable(header, max_decoded_mb)
    return analysable


def check_identity(header: Header, request: C_STORE, context_class: str) -> None:
    """The command, the presentation context and the data set must name one instance of one
    SOP class (PS3.7 9.1.1.1): whichever differs, the node cannot know what it was sent."""
    affected_sop = str(request.AffectedSOPInstanceUID or "")
    if affected_sop and header.sop_uid != affected_sop.strip():
        raise HeaderError(DATA_SET_MISMATCH, f"SOPInstanceUID differs from Affected SOP Instance UID: "
                                             f"{header.sop_uid} != {safe_uid(affected_sop)}")
    affected_class = str(request.AffectedSOPClassUID or "").strip().rstrip("\x00")
    if affected_class and context_class and affected_class != context_class:
        # pynetdicom serves the request under the context's class and echoes the command's.
        raise HeaderError(DATA_SET_MISMATCH, f"Affected SOP Class UID {safe_uid(affected_class)} of the C-STORE "
                                             f"request differs from its presentation context's {context_class} and "
                                             f"the data set's SOPClassUID {header.sop_class}: fix the sender's "
                                             "C-STORE command")
    if context_class and header.sop_class != context_class:
        # An MG image sent under a CT context would be analysed as something it was not negotiated as.
        raise HeaderError(DATA_SET_MISMATCH, f"SOPClassUID {header.sop_class} does not match the presentation "
                                             f"context's {context_class}")


def check_decodable(header: Header, max_decoded_mb: float) -> None:
    """Refuse an image the worker would refuse to decode (docs/FAULTS.md, memory budget):
    a declared decoded size over worker.max_decoded_mb, or a compressed stream that
    declares another size than Rows x Columns (a 934-byte JPEG 2000 stream declaring
    10,000 x 12,000 pixels), or Pixel Data that cannot be the image its header declares
    (a 3000 x 2000 header over 6 kB of pixels; compressed fragments under an uncompressed
    transfer syntax). Checked from the header and the first fragment's head only."""
    if header.pixel_mismatch:
        raise HeaderError(CANNOT_UNDERSTAND, header.pixel_mismatch)
    try:
        check_budget(header.decoded_bytes, max_decoded_mb)
    except DecodeBudgetError as exc:
        raise HeaderError(TOO_LARGE, f"{exc}; raise the limit to accept it") from None
    try:
        check_stream_size(header.stream_size, header.rows, header.columns)
    except DecodeBudgetError as exc:
        raise HeaderError(CANNOT_UNDERSTAND, f"{exc}: refused before anything decodes it") from None


def spool_path(spool: Spool, header: Header, analysable: bool) -> Path:
    """Where the spool keeps the instance; :class:`HeaderError` (0xC001) when its Study or SOP
    Instance UID cannot name a spool path."""
    try:
        return (spool.image_path if analysable else spool.other_path)(header.study_uid, header.sop_uid)
    except InvalidUIDError as exc:
        raise HeaderError(BAD_UID, str(exc)) from None


def held_before(spool: Spool, header: Header, path: Path, analysable: bool) -> str | None:
    """Why the instance is a duplicate to answer Success without storing it again, or None.

    An image a report covered before retention removed its study is a duplicate too:
    analysed again, it would make a second report of it. So is one in its study's folder
    while retention has it renamed into ``tmp/``: the folder either comes back (the image is
    held) or goes because every image in it was reported; stored again, it put the study
    back, or was reported twice when its write landed after retention's last look. Not so a
    set-aside object: its folder goes by age alone, and one sent again in the window is kept.
    """
    if path.exists():
        return "already in the spool"
    if analysable and any((moved / "images" / path.name).exists() for moved in moved_away(spool, header.study_uid)):
        return "in its study's folder that retention is removing"
    pruned = spool.pruned(header.study_uid)
    if pruned is not None and header.sop_uid in pruned.sop_uids:
        return "reported before retention pruned its study"
    return None


def held_elsewhere(header: Header, holder: str) -> Dataset:
    """The answer to an instance held under another study (``holder``): one image must not
    make two reports. Logged with what the admin should look at on the sender."""
    log_event(logger, "duplicate_conflict", logging.WARNING, sop=header.sop_uid, study=header.study_uid,
              held_by=holder, status=f"0x{DUPLICATE_ELSEWHERE:04X}",
              hint="the same SOP Instance UID arrived before under another Study Instance UID and is kept "
                   "there; check the sender for a study merged or re-identified, or a modality reusing UIDs")
    count_fault("duplicate_conflict")
    return failure(DUPLICATE_ELSEWHERE, "SOP Instance UID already held under another Study Instance UID")
