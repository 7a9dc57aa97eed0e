"""Mammography CAD SR: valid for dciodvfy and dsrdump (PixelMed: every SR, conftest.py);
content matches the results; Rendering Intent follows the CAD operating point."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from mammocad.config import OutputKind
from mammocad.model.results import BreastRisk, Lesion, LesionClass, LesionType
from mammocad.results.outputs import build_outputs
from tests import validators as V
from tests.results.outputs_fixtures import concept, content_items, make_case, resolve, write_all

KIND = [OutputKind.MAMMO_CAD_SR]
REQUIRED, OPTIONAL, NOT_SHOWN = "111150", "111151", "111152"


@pytest.fixture(scope="module")
def sr_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
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


def test_cad_sr_passes_dciodvfy_and_dsrdump(sr_files: dict[str, Path]) -> None:
    problems = {name: found for name, path in sr_files.items()
                if (found := V.dciodvfy_errors(path) + V.dsrdump_problems(path))}
    assert problems == {}


def _intent(finding: pydicom.Dataset) -> tuple[str, int | None]:
    item = next(it for it in finding.ContentSequence if concept(it) == "111056")
    value = item.ConceptCodeSequence[0].CodeValue
    point = None
    for child in item.get("ContentSequence", []):
        if concept(child) == "111071":
            point = int(float(child.MeasuredValueSequence[0].NumericValue))
            assert child.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue == "{1:n}"
    return value, point


def _findings(sr: pydicom.Dataset) -> list[tuple[tuple[int, ...], pydicom.Dataset]]:
    return [(pos, it) for pos, it in content_items(sr) if concept(it) == "111059"]


def test_sr_references_exactly_the_sources_and_coordinates_match() -> None:
    study, sources = make_case((3, 0, 2, 1), failed=(1,))
    (sr,) = build_outputs(study, sources, KIND)
    evidence = {ref.ReferencedSOPInstanceUID for st in sr.CurrentRequestedProcedureEvidenceSequence
                for se in st.ReferencedSeriesSequence for ref in se.ReferencedSOPSequence}
    assert evidence == set(sources)
    items = list(content_items(sr))
    library = [it for pos, it in items if len(pos) == 3 and pos[1] == 2 and it.ValueType == "IMAGE"]
    assert [it.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for it in library] == [
        r.image.sop_instance_uid for r in study.images]
    expected = sorted((r.image.sop_instance_uid, le.box) for r in study.images if r.analysed for le in r.lesions)
    outlines = []
    for _, it in items:
        if concept(it) in ("111041", "111010"):
            (selected,) = it.ContentSequence
            assert selected.RelationshipType == "SELECTED FROM" and "ValueType" not in selected
            target = resolve(sr, selected.ReferencedContentItemIdentifier)  # an Image Library entry
            assert target in library
        if concept(it) == "111041":
            g = [float(v) for v in it.GraphicData]
            assert it.GraphicType == "POLYLINE" and g[:2] == g[-2:], "outline must be a closed polyline"
            sop = resolve(sr, it.ContentSequence[0].ReferencedContentItemIdentifier).ReferencedSOPSequence[0]
            outlines.append((sop.ReferencedSOPInstanceUID, (g[0] - 0.5, g[1] - 0.5, g[4] - 0.5, g[5] - 0.5)))
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
    assert refs and all(resolve(sr, r).ReferencedSOPSequence[0].ReferencedSOPInstanceUID == failed_uid
                        for r in refs)
    text = by_concept["111033"][1].TextValue
    assert "CAD FAILED on 1 image" in text and "NOT FOR DIAGNOSTIC USE" in text


def test_laterality_view_and_meanings(tmp_path: Path) -> None:
    study, sources = make_case((1, 1, 1, 1))
    (sr,) = build_outputs(study, sources, KIND, device="cpu")
    back = pydicom.dcmread(write_all([sr], tmp_path)[0])
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
    assert not {"21594007", "30807003", "111042"} & set(codes), "no pathology claim"
    texts = {concept(it): str(it.get("TextValue", "")) for _, it in content_items(back)}
    assert texts["111001"] == study.model_name and texts["111003"] == study.model_version
    assert "device=cpu" in texts["111002"]
    library = [it for pos, it in content_items(back) if len(pos) == 3 and pos[1] == 2]
    for entry in library:
        names = {concept(c) for c in entry.ContentSequence}
        assert {"111027", "111031", "111044", "111043", "111060", "111026", "111066"} <= names
        row = next(c for c in entry.ContentSequence if concept(c) == "111044").TextValue
        assert row in ("A", "P")  # one direction, never a split string such as "C\\C"


def _with(study, lesions_by_image, breasts):  # type: ignore[no-untyped-def]
    import dataclasses

    images = tuple(dataclasses.replace(r, lesions=tuple(lesions_by_image.get(i, ()))) for i, r in
                   enumerate(study.images))
    return dataclasses.replace(study, images=images, breasts=tuple(breasts))


def test_rendering_intent_follows_the_operating_point_and_breast_calls_agree(tmp_path: Path) -> None:
    study, sources = make_case((0, 0, 0, 0))
    cluster = Lesion((10, 10, 60, 60), LesionClass.BENIGN, 0.39, 0.99)  # 0.386 < 0.5: optional
    strong = Lesion((20, 100, 50, 130), LesionClass.MALIGNANT, 0.9, 0.9)  # 0.81: required
    speck = Lesion((30, 30, 34, 34), LesionClass.BENIGN, 0.2, 0.6, LesionType.INDIVIDUAL_CALCIFICATION)
    # images: 0 RCC, 1 LCC, 2 RMLO, 3 LMLO
    case = _with(study, {0: [cluster, speck], 1: [strong]},
                 [BreastRisk("L", 0.81, True, 0.5, 2), BreastRisk("R", 0.386, False, 0.5, 2)])
    (sr,) = build_outputs(case, sources, KIND)
    write_all([sr], tmp_path)
    found = {}
    for pos, f in _findings(sr):
        container = resolve(sr, pos[:-1])
        outer = next(it for it in container.ContentSequence if concept(it) == "111056")
        if pos[-1] == 2:  # the presented finding; calcifications of a cluster follow it
            assert outer.ConceptCodeSequence[0].CodeValue == _intent(f)[0], "container and finding agree"
        found[f.ConceptCodeSequence[0].CodeValue + ("-speck" if f.ConceptCodeSequence[0].CodeValue == "129770007"
                                                    else ""), round(float(next(
                it for it in f.ContentSequence if concept(it) == "111012").MeasuredValueSequence[0].NumericValue))] = (
            pos, f)
    (cpos, cfind), = [v for k, v in found.items() if k == ("129769006", 99)]
    assert _intent(cfind) == (OPTIONAL, 1)  # just below the operating point: bin 1
    (spos, sfind), = [v for k, v in found.items() if k[0] == "129770007-speck"]
    assert _intent(sfind) == (NOT_SHOWN, None)  # evidence of the cluster, in its container
    assert spos[:-1] == cpos[:-1] and spos[-1] == cpos[-1] + 1
    count = next(it for it in cfind.ContentSequence if concept(it) == "111038")
    assert float(count.MeasuredValueSequence[0].NumericValue) == 1
    (mpos, mfind), = [v for k, v in found.items() if k == ("129769006", 90)]
    assert _intent(mfind) == (REQUIRED, None)
    text = next(it for _, it in content_items(sr) if concept(it) == "111033").TextValue
    assert "Left breast: probability of cancer 81.0%, AT OR ABOVE" in text
    assert "Right breast: probability of cancer 38.6%, below" in text
    risks = [it for pos, it in content_items(sr) if concept(it) == "111047" and len(pos) == 3]
    sides = {it.ContentSequence[0].ConceptCodeSequence[0].CodeValue: float(it.MeasuredValueSequence[0].NumericValue)
             for it in risks}
    assert sides == {"80248007": 81.0, "73056007": 38.6}
    max_op = [it for _, it in content_items(sr) if concept(it) == "111072"]
    assert max_op and all(float(it.MeasuredValueSequence[0].NumericValue) == 4 for it in max_op)


def test_malignant_breast_without_required_finding_promotes_its_strongest(tmp_path: Path) -> None:
    study, sources = make_case((0, 0, 0, 0))
    weak = [Lesion((10, 10, 40, 40), LesionClass.MALIGNANT, 0.45, 0.9), Lesion((50, 50, 80, 80),
                                                                            LesionClass.BENIGN, 0.3, 0.9)]
    # e.g. noisy_or: 1-(1-0.405)(1-0.27) = 0.566 >= 0.5 with no single finding above it
    case = _with(study, {1: weak}, [BreastRisk("L", 0.566, True, 0.5, 2), BreastRisk("R", 0.0, False, 0.5, 2)])
    (sr,) = build_outputs(case, sources, KIND)
    write_all([sr], tmp_path)
    intents = sorted(_intent(f)[0] for _, f in _findings(sr))
    assert intents == [REQUIRED, OPTIONAL]
    # A malignant call with no finding at all is not worded as one.
    case = _with(study, {}, [BreastRisk("L", 0.6, True, 0.5, 2), BreastRisk("R", 0.0, False, 0.5, 2)])
    (sr,) = build_outputs(case, sources, KIND)
    text = next(it for _, it in content_items(sr) if concept(it) == "111033").TextValue
    assert "AT OR ABOVE" not in text


def test_operating_points_follow_tid_4023(sr_files: dict[str, Path]) -> None:
    """Each successful Detection Performed carries TID 4023 rows 1 and 2 in order: Maximum CAD
    Operating Point ([arb'U]) and Recommended CAD Operating Point ({0:n}, "range: 0:n"), the
    point a workstation shows first (0: the Presentation Required marks, where the model was
    tuned). No finding's CAD Operating Point exceeds the maximum (TID 4023 row 1's description).
    PixelMed validates every one of these SRs against TID 4023 (conftest.py)."""
    sr = pydicom.dcmread(sr_files["many"])
    items = list(content_items(sr))
    performed = [it for _, successful in items if concept(successful) == "111063"  # Successful Detections
                 for it in successful.ContentSequence if concept(it) == "111022"]
    assert performed
    for detection in performed:
        names = [concept(child) for child in detection.ContentSequence]
        assert names[-2:] == ["111072", "111092"], names
        maximum, recommended = detection.ContentSequence[-2:]
        assert float(maximum.MeasuredValueSequence[0].NumericValue) == 4
        assert float(recommended.MeasuredValueSequence[0].NumericValue) == 0
        unit = recommended.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0]
        assert (unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning) == ("{0:n}", "UCUM", "range: 0:n")
        assert all(child.RelationshipType == "HAS PROPERTIES" for child in (maximum, recommended))
    points = [float(it.MeasuredValueSequence[0].NumericValue) for _, it in items if concept(it) == "111071"]
    assert points and all(1 <= p <= 4 for p in points)
    failed = pydicom.dcmread(sr_files["all_failed"])
    assert not [it for _, it in content_items(failed) if concept(it) == "111092"]  # no detection, no point
