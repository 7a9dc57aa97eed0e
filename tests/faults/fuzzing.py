"""A hypothesis-driven fuzzer of data sets and PDUs, sent over real associations to a node.

Shared by the fault suite (a few hundred cases, ``tests/faults/test_fuzz.py``) and
``bench/fuzz.py`` (10,000 and more). Each data set case starts from a small valid image
(explicit or implicit VR, deflated, JPEG 2000) carrying a distinctive patient name and ID,
then flips, truncates, inserts, duplicates bytes or rewrites element length fields, and
is sent raw (no re-encoding) in a C-STORE. Each PDU case opens a connection and sends
bytes that look like the start of a PDU, then closes it.

What must hold afterwards (:meth:`FuzzReport.problems`):

- the node still answers C-ECHO and still stores a valid image;
- every data set it answered Success for is durable in the spool;
- no patient name or ID from the cases appears in any log.
"""

from __future__ import annotations

import socket
import struct
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
)
from pynetdicom import AE

from tests.faults.raw_send import MG, chunked_send, part10

PHI_NAME, PHI_ID = "FUZZPHINAME^QQX", "FUZZPHIID9921"
SECRETS = ("FUZZPHINAME", "FUZZPHIID9921")
_OPS = ("flip", "truncate", "insert", "duplicate", "length16", "length32")


def _encode(ds: Any, implicit: bool) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    write_dataset(fp, ds)
    return fp.getvalue()


def base_cases() -> list[tuple[str, bytes]]:
    """(transfer syntax, data set bytes) of the valid images every case starts from."""
    from tests.factories import make_mammogram

    def image(rows: int = 32, columns: int = 24) -> Any:
        return make_mammogram(rows=rows, columns=columns, patient_name=PHI_NAME, patient_id=PHI_ID)

    explicit = _encode(image(), implicit=False)
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    j2k = image(64, 48)  # openjpeg needs a few resolution levels
    j2k.compress(JPEG2000Lossless)
    return [(ExplicitVRLittleEndian, explicit), (ImplicitVRLittleEndian, _encode(image(), implicit=True)),
            (DeflatedExplicitVRLittleEndian, deflater.compress(explicit) + deflater.flush()),
            (JPEG2000Lossless, _encode(j2k, implicit=False))]


def mutate(body: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    """Apply (operation, position, value) mutations; positions wrap around the body."""
    data = bytearray(body)
    for op, pos, value in ops:
        if not data:
            break
        at = pos % len(data)
        if op == "flip":
            data[at] ^= (value % 255) + 1
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = bytes([value % 256]) * (1 + value % 64)
        elif op == "duplicate":
            data[at:at] = data[at:at + 1 + value % 256]
        elif op == "length16" and at + 8 <= len(data):
            data[at + 6:at + 8] = struct.pack("<H", value % 0x10000)
        elif op == "length32" and at + 8 <= len(data):
            data[at + 4:at + 8] = struct.pack("<I", value % 0x100000000)
    return bytes(data)


@dataclass
class FuzzReport:
    statuses: Counter[str] = field(default_factory=Counter)
    accepted: list[str] = field(default_factory=list)  # SOP Instance UIDs answered Success
    aborted: int = 0
    pdus: int = 0

    def problems(self, spool: Path, logs: str, node_alive: bool) -> list[str]:
        out = [] if node_alive else ["the node no longer answers C-ECHO or stores a valid image"]
        stored = {p.stem for p in spool.rglob("*.dcm")}
        lost = [s for s in self.accepted if s not in stored]
        if lost:
            out.append(f"{len(lost)} data sets answered Success are not in the spool: {lost[:3]}")
        out += [f"patient data {s!r} in the logs" for s in SECRETS if s in logs]
        return out


class Sender:
    """One association at a time to the node; re-opened when the node aborts it."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port, self.workdir = port, workdir
        self.assoc: Any = None
        self.n = 0

    def _open(self) -> Any:
        ae = AE(ae_title="STORESCU")
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
                       JPEG2000Lossless):
            ae.add_requested_context(MG, syntax)
        assoc = ae.associate("127.0.0.1", self.port, ae_title="MAMMOCAD")
        if not assoc.is_established:
            raise RuntimeError("the node refused the association")
        return assoc

    def send(self, syntax: str, body: bytes, sop_uid: str, report: FuzzReport) -> None:
        if self.assoc is None or not self.assoc.is_established:
            self.assoc = self._open()
        self.n += 1
        path = part10(self.workdir / f"case{self.n % 4}.dcm", body, sop_uid=sop_uid, transfer_syntax=syntax)
        try:
            with chunked_send():
                rsp = self.assoc.send_c_store(path)
        except Exception:  # noqa: BLE001 - a broken case may break the association: count it
            report.aborted += 1
            self.assoc = None
            return
        status = int(rsp.Status) if rsp is not None and "Status" in rsp else None
        report.statuses["none" if status is None else f"0x{status:04X}"] += 1
        if status is None:
            report.aborted += 1
            self.assoc = None
        elif status == 0:
            report.accepted.append(sop_uid)

    def close(self) -> None:
        if self.assoc is not None and self.assoc.is_established:
            self.assoc.release()


def _sop_uid(body: bytes) -> str:
    """The SOP Instance UID the mutated body (probably) carries, for the command set."""
    at = body.find(b"\x08\x00\x18\x00")
    if at < 0:
        return "1.2.3.4.5"
    text = body[at + 8:at + 72].split(b"\x00")[0].split(b" ")[0]
    uid = "".join(chr(c) for c in text if chr(c) in "0123456789.")
    return uid.strip(".") or "1.2.3.4.5"


def fuzz_data_sets(port: int, workdir: Path, cases: int, seed_value: int) -> FuzzReport:
    """Send ``cases`` mutated data sets (hypothesis, seeded) over real associations."""
    bases = base_cases()
    report = FuzzReport()
    sender = Sender(port, workdir)
    op = st.tuples(st.sampled_from(_OPS), st.integers(0, 1 << 20), st.integers(0, 1 << 32))

    @seed(seed_value)
    @settings(max_examples=cases, database=None, deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(base=st.integers(0, len(bases) - 1), ops=st.lists(op, min_size=0, max_size=4))
    def one(base: int, ops: list[tuple[str, int, int]]) -> None:
        syntax, body = bases[base]
        mutated = mutate(body, ops)
        sender.send(syntax, mutated, _sop_uid(mutated if syntax != DeflatedExplicitVRLittleEndian else
                                              bases[0][1]), report)

    try:
        one()
    finally:
        sender.close()
    return report


def fuzz_pdus(port: int, cases: int, seed_value: int, report: FuzzReport) -> None:
    """Open ``cases`` connections that each send PDU-shaped garbage and close."""

    @seed(seed_value)
    @settings(max_examples=cases, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(pdu_type=st.integers(0, 255), length=st.integers(0, (1 << 32) - 1), rest=st.binary(max_size=512))
    def one(pdu_type: int, length: int, rest: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            try:
                s.sendall(bytes([pdu_type, 0]) + struct.pack(">I", length) + rest)
            except OSError:
                pass
        report.pdus += 1

    one()


def _rejected_transient(assoc: Any) -> bool:
    """A-ASSOCIATE-RJ with result 2 (rejected-transient: try again later)."""
    primitive = getattr(assoc.acceptor, "primitive", None)
    return bool(assoc.is_rejected and getattr(primitive, "result", None) == 0x02)


def node_alive(port: int, valid_image: Path, transient_for_s: float = 60.0) -> bool:
    """C-ECHO answers and a valid image is stored (Success).

    A transient rejection ("local limit exceeded": the fuzzer's last hundred connections
    still hold acceptor threads until they close or time out) is retried, as a sender
    would, for ``transient_for_s``; a node that stays full or refuses for good is not alive.
    """
    ae = AE(ae_title="STORESCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context("1.2.840.10008.1.1")
    ae.add_requested_context(MG, ExplicitVRLittleEndian)
    deadline = time.monotonic() + transient_for_s
    assoc = ae.associate("127.0.0.1", port, ae_title="MAMMOCAD")
    while _rejected_transient(assoc) and time.monotonic() < deadline:
        time.sleep(0.5)
        assoc = ae.associate("127.0.0.1", port, ae_title="MAMMOCAD")
    if not assoc.is_established:
        return False
    try:
        echo = assoc.send_c_echo()
        store = assoc.send_c_store(valid_image)
        return bool(echo and echo.Status == 0 and store and store.Status == 0)
    finally:
        assoc.release()
