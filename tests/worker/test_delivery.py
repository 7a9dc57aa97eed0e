"""Delivery to real DCMTK storescp peers: C-STORE, backoff, dead-letter, retry, isolation."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from pydicom import dcmread

from mammocad.config import Destination
from mammocad.spool.outbox import Outbox
from mammocad.worker.delivery import DeliveryError, store_files
from mammocad.worker.outbox_delivery import revive, schedule_delivery
from tests.factories import make_mammogram, put_new, write
from tests.services import free_port
from tests.worker.conftest import StoreSCP, make_settings, wait_until


def _files(folder: Path, n: int = 2) -> list[Path]:
    return [write(make_mammogram(rows=32, columns=24, seed=i), folder / f"{i}.dcm") for i in range(n)]


@pytest.mark.parametrize("associations", [1, 3, 8])
def test_store_files_arrive(tmp_path: Path, storescp: StoreSCP, associations: int) -> None:
    files = _files(tmp_path / "out", 5)
    statuses = store_files(storescp.destination(), files, calling_ae="MAMMOCAD", timeout_s=5,
                           associations=associations)
    assert [s.path for s in statuses] == files  # one status per file, in the order given
    assert [s.ok for s in statuses] == [True] * 5 and all(s.status == 0 for s in statuses)
    got = {str(dcmread(p).SOPInstanceUID) for p in storescp.received()}
    assert got == {str(dcmread(p).SOPInstanceUID) for p in files}


@pytest.mark.parametrize("accept_compressed", [True, False])
def test_jpeg_secondary_capture_is_decompressed_for_a_peer_that_refuses_jpeg(tmp_path: Path,
                                                                            accept_compressed: bool) -> None:
    from mammocad.config import OutputKind
    from mammocad.results.outputs import build_outputs
    from tests.results.outputs_fixtures import make_case, write_all

    study, sources = make_case((2, 0))
    files = write_all(build_outputs(study, sources, [OutputKind.SECONDARY_CAPTURE, OutputKind.MAMMO_CAD_SR]),
                      tmp_path / "out")
    assert {str(dcmread(f).file_meta.TransferSyntaxUID) for f in files} >= {"1.2.840.10008.1.2.4.50"}
    with StoreSCP(tmp_path / "pacs", accept_compressed=accept_compressed) as scp:
        statuses = store_files(scp.destination(), files, calling_ae="MAMMOCAD", timeout_s=5)
        assert [s.ok for s in statuses] == [True] * len(files), statuses
        received = {str(d.SOPInstanceUID): d for d in map(dcmread, scp.received())}
    for f in files:
        sent = dcmread(f)
        got = received[str(sent.SOPInstanceUID)]
        if sent.SOPClassUID != "1.2.840.10008.5.1.4.1.1.7":
            continue
        if accept_compressed:  # stored as sent, byte for byte
            assert got.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50" and got.PixelData == sent.PixelData
        else:  # the same picture, uncompressed RGB
            assert not got.file_meta.TransferSyntaxUID.is_compressed and got.PhotometricInterpretation == "RGB"
            assert got.pixel_array.shape == sent.pixel_array.shape
            assert abs(got.pixel_array.astype(int) - sent.pixel_array.astype(int)).max() <= 2


def test_store_files_closed_port_names_the_peer(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A refused connection says so (not "check that the PACS lists AE ..."), and pynetdicom
    adds no ERROR lines of its own (it used to add four per attempt)."""
    dest = Destination(name="down", ae_title="PACS", host="127.0.0.1", port=free_port())
    refused = r"\[connection-refused\] connection refused by down \(PACS@127.0.0.1:\d+\): nothing listens"
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(DeliveryError, match=refused) as info:
            store_files(dest, _files(tmp_path), calling_ae="MAMMOCAD", timeout_s=2)
        assert "lists AE" not in str(info.value)
        with pytest.raises(DeliveryError, match=refused):
            store_files(dest, _files(tmp_path), calling_ae="MAMMOCAD", timeout_s=2, associations=2)
    assert not [r for r in caplog.records if r.name.startswith("pynetdicom") and r.levelno >= logging.ERROR]


def test_unreadable_file_is_reported_others_sent(tmp_path: Path, storescp: StoreSCP) -> None:
    files = _files(tmp_path / "out", 1)
    bad = tmp_path / "out" / "bad.dcm"
    bad.write_bytes(b"not dicom")
    statuses = store_files(storescp.destination(), files + [bad], calling_ae="MAMMOCAD", timeout_s=5)
    assert statuses[0].ok and not statuses[1].ok and "cannot read" in (statuses[1].error or "")
    assert len(storescp.received()) == 1


def test_deliver_task_sends_and_deletes(tmp_path: Path, storescp: StoreSCP, celery_worker) -> None:
    spool = tmp_path / "spool"
    settings = make_settings(spool, [storescp.destination()])
    app = celery_worker(settings)
    item = put_new(Outbox(spool), "pacs", "rep", [make_mammogram(rows=32, columns=24, seed=i) for i in range(2)])
    schedule_delivery(app, str(spool), item)
    wait_until(lambda: Outbox(spool).get("pacs", "rep") is None, 20, "the item to be delivered and removed")
    assert len(storescp.received()) == 2


def test_down_destination_backs_off_then_dead_letters_and_retry_sends(tmp_path: Path, celery_worker) -> None:
    spool = tmp_path / "spool"
    scp = StoreSCP(tmp_path / "late", port=free_port())
    settings = make_settings(spool, [scp.destination("late")],
                             delivery={"retry_initial_s": 0.2, "retry_max_s": 0.8, "deadline_s": 2.5})
    app = celery_worker(settings)
    item = put_new(Outbox(spool), "late", "rep", [make_mammogram(rows=32, columns=24)])
    t0 = time.monotonic()
    schedule_delivery(app, str(spool), item)
    dead = wait_until(lambda: Outbox(spool).items(dead=True), 20, "the item to reach the dead-letter folder")
    elapsed = time.monotonic() - t0
    # 0.2, 0.4, 0.8, 0.8... until 2.5 s: a handful of attempts, not a tight loop nor a single one
    assert 4 <= dead[0].attempts <= 8, dead[0].attempts
    assert elapsed >= 2.5  # it kept trying until the deadline (a lower bound: load only adds to it)
    assert "late (PACS@127.0.0.1" in dead[0].last_error
    assert Outbox(spool).items() == []
    scp.start()
    try:
        revive(app, str(spool), "late", "rep")
        wait_until(lambda: scp.received(), 20, "the revived item to arrive")
        wait_until(lambda: not Outbox(spool).items(), 10, "the outbox to empty")
    finally:
        scp.stop()


def test_one_destination_down_does_not_delay_the_other(tmp_path: Path, storescp: StoreSCP, celery_worker) -> None:
    spool = tmp_path / "spool"
    down = Destination(name="down", ae_title="PACS", host="127.0.0.1", port=free_port())
    settings = make_settings(spool, [down, storescp.destination("up")], delivery={"deadline_s": 60})
    app = celery_worker(settings)
    outbox = Outbox(spool)
    ds = [make_mammogram(rows=32, columns=24)]
    for name in ("down", "up"):
        schedule_delivery(app, str(spool), put_new(outbox, name, "rep", ds))
    wait_until(lambda: storescp.received(), 30, "the healthy destination to receive its item")
    # The healthy item is done while the down one still retries (deadline 60 s): no waiting on it.
    wait_until(lambda: [i.destination for i in outbox.items()] == ["down"], 30, "the healthy item to be removed")
    assert not outbox.items(dead=True)
    retrying = wait_until(lambda: [i for i in outbox.items() if i.attempts >= 2], 10, "retries of the down one")
    assert [i.destination for i in retrying] == ["down"]


def test_sweeper_requeues_items_without_a_live_task(tmp_path: Path, storescp: StoreSCP, celery_worker) -> None:
    from mammocad.worker.outbox_delivery import requeue_due

    spool = tmp_path / "spool"
    app = celery_worker(make_settings(spool, [storescp.destination()]))
    outbox = Outbox(spool)
    outbox.put("pacs", "orphan", [make_mammogram(rows=32, columns=24)])  # never scheduled (crash)
    assert requeue_due(app, str(spool), grace_s=60) == 0  # not overdue by the grace yet
    assert requeue_due(app, str(spool), grace_s=0) == 1  # worker start: everything due goes
    wait_until(lambda: storescp.received(), 15, "the orphan item to be delivered")


#: A storescp association profile that stores digital mammograms only (a PACS refusing a SOP class).
_MG_ONLY = """[[TransferSyntaxes]]
[Uncompressed]
TransferSyntax1 = LocalEndianExplicit
TransferSyntax2 = LittleEndianImplicit
[[PresentationContexts]]
[MGOnly]
PresentationContext1 = VerificationSOPClass\\Uncompressed
PresentationContext2 = DigitalMammographyXRayImageStorageForPresentation\\Uncompressed
[[Profiles]]
[MG]
PresentationContexts = MGOnly
"""


def test_objects_a_peer_stored_are_audited_as_sent_and_only_the_refused_ones_as_failed(tmp_path: Path) -> None:
    """A destination stores two objects of an item and refuses the third (no context for its SOP
    class, so the item is dead-lettered at that attempt). The two left this node with patient data: they are audited as transferred when the
    attempt stores them, and the dead letter's failure names only the one never confirmed (it
    named all three as failed, and the two stored were never audited as sent)."""
    import xml.etree.ElementTree as ET

    from mammocad.audit import AuditTrail, Identity
    from mammocad.worker.outbox_delivery import attempt
    from tests.audit.schema import problems
    from tests.audit.xpath import attribute

    config = tmp_path / "mg-only.cfg"
    config.write_text(_MG_ONLY)
    scp = StoreSCP(tmp_path / "rx", accept_compressed=False, args=("-xf", str(config), "MG")).start()
    try:
        spool = tmp_path / "spool"
        outbox = Outbox(spool)
        study = "1.2.826.0.1.3680043.8.498.1"
        sc = make_mammogram(rows=32, columns=24, seed=9, sop_class="1.2.840.10008.5.1.4.1.1.7", study_uid=study)
        mg = [make_mammogram(rows=32, columns=24, seed=i, study_uid=study) for i in range(2)]
        item = outbox.put("pacs", "rep", [*mg, sc])
        assert item is not None
        settings = make_settings(spool, [scp.destination("pacs")], delivery={"deadline_s": 60})
        trail = AuditTrail(Identity.make("MAMMOCAD"), file=tmp_path / "audit.log")
        # the refusal of a SOP class is permanent: the first attempt gives the rest up
        assert attempt(settings, outbox, item, trail)[0] == "dead"
        item = outbox.get("pacs", "rep", dead=True)
        assert item is not None and len(item.delivered) == 2
        trail.close()
        assert len(scp.received()) == 2
    finally:
        scp.stop()
    outcomes = []
    for line in (tmp_path / "audit.log").read_bytes().splitlines():
        assert problems(line) == [], problems(line)
        root = ET.fromstring(line)
        classes = {c.get("UID"): c.get("NumberOfInstances") for c in root.iter("SOPClass")}
        patients = [o.get("ParticipantObjectID") for o in root.iter("ParticipantObjectIdentification")
                    if o.get("ParticipantObjectTypeCodeRole") == "1"]
        outcomes.append((attribute(root, "EventIdentification", "EventOutcomeIndicator"), classes, patients))
    assert outcomes == [("0", {"1.2.840.10008.5.1.4.1.1.1.2": "2"}, ["PID-TEST-0001"]),
                        ("8", {"1.2.840.10008.5.1.4.1.1.7": "1"}, ["PID-TEST-0001"])], outcomes
