"""`studies resend` to a destination, then a late report.

The resend's copy used to count for the late report's catch-up (and for `studies show`) only
while it sat in the outbox: once the destination confirmed it and the outbox deleted it,
nothing said it had been sent, so the late report sent the earlier images' SC and GSPS to
that destination a second time, and the study listed no state for a destination the report
did not name and showed one whose own item was dead-lettered as dead. Real redis, Celery
worker and DCMTK storescp as the PACSes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydicom import dcmread

from mammocad.config import load_settings
from mammocad.config.editing import add_destination
from mammocad.spool.outbox import Outbox
from mammocad.spool.records.report import ReportRecord
from mammocad.spool.studies import StudyFiles
from mammocad.studies.actions import resend
from mammocad.studies.status import study_status
from tests.worker.conftest import StoreSCP, analyse_new_study, once_each, per_image, wait_until, write_config
from tests.worker.test_late_destinations import _report


def _late_report_repeats_nothing(app: Any, files: StudyFiles, sops: list[str], scp: StoreSCP,
                                 destination: str) -> None:
    """The fourth image arrives late: its report owes ``destination`` no catch-up, and ``scp``
    ends with each image's SC and GSPS once, the first three from the resend and the fourth's
    from the late report."""
    late = _report(app, files, sops)
    assert sorted(late.destination_objects[destination]) == sorted(late.outputs)
    received = [dcmread(p, stop_before_pixels=True) for p in scp.received()]
    assert per_image(received) == once_each(sops)


def test_a_confirmed_resend_is_recorded_and_not_repeated_by_a_late_report(
        tmp_path: Path, no_findings_weights: Path, storescp: StoreSCP, celery_worker, redis_url: str) -> None:
    spool = tmp_path / "spool"
    # One file per C-STORE (+uf): storescp names files by SOP Instance UID, so an object sent
    # twice would otherwise overwrite its first copy and look sent once.
    archive = StoreSCP(tmp_path / "archive", ae_title="ARCHIVE", args=("+uf",)).start()
    try:
        config = write_config(tmp_path, spool, no_findings_weights, broker_url=redis_url)
        add_destination(config, "pacs", storescp.ae_title, "127.0.0.1", storescp.port)
        app, files, sops = analyse_new_study(celery_worker, config)
        study_uid = files.study_uid
        first = _report(app, files, sops[:3])  # declared with three images
        assert set(first.destinations) == {"pacs"}

        add_destination(config, "archive", archive.ae_title, "127.0.0.1", archive.port)
        (item,) = resend(load_settings(config), study_uid, ["archive"])
        wait_until(lambda: Outbox(spool).get("archive", item.item_id) is None, 60, "the resend confirmed")
        recorded = ReportRecord.read(files.report(first.report_key))
        assert recorded.destinations["archive"] == item.item_id
        assert sorted(recorded.destination_objects["archive"]) == sorted(first.outputs)
        assert study_status(spool, study_uid).destinations == {"archive": "delivered", "pacs": "delivered"}

        _late_report_repeats_nothing(app, files, sops, archive, "archive")
    finally:
        archive.stop()


def test_a_confirmed_resend_after_a_dead_letter_is_recorded_and_not_repeated_by_a_late_report(
        tmp_path: Path, no_findings_weights: Path, celery_worker, redis_url: str) -> None:
    """The PACS was down past the delivery deadline: the report's own item went to the dead
    letters. Once it was back the admin re-sent; the copy was confirmed and deleted."""
    spool = tmp_path / "spool"
    pacs = StoreSCP(tmp_path / "pacs", args=("+uf",))  # not started: its port refuses
    try:
        config = write_config(tmp_path, spool, no_findings_weights, broker_url=redis_url, retry_max_s=0.5,
                              deadline_s=2.0)
        add_destination(config, "pacs", pacs.ae_title, "127.0.0.1", pacs.port)
        app, files, sops = analyse_new_study(celery_worker, config)
        study_uid = files.study_uid
        first = _report(app, files, sops[:3])  # returns once the item left the outbox: dead-lettered
        assert Outbox(spool).get("pacs", first.destinations["pacs"], dead=True) is not None
        assert study_status(spool, study_uid).destinations == {"pacs": "dead"}

        pacs.start()
        (item,) = resend(load_settings(config), study_uid, ["pacs"])
        wait_until(lambda: Outbox(spool).get("pacs", item.item_id) is None, 60, "the resend confirmed")
        assert study_status(spool, study_uid).destinations == {"pacs": "delivered"}
        recorded = ReportRecord.read(files.report(first.report_key))
        assert sorted(recorded.copies["pacs"][item.item_id]) == sorted(first.outputs)

        _late_report_repeats_nothing(app, files, sops, pacs, "pacs")
    finally:
        pacs.stop()
