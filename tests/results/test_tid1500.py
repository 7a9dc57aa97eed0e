"""TID 1500 in Comprehensive 3D SR (IHE AIR): valid; one group per finding with its own
tracking UID; no pathology codes (what OHIF v3 reads: test_ohif_compat.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammocad.config import OutputKind
from mammocad.results.outputs import build_outputs
from tests import validators as V
from tests.results.outputs_fixtures import concept, content_items, make_case, write_all

KIND = [OutputKind.TID1500_SR]


def _groups(sr):  # type: ignore[no-untyped-def]
    return [it for pos, it in content_items(sr) if concept(it) == "125007"]


def test_tid1500_passes_validators(tmp_path: Path) -> None:
    small = build_outputs(*make_case((2, 1, 0, 1), failed=(2,), photometric="MONOCHROME1"), KIND)
    one = build_outputs(*make_case((1, 0, 0, 0)), KIND)  # one SCOORD: PixelMed's TID 1410 quirk
    many = build_outputs(*make_case((30, 0, 0, 0)), KIND)
    none = build_outputs(*make_case((0, 0, 0, 0)), KIND)
    paths = write_all(small + one + many + none, tmp_path)
    problems = {p.name: found for p in paths if (found := V.dciodvfy_errors(p) + V.dsrdump_problems(p))}
    assert problems == {}


def test_air_header_flags_and_library() -> None:
    study, sources = make_case((1, 1, 0, 0), failed=(3,))
    (sr,) = build_outputs(study, sources, KIND)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert (sr.CompletionFlag, sr.VerificationFlag) == ("COMPLETE", "UNVERIFIED")
    assert sr.PreliminaryFlag == "FINAL"
    library = next(it for _, it in content_items(sr) if concept(it) == "111028")
    cited = {e.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for _, e in content_items(library)
             if e.ValueType == "IMAGE"}
    assert cited == {r.image.sop_instance_uid for r in study.images if r.analysed}
    assert sr.TimezoneOffsetFromUTC and sr.DeviceSerialNumber not in ("", "cpu")


def test_one_group_per_finding_with_box_probability_and_no_pathology() -> None:
    study, sources = make_case((3, 2, 0, 1), failed=(2,))
    (sr,) = build_outputs(study, sources, KIND, device="cuda:0")
    groups = _groups(sr)
    codes = {str(c.CodeValue) for _, it in content_items(sr) for s in ("ConceptNameCodeSequence",
                                                                      "ConceptCodeSequence") for c in it.get(s, [])}
    assert not {"21594007", "30807003", "122147"} & codes, "a CAD asserts no pathology"
    lesion_groups = [g for g in groups if any(concept(it) == "111030" for _, it in content_items(g))]
    tracking = [it.UID for g in groups for _, it in content_items(g) if concept(it) == "112040"]
    assert len(tracking) == len(groups) == len(set(tracking))
    boxes = {(r.image.sop_instance_uid, le.box): (r, le) for r in study.images if r.analysed for le in r.lesions}
    # every group is a finding with geometry: breast risk is in the Mammography CAD SR (OHIF, test_ohif_compat.py)
    assert len(lesion_groups) <= len(boxes) and len(groups) == len(lesion_groups)
    for group in groups:
        items = [it for _, it in content_items(group)]
        assert any(concept(it) == "111001" for it in items), "TID 4019 algorithm on every group"
        assert [it.TextValue for it in items if concept(it) == "111002"] == ["device=cuda:0"] or any(
            "device=cuda:0" in it.TextValue for it in items if concept(it) == "111002")
        intent = next(it for it in items if concept(it) == "111056").ConceptCodeSequence[0].CodeValue
        assert intent in ("111150", "111151")
        site = next(it for it in items if concept(it) == "363698007")
        assert site.ConceptCodeSequence[0].CodeValue == "76752008"
        lat = site.ContentSequence[0].ConceptCodeSequence[0].CodeValue
        assert lat in ("7771000", "24028007")
    for group in lesion_groups:
        items = [it for _, it in content_items(group)]
        region = next(it for it in items if concept(it) == "111030")
        g = [float(v) for v in region.GraphicData]
        assert region.GraphicType == "POLYLINE" and g[:2] == g[-2:]
        ref = region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        result, lesion = boxes[(ref, (g[0] - 0.5, g[1] - 0.5, g[4] - 0.5, g[5] - 0.5))]
        prob = next(it for it in items if concept(it) == "111047").MeasuredValueSequence[0]
        assert float(prob.NumericValue) == pytest.approx(lesion.probability_malignant * 100, abs=1e-3)
        lat = next(it for it in items if concept(it) == "363698007").ContentSequence[0].ConceptCodeSequence[0]
        assert lat.CodeValue == {"L": "7771000", "R": "24028007"}[result.image.laterality]
    procedure = next(it for _, it in content_items(sr) if concept(it) == "121058")
    assert procedure.ConceptCodeSequence[0].CodeValue == "363679005"


def test_nothing_found_says_which_breasts_were_analysed() -> None:
    (sr,) = build_outputs(*make_case((0, 0, 0, 0), failed=(1, 3)), KIND)  # both left views failed
    groups = _groups(sr)
    ids = [it.TextValue for g in groups for _, it in content_items(g) if concept(it) == "112039"]
    assert ids == ["Right breast: nothing found"]
    assert not [it for g in groups for _, it in content_items(g) if it.ValueType in ("NUM", "SCOORD")]
