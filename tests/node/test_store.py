"""C-STORE into the node with DCMTK storescu: bytes kept exactly, failures answered per image."""

from __future__ import annotations

import logging
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)
from pynetdicom import AE, _config

from tests import factories
from tests.faults.raw_send import half_sent_store
from tests.node.conftest import AE as NODE_AE
from tests.node.conftest import NodeEnv, data_set_bytes, wait_until

# (file name, transfer syntax made by pydicom, storescu options proposing exactly that syntax)
SYNTAXES = [
    ("explicit", ExplicitVRLittleEndian, ("-R",)),
    ("implicit", ImplicitVRLittleEndian, ("-R", "-xi")),
    ("j2k", JPEG2000Lossless, ("-R", "-xv")),
    ("jls", JPEGLSLossless, ("-R", "-xt")),
    ("rle", RLELossless, ("-R", "-xr")),
]


def test_echo(start_node: Callable[..., NodeEnv]) -> None:
    env = start_node()
    result = env.echoscu()
    assert result.returncode == 0, result.stderr
    assert "Received Echo Response (Success)" in result.stderr


def _assert_spooled_identical(env: NodeEnv, sent: Path) -> Path:
    ds = dcmread(sent, stop_before_pixels=True)
    out = env.spool.image_path(ds.StudyInstanceUID, ds.SOPInstanceUID)
    assert out.exists(), f"{sent.name} not spooled"
    assert data_set_bytes(out) == data_set_bytes(sent), f"{sent.name}: spooled bytes differ"
    assert dcmread(out, stop_before_pixels=True).file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    return out


@pytest.mark.parametrize("streaming", [True, False], ids=["streamed", "in-memory"])
def test_transfer_syntaxes_stored_byte_for_byte(start_node: Callable[..., NodeEnv], tmp_path: Path,
                                                streaming: bool) -> None:
    env = start_node(streaming=streaming)
    sent = []
    for i, (name, ts, opts) in enumerate(SYNTAXES):
        photometric = "MONOCHROME1" if i % 2 else "MONOCHROME2"
        path = factories.write(factories.make_mammogram(transfer_syntax=ts, photometric=photometric, seed=i),
                               tmp_path / f"{name}.dcm")
        result = env.storescu(path, opts=(*opts, "-v"))
        assert result.returncode == 0 and "Store Response (Success)" in result.stderr, result.stderr
        sent.append(path)
    # JPEG Lossless SV1 made by DCMTK itself (pydicom has no encoder for it).
    sv1 = tmp_path / "sv1.dcm"
    plain = factories.write(factories.make_mammogram(seed=9), tmp_path / "plain.dcm")
    subprocess.run(["dcmcjpeg", "+e1", str(plain), str(sv1)], check=True, capture_output=True)
    result = env.storescu(sv1, opts=("-R", "-xs", "-v"))
    assert "Store Response (Success)" in result.stderr, result.stderr
    sent.append(sv1)
    for path in sent:
        out = _assert_spooled_identical(env, path)
        assert dcmread(out).pixel_array.shape == (256, 200)  # decodable with the installed plugins
    env.settle()
    assert len(env.tasks("gpu")) == len(sent)


@pytest.mark.parametrize("streaming", [True, False], ids=["streamed", "in-memory"])
def test_deflated_transfer_syntax(start_node: Callable[..., NodeEnv], tmp_path: Path, streaming: bool) -> None:
    env = start_node(streaming=streaming)
    ds = factories.make_mammogram(photometric="MONOCHROME1")
    path = factories.write(ds, tmp_path / "plain.dcm")
    result = env.storescu(path, opts=("-R", "-xd", "-v"))
    assert "Deflated" in result.stderr and "Store Response (Success)" in result.stderr, result.stderr
    out = dcmread(env.spool.image_path(ds.StudyInstanceUID, ds.SOPInstanceUID))
    assert out.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1.99"
    assert out.PhotometricInterpretation == "MONOCHROME1"
    assert (out.pixel_array == ds.pixel_array).all()


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
@pytest.mark.parametrize("streaming", [True, False], ids=["streamed", "in-memory"])
def test_failures_answered_and_association_continues(start_node: Callable[..., NodeEnv], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, streaming: bool) -> None:
    env = start_node(extra_node="max_pixels = 60000\n", streaming=streaming)
    study = "1.2.826.0.1.3680043.8.498.1"
    no_pixels = factories.make_mammogram(study_uid=study)
    del no_pixels.PixelData
    too_big = factories.make_mammogram(study_uid=study, rows=300, columns=300)
    good = factories.make_mammogram(study_uid=study)
    files = [factories.write(ds, tmp_path / f"{i}.dcm") for i, ds in enumerate((no_pixels, too_big, good))]
    result = env.storescu(*files, opts=("-v", "-nh"))
    responses = [line for line in result.stderr.splitlines() if "Received Store Response" in line]
    assert len(responses) == 3 and "Success" not in responses[0] and "Success" not in responses[1], result.stderr
    assert "Success" in responses[2], result.stderr
    assert not env.spool.image_path(study, no_pixels.SOPInstanceUID).exists()
    assert not env.spool.image_path(study, too_big.SOPInstanceUID).exists()
    assert env.spool.image_path(study, good.SOPInstanceUID).exists()

    # Missing StudyInstanceUID and a truncated data set: storescu will not send those, pynetdicom will.
    missing_study = factories.make_mammogram()
    del missing_study.StudyInstanceUID
    truncated = factories.write(factories.make_mammogram(study_uid=study), tmp_path / "cut.dcm")
    truncated.write_bytes(truncated.read_bytes()[:-5000])  # cut inside Pixel Data
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)  # send file bytes undecoded
    scu = AE(ae_title="STORESCU")
    scu.add_requested_context(factories.MG_PRESENTATION, ExplicitVRLittleEndian)
    assoc = scu.associate("127.0.0.1", env.port, ae_title=NODE_AE)
    assert assoc.is_established
    try:
        status = assoc.send_c_store(missing_study)
        assert status.Status == 0xC000 and "StudyInstanceUID" in status.ErrorComment
        hostile = factories.make_mammogram()
        hostile.StudyInstanceUID = "1.2.3/../../../etc"  # must never become a path
        status = assoc.send_c_store(hostile)
        assert status.Status == 0xC001 and "not a DICOM UID" in status.ErrorComment
        status = assoc.send_c_store(truncated)
        assert status.Status == 0xC000 and "truncated" in status.ErrorComment
        last = factories.make_mammogram(study_uid=study)
        status = assoc.send_c_store(last)
        assert status.Status == 0x0000
    finally:
        assoc.release()
    assert env.spool.image_path(study, last.SOPInstanceUID).exists()
    assert list(env.spool.tmp.iterdir()) == []  # refused data sets left no temporary file


def test_duplicate_stored_and_queued_once(start_node: Callable[..., NodeEnv], tmp_path: Path) -> None:
    env = start_node()
    ds = factories.make_mammogram()
    path = factories.write(ds, tmp_path / "a.dcm")
    for _ in range(2):
        result = env.storescu(path, opts=("-v",))
        assert "Store Response (Success)" in result.stderr, result.stderr
    env.settle()
    assert [args[2] for _, args in env.tasks("gpu")] == [ds.SOPInstanceUID]


@pytest.mark.parametrize("modality", ["MG", "OT"])
def test_secondary_capture_analysed_only_when_mg(start_node: Callable[..., NodeEnv], tmp_path: Path,
                                                 modality: str) -> None:
    env = start_node()
    ds = factories.make_mammogram(sop_class=factories.SECONDARY_CAPTURE)
    ds.Modality = modality
    result = env.storescu(factories.write(ds, tmp_path / "sc.dcm"), opts=("-v",))
    assert "Store Response (Success)" in result.stderr, result.stderr
    env.settle()
    analysed = env.spool.image_path(ds.StudyInstanceUID, ds.SOPInstanceUID).exists()
    aside = env.spool.other_path(ds.StudyInstanceUID, ds.SOPInstanceUID).exists()
    assert (analysed, aside) == ((True, False) if modality == "MG" else (False, True))
    assert len(env.tasks("gpu")) == (1 if modality == "MG" else 0)


def test_other_sop_class_set_aside(start_node: Callable[..., NodeEnv], tmp_path: Path) -> None:
    env = start_node()
    ct = factories.make_mammogram(sop_class=factories.CT_IMAGE)
    ct.Modality = "CT"
    path = factories.write(ct, tmp_path / "ct.dcm")
    result = env.storescu(path, opts=("-v",))
    assert "Store Response (Success)" in result.stderr, result.stderr
    aside = env.spool.other_path(ct.StudyInstanceUID, ct.SOPInstanceUID)
    assert aside.exists() and data_set_bytes(aside) == data_set_bytes(path)
    env.settle()
    assert not env.spool.study_dir(ct.StudyInstanceUID).exists()
    assert env.tasks("gpu") == [] and env.tasks("results") == []


def test_structured_report_without_pixels_set_aside(start_node: Callable[..., NodeEnv], tmp_path: Path) -> None:
    """A PACS forwarding a whole study sends our own SRs back too: accept them, never analyse."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid

    sr = Dataset()
    sr.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.50"
    sr.SOPInstanceUID = generate_uid()
    sr.StudyInstanceUID = generate_uid()
    sr.SeriesInstanceUID = generate_uid()
    sr.Modality = "SR"
    sr.file_meta = FileMetaDataset()
    sr.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sr.file_meta.MediaStorageSOPClassUID = sr.SOPClassUID
    sr.file_meta.MediaStorageSOPInstanceUID = sr.SOPInstanceUID
    path = tmp_path / "sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    env = start_node()
    result = env.storescu(path, opts=("-v",))
    assert "Store Response (Success)" in result.stderr, result.stderr
    assert env.spool.other_path(sr.StudyInstanceUID, sr.SOPInstanceUID).exists()
    env.settle()
    assert env.tasks("gpu") == []


def test_mammogram_without_pixels_refused(start_node: Callable[..., NodeEnv], tmp_path: Path) -> None:
    ds = factories.make_mammogram()
    del ds.PixelData
    path = factories.write(ds, tmp_path / "nopixels.dcm")
    env = start_node()
    result = env.storescu(path, opts=("-v", "-nh"))
    assert "DataSetDoesNotMatchSOPClass" in result.stderr, result.stderr  # 0xA900
    assert not env.spool.image_path(ds.StudyInstanceUID, ds.SOPInstanceUID).exists()


def _open_files_under(folder: Path) -> list[str]:
    """Paths under ``folder`` this process holds open (the node runs in-process)."""
    out = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith(str(folder)):
            out.append(target)
    return out


@pytest.mark.parametrize("ending", ["abort", "reset"])
def test_transfer_ended_mid_image_leaves_no_partial_file(start_node: Callable[..., NodeEnv], tmp_path: Path,
                                                         ending: str) -> None:
    """A sender that aborts or loses its connection half-way through an image: the partial
    receive file is closed and removed at once (it used to stay open in spool/tmp, an fd and
    the partial image per aborted transfer, until the node restarted), and a re-send is stored."""
    env = start_node()
    ds = factories.make_mammogram(rows=1500, columns=1200)
    assoc = half_sent_store(env.port, ds)
    wait_until(lambda: list(env.spool.tmp.glob(".rx-*.part")), what="the partial receive file")
    if ending == "abort":
        assoc.abort()
    else:  # RST, as a sender whose host went away
        sock = assoc.dul.socket.socket
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        assoc.kill()
    wait_until(lambda: not list(env.spool.tmp.iterdir()), timeout=30, what="the partial receive file to go")
    wait_until(lambda: not _open_files_under(env.spool.root), timeout=30, what="its descriptor to be closed")
    result = env.storescu(factories.write(ds, tmp_path / "again.dcm"), opts=("-v",))
    assert "Store Response (Success)" in result.stderr, result.stderr
    assert env.spool.image_path(ds.StudyInstanceUID, ds.SOPInstanceUID).exists()


@pytest.mark.parametrize("streaming", [True, False], ids=["streamed", "in-memory"])
def test_spool_that_cannot_take_the_image_answers_out_of_resources(start_node: Callable[..., NodeEnv],
                                                                   tmp_path: Path, streaming: bool,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """The receive file cannot even be created (here spool/tmp is not a folder; as root, the
    stand-in for a read-only remount, a wrong owner or no file descriptors left): the sender
    gets 0xA700 and a store_failed line, as for a full disk, not an aborted association
    from a crashed network thread; the re-send is stored once the spool is fixed."""
    env = start_node(streaming=streaming)
    path = factories.write(factories.make_mammogram(), tmp_path / "a.dcm")
    env.spool.tmp.rmdir()
    env.spool.tmp.write_text("not a folder")
    result = env.storescu(path, opts=("-v",))
    assert "Received Store Response (Refused: OutOfResources)" in result.stderr, result.stderr
    assert any(r.getMessage() == "store_failed" for r in caplog.records)
    env.spool.tmp.unlink()
    result = env.storescu(path, opts=("-v",))
    assert "Store Response (Success)" in result.stderr, result.stderr


def _conflicts(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "duplicate_conflict"]


def test_instance_sent_again_under_another_study_refused_across_restarts(
        start_node: Callable[..., NodeEnv], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One SOP Instance UID is one image (PS3.3 C.12.1.1.1), so it is held by one study: the
    same instance sent again under another Study Instance UID would be analysed and reported
    twice, in two studies. It is refused (0xC003) with one line naming both studies, also
    after a node restart; the study that holds it keeps it, and nothing more is queued."""
    first = factories.make_mammogram()
    again = factories.make_mammogram(sop_uid=str(first.SOPInstanceUID))  # another study
    set_aside = factories.make_mammogram(sop_class=factories.CT_IMAGE)
    set_aside.Modality = "CT"
    set_aside_again = factories.make_mammogram(sop_uid=str(set_aside.SOPInstanceUID), sop_class=factories.CT_IMAGE)
    set_aside_again.Modality = "CT"
    env = start_node()
    with caplog.at_level(logging.INFO, logger="mammocad"):
        stored = env.storescu(factories.write(first, tmp_path / "first.dcm"),
                              factories.write(set_aside, tmp_path / "ct.dcm"), opts=("-v",))
        assert stored.stderr.count("Store Response (Success)") == 2, stored.stderr
        for attempt in range(2):  # the second one after a restart: the spool remembers
            if attempt:
                env.node.stop()
                env = start_node()
            result = env.storescu(factories.write(again, tmp_path / "again.dcm"),
                                  factories.write(set_aside_again, tmp_path / "ct-again.dcm"), opts=("-v", "-nh"))
            responses = [line for line in result.stderr.splitlines() if "Received Store Response" in line]
            assert len(responses) == 2 and all("Error: CannotUnderstand" in r for r in responses), result.stderr
    assert not env.spool.study_dir(str(again.StudyInstanceUID)).exists()
    assert not env.spool.other_path(str(set_aside_again.StudyInstanceUID), str(set_aside.SOPInstanceUID)).exists()
    assert env.spool.image_path(str(first.StudyInstanceUID), str(first.SOPInstanceUID)).exists()
    conflicts = _conflicts(caplog)
    assert len(conflicts) == 4
    assert conflicts[0].status == "0xC003"  # type: ignore[attr-defined]
    assert conflicts[0].study == str(again.StudyInstanceUID)  # type: ignore[attr-defined]
    assert conflicts[0].held_by == str(first.StudyInstanceUID)  # type: ignore[attr-defined]
    env.settle()
    assert [args[2] for _, args in env.tasks("gpu")] == [str(first.SOPInstanceUID)] * 2  # restart requeues it


def test_instance_of_a_study_no_longer_in_the_spool_is_accepted_under_another(
        start_node: Callable[..., NodeEnv], tmp_path: Path) -> None:
    """The study that held it was removed (retention): the spool holds the image nowhere now."""
    first = factories.make_mammogram()
    again = factories.make_mammogram(sop_uid=str(first.SOPInstanceUID))
    env = start_node()
    assert "Success" in env.storescu(factories.write(first, tmp_path / "first.dcm"), opts=("-v",)).stderr
    shutil.rmtree(env.spool.study_dir(str(first.StudyInstanceUID)))
    result = env.storescu(factories.write(again, tmp_path / "again.dcm"), opts=("-v",))
    assert "Store Response (Success)" in result.stderr, result.stderr
    assert env.spool.image_path(str(again.StudyInstanceUID), str(again.SOPInstanceUID)).exists()


def test_images_after_retention_pruned_their_study(start_node: Callable[..., NodeEnv], tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Retention removed a delivered study; then the PACS sends it again with one new image.
    An image the pruned report covered is answered Success without being stored or analysed
    again (it would make a second report of it); the new one is stored and analysed."""
    import json
    import os

    from mammocad.spool.retention import prune

    reported, new = factories.make_mammogram(), factories.make_mammogram(view="MLO")
    study = str(reported.StudyInstanceUID)
    new.StudyInstanceUID = study
    env = start_node()
    assert "Success" in env.storescu(factories.write(reported, tmp_path / "reported.dcm"), opts=("-v",)).stderr
    folder = env.spool.study_dir(study)
    env.spool.reports_dir(study).mkdir()
    env.spool.report_path(study, "key").write_text(json.dumps({"sop_uids": [str(reported.SOPInstanceUID)]}))
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (1.0, 1.0))
    assert prune(env.spool.root, 60).studies == [study]
    with caplog.at_level(logging.INFO, logger="mammocad"):
        result = env.storescu(factories.write(reported, tmp_path / "reported.dcm"),
                              factories.write(new, tmp_path / "new.dcm"), opts=("-v",))
    assert result.stderr.count("Store Response (Success)") == 2, result.stderr
    assert env.spool.image_sops(study) == [str(new.SOPInstanceUID)]
    [again] = [r for r in caplog.records if r.getMessage() == "duplicate"]
    assert again.sop == str(reported.SOPInstanceUID) and "pruned" in again.reason  # type: ignore[attr-defined]
    env.settle()
    assert [args[2] for _, args in env.tasks("gpu")][-1:] == [str(new.SOPInstanceUID)]
    assert [args[2] for _, args in env.tasks("gpu")].count(str(reported.SOPInstanceUID)) == 1  # the first time
