"""The Celery tasks with a real redis and a real worker, on a tiny random checkpoint."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import NamedTuple

from celery import Celery
from pydicom import dcmread

from mammocad.model.results import ImageResult
from mammocad.spool.records.report import ReportRecord
from mammocad.spool.studies import StudyFiles, report_key
from mammocad.spool.tasks import TASK_ANALYZE_IMAGE, TASK_FINALIZE_STUDY
from tests.worker.conftest import StoreSCP, make_settings, once_each, per_image, spool_study, wait_until


class _Analysed(NamedTuple):
    """A spooled four-view study whose images all have their result, not yet finalized."""

    study_uid: str
    sops: list[str]
    files: StudyFiles
    key: str  # the report key of the four images under the random checkpoint


def _analyse_study(app: Celery, spool: Path) -> _Analysed:
    """Spool a four-view study and analyse every image, waiting for each result: the state a
    finalize (and its interruption) starts from."""
    study_uid, sops = spool_study(spool)
    files = StudyFiles(spool, study_uid)
    for sop in sops:
        app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sop])
    wait_until(lambda: all(files.result(s).exists() for s in sops), 90, "every image result")
    return _Analysed(study_uid, sops, files, report_key(sops, "0.0.0-random"))


def test_analyze_writes_result_once(tmp_path: Path, random_weights: Path, celery_worker) -> None:
    spool = tmp_path / "spool"
    app = celery_worker(make_settings(spool, worker={"weights": str(random_weights)}))
    study_uid, sops = spool_study(spool)
    files = StudyFiles(spool, study_uid)
    app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sops[0]])
    path = wait_until(lambda: files.result(sops[0]).exists() and files.result(sops[0]), 60, "the image result")
    result = files.read_result(sops[0])
    assert result.error is None and result.model_version == "0.0.0-random"
    assert result.image.sop_instance_uid == sops[0] and (result.image.laterality, result.image.view) == ("R", "CC")
    assert result.image.rows == 256 and result.image.columns == 200
    stamp = path.stat().st_mtime_ns
    # Idempotent: a re-delivered task (late ack after a crash) must not analyse again.
    app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sops[0]])
    app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sops[1]])
    wait_until(lambda: files.result(sops[1]).exists(), 60, "the second image's result")
    assert path.stat().st_mtime_ns == stamp
    assert files.attempts(sops[0]).read_text() == "1"


def test_corrupt_and_poison_images_give_error_results(tmp_path: Path, random_weights: Path, celery_worker) -> None:
    spool = tmp_path / "spool"
    app = celery_worker(make_settings(spool, worker={"weights": str(random_weights)}))
    study_uid, sops = spool_study(spool)
    files = StudyFiles(spool, study_uid)
    ds = dcmread(files.image(sops[0]))
    ds.PixelData = ds.PixelData[:100]  # truncated pixels: header fine, decoding fails
    ds.save_as(files.image(sops[0]))
    files.image(sops[1]).write_bytes(b"garbage, not DICOM")
    files.attempts(sops[2]).parent.mkdir(parents=True, exist_ok=True)
    files.attempts(sops[2]).write_text("3")  # it already killed its worker three times
    for sop in sops[:3]:
        app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sop])
    wait_until(lambda: all(files.result(s).exists() for s in sops[:3]), 60, "three error results")
    results = [files.read_result(s) for s in sops[:3]]
    errors = [r.error or "" for r in results]
    assert all(errors), errors
    assert results[0].image.laterality == "R"  # header still cited
    assert "not DICOM" in errors[1] or "cannot read" in errors[1]
    assert "3 times" in errors[2]


def test_finalize_waits_for_results_then_reports(tmp_path: Path, random_weights: Path, celery_worker) -> None:
    spool = tmp_path / "spool"
    app = celery_worker(make_settings(spool, worker={"weights": str(random_weights)}))
    study_uid, sops = spool_study(spool)
    files = StudyFiles(spool, study_uid)
    app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, sops])  # before any analysis
    report = files.report(report_key(sops, "0.0.0-random"))
    wait_until(lambda: (files.root / "results").exists() is False, 1, "nothing analysed yet")
    for sop in sops:
        app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sop])
    wait_until(report.exists, 90, "the study report")
    data = json.loads(report.read_text())
    assert data["sop_uids"] == sorted(sops) and data["model_version"] == "0.0.0-random"
    assert data["failed_images"] == [] and data["outputs"] == []  # no destinations configured
    # A second finalize for the same set is a no-op (the report is the done marker).
    stamp = report.stat().st_mtime_ns
    app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, list(reversed(sops))])
    app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sops[0]])
    wait_until(lambda: files.attempts(sops[0]).read_text() == "1", 5, "the worker to settle")
    assert report.stat().st_mtime_ns == stamp and len(list(report.parent.glob("*.json"))) == 1


def test_finalize_gives_up_on_missing_images(tmp_path: Path, random_weights: Path, celery_worker) -> None:
    spool = tmp_path / "spool"
    # time_limit_s 2 → wait bound 2 × (2 images + 1) = 6 s
    app = celery_worker(make_settings(spool, worker={"weights": str(random_weights), "soft_time_limit_s": 1,
                                                     "time_limit_s": 2}))
    study_uid, sops = spool_study(spool)
    files = StudyFiles(spool, study_uid)
    sops = sops[2:]  # R MLO is analysed, L MLO never is
    app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sops[0]])
    t0 = time.monotonic()
    app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, sops])
    report = files.report(report_key(sops, "0.0.0-random"))
    wait_until(report.exists, 30, "the report after the bounded wait")
    assert time.monotonic() - t0 >= 5.5  # it did wait for the missing image first
    data = json.loads(report.read_text())
    assert data["failed_images"] == [sops[1]]
    missing = ImageResult.from_dict(json.loads(files.result(sops[1]).read_text()))
    assert "no analysis result" in (missing.error or "") and (missing.image.laterality, missing.image.view) == ("L", "MLO")


def test_finalize_fills_outbox_per_destination_kinds(tmp_path: Path, random_weights: Path, storescp: StoreSCP,
                                                      celery_worker) -> None:
    spool = tmp_path / "spool"
    sr_only = StoreSCP(tmp_path / "sr_only").start()
    try:
        # "__objects__" once collided with a key of the report's untyped dict.
        dests = [storescp.destination("all"), sr_only.destination("__objects__", outputs=["mammo-cad-sr"])]
        app = celery_worker(make_settings(spool, dests, worker={"weights": str(random_weights)}))
        study_uid, sops = spool_study(spool)
        for sop in sops:
            app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sop])
        app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, sops])
        report = StudyFiles(spool, study_uid).report(report_key(sops, "0.0.0-random"))
        wait_until(report.exists, 120, "the study report")
        data = json.loads(report.read_text())
        kinds = sorted({o["kind"] for o in data["objects"]})
        assert kinds == ["gsps", "mammo-cad-sr", "sc", "tid1500-sr"], kinds
        assert set(data["destinations"]) == {"all", "__objects__"}
        assert ReportRecord.read(report).destinations == data["destinations"]
        wait_until(lambda: len(storescp.received()) == len(data["objects"]), 60, "every object at 'all'")
        wait_until(lambda: sr_only.received(), 60, "the SR at 'sronly'")
        got = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in storescp.received()}
        assert got == set(data["outputs"])
        sr = [str(dcmread(p, stop_before_pixels=True).SOPClassUID) for p in sr_only.received()]
        assert sr == ["1.2.840.10008.5.1.4.1.1.88.50"]
        wait_until(lambda: not list((spool / "outbox").glob("*/*/item.json")), 10, "the outbox to empty")
    finally:
        sr_only.stop()


def test_late_image_report_cites_the_earlier_sr(tmp_path: Path, random_weights: Path, storescp: StoreSCP,
                                                celery_worker) -> None:
    spool = tmp_path / "spool"
    app = celery_worker(make_settings(spool, [storescp.destination(outputs=["mammo-cad-sr"])],
                                      worker={"weights": str(random_weights)}))
    study_uid, sops = spool_study(spool)
    files = StudyFiles(spool, study_uid)
    for sop in sops:
        app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sop])
    # Declared complete by timeout with three images, then the fourth arrives late.
    first = files.report(report_key(sops[:3], "0.0.0-random"))
    app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, sops[:3]])
    wait_until(first.exists, 60, "the first report")
    app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, sops])
    second = files.report(report_key(sops, "0.0.0-random"))
    wait_until(second.exists, 60, "the second report")
    old, new = json.loads(first.read_text()), json.loads(second.read_text())
    assert old["outputs"] != new["outputs"]  # a new version, not an overwrite
    wait_until(lambda: len(storescp.received()) == 2, 30, "both SR versions")
    srs = {str(ds.SOPInstanceUID): ds for ds in (dcmread(p) for p in storescp.received())}
    newest = srs[new["outputs"][0]]
    cited = [ref.ReferencedSOPInstanceUID for st in newest.PredecessorDocumentsSequence
             for se in st.ReferencedSeriesSequence for ref in se.ReferencedSOPSequence]
    assert cited == old["outputs"]
    assert "PredecessorDocumentsSequence" not in srs[old["outputs"][0]]


def test_destination_added_to_the_file_is_used_without_restart(tmp_path: Path, random_weights: Path,
                                                               storescp: StoreSCP, celery_worker) -> None:
    from mammocad.config import load_settings
    from mammocad.config.editing import add_destination

    spool = tmp_path / "spool"
    config = tmp_path / "mammocad.toml"
    config.write_text(
        f'[node]\nspool_dir = "{spool}"\n\n[worker]\nweights = "{random_weights}"\ndevice = "cpu"\n'
        'soft_time_limit_s = 60\ntime_limit_s = 90\n\n'
        '[delivery]\nretry_initial_s = 0.2\nretry_max_s = 1.0\nnetwork_timeout_s = 3.0\n')
    app = celery_worker(load_settings(config), config)
    study_uid, sops = spool_study(spool)
    files = StudyFiles(spool, study_uid)
    for sop in sops:
        app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sop])
    app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, sops[:3]])
    first = files.report(report_key(sops[:3], "0.0.0-random"))
    wait_until(first.exists, 60, "the first report")
    assert not json.loads(first.read_text())["destinations"]

    add_destination(config, "pacs", storescp.ae_title, "127.0.0.1", storescp.port, outputs=["mammo-cad-sr"])
    app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, sops])
    second = files.report(report_key(sops, "0.0.0-random"))
    wait_until(second.exists, 60, "the second report")
    assert set(json.loads(second.read_text())["destinations"]) == {"pacs"}
    wait_until(lambda: len(storescp.received()) == 1, 30, "the SR at the newly added destination")


def test_finalize_interrupted_after_one_destination_sends_one_set_of_objects(
        tmp_path: Path, random_weights: Path, storescp: StoreSCP, celery_worker) -> None:
    """A finalize that fails (or is killed) after the first destination's outbox item was
    written is run again by the reconciler. The re-run must send the objects the first run
    kept, not a second build: the SOP Instance UIDs derive from the content, and ContentTime
    differs a second later, so a rebuild gave the second destination (and `studies resend`)
    a different report than the first one got."""
    spool = tmp_path / "spool"
    other = StoreSCP(tmp_path / "other").start()
    try:
        dests = [storescp.destination("a", outputs=["mammo-cad-sr"]),
                 other.destination("b", outputs=["mammo-cad-sr"])]
        app = celery_worker(make_settings(spool, dests, worker={"weights": str(random_weights)}))
        study_uid, sops, files, key = _analyse_study(app, spool)
        blocker = spool / "outbox" / "b"  # a file where b's folder must go: its outbox item cannot be made
        blocker.parent.mkdir(parents=True, exist_ok=True)
        blocker.write_text("in the way")
        app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, sops])

        def first_run_failed() -> bool:
            if not (spool / "outbox" / "a" / key / "item.json").exists():
                return False
            with files.finalize_lock() as got:
                return got
        wait_until(first_run_failed, 60, "the first finalize to fill a's outbox and fail at b's")
        assert not files.report(key).exists()
        second = int(time.time()) + 1
        wait_until(lambda: time.time() >= second, 5, "the next second (a rebuild would differ)")
        blocker.unlink()
        app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, sops])  # as the reconciler would
        wait_until(files.report(key).exists, 60, "the report of the second run")
        report = ReportRecord.read(files.report(key))
        wait_until(lambda: storescp.received() and other.received(), 60, "the SR at both destinations")
        at_a = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in storescp.received()}
        at_b = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in other.received()}
        kept = {p.stem for p in files.layout.outputs_dir(study_uid, key).glob("*.dcm")}
        assert at_a == at_b == kept == set(report.outputs), (at_a, at_b, kept, report.outputs)
    finally:
        other.stop()


def test_a_rerun_finalize_keeps_a_destination_whose_item_went_to_the_dead_letters(
        tmp_path: Path, random_weights: Path, celery_worker) -> None:
    """An interrupted finalize left an outbox item for 'a', which was dead-lettered before the
    re-run wrote the report: the report must still name it, or `studies show` calls the study
    delivered to every destination while 'a' never got it."""
    from mammocad.config import Destination
    from mammocad.spool.outbox import Outbox
    from mammocad.studies.status import study_status
    from tests.factories import make_mammogram
    from tests.services import free_port

    spool = tmp_path / "spool"
    down = Destination(name="a", ae_title="PACS", host="127.0.0.1", port=free_port(), outputs=["mammo-cad-sr"])
    app = celery_worker(make_settings(spool, [down], worker={"weights": str(random_weights)}))
    study_uid, sops, files, key = _analyse_study(app, spool)
    outbox = Outbox(spool)
    earlier = outbox.put("a", key, [make_mammogram(rows=32, columns=24, study_uid=study_uid)])
    assert earlier is not None
    outbox.dead_letter(earlier)
    app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, sops])
    wait_until(files.report(key).exists, 60, "the report")
    assert ReportRecord.read(files.report(key)).destinations == {"a": key}
    assert study_status(spool, study_uid).destinations == {"a": "dead"}


def _sent_once(storescp: StoreSCP, sops: list[str]) -> None:
    """Each of ``sops`` has exactly one SC and one GSPS at the PACS, and no other image has any."""
    received = [dcmread(path, stop_before_pixels=True) for path in storescp.received()]
    assert per_image(received) == once_each(sops)


def test_late_image_report_sends_per_image_objects_only_for_the_new_image(
        tmp_path: Path, no_findings_weights: Path, storescp: StoreSCP, celery_worker) -> None:
    """The PACS holds the SC and GSPS of the images the first report covered; the amended
    report's SRs cover every image, but an SC or GSPS of an earlier image would be the same
    picture again under a new UID (a duplicate in the viewer). Breast risks unchanged here."""
    spool = tmp_path / "spool"
    app = celery_worker(make_settings(spool, [storescp.destination()], worker={"weights": str(no_findings_weights)}))
    study_uid, sops = spool_study(spool)
    files = StudyFiles(spool, study_uid)
    for sop in sops:
        app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sop])
    app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, sops[:3]])  # declared with three
    wait_until(files.report(report_key(sops[:3], "0.0.0-random")).exists, 60, "the first report")
    app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, sops])  # the fourth arrived late
    second = files.report(report_key(sops, "0.0.0-random"))
    wait_until(second.exists, 60, "the amended report")
    kinds = [o.kind.value if o.kind is not None else "" for o in ReportRecord.read(second).objects]
    assert sorted(kinds) == ["gsps", "mammo-cad-sr", "sc", "tid1500-sr"], kinds
    wait_until(lambda: len(storescp.received()) == 6 + 6, 60, "both reports at the PACS")
    _sent_once(storescp, sops)


def test_report_of_an_image_that_arrived_after_its_study_was_pruned(
        tmp_path: Path, random_weights: Path, storescp: StoreSCP, celery_worker) -> None:
    """Retention removed the reported study (images, results, reports); one more image of it
    arrives. Its report covers that image alone and cites nothing (the pruned report still
    holds for its images: a viewer would take a successor for a replacement), and its
    series numbers follow the pruned report's instead of repeating them at the PACS."""
    from mammocad.spool.retention import prune

    spool = tmp_path / "spool"
    app = celery_worker(make_settings(spool, [storescp.destination(outputs=["mammo-cad-sr"])],
                                      worker={"weights": str(random_weights)}))
    study_uid, sops = spool_study(spool)
    files = StudyFiles(spool, study_uid)
    late = files.image(sops[3]).read_bytes()
    files.image(sops[3]).unlink()
    for sop in sops[:3]:
        app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sop])
    app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, sops[:3]])
    wait_until(lambda: len(storescp.received()) == 1, 60, "the first SR at the PACS")
    wait_until(lambda: not list((spool / "outbox").glob("*/*/item.json")), 30, "the outbox to empty")
    assert prune(spool, 60, now=time.time() + 3600).studies == [study_uid]
    files.image(sops[3]).parent.mkdir(parents=True)
    files.image(sops[3]).write_bytes(late)  # what the node stores
    app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sops[3]])
    app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, sops[3:]])
    wait_until(lambda: len(storescp.received()) == 2, 60, "the second SR at the PACS")
    first, second = sorted((dcmread(p) for p in storescp.received()), key=lambda ds: int(ds.SeriesNumber))
    assert (int(first.SeriesNumber), int(second.SeriesNumber)) == (9901, 9911)
    assert "PredecessorDocumentsSequence" not in second


def test_a_late_report_after_one_that_drew_nothing_repeats_no_earlier_sc_or_gsps(
        tmp_path: Path, no_findings_weights: Path, storescp: StoreSCP, celery_worker) -> None:
    """Reports of 2, 3, then 4 images; the third image fails analysis, so the second report
    has SRs only (nothing to draw). The third must still leave the first two images' SC and
    GSPS to the first report: it used to look only at the second, find no SC or GSPS there,
    and send every image's again under new UIDs (the PACS showed those images' marks twice)."""
    spool = tmp_path / "spool"
    app = celery_worker(make_settings(spool, [storescp.destination()], worker={"weights": str(no_findings_weights)}))
    study_uid, sops = spool_study(spool)
    files = StudyFiles(spool, study_uid)
    ds = dcmread(files.image(sops[2]))
    ds.PixelData = ds.PixelData[:100]  # header fine (the SRs cite it), decoding fails
    ds.save_as(files.image(sops[2]))
    for sop in sops:
        app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sop])
    reports = []
    for n in (2, 3, 4):
        app.send_task(TASK_FINALIZE_STUDY, args=[str(spool), study_uid, sops[:n]])
        path = files.report(report_key(sops[:n], "0.0.0-random"))
        wait_until(path.exists, 60, f"the report of {n} images")
        reports.append(ReportRecord.read(path))
    assert files.read_result(sops[2]).error
    wait_until(lambda: len(storescp.received()) == sum(len(r.outputs) for r in reports), 60, "every report")
    _sent_once(storescp, [sops[0], sops[1], sops[3]])
