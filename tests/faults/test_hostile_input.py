"""Hostile or broken input at the node: stalls, probes, bombs, mismatched classes, PHI (issue 12).

An in-process node with a real redis; DCMTK storescu as the real sender; raw bytes sent
over real associations where a broken sender is needed (tests/faults/raw_send.py).
"""

from __future__ import annotations

import logging
import socket
import struct
import zlib
from pathlib import Path

import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, JPEG2000Lossless

from mammocad.logs import KeyValueFormatter
from tests.factories import make_four_view_study, make_mammogram, write
from tests.faults.raw_send import (
    MG,
    PHI_ID,
    absurd_uid_bodies,
    body_of,
    declare_stream_size,
    part10,
    probes,
    send_files,
    stalled_requests,
)
from tests.services import wait_until

pytestmark = pytest.mark.faults

CT = "1.2.840.10008.5.1.4.1.1.2"




def _closed_by_peer(sock: socket.socket) -> bool:
    sock.settimeout(0.2)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_stalled_and_probing_connections_do_not_lock_senders_out(tmp_path: Path, start_node) -> None:
    env = start_node(extra_node="max_associations = 4\nassociation_timeout_s = 2\nnetwork_timeout_s = 2")
    stalled = stalled_requests(env.port, 16)
    probes(env.port, 16)
    study = make_four_view_study(rows=64, columns=48)
    files = [write(ds, tmp_path / "in" / f"{i}.dcm") for i, ds in enumerate(study)]
    try:
        proc = env.storescu(*files)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert len(env.spool.image_sops(str(study[0].StudyInstanceUID))) == 4
        # The node gives the stalled half-requests up on its own (ARTIM / read timeout): their
        # threads end and the sockets are closed.
        wait_until(lambda: not env.node.ae.active_associations, 60, "the node to drop stalled connections")
        assert sum(_closed_by_peer(s) for s in stalled) == len(stalled)
    finally:
        for s in stalled:
            s.close()


def test_a_deflate_bomb_is_refused_before_it_is_inflated(tmp_path: Path, start_node) -> None:
    env = start_node(extra_node="max_inflated_mb = 16")
    ds = make_mammogram(rows=64, columns=48)
    del ds.PixelData
    head = body_of(ds)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    size = 600 << 20  # 600 MB of zeros in a 7FE0,0010 OB element
    out = [deflater.compress(head + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, size))]
    zeros = bytes(1 << 20)
    out += [deflater.compress(zeros) for _ in range(size >> 20)]
    out.append(deflater.flush())
    body = b"".join(out)
    assert len(body) < 1 << 20  # under 1 MB on the wire
    path = part10(tmp_path / "bomb.dcm", body, sop_uid=str(ds.SOPInstanceUID),
                  transfer_syntax=DeflatedExplicitVRLittleEndian)
    statuses = send_files(env.port, [path], contexts=[(MG, DeflatedExplicitVRLittleEndian)])
    assert statuses == [0xA700]
    assert not list(env.spool.studies.rglob("*.dcm"))


def test_a_jpeg2000_bomb_is_refused_at_the_node(tmp_path: Path, start_node,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """A small JPEG 2000 stream declaring 10,000 x 12,000 pixels never reaches a decoder: the
    node reads the stream's SIZ from the first fragment and refuses it while the sender waits."""
    caplog.set_level(logging.WARNING, logger="mammocad.node")
    env = start_node()  # worker.max_decoded_mb: the default 128 MB

    def j2k(name: str, header: tuple[int, int] | None) -> tuple[Path, str]:
        ds = make_mammogram(rows=64, columns=48)
        ds.compress(JPEG2000Lossless)
        if header is not None:
            declare_stream_size(ds, 10_000, 12_000)
            ds.Rows, ds.Columns = header
        body = body_of(ds)
        assert len(body) < 8000  # a few kB on the wire
        return part10(tmp_path / f"{name}.dcm", body, sop_uid=str(ds.SOPInstanceUID),
                      transfer_syntax=JPEG2000Lossless), str(ds.SOPInstanceUID)

    lying, lying_sop = j2k("lying", (64, 48))  # the header says 48 x 64, the stream 10,000 x 12,000
    honest, honest_sop = j2k("honest", (12_000, 10_000))  # 240 MB decoded: inside node.max_pixels
    valid, valid_sop = j2k("valid", None)
    statuses = send_files(env.port, [lying, honest, valid], contexts=[(MG, JPEG2000Lossless)])
    assert statuses == [0xC000, 0xC002, 0x0000]
    stored = {p.stem for p in env.spool.studies.rglob("*.dcm")}
    assert stored == {valid_sop}, stored
    refused = {str(getattr(r, "sop", "")): str(getattr(r, "error", "")) for r in caplog.records
               if r.getMessage() == "store_refused"}
    assert "declares 10000 x 12000 pixels, the header 48 x 64" in refused[lying_sop]
    assert "240 MB" in refused[honest_sop] and "worker.max_decoded_mb 128" in refused[honest_sop]


def test_pixel_data_that_cannot_be_the_declared_image_is_refused(tmp_path: Path, start_node,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A header declaring 3000 x 2000 pixels over 6 kB of native Pixel Data, native pixels
    under a JPEG 2000 context and a JPEG 2000 stream under an uncompressed one: none can be
    decoded (pydicom: "less than expected", no Basic Offset Table), so the sender gets
    0xC000 instead of Success followed by "CAD failed"."""
    caplog.set_level(logging.WARNING, logger="mammocad.node")
    env = start_node()
    tiny = make_mammogram(rows=64, columns=48)
    tiny.Rows, tiny.Columns = 3000, 2000  # 12 MB declared: inside every size limit
    native = make_mammogram(rows=64, columns=48)
    compressed = make_mammogram(rows=64, columns=48)
    compressed.compress(JPEG2000Lossless)
    valid = make_mammogram(rows=64, columns=48)
    sent = [(tiny, ExplicitVRLittleEndian), (native, JPEG2000Lossless), (compressed, ExplicitVRLittleEndian),
            (valid, ExplicitVRLittleEndian)]
    paths = [part10(tmp_path / f"{i}.dcm", body_of(ds), sop_uid=str(ds.SOPInstanceUID), transfer_syntax=ts)
             for i, (ds, ts) in enumerate(sent)]
    statuses = send_files(env.port, paths, contexts=[(MG, ExplicitVRLittleEndian), (MG, JPEG2000Lossless)])
    assert statuses == [0xC000, 0xC000, 0xC000, 0x0000]
    assert {p.stem for p in env.spool.studies.rglob("*.dcm")} == {str(valid.SOPInstanceUID)}
    refused = {str(getattr(r, "sop", "")): str(getattr(r, "error", "")) for r in caplog.records
               if r.getMessage() == "store_refused"}
    assert "6144 bytes" in refused[str(tiny.SOPInstanceUID)] and "12000000" in refused[str(tiny.SOPInstanceUID)]
    assert "not encapsulated" in refused[str(native.SOPInstanceUID)]
    assert "encapsulated" in refused[str(compressed.SOPInstanceUID)]


def test_a_data_set_under_another_sop_class_s_context_is_refused(tmp_path: Path, start_node) -> None:
    env = start_node()
    ds = make_mammogram(rows=64, columns=48)  # Digital Mammography, sent under a CT context
    path = part10(tmp_path / "mg-as-ct.dcm", body_of(ds), sop_class=CT, sop_uid=str(ds.SOPInstanceUID))
    assert send_files(env.port, [path], contexts=[(CT, ExplicitVRLittleEndian)]) == [0xA900]
    assert not list(env.spool.studies.rglob("*.dcm")) and not list(env.spool.other.rglob("*.dcm"))


def test_malformed_data_sets_never_put_patient_data_in_the_log(tmp_path: Path, start_node,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    env = start_node()
    paths = [part10(tmp_path / f"phi{i}.dcm", body) for i, (_, body) in enumerate(absurd_uid_bodies())]
    statuses = send_files(env.port, paths, contexts=[(MG, ExplicitVRLittleEndian)])
    assert all(s is not None and s != 0 for s in statuses), statuses
    text = "\n".join(KeyValueFormatter().format(r) for r in caplog.records)
    assert "store_refused" in text
    for secret in ("QQPHINAME", "ZZSECRET", PHI_ID):
        assert secret not in text
