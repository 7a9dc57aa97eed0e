"""Late-image reports and destinations added or removed since the study's first report.

A late report builds SC and GSPS for its new images only; a destination that never got the
earlier ones (added to the configuration in between, reloaded without a restart) must get
them with it: the very objects the others got. Real redis, Celery worker, DCMTK storescp
and Orthanc as the PACSes.
"""

from __future__ import annotations

import io
from pathlib import Path

from pydicom import dcmread

from mammocad.config import OutputKind
from mammocad.config.editing import add_destination, remove_destination
from mammocad.spool.records.report import ReportRecord
from mammocad.spool.studies import StudyFiles, report_key
from mammocad.spool.tasks import TASK_FINALIZE_STUDY
from tests.orthanc import Orthanc
from tests.worker.conftest import StoreSCP, analyse_new_study, once_each, per_image, wait_until, write_config

PER_IMAGE = (OutputKind.SECONDARY_CAPTURE, OutputKind.GSPS)


def _report(app, files: StudyFiles, sops: list[str]) -> ReportRecord:  # type: ignore[no-untyped-def]
    """Finalise the study for ``sops`` (as the node does when it declares it) and wait for
    the report and for every outbox item to be delivered."""
    app.send_task(TASK_FINALIZE_STUDY, args=[str(files.spool), files.study_uid, sops])
    path = files.report(report_key(sops, "0.0.0-random"))
    wait_until(path.exists, 90, f"the report of {len(sops)} images")
    wait_until(lambda: not list((files.spool / "outbox").glob("*/*/item.json")), 60, "the outbox to empty")
    return ReportRecord.read(path)


def _orthanc_objects(pacs: Orthanc, study_uid: str) -> list:  # type: ignore[type-arg]
    study = pacs.study_id(study_uid)
    if study is None:
        return []
    return [dcmread(io.BytesIO(pacs.instance_file(i["ID"])), stop_before_pixels=True)
            for i in pacs.instances(study)]


def test_a_destination_added_before_a_late_report_gets_every_sc_and_gsps(
        tmp_path: Path, no_findings_weights: Path, storescp: StoreSCP, celery_worker) -> None:
    """First report (2 images) to A and C; then C is removed and B (Orthanc) added; two late
    reports follow (3, then 4 images). B ends up with every image's SC and GSPS, the same
    objects (UIDs, series and instance numbers) A got; A gets each only once; C nothing new;
    and B is not sent the earlier images' objects again with the third report."""
    spool = tmp_path / "spool"
    removed = StoreSCP(tmp_path / "removed").start()
    pacs_b = Orthanc(tmp_path / "orthanc").start()
    try:
        config = write_config(tmp_path, spool, no_findings_weights)
        add_destination(config, "a", storescp.ae_title, "127.0.0.1", storescp.port)
        add_destination(config, "c", removed.ae_title, "127.0.0.1", removed.port)
        app, files, sops = analyse_new_study(celery_worker, config)
        study_uid = files.study_uid
        first = _report(app, files, sops[:2])
        assert set(first.destinations) == {"a", "c"}
        assert len(removed.received()) == len(first.objects)

        remove_destination(config, "c")
        add_destination(config, "b", pacs_b.ae_title, "127.0.0.1", pacs_b.dicom_port)
        second = _report(app, files, sops[:3])
        third = _report(app, files, sops)

        # Every item was confirmed (the outbox is empty): each PACS holds what it was sent.
        at_a = [dcmread(p, stop_before_pixels=True) for p in storescp.received()]
        at_b = _orthanc_objects(pacs_b, study_uid)
        one_each = once_each(sops)
        assert per_image(at_b) == one_each
        assert per_image(at_a) == one_each
        assert sorted(str(ds.SOPInstanceUID) for ds in at_a) == sorted(
            first.outputs + second.outputs + third.outputs)  # each object once
        earlier = {o.sop for o in first.objects if o.kind in PER_IMAGE}
        assert {str(ds.SOPInstanceUID) for ds in at_b} == set(second.outputs) | set(third.outputs) | earlier
        numbers = {str(ds.SOPInstanceUID): (str(ds.SeriesInstanceUID), int(ds.SeriesNumber), int(ds.InstanceNumber))
                   for ds in at_a}
        for ds in at_b:  # the very objects A got, numbered as A has them
            sop = str(ds.SOPInstanceUID)
            assert (str(ds.SeriesInstanceUID), int(ds.SeriesNumber), int(ds.InstanceNumber)) == numbers[sop], sop

        # The late reports' SRs are sent whole: each cites every image of its report.
        for report in (second, third):
            srs = [ds for ds in at_b if str(ds.SOPInstanceUID) in report.outputs and "ContentSequence" in ds]
            assert len(srs) == 2  # Mammography CAD SR and TID 1500
            for sr in srs:
                cited = {str(ref.ReferencedSOPInstanceUID) for st in sr.CurrentRequestedProcedureEvidenceSequence
                         for se in st.ReferencedSeriesSequence for ref in se.ReferencedSOPSequence}
                assert cited == set(report.sop_uids), sr.SOPClassUID

        assert set(second.destinations) == set(third.destinations) == {"a", "b"}
        assert set(second.destination_objects["b"]) == set(second.outputs) | earlier
        assert set(second.destination_objects["a"]) == set(second.outputs)
        # B's second item carried the earlier objects: the third report sends B only its own.
        assert set(third.destination_objects["b"]) == set(third.destination_objects["a"]) == set(third.outputs)
        assert len(removed.received()) == len(first.objects)  # C, removed, got nothing new
        assert not (spool / "outbox" / "c").exists() or not any((spool / "outbox" / "c").iterdir())
    finally:
        pacs_b.stop()
        removed.stop()
