"""The PixelMed batch runner the suite relies on: compiled once per machine, and a file it
could not validate is an error, never a silent pass."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from mammocad.config import OutputKind
from mammocad.results.outputs import build_outputs
from tests import validators as V
from tests.results.outputs_fixtures import content_items, make_case


def test_batch_validator_is_compiled_once_per_source(tmp_path: Path) -> None:
    first = V.batch_validator_classes(cache=tmp_path)
    compiled = (first / "BatchSRValidator.class").stat().st_mtime_ns
    again = V.batch_validator_classes(cache=tmp_path)
    assert again == first and (again / "BatchSRValidator.class").stat().st_mtime_ns == compiled
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no leftover work folders
    jar = Path(V.pixelmed_classpath()).resolve()
    source = (Path(V.__file__).parent / "pixelmed" / "BatchSRValidator.java").read_bytes()
    assert first.name == f"pixelmed-batch-{V.batch_key(source, jar)}"
    assert V.batch_key(source + b"// edited\n", jar) != V.batch_key(source, jar)  # an edit compiles again


def test_a_cut_off_report_is_an_error() -> None:
    a, b = Path("/x/a_SR.dcm"), Path("/x/b_SR.dcm")
    out = "\n".join(["=== FILE /x/a_SR.dcm", "Found Comprehensive3DSR IOD", "Warning: w", "IOD validation complete",
                     "=== DONE /x/a_SR.dcm", "=== FILE /x/b_SR.dcm", "Found Comprehensive3DSR IOD"])
    found = V._parse_batch(out, [a, b])
    assert found[a] == ["Warning: w"]
    assert V.pixelmed_errors(found[b]) != []  # the JVM died inside b: not a pass


def test_a_file_pixelmed_cannot_read_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "not_dicom_SR.dcm"
    bad.write_bytes(b"not a DICOM file at all")
    (found,) = V.pixelmed_batch([bad]).values()
    assert any("DicomSRValidator failed" in f for f in V.pixelmed_errors(found)), found


def _break_laterality(sr: Dataset) -> int:
    """Write the generic SCT "Left" where CID 6022 wants a breast: PixelMed must object."""
    changed = 0
    for _, item in content_items(sr):
        codes = item.get("ConceptCodeSequence")
        if codes and codes[0].CodeValue in ("80248007", "73056007"):
            codes[0].CodeValue, codes[0].CodeMeaning = "7771000", "Left"
            changed += 1
    return changed


@pytest.mark.slow
def test_batch_reports_what_pixelmed_itself_reports(tmp_path: Path) -> None:
    """The batch runner names PixelMed's documents to skip re-parsing them (BatchSRValidator.java);
    its verdict must be PixelMed's own, line for line: here on a CAD SR with errors (wrong
    laterality context group) and warnings (PixelMed's code meaning spellings)."""
    (bad,) = build_outputs(*make_case((1, 0, 0, 0)), [OutputKind.MAMMO_CAD_SR], device="cpu")
    assert _break_laterality(bad) > 0
    path = tmp_path / "broken_SR.dcm"  # not write_all: the session's sweep must not see it
    bad.save_as(path, enforce_file_format=True)
    (batch,) = V.pixelmed_batch([path]).values()
    assert sorted(batch) == sorted(V.pixelmed_sr_problems(path))
    assert any("not found in context group 6022" in e for e in V.pixelmed_errors(batch))
    assert any(p.startswith("Warning") for p in batch)
