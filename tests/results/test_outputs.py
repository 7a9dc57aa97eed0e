"""build_outputs: identity, deterministic UIDs, series per kind, predecessors, clear errors."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pydicom
import pytest

import mammocad
from mammocad.config import OutputKind
from mammocad.results.outputs import build_cad_failed, build_outputs
from mammocad.results.uids import UID_ROOT
from tests import validators as V
from tests.factories import make_four_view_study
from tests.results.outputs_fixtures import make_case, write_all

ALL = list(OutputKind)


def _uids(outs: list[pydicom.Dataset]) -> list[tuple[str, str]]:
    return [(str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)) for ds in outs]


def test_all_kinds_share_study_and_identity() -> None:
    study, sources = make_case((2, 1, 0, 1), failed=(2,))
    outs = build_outputs(study, sources, ALL, device="cuda:0")
    first = next(iter(sources.values()))
    by_kind: dict[str, set[str]] = {}
    for ds in outs:
        assert ds.StudyInstanceUID == study.study_uid
        assert (ds.PatientID, str(ds.PatientName), ds.AccessionNumber) == (
            first.PatientID, str(first.PatientName), first.AccessionNumber)
        assert ds.Manufacturer == "mammocad project" and ds.SoftwareVersions[0] == f"mammocad {mammocad.__version__}"
        assert ds.DeviceSerialNumber not in ("", "cpu", "cuda:0") and ds.TimezoneOffsetFromUTC
        assert ds.SOPInstanceUID.startswith(UID_ROOT + ".")
        assert "NOT FOR DIAGNOSTIC USE" in ds.SeriesDescription
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        by_kind.setdefault(str(ds.SOPClassUID), set()).add(str(ds.SeriesInstanceUID))
    # SRs: one series each; SC and GSPS: one series per breast
    assert [len(by_kind[k]) for k in sorted(by_kind)] == [2, 2, 1, 1]  # GSPS, SC, 3D SR, CAD SR
    numbers = {(str(ds.SeriesInstanceUID), int(ds.SeriesNumber)) for ds in outs}
    assert len({n for _, n in numbers}) == len(numbers) == 6
    for ds in outs:
        if ds.Modality != "SR":
            assert ds.Laterality in ("L", "R")
    assert len({ds.SOPInstanceUID for ds in outs}) == len(outs)
    # 1 CAD SR + 1 TID 1500 + 3 SC (analysed images) + 3 GSPS (one per analysed image)
    assert len(outs) == 8
    sc = sorted((int(ds.InstanceNumber), ds.Laterality, ds.ViewPosition) for ds in outs if ds.Modality == "MG")
    assert sc == [(1, "R", "CC"), (2, "L", "CC"), (4, "L", "MLO")]  # RCC LCC RMLO LMLO order


def test_uids_are_deterministic_and_follow_the_image_set() -> None:
    datasets = make_four_view_study()
    when = datetime.datetime(2026, 11, 20, 10, 15, tzinfo=datetime.UTC)
    a = build_outputs(*make_case((1, 2, 0, 1), datasets=datasets), ALL, when=when)
    b = build_outputs(*make_case((1, 2, 0, 1), datasets=datasets), ALL, when=when)
    assert _uids(a) == _uids(b)
    # Rebuilt later: same series, but new content (Content Time) means new SOP Instance UIDs.
    later = build_outputs(*make_case((1, 2, 0, 1), datasets=datasets), ALL, when=when + datetime.timedelta(seconds=1))
    assert [s for s, _ in _uids(later)] == [s for s, _ in _uids(a)]
    assert not {u for _, u in _uids(later)} & {u for _, u in _uids(a)}
    fewer = build_outputs(*make_case((1, 2, 0), datasets=datasets[:3]), ALL)
    assert not set(_uids(fewer)) & set(_uids(a))
    assert not {u for _, u in _uids(fewer)} & {u for _, u in _uids(a)}
    study, sources = make_case((1, 2, 0, 1), datasets=datasets)
    other_model = dataclasses.replace(study, model_version="9.9.9")
    assert not {u for _, u in _uids(build_outputs(other_model, sources, ALL))} & {u for _, u in _uids(a)}


def test_predecessor_documents_in_both_srs() -> None:
    study, sources = make_case((1, 0, 0, 0))
    old = (study.study_uid, "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2")
    outs = build_outputs(study, sources, [OutputKind.MAMMO_CAD_SR, OutputKind.TID1500_SR], predecessor=[old],
                         version=2)
    first = build_outputs(study, sources, [OutputKind.MAMMO_CAD_SR, OutputKind.TID1500_SR])
    assert not {int(s.SeriesNumber) for s in outs} & {int(s.SeriesNumber) for s in first}
    for sr in outs:
        (st,) = sr.PredecessorDocumentsSequence
        ref = st.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
        assert (st.StudyInstanceUID, st.ReferencedSeriesSequence[0].SeriesInstanceUID,
                ref.ReferencedSOPInstanceUID) == old
        assert ref.ReferencedSOPClassUID == sr.SOPClassUID


def test_all_images_failed_gives_srs_saying_so(tmp_path: Path) -> None:
    study, sources = make_case((1, 1, 1, 1), failed=(0, 1, 2, 3))
    outs = build_outputs(study, sources, ALL)
    assert [ds.Modality for ds in outs] == ["SR", "SR"]
    summary = outs[0].ContentSequence[2]
    assert summary.ConceptCodeSequence[0].CodeValue == "111245"  # no algorithms succeeded
    write_all(outs, tmp_path / "all_failed")


def test_cad_failed_entry_reports_failed_images_and_analyses(tmp_path: Path) -> None:
    study, sources = make_case((1, 0, 1, 0), failed=(1,))
    outs = build_cad_failed(study, sources, failed_analyses=["breast risk"])
    assert [str(ds.SOPClassUID) for ds in outs] == ["1.2.840.10008.5.1.4.1.1.88.50", "1.2.840.10008.5.1.4.1.1.88.34"]
    cad = outs[0]
    text = next(it for it in cad.ContentSequence[2].ContentSequence if it.ConceptNameCodeSequence[0].CodeValue == "111033")
    assert "CAD FAILED on 1 image" in text.TextValue and "breast risk could not be computed" in text.TextValue
    analyses = cad.ContentSequence[4]
    assert analyses.ConceptCodeSequence[0].CodeValue == "111223"  # partially succeeded
    paths = write_all(outs, tmp_path)
    assert {p.name: e for p in paths if (e := V.dciodvfy_errors(p) + V.dsrdump_problems(p))} == {}


def test_long_names_stay_valid(tmp_path: Path) -> None:
    study, sources = make_case((1, 1, 0, 0))
    long = dataclasses.replace(study, model_name="m" * 90, model_version="v" * 80)
    outs = build_outputs(long, sources, ALL, device="cuda:0 " + "x" * 80)
    paths = write_all(outs, tmp_path)
    assert {p.name: e for p in paths if (e := V.dciodvfy_errors(p))} == {}


def test_invalid_value_is_refused_naming_the_attribute() -> None:
    from mammocad.results.outputs import validate_output

    ds = pydicom.Dataset()
    ds.ContentSequence = [pydicom.Dataset()]
    ds.ContentSequence[0].TextValue = "ok"
    ds.ContentSequence[0].CodeValue = "x" * 17
    with pytest.raises(ValueError, match=r"ContentSequence\[0\]\.CodeValue \(SH\)"):
        validate_output(ds)


def test_missing_source_is_named() -> None:
    study, sources = make_case((1, 0, 0, 0))
    missing = study.images[1].image.sop_instance_uid
    del sources[missing]
    with pytest.raises(ValueError, match=missing):
        build_outputs(study, sources, [OutputKind.MAMMO_CAD_SR])


def test_graphics_only_destination_gets_sc_instead_of_gsps() -> None:
    from mammocad.config.settings import Destination

    plain = Destination(name="pacs", ae_title="PACS", host="127.0.0.1", port=104)
    assert plain.wanted_outputs == list(OutputKind)
    weasis = Destination(name="weasis", ae_title="WEASIS", host="127.0.0.1", port=104, graphics_only=True,
                         outputs=[OutputKind.MAMMO_CAD_SR, OutputKind.GSPS])
    assert weasis.wanted_outputs == [OutputKind.MAMMO_CAD_SR, OutputKind.SECONDARY_CAPTURE]
