"""Building a study's results when an image can no longer be read at finalize time."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pydicom.dataset import Dataset

from mammocad.config import OutputKind
from mammocad.model.results import StudyResult
from mammocad.spool.studies import StudyFiles
from mammocad.worker.building import Built, build_study
from tests import factories
from tests.results.outputs_fixtures import make_case, write_all
from tests.validators import dciodvfy_errors, pixelmed_errors, pixelmed_sr_problems


def _spooled_case(spool: Path) -> tuple[StudyFiles, list[Dataset], list[str]]:
    """A four-view study written into the spool as the node stores it."""
    datasets = factories.make_four_view_study()
    files = StudyFiles(spool, str(datasets[0].StudyInstanceUID))
    for ds in datasets:
        path = files.image(str(ds.SOPInstanceUID))
        path.parent.mkdir(parents=True, exist_ok=True)
        factories.write(ds, path)
    return files, datasets, [str(ds.SOPInstanceUID) for ds in datasets]


def _build(files: StudyFiles, study: StudyResult, sop_uids: list[str]) -> tuple[Built, StudyResult]:
    return build_study(study, files, sop_uids, [OutputKind.MAMMO_CAD_SR], device="cpu",
                       predecessors=lambda kind: [], sc_jpeg_quality=90)


def _evidence(sr: Dataset) -> dict[str, str]:
    """SOP Instance UID -> Series Instance UID the SR's evidence cites it under."""
    return {str(sop.ReferencedSOPInstanceUID): str(series.SeriesInstanceUID)
            for study in sr.CurrentRequestedProcedureEvidenceSequence
            for series in study.ReferencedSeriesSequence for sop in series.ReferencedSOPSequence}


def test_unreadable_image_cited_by_the_series_its_analysis_recorded(tmp_path: Path) -> None:
    files, datasets, sop_uids = _spooled_case(tmp_path / "spool")
    study, _ = make_case(datasets=datasets)
    lost = datasets[2]
    files.image(str(lost.SOPInstanceUID)).write_bytes(b"\x00" * 200)  # unreadable at finalize

    built, reported = _build(files, study, sop_uids)
    assert not built.failed, built.failed
    [(_, sr)] = built.objects
    assert _evidence(sr) == {str(ds.SOPInstanceUID): str(ds.SeriesInstanceUID) for ds in datasets}
    assert [bool(r.error) for r in reported.images] == [False, False, True, False]
    [path] = write_all([sr], tmp_path / "out")
    assert dciodvfy_errors(path) == []
    assert pixelmed_errors(pixelmed_sr_problems(path)) == []


def test_image_with_no_known_series_left_out_of_the_evidence(tmp_path: Path) -> None:
    """Unreadable now and when analysed: no Series UID is known, so no object can cite it."""
    files, datasets, sop_uids = _spooled_case(tmp_path / "spool")
    study, _ = make_case(datasets=datasets)
    lost = str(datasets[1].SOPInstanceUID)
    images = tuple(dataclasses.replace(r, image=dataclasses.replace(r.image, series_uid="", sop_class_uid=""),
                                       lesions=(), error="cannot read the image")
                   if r.image.sop_instance_uid == lost else r for r in study.images)
    study = dataclasses.replace(study, images=images)
    files.image(lost).write_bytes(b"\x00" * 200)

    built, reported = _build(files, study, sop_uids)
    [(_, sr)] = built.objects
    assert lost not in _evidence(sr)
    assert set(_evidence(sr)) == set(sop_uids) - {lost}
    failed = {r.image.sop_instance_uid: r.error for r in reported.images if r.error}
    assert list(failed) == [lost] and "left out" in failed[lost]
    [path] = write_all([sr], tmp_path / "out")
    assert dciodvfy_errors(path) == []
    assert pixelmed_errors(pixelmed_sr_problems(path)) == []


def test_first_image_unreadable_report_keeps_the_patient(tmp_path: Path) -> None:
    """The SR copies the Patient and Study modules from the study's first image; when that one
    is unreadable they come from another image of the study, never left empty."""
    files, datasets, sop_uids = _spooled_case(tmp_path / "spool")
    study, _ = make_case(datasets=datasets)
    files.image(sop_uids[0]).write_bytes(b"\x00" * 200)

    built, _ = _build(files, study, sop_uids)
    [(_, sr)] = built.objects
    first = datasets[0]
    assert (sr.PatientID, sr.PatientName, sr.AccessionNumber) == (first.PatientID, first.PatientName,
                                                                  first.AccessionNumber)
    assert _evidence(sr)[sop_uids[0]] == str(first.SeriesInstanceUID)
    [path] = write_all([sr], tmp_path / "out")
    assert dciodvfy_errors(path) == []
