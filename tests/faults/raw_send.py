"""Send exactly the bytes a test wants over a real association (pynetdicom SCU).

pynetdicom streams a data set from a file without decoding it when
``STORE_SEND_CHUNKED_DATASET`` is on, taking the SOP class, instance and transfer syntax
from the file meta. So a test can send a data set whose SOP class differs from the
presentation context, or whose element lengths are absurd, as a broken sender would.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO, DicomFileLike
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import UID, ExplicitVRLittleEndian
from pynetdicom import AE, _config

MG = "1.2.840.10008.5.1.4.1.1.1.2"
PHI_NAME, PHI_ID = "QQPHINAME^ZZSECRET", "PHIID7734XQ"
SECRETS = ("QQPHINAME", "ZZSECRET", PHI_ID)


def body_of(ds: Any) -> bytes:
    """The data set encoded Explicit VR Little Endian, as it travels in C-STORE."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    return fp.getvalue()


@contextmanager
def chunked_send() -> Iterator[None]:
    saved = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        yield
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = saved


def part10(path: Path, body: bytes, *, sop_class: str = MG, sop_uid: str = "1.2.3.4",
           transfer_syntax: str = ExplicitVRLittleEndian) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.8.498.1")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(DicomFileLike(fh), meta, enforce_standard=True)
        fh.write(body)
    return path


def send_files(port: int, files: list[Path], *, contexts: list[tuple[str, str]],
               calling: str = "STORESCU", called: str = "MAMMOCAD", timeout_s: float = 30) -> list[int | None]:
    """C-STORE each file raw under its file-meta SOP class; statuses (None: no answer)."""
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    for sop_class, syntax in dict.fromkeys(contexts):
        ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established, "association refused"
    statuses: list[int | None] = []
    try:
        with chunked_send():
            for path in files:
                rsp = assoc.send_c_store(path)
                statuses.append(int(rsp.Status) if rsp and "Status" in rsp else None)
    finally:
        assoc.release()
    return statuses


def half_sent_store(port: int, ds: Any, *, calling: str = "STORESCU", called: str = "MAMMOCAD") -> Any:
    """An association that has sent the C-STORE command and about half of the data set's
    P-DATA PDUs, and nothing more: the caller ends it (abort, reset) as a sender that
    crashed or lost its network mid-image would. Returns the pynetdicom association."""
    from io import BytesIO

    from pynetdicom.dimse_messages import C_STORE_RQ
    from pynetdicom.dimse_primitives import C_STORE
    from pynetdicom.pdu import P_DATA_TF

    ae = AE(ae_title=calling)
    ae.add_requested_context(ds.SOPClassUID, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established, "association refused"
    request = C_STORE()
    request.MessageID, request.Priority = 1, 2
    request.AffectedSOPClassUID, request.AffectedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    request.DataSet = BytesIO(body_of(ds))
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    context_id = assoc.accepted_contexts[0].context_id
    assert context_id is not None, "an accepted context always has its id"
    primitives = list(message.encode_msg(context_id, 16384))
    sock = assoc.dul.socket
    assert sock is not None, "an established association has its socket"
    for primitive in primitives[:len(primitives) // 2]:
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        sock.send(pdu.encode())
    return assoc


def declare_stream_size(ds: Any, columns: int, rows: int) -> None:
    """Make a JPEG 2000 image's codestream (SIZ) declare another size, as the 934-byte bomb
    did (10,000 x 12,000 pixels); its header's Rows and Columns are left alone."""
    from pydicom.encaps import encapsulate, generate_fragments

    frags = generate_fragments(ds.PixelData)
    next(frags)  # Basic Offset Table
    frag = bytearray(next(frags))
    at = frag.find(b"\xff\x4f\xff\x51") + 4
    frag[at + 4:at + 8], frag[at + 8:at + 12] = columns.to_bytes(4, "big"), rows.to_bytes(4, "big")
    ds.PixelData = encapsulate([bytes(frag)])


def stalled_requests(port: int, n: int, nbytes: int = 20) -> list[socket.socket]:
    """``n`` connections that send the first ``nbytes`` of an A-ASSOCIATE-RQ and stall."""
    head = bytes([0x01, 0x00]) + (200).to_bytes(4, "big") + b"\x00\x01\x00\x00" + b"MAMMOCAD".ljust(16)
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(head[:nbytes])
        out.append(s)
    return out


def probes(port: int, n: int) -> None:
    """``n`` bare connect + close probes (a port scan, a TCP health check)."""
    for _ in range(n):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def absurd_uid_bodies() -> list[tuple[str, bytes]]:
    """Data sets whose SOP Instance UID length field swallows the patient module (or more)."""
    from tests.factories import make_mammogram

    ds = make_mammogram(rows=16, columns=16, patient_name=PHI_NAME, patient_id=PHI_ID)
    body = body_of(ds)
    tag = struct.pack("<HH", 0x0008, 0x0018) + b"UI"
    at = body.index(tag)
    old = struct.unpack("<H", body[at + 6:at + 8])[0]
    out = []
    for name, length in (("swallows the name", old + 200), ("past the end", 0xFFF0)):
        out.append((name, body[:at + 6] + struct.pack("<H", length) + body[at + 8:]))
    # And a UID whose value carries the name itself, well-formed lengths.
    value = (str(ds.SOPInstanceUID) + "." + PHI_NAME + PHI_ID).encode()
    value += b"\x00" * (len(value) % 2)
    swapped = body[:at + 6] + struct.pack("<H", len(value)) + value + body[at + 8 + old:]
    out.append(("carries the name", swapped))
    return out
