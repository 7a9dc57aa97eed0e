"""Broken source headers, one defect at a time: every kind is still built, and valid.

Each source is written as a file and read back (as the worker reads it), so a value the
modality wrote badly reaches the builders exactly as pydicom decodes it. Every output must
pass dciodvfy (and dsrdump for SRs); the SRs are also checked by PixelMed at the end of the
session (``conftest.py``). ``tests/results/test_corpus.py`` covers whole awkward studies.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from mammocad.config import OutputKind
from mammocad.results.outputs import build_outputs
from tests import validators as V
from tests.factories import make_four_view_study, write
from tests.results.outputs_fixtures import make_case, write_all

ALL = list(OutputKind)


def build_checked(datasets: list[Dataset], tmp_path: Path) -> list[Dataset]:
    """Every kind built from ``datasets`` (round-tripped through files), each output valid."""
    sources = [pydicom.dcmread(write(ds, tmp_path / "src" / f"{i}.dcm"), defer_size="1 MB")
               for i, ds in enumerate(datasets)]
    outs = build_outputs(*make_case(datasets=sources), ALL, device="cpu")
    assert _kinds(outs) == set(ALL)
    paths = write_all(outs, tmp_path / "out")
    problems = {p.name: found for p in paths
                if (found := V.dciodvfy_errors(p) + (V.dsrdump_problems(p) if p.name.endswith("_SR.dcm") else []))}
    assert problems == {}
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]


def _kinds(outs: list[Dataset]) -> set[OutputKind]:
    by_class = {"1.2.840.10008.5.1.4.1.1.88.50": OutputKind.MAMMO_CAD_SR,
                "1.2.840.10008.5.1.4.1.1.88.34": OutputKind.TID1500_SR,
                "1.2.840.10008.5.1.4.1.1.7": OutputKind.SECONDARY_CAPTURE,
                "1.2.840.10008.5.1.4.1.1.11.1": OutputKind.GSPS}
    return {by_class[str(ds.SOPClassUID)] for ds in outs}


def test_dates_that_are_not_in_the_calendar_are_left_empty(tmp_path: Path) -> None:
    """pydicom's pattern accepts 30 February; highdicom raised on it (no TID 1500, no GSPS)."""
    study = make_four_view_study()
    for ds in study:
        ds.PatientBirthDate = "19650230"
        ds.StudyDate = "20261100"
    for out in build_checked(study, tmp_path):
        assert out.PatientBirthDate == "" and out.StudyDate == ""


def test_patient_sex_outside_its_enumerated_values_is_left_empty(tmp_path: Path) -> None:
    """Patient's Sex "W" (weiblich) is a valid CS but not M, F or O: dciodvfy rejected the SRs
    and SCs, and highdicom raised on it (no TID 1500, no GSPS)."""
    study = make_four_view_study()
    for ds in study:
        ds.PatientSex = "W"
    for out in build_checked(study, tmp_path):
        assert out.PatientSex == ""


def test_gsps_checks_every_patient_and_study_attribute_highdicom_copies(tmp_path: Path) -> None:
    """highdicom copies the image's whole Patient and Study modules into the GSPS verbatim: an
    18-character Patient's Size made it invalid, a year-only Last Menstrual Date or an
    over-long Patient Comments made the build fail. Invalid ones are left out, valid kept, and
    the DS written as the same number in 16 characters (``test_lossless_repairs.py``)."""
    study = make_four_view_study()
    for ds in study:
        ds.PatientSize = "1.6500000000000001"  # DS over 16 characters, as some writers print floats
        ds.LastMenstrualDate = "2026"
        ds.PatientComments = "x" * 10241
        ds.PatientWeight = "70"
    gsps = [out for out in build_checked(study, tmp_path) if out.Modality == "PR"]
    assert len(gsps) == 4
    for out in gsps:
        assert out["PatientSize"].value == "1.65"
        assert "LastMenstrualDate" not in out and "PatientComments" not in out
        assert float(out.PatientWeight) == 70


def test_gsps_without_a_usable_window_or_rescale_from_the_image(tmp_path: Path) -> None:
    """A window width of 0 (no usable VOI) let highdicom copy the image's window itself and
    raise; so did an intercept without a slope (its Modality LUT). Each GSPS is built with
    no VOI and no Modality LUT of its own, as pydicom and the SC show such an image."""
    study = make_four_view_study()
    for ds in study:
        ds.WindowWidth = 0
        del ds.RescaleSlope
    gsps = [out for out in build_checked(study, tmp_path) if out.Modality == "PR"]
    assert len(gsps) == 4
    for out in gsps:
        assert "SoftcopyVOILUTSequence" not in out and "RescaleIntercept" not in out


def test_pixel_spacing_that_reads_as_infinite_is_not_used(tmp_path: Path) -> None:
    """Imager Pixel Spacing "1e999" is a valid DS that reads as inf: the Mammography CAD SR
    wrote "inf" as a Numeric Value (dciodvfy and dsrdump reject it; validate_output now
    refuses it) and highdicom raised on it (no TID 1500). The next usable spacing is used."""
    study = make_four_view_study()
    for ds in study:
        ds.ImagerPixelSpacing = ["1e999", "1e999"]
    outs = build_checked(study, tmp_path)
    cad = next(out for out in outs if out.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.50")
    library = cad.ContentSequence[1].ContentSequence
    spacings = [item.MeasuredValueSequence[0].NumericValue for entry in library for item in entry.ContentSequence
                if item.ConceptNameCodeSequence[0].CodeValue in ("111026", "111066")]
    assert len(spacings) == 2 * len(library) and {float(v) for v in spacings} == {0.1}


def test_latin1_text_that_grows_in_utf8_is_cut_to_fit(tmp_path: Path) -> None:
    """A 64-character Latin-1 Study Description is valid, but re-encoded as UTF-8 (as every
    output is) its umlauts take two bytes each and dciodvfy, which counts bytes, rejected
    every output. It is cut, at a whole character, to 64 bytes."""
    description = "Mammographie beidseits Früherkennung, Größenänderung überprüfen"
    description += "ä" * (64 - len(description))
    study = make_four_view_study()
    for ds in study:
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.StudyDescription = description
    for out in build_checked(study, tmp_path):
        written = str(out.StudyDescription)
        assert description.startswith(written) and 60 < len(written.encode("utf-8")) <= 64


def test_person_name_with_three_groups_fits_in_64_bytes(tmp_path: Path) -> None:
    """Three component groups are valid up to 64 characters each (PS3.5), but dciodvfy counts
    the whole name against 64 bytes: this one is 65 bytes in UTF-8 and every output was
    rejected. The phonetic group is dropped; alphabetic and ideographic ones are kept whole."""
    study = make_four_view_study(patient_name="Yamamoto^Shinnosuke=山本^慎之介=やまもと^しんのすけ")
    for ds in study:
        ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
        ds.ReferringPhysicianName = "=".join(["Doe^" + "J" * 40] * 2)  # two ASCII groups, 89 characters
    for out in build_checked(study, tmp_path):
        assert str(out.PatientName) == "Yamamoto^Shinnosuke=山本^慎之介"
        assert str(out.ReferringPhysicianName) == "Doe^" + "J" * 40


def test_control_characters_are_not_passed_on(tmp_path: Path) -> None:
    """pydicom's validation lets a tab in a Patient ID (LO) through; dciodvfy rejected every
    output. An identifier holding one is left empty; free text gets a space instead."""
    study = make_four_view_study()
    for ds in study:
        ds.PatientID = "ID\t0001"
        ds.StudyDescription = "MAMMO\tSCREENING\x0bBILATERAL"
    for out in build_checked(study, tmp_path):
        assert out.PatientID == "" and out.StudyDescription == "MAMMO SCREENING BILATERAL"


def test_gsps_window_explanations_are_checked(tmp_path: Path) -> None:
    """The GSPS copies the image's window explanations: a 64-character Latin-1 one grew past
    64 bytes in UTF-8 (the GSPS was rejected, or refused by validate_output), one holding a
    tab was passed on. They are cut to fit; explanations that stay invalid are not copied."""
    study = make_four_view_study()
    for i, ds in enumerate(study):
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.WindowCenterWidthExplanation = ("Weichteil " + "ü" * 54) if i % 2 else "NORMAL\tWINDOW"
    gsps = [out for out in build_checked(study, tmp_path) if out.Modality == "PR"]
    explanations = {str(out.SoftcopyVOILUTSequence[0].get("WindowCenterWidthExplanation", "")) for out in gsps}
    assert explanations == {"", "Weichteil " + "ü" * 27}


def _item(**values: str) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def test_sequence_items_left_incomplete_by_a_repair_are_dropped(tmp_path: Path) -> None:
    """Items were checked attribute by attribute only: an Other Patient ID over 64 characters
    was left out and its item kept without its Type 1 Patient ID; an invalid Universal Entity
    ID Type left its Universal Entity ID behind (Type 1C). dciodvfy rejected every output."""
    study = make_four_view_study()
    for ds in study:
        ds.OtherPatientIDsSequence = [_item(PatientID="X" * 70, TypeOfPatientID="TEXT"),
                                      _item(PatientID="NHS-123", IssuerOfPatientID="NHS", TypeOfPatientID="TEXT")]
        ds.IssuerOfAccessionNumberSequence = [_item(LocalNamespaceEntityID="RIS", UniversalEntityID="1.2.3.4",
                                                    UniversalEntityIDType="NOT-A-TYPE")]
    for out in build_checked(study, tmp_path):
        assert [str(item.PatientID) for item in out.OtherPatientIDsSequence] == ["NHS-123"]
        (issuer,) = out.IssuerOfAccessionNumberSequence
        assert issuer.LocalNamespaceEntityID == "RIS" and "UniversalEntityID" not in issuer


def _library_times(cad: Dataset) -> set[str]:
    """The Study and Content Time items of the Mammography CAD SR's Image Library entries."""
    library = cad.ContentSequence[1].ContentSequence
    return {str(item.Time) for entry in library for item in entry.ContentSequence if item.ValueType == "TIME"}


@pytest.mark.parametrize(("received", "written"), [
    ("10:15:00", "101500"),  # the retired ACR-NEMA form, which PS3.5 asks readers to accept
    ("10:15", "1015"),
    ("10:15:00.5", "101500.5"),
    ("101500.123456789", "101500.123456"),  # more than six fraction digits: cut, never rounded
    ("101500.", "101500"),
    ("101560", "1015"),  # a leap second: valid in PS3.5, rejected by dciodvfy and DCMTK
    ("1015", "1015"),  # already valid: kept as it is
    ("25:00", ""),  # no such hour: cannot be read
    ("1015-1030", ""),  # a query range, which pydicom's check lets through
])
def test_times_are_normalised_where_the_standard_lets_them_be_read(tmp_path: Path, received: str,
                                                                    written: str) -> None:
    """Times in the ACR-NEMA form or with too many fraction digits were dropped, a leap second
    or a range passed on (dciodvfy rejected every output, DCMTK could not read the SRs). Each
    is now written in HHMMSS.FFFFFF form when it can be read as a time, else left empty/out."""
    study = make_four_view_study()
    for ds in study:
        ds.StudyTime = ds.ContentTime = ds.PatientBirthTime = received
    outs = build_checked(study, tmp_path)
    assert {str(out.StudyTime) for out in outs} == {written}
    gsps = [out for out in outs if out.Modality == "PR"]
    assert {str(out.get("PatientBirthTime", "")) for out in gsps} == {written}
    cad = next(out for out in outs if out.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.50")
    assert _library_times(cad) == ({written} if written else set())


def test_an_image_without_modality_still_gets_every_kind(tmp_path: Path) -> None:
    """Modality is Type 1, but the node analyses a mammogram by its SOP class without it;
    the TID 1500 SR raised AttributeError ('Dataset' object has no attribute 'Modality')
    in highdicom's image reference and was lost. It cites the image by its UIDs now."""
    study = make_four_view_study()
    for ds in study:
        del ds.Modality
    outs = build_checked(study, tmp_path)
    assert len(outs) == 10


@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SOPClassUID", "SeriesInstanceUID"])
@pytest.mark.parametrize("defect", ["absent", "two values"])
def test_an_image_that_cannot_be_cited_gets_a_clear_error(keyword: str, defect: str) -> None:
    """Without one UID for its study, class or series no output can cite an image (a made-up
    one would cite an image that does not exist). The build raised AttributeError, KeyError or
    TypeError, or wrote the list's text ("['1.2.3', '1.2.4']") as the Study Instance UID; it
    refuses now, naming the image and the attribute (the series only for the GSPS)."""
    study = make_four_view_study()
    case = make_case(datasets=study)  # the results as the node recorded them; then the header breaks
    for ds in study:
        if defect == "absent":
            del ds[keyword]
        else:
            ds[keyword].value = [str(ds[keyword].value), "1.2.3.4"]
    kinds = [OutputKind.GSPS] if keyword == "SeriesInstanceUID" else ALL
    for kind in kinds:
        with pytest.raises(ValueError, match=f"image {study[0].SOPInstanceUID}: {keyword} .*correct the image's"):
            build_outputs(*case, [kind])
