"""``mammocad studies`` and ``mammocad outbox drop`` against a real worker, redis and storescp.

One study through analysis and delivery to two destinations (one down), then: the status per
destination, ``resend`` (same objects again), ``reanalyse`` (an amended report with new UIDs
citing the previous one), ``outbox drop`` (audited, study no longer waits), and items of a
removed destination dead-lettered at once with the reason.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from pydicom import dcmread

from mammocad.audit.events import os_user
from mammocad.config import Destination, OutputKind, load_settings
from mammocad.spool.leases import held, lease_path
from mammocad.spool.outbox import Outbox
from mammocad.spool.records.report import ReportRecord
from mammocad.spool.studies import StudyFiles, report_key
from mammocad.spool.tasks import TASK_ANALYZE_IMAGE, TASK_FINALIZE_STUDY
from mammocad.studies.actions import reanalyse, resend
from mammocad.studies.status import all_statuses, study_status
from mammocad.worker.outbox_delivery import attempt, schedule_delivery
from tests.audit import xpath
from tests.audit.schema import problems
from tests.services import free_port
from tests.worker.conftest import StoreSCP, make_settings, spool_study, wait_until, write_config

SR = "1.2.840.10008.5.1.4.1.1.88.50"
PATIENT = "PID-TEST-0001"  # tests.factories.make_mammogram's
#: A configured PACS the spool-only tests never reach (nothing is delivered while they run).
OFFLINE_PACS = Destination(name="pacs", ae_title="PACS", host="127.0.0.1", port=104)


def _audited(audit_log: Path, event_id: str, study_uid: str) -> ET.Element:
    """The one message of ``event_id`` about ``study_uid``, checked against the schema; it must
    name the OS user as requestor, the study and the patient, each where PS3.15 A.5 puts them."""
    found = []
    for line in audit_log.read_bytes().splitlines():
        root = ET.fromstring(line)
        objects = {(o.get("ParticipantObjectID"), xpath.attribute(o, "ParticipantObjectIDTypeCode", "csd-code"))
                   for o in root.iter("ParticipantObjectIdentification")}
        if xpath.attribute(root, "EventIdentification/EventID", "csd-code") == event_id and (study_uid, "110180") in objects:
            assert problems(line) == [], problems(line)
            assert (PATIENT, "2") in objects
            found.append(root)
    assert len(found) == 1, f"{len(found)} messages {event_id} about {study_uid}"
    requestors = [p.get("UserID") for p in found[0].iter("ActiveParticipant") if p.get("UserIsRequestor") == "true"]
    assert requestors == [os_user().user_id]
    return found[0]


def _mammocad(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mammocad", *args, "--config", str(cfg)],
                          capture_output=True, text=True, timeout=120)


def test_see_and_act_on_a_study(tmp_path: Path, random_weights: Path, storescp: StoreSCP, celery_worker,
                                redis_url: str) -> None:
    spool = tmp_path / "spool"
    down = Destination(name="down", ae_title="DOWN", host="127.0.0.1", port=free_port(),
                       outputs=[OutputKind.MAMMO_CAD_SR])  # nothing listens: its item stays pending
    cfg = write_config(tmp_path, spool, random_weights, broker_url=redis_url, audit=True, deadline_s=600,
                       destinations=[storescp.destination(outputs=[OutputKind.MAMMO_CAD_SR]), down])
    settings = load_settings(cfg)
    app = celery_worker(settings, cfg)
    study_uid, sops = spool_study(spool)
    for sop in sops:
        app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sop])
    app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, sops])
    files = StudyFiles(spool, study_uid)
    first = files.report(report_key(sops, "0.0.0-random"))
    wait_until(first.exists, 120, "the study report")
    wait_until(lambda: study_status(spool, study_uid).destinations.get("pacs") == "delivered", 60, "delivery")
    wait_until(lambda: "down" in study_status(spool, study_uid).errors, 60, "a failed attempt at 'down'")

    status = study_status(spool, study_uid)
    assert (status.images, status.analysed, status.revision) == (4, 4, 0)
    assert status.destinations == {"pacs": "delivered", "down": "pending"} and status.state == "pending"
    assert "connection refused" in status.errors["down"]
    assert [s.study_uid for s in all_statuses(spool, "pending")] == [study_uid]
    assert all_statuses(spool, "delivered") == []
    listing = _mammocad(cfg, "studies", "list")
    assert listing.returncode == 0 and study_uid in listing.stdout and "down=pending, pacs=delivered" in listing.stdout
    rows = [json.loads(line) for line in _mammocad(cfg, "studies", "list", "--json").stdout.splitlines()]
    assert rows[0]["destinations"] == {"down": "pending", "pacs": "delivered"}
    outbox_listing = _mammocad(cfg, "outbox", "list")
    assert study_uid in outbox_listing.stdout, outbox_listing.stdout  # the study, not only a hash

    # resend: the same SR (same UID) is queued and confirmed again.
    original = {str(dcmread(p).SOPInstanceUID) for p in storescp.received()}
    items = resend(settings, study_uid, ["pacs"])
    assert [i.item_id for i in items] == [f"{first.stem}.s1"]
    wait_until(lambda: Outbox(spool).get("pacs", items[0].item_id) is None, 60, "the re-sent item confirmed")
    assert {str(dcmread(p).SOPInstanceUID) for p in storescp.received()} == original
    audit_log = tmp_path / "audit.log"
    resent = _audited(audit_log, "110102", study_uid)  # Begin Transferring DICOM Instances
    assert "mammocad studies resend" in xpath.text(resent, "EventIdentification/EventOutcomeDescription")
    assert [p.get("UserID") for p in resent.iter("ActiveParticipant")][2] == "PACS"  # the destination

    # reanalyse: a new SR (new UID) citing the first as predecessor.
    assert reanalyse(settings, study_uid).revision == 1
    amended = files.report(report_key(sops, "0.0.0-random", 1))
    wait_until(amended.exists, 120, "the amended report")
    wait_until(lambda: len(storescp.received()) == 2, 60, "the amended SR at the PACS")
    srs = {str(ds.SOPInstanceUID): ds for ds in map(dcmread, storescp.received())}
    new_uid = (set(srs) - original).pop()
    cited = [ref.ReferencedSOPInstanceUID for st in srs[new_uid].PredecessorDocumentsSequence
             for se in st.ReferencedSeriesSequence for ref in se.ReferencedSOPSequence]
    assert cited == sorted(original) and str(srs[new_uid].SOPClassUID) == SR
    assert study_status(spool, study_uid).revision == 1
    reanalysed = _audited(audit_log, "110103", study_uid)  # DICOM Instances Accessed (Update)
    assert xpath.attribute(reanalysed, "EventIdentification", "EventActionCode") == "U"

    # outbox drop: every item for the down destination goes, audited; the study stops waiting.
    dropped = _mammocad(cfg, "outbox", "drop", "--dest", "down")
    assert dropped.returncode == 0, dropped.stderr
    assert not Outbox(spool).items(destination="down") and not Outbox(spool).items(dead=True, destination="down")
    status = study_status(spool, study_uid)
    assert status.destinations == {"down": "dropped", "pacs": "delivered"}
    audit = (tmp_path / "audit.log").read_text()
    assert "mammocad outbox drop" in audit and study_uid in audit
    given_up = [m for m in audit_log.read_bytes().splitlines() if b"mammocad outbox drop" in m]
    assert given_up and all(problems(m) == [] for m in given_up)
    for message in given_up:  # the patient too, and the admin as requestor
        root = ET.fromstring(message)
        assert PATIENT in {o.get("ParticipantObjectID") for o in root.iter("ParticipantObjectIdentification")}
        assert [p.get("UserID") for p in root.iter("ActiveParticipant")
                if p.get("UserIsRequestor") == "true"] == [os_user().user_id]
    shown = _mammocad(cfg, "studies", "show", study_uid)
    assert "down" in shown.stdout and "dropped" in shown.stdout and "version 1" in shown.stdout


def test_removed_destination_is_dead_lettered_with_the_reason(tmp_path: Path) -> None:
    from tests.factories import make_mammogram

    spool = tmp_path / "spool"
    outbox = Outbox(spool)
    item = outbox.put("gone", "item1", [make_mammogram(rows=64, columns=48)])
    assert item is not None
    outcome, wait = attempt(make_settings(spool, []), outbox, item)
    assert (outcome, wait) == ("dead", None)
    dead = outbox.get("gone", "item1", dead=True)
    assert dead is not None and "not in the configuration (removed?)" in (dead.last_error or "")
    assert outbox.get("gone", "item1") is None


def test_a_pending_study_says_what_it_waits_for(tmp_path: Path) -> None:
    """Spool only: not declared yet, then analysing (a fresh lease is a running image; a stale
    one is not), then waiting for the results worker."""
    spool = tmp_path / "spool"
    study_uid, sops = spool_study(spool)
    files = StudyFiles(spool, study_uid)
    assert study_status(spool, study_uid).waiting_for.startswith("the rest of the study")
    files.layout.write(files.layout.complete_path(study_uid),
                       json.dumps({"version": 1, "sop_uids": sops, "reason": "four_views"}).encode())
    with held(lease_path(files.layout, study_uid, sops[0]), files.layout.tmp, lease_s=30):
        stale = lease_path(files.layout, study_uid, sops[1])
        stale.write_text("gpu box, killed\n")
        os.utime(stale, (time.time() - 120,) * 2)
        status = study_status(spool, study_uid, lease_s=30)
        assert (status.declared, status.analysing) == ("four_views", 1)
        assert status.waiting_for.startswith("analysis: 1 image(s) running, 3 queued or re-queued")
        cfg = write_config(tmp_path, spool)
        shown = _mammocad(cfg, "studies", "show", study_uid)
        assert "waiting    for analysis: 1 image(s) running" in shown.stdout, shown.stdout + shown.stderr
    for sop in sops:
        files.layout.write(files.result(sop), b'{"version": 1}')
    assert study_status(spool, study_uid).waiting_for.startswith("the results worker")
    assert json.loads(_mammocad(cfg, "studies", "show", study_uid, "--json").stdout)["waiting_for"].startswith(
        "the results worker")


def test_outbox_retry_is_audited(tmp_path: Path) -> None:
    """Spool only (no broker): a dead letter queued again with `mammocad outbox retry` is
    audited as Begin Transferring DICOM Instances, with the admin, study and patient."""
    from tests.factories import make_four_view_study

    spool = tmp_path / "spool"
    study = make_four_view_study(rows=64, columns=48)
    outbox = Outbox(spool)
    item = outbox.put("pacs", "item1", study[:2])
    assert item is not None
    outbox.dead_letter(item)
    cfg = write_config(tmp_path, spool, audit=True, destinations=[OFFLINE_PACS])
    retried = _mammocad(cfg, "outbox", "retry", "--all")
    assert retried.returncode == 0, retried.stderr
    assert Outbox(spool).get("pacs", "item1") is not None
    message = _audited(tmp_path / "audit.log", "110102", str(study[0].StudyInstanceUID))
    assert "mammocad outbox retry" in xpath.text(message, "EventIdentification/EventOutcomeDescription")


def test_outbox_drop_waiting_for_an_attempt_drops_the_item_where_the_attempt_left_it(tmp_path: Path) -> None:
    """`outbox drop` waits for the item's lock while a delivery attempt holds it. The attempt
    gets one of two objects stored, reaches the deadline and moves the item to the dead-letter
    folder. Drop must act on the item as the attempt left it: it removed the folder at its old
    path (FileNotFoundError, the dead letter stayed) and would have audited the stored object
    as never confirmed."""
    from tests import processes
    from tests.factories import make_four_view_study

    spool = tmp_path / "spool"
    study = make_four_view_study(rows=64, columns=48)
    outbox = Outbox(spool)
    item = outbox.put("pacs", "item1", study[:2])
    assert item is not None
    cfg = write_config(tmp_path, spool, audit=True)
    with outbox.locked(item) as got:  # the delivery attempt
        assert got
        drop = processes.spawn([sys.executable, "-m", "mammocad", "outbox", "drop", "pacs/item1", "--config",
                                str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def waiting() -> bool:  # drop has the item's folder open: it waits for the lock
            fds = Path(f"/proc/{drop.pid}/fd")
            try:
                return any(os.readlink(fd) == str(item.path) for fd in fds.iterdir())
            except OSError:
                return False
        wait_until(waiting, 60, "`outbox drop` to wait for the item's lock")
        item.delivered = [str(study[0].SOPInstanceUID)]
        outbox.save(item)
        outbox.dead_letter(item)
    out, err = drop.communicate(timeout=60)
    processes.stop(drop)
    assert drop.returncode == 0, err
    assert outbox.items(dead=True) == [] and outbox.items() == []
    message = _audited(tmp_path / "audit.log", "110104", str(study[0].StudyInstanceUID))
    assert [c.get("NumberOfInstances") for c in message.iter("SOPClass")] == ["1"]  # the one never stored
    assert "1 objects never confirmed" in out


def test_reanalyse_waits_for_the_first_report(tmp_path: Path, redis_url: str) -> None:
    """`studies reanalyse` on a study whose first finalize has not run, or is running, must
    refuse: it queued a second finalize racing the first, and the first pass's analyses could
    fill the results back in (no re-analysis at all). Refused: exit 1, nothing queued on the
    (real) broker, nothing deleted, nothing audited, an `event=reanalyse_refused` line."""
    import redis

    spool = tmp_path / "spool"
    study_uid, sops = spool_study(spool)
    files = StudyFiles(spool, study_uid)
    files.layout.write(files.layout.complete_path(study_uid),
                       json.dumps({"version": 1, "sop_uids": sops, "reason": "four_views"}).encode())
    for sop in sops:  # the first pass's results, not yet reported
        files.layout.write(files.result(sop), b'{"version": 1}')
    cfg = write_config(tmp_path, spool, broker_url=redis_url, audit=True)
    broker = redis.Redis.from_url(redis_url)

    refused = _mammocad(cfg, "studies", "reanalyse", study_uid)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    assert "has no report yet" in refused.stderr and "mammocad studies show" in refused.stderr
    assert "event=reanalyse_refused" in refused.stderr
    assert broker.dbsize() == 0, "a refused re-analysis queued tasks"
    assert all(files.result(s).exists() for s in sops)
    assert not (tmp_path / "audit.log").exists() or study_uid not in (tmp_path / "audit.log").read_text()

    # The first report exists, but a finalize of the study holds its lock (e.g. a late image's).
    files.write_report(ReportRecord(report_key=report_key(sops, "0.0.0-random"), sop_uids=tuple(sops),
                                    model_name="test", model_version="0.0.0-random", created=time.time()))
    with files.finalize_lock() as got:
        assert got
        refused = _mammocad(cfg, "studies", "reanalyse", study_uid)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "finalize" in refused.stderr and "try again" in refused.stderr
    assert broker.dbsize() == 0 and all(files.result(s).exists() for s in sops)
    assert not (tmp_path / "audit.log").exists() or study_uid not in (tmp_path / "audit.log").read_text()

    # Neither any more: it goes ahead (and only now is audited).
    done = _mammocad(cfg, "studies", "reanalyse", study_uid)
    assert done.returncode == 0, done.stderr
    assert broker.dbsize() > 0 and not any(files.result(s).exists() for s in sops)
    _audited(tmp_path / "audit.log", "110103", study_uid)
    # Until the amended report exists, `studies show` says the study waits for it.
    status = study_status(spool, study_uid)
    assert (status.reanalysis, status.state, status.analysed) == (1, "pending", 0)
    assert status.waiting_for.startswith("the amended report (revision 1)")
    shown = _mammocad(cfg, "studies", "show", study_uid)
    assert "the amended report (revision 1)" in shown.stdout, shown.stdout + shown.stderr


def test_outbox_retry_leaves_a_dead_letter_whose_item_waits_in_the_outbox(
        tmp_path: Path, storescp: StoreSCP, celery_worker, redis_url: str) -> None:
    """An item with the same id in the dead-letter folder and in the outbox: `outbox retry`
    crashed (FileExistsError traceback). The outbox copy is the live one (a delivery chain
    owns it): retry must say so, leave both copies as they are (moving either loses data,
    queueing the dead one sends the report twice), audit nothing for it, and still retry the
    other dead letters. Real redis, Celery worker and storescp: only the live copy arrives."""
    from tests.factories import make_four_view_study

    spool = tmp_path / "spool"
    study = make_four_view_study(rows=64, columns=48)
    cfg = write_config(tmp_path, spool, broker_url=redis_url, audit=True, destinations=[storescp.destination()])
    app = celery_worker(load_settings(cfg), cfg)
    outbox = Outbox(spool)
    dead = outbox.put("pacs", "item1", study[:3])  # an older copy, dead-lettered ...
    assert dead is not None
    outbox.dead_letter(dead)
    other = outbox.put("pacs", "item2", study[3:])  # ... next to an ordinary dead letter
    assert other is not None
    outbox.dead_letter(other)
    live = outbox.get("pacs", "item1", dead=True)
    assert live is not None
    shutil.copytree(live.path, outbox._dir("pacs", "item1"))  # ... and the live copy in the outbox
    live = outbox.get("pacs", "item1")
    assert live is not None

    retried = _mammocad(cfg, "outbox", "retry", "--all")
    assert "Traceback" not in retried.stderr, retried.stderr
    assert retried.returncode == 1, retried.stdout + retried.stderr
    assert "skipped pacs/item1" in retried.stderr and "waiting in the outbox" in retried.stderr
    assert "requeued pacs/item2" in retried.stdout
    kept = outbox.get("pacs", "item1", dead=True)
    assert kept is not None and len(kept.files()) == 3  # the dead letter is left as it was
    still = outbox.get("pacs", "item1")
    assert still is not None and still.token == live.token
    audit = (tmp_path / "audit.log").read_text()
    assert "dead letter item2" in audit and "dead letter item1" not in audit

    schedule_delivery(app, str(spool), live)  # the live copy's chain delivers it, once
    wait_until(lambda: outbox.get("pacs", "item1") is None and outbox.get("pacs", "item2") is None, 60,
               "both items delivered")
    assert sorted(str(dcmread(p).SOPInstanceUID) for p in storescp.received()) == sorted(
        str(ds.SOPInstanceUID) for ds in study)  # each object once
    assert outbox.get("pacs", "item1", dead=True) is not None


def test_reanalyse_asked_again_while_pending_resumes_it(tmp_path: Path, redis_url: str) -> None:
    """A second `studies reanalyse` while the first is pending (one image analysed again so
    far; its other tasks lost with the broker, the case its error message says to run it again
    for) started over: it deleted the new result, audited a second request for the same
    version. It must resume: keep the result, queue the three missing analyses and the
    amended report's finalize (revision 1) on the real broker, audit nothing new."""
    import redis

    from mammocad.spool.reconcile import read_broker

    spool = tmp_path / "spool"
    study_uid, sops = spool_study(spool)
    files = StudyFiles(spool, study_uid)
    files.layout.write(files.layout.complete_path(study_uid),
                       json.dumps({"version": 1, "sop_uids": sops, "reason": "four_views"}).encode())
    files.write_report(ReportRecord(report_key=report_key(sops, "0.0.0-random"), sop_uids=tuple(sops),
                                    model_name="test", model_version="0.0.0-random", created=time.time()))
    cfg = write_config(tmp_path, spool, broker_url=redis_url, audit=True)
    first = _mammocad(cfg, "studies", "reanalyse", study_uid)
    assert first.returncode == 0, first.stderr
    broker = redis.Redis.from_url(redis_url)
    broker.flushdb()  # its tasks are lost
    files.layout.write(files.result(sops[0]), b'{"version": 1}')  # one image was analysed again meanwhile

    again = _mammocad(cfg, "studies", "reanalyse", study_uid)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already under way" in again.stdout and "3 image(s) to analyse" in again.stdout, again.stdout
    assert files.result(sops[0]).exists(), "the new result was deleted"
    _audited(tmp_path / "audit.log", "110103", study_uid)  # still exactly one request
    assert json.loads(files.layout.reanalysis_path(study_uid).read_text())["revision"] == 1
    settings = load_settings(cfg)
    view = read_broker(broker, [settings.worker.analysis_queue, settings.worker.results_queue])
    assert view.ready == {(TASK_ANALYZE_IMAGE, study_uid, s) for s in sops[1:]} | {(TASK_FINALIZE_STUDY, study_uid, "")}
    finalize = [json.loads(m) for m in broker.lrange(settings.worker.results_queue, 0, -1)]
    assert [json.loads(base64.b64decode(m["body"]))[1]["revision"] for m in finalize] == [1]


def test_an_unknown_or_malformed_study_uid_is_said_so_with_its_exit_status(tmp_path: Path) -> None:
    """Spool only. A malformed STUDY_UID is a bad command line (exit 2, as documented), said
    before anything is read; it was exit 1 like an unknown study, and `resend` cut the last
    quote of the UID it quoted. An unknown study (never received, or pruned by retention
    after delivery) is exit 1 with what to do, for every action."""
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path, spool, broker_url=f"redis://127.0.0.1:{free_port()}/0")  # no broker listens
    for action in ("show", "resend", "reanalyse"):
        for bad in ("abc", "../../etc", "1.2..3"):
            done = _mammocad(cfg, "studies", action, bad)
            assert done.returncode == 2, (action, bad, done.stdout, done.stderr)
            assert "Traceback" not in done.stderr
            assert f"is not a DICOM UID (digits and dots, at most 64): {bad!r}" in done.stderr, done.stderr
            assert "mammocad studies list" in done.stderr
        unknown = _mammocad(cfg, "studies", action, "1.2.3.4")
        assert unknown.returncode == 1, (action, unknown.stdout, unknown.stderr)
        assert "Traceback" not in unknown.stderr
        assert "no study 1.2.3.4" in unknown.stderr and "retention removed it" in unknown.stderr, unknown.stderr


def test_a_study_whose_images_all_failed_analysis_is_failed_not_delivered(
        tmp_path: Path, random_weights: Path, storescp: StoreSCP, celery_worker) -> None:
    """Every image fails analysis (pixels truncated): the worker still reports ("CAD failed"
    for each) and the PACS confirms it. The study showed `delivered`, like a good one, so
    `studies list --state failed` never showed it; it is `failed`, and `show` says why and
    what to do."""
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path, spool, random_weights,
                       destinations=[storescp.destination(outputs=[OutputKind.MAMMO_CAD_SR])])
    app = celery_worker(load_settings(cfg), cfg)
    study_uid, sops = spool_study(spool)
    files = StudyFiles(spool, study_uid)
    for sop in sops:
        ds = dcmread(files.image(sop))
        ds.PixelData = ds.PixelData[:100]  # the header reads, the pixels do not decode
        ds.save_as(files.image(sop))
        app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sop])
    app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, sops])
    wait_until(files.report(report_key(sops, "0.0.0-random")).exists, 120, "the CAD-failed report")
    wait_until(lambda: study_status(spool, study_uid).destinations.get("pacs") == "delivered", 60, "delivery")
    assert len(storescp.received()) == 1
    status = study_status(spool, study_uid)
    assert (status.failed_images, status.report_failed_images, status.state) == (4, 4, "failed")
    assert [s.study_uid for s in all_statuses(spool, "failed")] == [study_uid]
    shown = _mammocad(cfg, "studies", "show", study_uid)
    assert 'problem    no image could be analysed: the report says "CAD failed" for all 4' in shown.stdout, shown.stdout
    assert "mammocad studies reanalyse" in shown.stdout


def test_a_report_missing_an_output_kind_is_failed_not_delivered(tmp_path: Path) -> None:
    """Spool only: the newest report could not build the TID 1500 SR, which the only
    destination asked for, so it got nothing (no outbox item). That read `delivered`."""
    spool = tmp_path / "spool"
    study_uid, sops = spool_study(spool)
    StudyFiles(spool, study_uid).write_report(ReportRecord(
        report_key=report_key(sops, "0.0.0-random"), sop_uids=tuple(sops), model_name="test",
        model_version="0.0.0-random", failed_outputs={"tid1500-sr": "ValueError: no geometry"}, created=time.time()))
    status = study_status(spool, study_uid)
    assert (status.state, status.destinations) == ("failed", {})
    assert status.problems == ["outputs not built: tid1500-sr (ValueError: no geometry); a destination that asked "
                               "only for these got nothing. Fix the cause (worker log, event=output_failed), then "
                               "`mammocad studies reanalyse`"]


def test_a_resend_to_a_destination_the_report_did_not_name_is_shown(tmp_path: Path) -> None:
    """Spool only: the report went to `pacs` (confirmed); `studies resend --dest archive` (a
    destination added since) dead-lettered. The study read `delivered` with only `pacs` listed."""
    from tests.factories import make_mammogram

    spool = tmp_path / "spool"
    study_uid, sops = spool_study(spool)
    key = report_key(sops, "0.0.0-random")
    StudyFiles(spool, study_uid).write_report(ReportRecord(
        report_key=key, sop_uids=tuple(sops), model_name="test", model_version="0.0.0-random",
        destinations={"pacs": key}, created=time.time()))
    item = Outbox(spool).put("archive", f"{key}.s1", [make_mammogram(rows=64, columns=48)])
    assert item is not None
    item.last_error = "association rejected"
    Outbox(spool).save(item)
    assert study_status(spool, study_uid).destinations == {"archive": "pending", "pacs": "delivered"}
    Outbox(spool).dead_letter(item)
    status = study_status(spool, study_uid)
    assert (status.destinations, status.state) == ({"archive": "dead", "pacs": "delivered"}, "failed")
    assert status.errors == {"archive": "association rejected"}


def test_a_resend_that_cannot_be_audited_queues_nothing(tmp_path: Path) -> None:
    """Spool only: an admin who cannot append to the audit file (owned by the services) runs
    `studies resend`. The objects were put in the outbox before the audit record failed, so a
    running worker would have sent them unaudited; now nothing is queued and one line says why."""
    from mammocad.spool.records.report import OutputObject
    from tests.audit.unwritable import mammocad_as_admin, owned_by_the_service, refused_in_one_line
    from tests.factories import make_mammogram

    spool = tmp_path / "spool"
    study_uid, sops = spool_study(spool)
    key = report_key(sops, "0.0.0-random")
    files = StudyFiles(spool, study_uid)
    kept = make_mammogram(rows=64, columns=48)  # stands in for the report's kept CAD SR
    folder = files.layout.outputs_dir(study_uid, key)
    folder.mkdir(parents=True)
    kept.save_as(folder / f"{kept.SOPInstanceUID}.dcm", enforce_file_format=True)
    files.write_report(ReportRecord(
        report_key=key, sop_uids=tuple(sops), model_name="test", model_version="0.0.0-random",
        objects=(OutputObject(study_uid, str(kept.SeriesInstanceUID), str(kept.SOPInstanceUID), SR,
                              OutputKind.MAMMO_CAD_SR),),
        destinations={"pacs": key}, created=time.time()))
    cfg = write_config(tmp_path, spool, audit=True, destinations=[OFFLINE_PACS])
    audit = tmp_path / "audit.log"  # write_config's
    owned_by_the_service(audit)
    done = mammocad_as_admin(cfg, "studies", "resend", study_uid)
    assert Outbox(spool).items() == [] and Outbox(spool).items(dead=True) == []
    line = refused_in_one_line(done, audit)
    assert line.startswith("mammocad studies resend: ") and "nothing was queued" in line
