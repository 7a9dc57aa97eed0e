"""Read the few attributes the node needs from a received data set, without its pixels.

The C-STORE handler runs while the sender waits, so it never decodes the whole data
set: it reads element headers up to Pixel Data (skipping values it does not need) and
checks that Pixel Data is there and complete.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field
from io import BytesIO
from typing import BinaryIO

from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.pixels.utils import get_expected_length
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian

from mammocad.dicom.frame_size import declared_bytes, is_sized_stream, stream_size
from mammocad.dicom.header import HEADER_KEYWORDS, breast_view
from mammocad.dicom.uids import uid_problem
from mammocad.node.status import BAD_UID, CANNOT_UNDERSTAND, OUT_OF_RESOURCES
from mammocad.spool.layout import is_uid

_PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}
_WANTED = [Tag(k) for k in (
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality", "Rows", "Columns", "NumberOfFrames",
    "SamplesPerPixel", "BitsAllocated", "PhotometricInterpretation",
    "SpecificCharacterSet", "PatientID", "AccessionNumber", *HEADER_KEYWORDS,
)]
_SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_ITEM = b"\xfe\xff\x00\xe0"
#: Bytes of the first compressed fragment read to find the size its stream declares.
_FRAGMENT_HEAD = 1 << 16


class HeaderError(ValueError):
    """The data set cannot be used; ``status`` is the C-STORE failure status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Header:
    sop_class: str
    sop_uid: str
    study_uid: str
    modality: str
    #: The breast the model analyses the image as, by the header alone
    #: (:func:`~mammocad.dicom.header.breast_from_header`): what the four-views rule counts.
    laterality: str
    view: str
    pixels: int
    #: As received ("" when absent); checked only for images the node analyses
    #: (:func:`check_series`): other objects are kept, never cited.
    series_uid: str = ""
    rows: int = 0
    columns: int = 0
    #: Bytes of the decoded pixel data the header declares (Rows x Columns x frames x
    #: samples x bytes per sample), checked against worker.max_decoded_mb.
    decoded_bytes: int = 0
    #: (columns, rows) the first compressed fragment's stream declares (JPEG 2000 SIZ,
    #: JPEG/JPEG-LS SOF); None when not compressed that way or not found.
    stream_size: tuple[int, int] | None = None
    #: False for objects without Pixel Data (SR, presentation states...): fine to set aside,
    #: an error only for an image the detector must read.
    has_pixels: bool = True
    #: Why the Pixel Data cannot hold the image the header declares (native pixels shorter
    #: than Rows x Columns x frames x samples x BitsAllocated, or encapsulated or not
    #: against the transfer syntax); empty when it can. No decoder reads such an image.
    pixel_mismatch: str = ""
    #: For the audit trail only (mammocad/node/observer.py); never logged.
    patient_id: str = field(default="", repr=False)
    accession: str = field(default="", repr=False)


#: Default inflation limit of a Deflated Explicit VR data set (``node.max_inflated_mb``).
MAX_INFLATED_BYTES = 64 << 20


def _inflate(stream: BinaryIO, start: int, limit: int) -> BytesIO:
    """The inflated data set, refused once it passes ``limit`` bytes (a 548 KB deflate bomb
    would otherwise take hundreds of MB while the sender waits)."""
    stream.seek(start)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        data = inflater.decompress(stream.read(), limit + 1)
    except zlib.error as exc:
        raise HeaderError(CANNOT_UNDERSTAND, f"cannot inflate deflated data set: {exc}") from None
    if len(data) > limit:
        raise HeaderError(OUT_OF_RESOURCES, f"deflated data set inflates to more than node.max_inflated_mb "
                                            f"({limit / 2**20:g} MB); refused")
    return BytesIO(data)


def read_header(stream: BinaryIO, transfer_syntax: str, start: int = 0,
                max_inflated: int = MAX_INFLATED_BYTES) -> Header:
    """Parse the raw C-STORE data set at ``start`` in ``stream``; raise :class:`HeaderError` when unusable.

    Error messages name attributes and sizes, never values: a malformed data set can put
    patient data where a UID should be, and the message is logged.
    """
    ts = UID(transfer_syntax)
    if ts == DeflatedExplicitVRLittleEndian:
        stream = _inflate(stream, start, max_inflated)
        start = 0
    stream.seek(0, 2)
    total = stream.tell()
    stream.seek(start)
    stopped: dict[str, int] = {}

    def stop(tag: BaseTag, vr: str | None, length: int) -> bool:
        if int(tag) in _PIXEL_TAGS:
            stopped["tag"], stopped["length"] = int(tag), length
            return True
        return False

    try:
        ds = read_dataset(stream, ts == ImplicitVRLittleEndian, True, stop_when=stop,
                          specific_tags=list(_WANTED))
        header = _extract(ds)
    except HeaderError:
        raise
    except Exception as exc:
        raise HeaderError(CANNOT_UNDERSTAND, f"cannot parse data set: {type(exc).__name__}") from None
    if "tag" not in stopped:
        return dataclasses.replace(header, has_pixels=False)
    header = dataclasses.replace(header, pixel_mismatch=_pixel_mismatch(ds, ts, stopped["length"]))
    if stopped["length"] == 0xFFFFFFFF and is_sized_stream(ts):
        at = stream.tell()
        head = _first_fragment(stream, ts == ImplicitVRLittleEndian)
        stream.seek(at)
        if head:
            header = dataclasses.replace(header, stream_size=stream_size(ts, head))
    _check_pixels(stream, stopped, total, ts == ImplicitVRLittleEndian)
    return header


def _pixel_mismatch(ds: Dataset, ts: UID, length: int) -> str:
    """Why Pixel Data of ``length`` (0xFFFFFFFF: encapsulated) cannot be the image ``ds``
    declares under ``ts``, in words naming sizes and attributes only; empty when it can."""
    if not ts.is_transfer_syntax:
        return ""
    encapsulated = length == 0xFFFFFFFF
    if encapsulated != ts.is_encapsulated:
        return (f"Pixel Data is {'' if encapsulated else 'not '}encapsulated, but the transfer syntax "
                f"{ts.name} is {'not ' if encapsulated else ''}compressed: the data set is not encoded "
                "as negotiated")
    if encapsulated:
        return ""
    try:
        expected = get_expected_length(ds, "bytes")
    except Exception:  # an attribute of the Image Pixel module missing: nothing to compare
        return ""
    if length < expected:
        return (f"Pixel Data is {length} bytes, the header declares {expected} (Rows x Columns x "
                "frames x samples x BitsAllocated): it does not describe these pixels")
    return ""


def _first_fragment(stream: BinaryIO, implicit: bool) -> bytes:
    """The head of the first fragment of encapsulated Pixel Data (the stream is at the
    element's tag); empty when the items are not where PS3.5 A.4 puts them."""
    start = stream.tell()
    stream.seek(start + 4)
    vr = stream.read(2)
    stream.seek(start + (12 if not implicit and vr in (b"OB", b"OW", b"UN") else 8))
    offsets = stream.read(8)  # the Basic Offset Table item, maybe empty
    if len(offsets) < 8 or offsets[:4] != _ITEM:
        return b""
    stream.seek(int.from_bytes(offsets[4:8], "little"), 1)
    item = stream.read(8)
    if len(item) < 8 or item[:4] != _ITEM:
        return b""
    return stream.read(min(int.from_bytes(item[4:8], "little"), _FRAGMENT_HEAD))


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _extract(ds: Dataset) -> Header:
    for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID"):
        text = _text(ds, keyword).rstrip("\x00")
        if not text:
            raise HeaderError(CANNOT_UNDERSTAND, f"no {keyword} in data set; the sender must include it")
        if not is_uid(text):  # e.g. a length field that swallowed the next elements: never echo it
            raise HeaderError(BAD_UID, f"{keyword} is not a DICOM UID ({len(text)} characters; "
                                       "digits and dots, at most 64)")
    rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    frames = int(ds.get("NumberOfFrames") or 1)
    laterality, view = breast_view(ds)
    return Header(
        sop_class=_text(ds, "SOPClassUID"), sop_uid=_text(ds, "SOPInstanceUID"),
        study_uid=_text(ds, "StudyInstanceUID"), series_uid=_text(ds, "SeriesInstanceUID").rstrip("\x00"),
        modality=_text(ds, "Modality").upper(),
        laterality=laterality, view=view, pixels=rows * columns * max(frames, 1), rows=rows, columns=columns,
        decoded_bytes=declared_bytes(ds),
        patient_id=_text(ds, "PatientID"), accession=_text(ds, "AccessionNumber"),
    )


def check_series(header: Header) -> None:
    """Raise :class:`HeaderError` when an image to analyse has no usable Series Instance UID.

    Every result object cites the image's series (the GSPS's Referenced Series Sequence, the
    SRs' evidence: Type 1), so an image without one could only be reported invalidly: it is
    refused at receipt, with the status of a missing or malformed Study Instance UID.
    """
    if not header.series_uid:
        raise HeaderError(CANNOT_UNDERSTAND, "no SeriesInstanceUID in data set; the sender must include it "
                                             "(every result cites the image's series)")
    if not is_uid(header.series_uid):
        raise HeaderError(BAD_UID, f"SeriesInstanceUID is not a DICOM UID ({len(header.series_uid)} "
                                   "characters; digits and dots, at most 64)")
    check_citable(header)


def check_citable(header: Header) -> None:
    """Raise :class:`HeaderError` (0xC001) when a UID every result must cite breaks PS3.5 9.1.

    The spool's rule (``is_uid``) lets a component with a leading zero through, as many
    archives hold such UIDs; but the results cite the image's UIDs exactly as received (the
    PACS matches them character for character), so they could not be both joined to the study
    and valid (docs/CONFORMANCE.md): the sender hears it now, rather than a report never
    arriving after the image was analysed. The value is never echoed (it may carry an ID).
    """
    for keyword, uid in (("StudyInstanceUID", header.study_uid), ("SeriesInstanceUID", header.series_uid),
                         ("SOPInstanceUID", header.sop_uid), ("SOPClassUID", header.sop_class)):
        reason = uid_problem(uid)
        if reason is not None:
            raise HeaderError(BAD_UID, f"{keyword} breaks PS3.5 9.1 ({reason}): the results could not "
                                       "cite it validly; correct the UID at the modality, or have the "
                                       "PACS or a router coerce it, and send the image again")


def _check_pixels(stream: BinaryIO, stopped: dict[str, int], total: int, implicit: bool) -> None:
    length = stopped["length"]
    if length == 0xFFFFFFFF:  # encapsulated: must end with a sequence delimiter
        stream.seek(max(stream.tell(), total - 65536))
        if _SEQ_DELIMITER not in stream.read():
            raise HeaderError(CANNOT_UNDERSTAND, "data set truncated: encapsulated Pixel Data has no delimiter")
        return
    start = stream.tell()
    stream.seek(start + 4)
    vr = stream.read(2)
    header_len = 12 if not implicit and vr in (b"OB", b"OW", b"OF", b"OD", b"UN") else 8
    if length == 0 or start + header_len + length > total:
        raise HeaderError(CANNOT_UNDERSTAND, f"data set truncated: Pixel Data is {length} bytes, "
                                             f"{max(total - start - header_len, 0)} arrived")
