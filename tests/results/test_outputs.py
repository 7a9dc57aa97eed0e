"""build_outputs: identity, deterministic UIDs, series per kind, predecessors, clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pydicom
import pytest

import mammocad
from mammocad.config import OutputKind
from mammocad.results.outputs import build_outputs
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
        assert ds.Manufacturer == "mammocad" and ds.SoftwareVersions[0] == mammocad.__version__
        assert "NOT FOR DIAGNOSTIC USE" in ds.SeriesDescription
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        by_kind.setdefault(str(ds.SOPClassUID), set()).add(str(ds.SeriesInstanceUID))
    assert all(len(series) == 1 for series in by_kind.values())  # one series per kind
    assert len({s for v in by_kind.values() for s in v}) == 4
    assert len({ds.SOPInstanceUID for ds in outs}) == len(outs)
    # 1 CAD SR + 1 TID 1500 + 3 SC (analysed images) + 1 GSPS (the study)
    assert len(outs) == 6


def test_uids_are_deterministic_and_follow_the_image_set() -> None:
    datasets = make_four_view_study()
    a = build_outputs(*make_case((1, 2, 0, 1), datasets=datasets), ALL)
    b = build_outputs(*make_case((1, 2, 0, 1), datasets=datasets), ALL)
    assert _uids(a) == _uids(b)
    fewer = build_outputs(*make_case((1, 2, 0), datasets=datasets[:3]), ALL)
    assert not set(_uids(fewer)) & set(_uids(a))
    assert not {u for _, u in _uids(fewer)} & {u for _, u in _uids(a)}
    study, sources = make_case((1, 2, 0, 1), datasets=datasets)
    other_model = dataclasses.replace(study, model_version="9.9.9")
    assert not {u for _, u in _uids(build_outputs(other_model, sources, ALL))} & {u for _, u in _uids(a)}


def test_predecessor_documents_in_both_srs() -> None:
    study, sources = make_case((1, 0, 0, 0))
    old = (study.study_uid, "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2")
    outs = build_outputs(study, sources, [OutputKind.MAMMO_CAD_SR, OutputKind.TID1500_SR], predecessor=[old])
    for sr in outs:
        (st,) = sr.PredecessorDocumentsSequence
        ref = st.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
        assert (st.StudyInstanceUID, st.ReferencedSeriesSequence[0].SeriesInstanceUID,
                ref.ReferencedSOPInstanceUID) == old
        assert ref.ReferencedSOPClassUID == sr.SOPClassUID


def test_all_images_failed_gives_srs_saying_so() -> None:
    study, sources = make_case((1, 1, 1, 1), failed=(0, 1, 2, 3))
    outs = build_outputs(study, sources, ALL)
    assert [ds.Modality for ds in outs] == ["SR", "SR"]
    summary = outs[0].ContentSequence[2]
    assert summary.ConceptCodeSequence[0].CodeValue == "111245"  # no algorithms succeeded


def test_long_names_stay_valid(tmp_path: Path) -> None:
    study, sources = make_case((1, 1, 0, 0))
    long = dataclasses.replace(study, model_name="m" * 90, model_version="v" * 80)
    outs = build_outputs(long, sources, ALL, device="cuda:0 " + "x" * 80)
    paths = write_all(outs, tmp_path)
    assert {p.name: e for p in paths if (e := V.dciodvfy_errors(p))} == {}


def test_missing_source_is_named() -> None:
    study, sources = make_case((1, 0, 0, 0))
    missing = study.images[1].image.sop_instance_uid
    del sources[missing]
    with pytest.raises(ValueError, match=missing):
        build_outputs(study, sources, [OutputKind.MAMMO_CAD_SR])
