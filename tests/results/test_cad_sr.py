"""Mammography CAD SR: valid for dciodvfy, dsrdump and PixelMed; content matches the results."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from mammocad.config import OutputKind
from mammocad.results.outputs import build_outputs
from tests import validators as V
from tests.results.outputs_fixtures import concept, content_items, make_case, write_all

KIND = [OutputKind.MAMMO_CAD_SR]


@pytest.fixture(scope="module")
def sr_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Documents from several inputs; PixelMed's XSLT grows steeply with size (a 30-lesion
    SR takes ~60 s), so it checks the small ones and DCMTK/dicom3tools check them all."""
    folder = tmp_path_factory.mktemp("cad_sr")
    cases = {
        "few_failed_mono1": make_case((3, 1, 0, 2), failed=(2,), photometric="MONOCHROME1"),
        "many": make_case((30, 2, 5, 1)),
        "no_lesions": make_case((0, 0, 0, 0)),
        "all_failed": make_case((1, 1, 1, 1), failed=(0, 1, 2, 3)),
    }
    out = {}
    for name, (study, sources) in cases.items():
        (ds,) = build_outputs(study, sources, KIND, device="cuda:0")
        out[name] = write_all([ds], folder / name)[0]
    return out


def test_cad_sr_passes_all_validators(sr_files: dict[str, Path]) -> None:
    problems = {}
    for name, path in sr_files.items():
        found = V.dciodvfy_errors(path) + V.dsrdump_problems(path)
        if found:
            problems[name] = found
    pixelmed = V.pixelmed_sr_problems_many([sr_files["few_failed_mono1"], sr_files["no_lesions"]])
    for name, found in pixelmed.items():
        real = V.pixelmed_real_problems(found)
        if real:
            problems[f"pixelmed {name}"] = real
    assert problems == {}


def test_sr_references_exactly_the_sources_and_coordinates_match() -> None:
    study, sources = make_case((3, 0, 2, 1), failed=(1,))
    (sr,) = build_outputs(study, sources, KIND)
    evidence = {
        ref.ReferencedSOPInstanceUID
        for st in sr.CurrentRequestedProcedureEvidenceSequence
        for se in st.ReferencedSeriesSequence
        for ref in se.ReferencedSOPSequence
    }
    assert evidence == set(sources)
    items = list(content_items(sr))
    library = [it for pos, it in items if len(pos) == 3 and pos[1] == 2 and it.ValueType == "IMAGE"]
    assert [it.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for it in library] == [
        r.image.sop_instance_uid for r in study.images]
    expected = sorted(
        (r.image.sop_instance_uid, le.box) for r in study.images if r.analysed for le in r.lesions)
    outlines = []
    for _, it in items:
        if concept(it) == "111041":
            g = [float(v) for v in it.GraphicData]
            sop = it.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
            assert it.GraphicType == "POLYLINE" and g[:2] == g[-2:], "outline must be a closed polyline"
            outlines.append((sop, (g[0] - 0.5, g[1] - 0.5, g[4] - 0.5, g[5] - 0.5)))
    assert sorted(outlines) == expected


def test_failed_image_is_reported_as_failed_detection() -> None:
    study, sources = make_case((1, 1, 1, 1), failed=(2,))
    (sr,) = build_outputs(study, sources, KIND)
    items = dict(content_items(sr))
    failed_uid = study.images[2].image.sop_instance_uid
    by_concept = {concept(it): (pos, it) for pos, it in items.items()}
    assert by_concept["111064"][1].ConceptCodeSequence[0].CodeValue == "111223"  # partially succeeded
    assert by_concept["111017"][1].ConceptCodeSequence[0].CodeValue == "111244"  # not all succeeded
    pos, _ = by_concept["111025"]  # Failed Detections
    refs = [it.ReferencedContentItemIdentifier for p, it in items.items()
            if p[:len(pos)] == pos and "ReferencedContentItemIdentifier" in it]
    assert len(refs) == 1
    target = items[tuple(int(v) for v in refs[0])]
    assert target.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == failed_uid
    text = by_concept["111033"][1].TextValue
    assert "CAD FAILED on 1 image" in text and "NOT FOR DIAGNOSTIC USE" in text


def test_laterality_view_and_meanings(tmp_path: Path) -> None:
    study, sources = make_case((1, 1, 1, 1))
    (sr,) = build_outputs(study, sources, KIND, device="cpu")
    path = write_all([sr], tmp_path)[0]
    back = pydicom.dcmread(path)
    codes = {}
    for _, it in content_items(back):
        for seq in ("ConceptNameCodeSequence", "ConceptCodeSequence"):
            for c in it.get(seq, []):
                assert str(c.CodeMeaning).isascii(), c
                codes[str(c.CodeValue)] = str(c.CodeMeaning)
    assert codes["80248007"] == "Left breast" and codes["73056007"] == "Right breast"
    assert "7771000" not in codes  # generic "Left" is wrong here (CID 6022)
    assert {"399162004", "399368009"} <= set(codes)
    assert codes["111034"] == "Individual Impression/Recommendation"
    texts = {concept(it): str(it.get("TextValue", "")) for _, it in content_items(back)}
    assert texts["111001"] == study.model_name and texts["111003"] == study.model_version
    assert "device=cpu" in texts["111002"]
