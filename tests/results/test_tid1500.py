"""TID 1500 Comprehensive SR: valid, one group per lesion with its own tracking UID."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammocad.config import OutputKind
from mammocad.results.outputs import build_outputs
from tests import validators as V
from tests.results.outputs_fixtures import concept, content_items, make_case, write_all

KIND = [OutputKind.TID1500_SR]
#: PixelMed has no rows for TID 1500's parameterised qualitative evaluations.
QUALITATIVE = ('(122147,DCM,"Clinical Interpretation"): Content Item not in template',)


def _groups(sr):  # type: ignore[no-untyped-def]
    return [it for pos, it in content_items(sr) if concept(it) == "125007"]


def test_tid1500_passes_validators(tmp_path: Path) -> None:
    small = build_outputs(*make_case((2, 1, 0, 1), failed=(2,), photometric="MONOCHROME1"), KIND)
    many = build_outputs(*make_case((30, 0, 0, 0)), KIND)
    none = build_outputs(*make_case((0, 0, 0, 0)), KIND)
    paths = write_all(small + many + none, tmp_path)
    problems = {p.name: V.dciodvfy_errors(p) + V.dsrdump_problems(p) for p in paths}
    pm = V.pixelmed_real_problems(V.pixelmed_sr_problems(paths[0]), allow_not_in_template=QUALITATIVE)
    problems["pixelmed"] = pm
    assert {k: v for k, v in problems.items() if v} == {}


def test_one_group_per_lesion_with_box_and_probability() -> None:
    study, sources = make_case((3, 2, 0, 1), failed=(2,))
    (sr,) = build_outputs(study, sources, KIND, device="cuda:0")
    groups = _groups(sr)
    lesions = [(r, le) for r in study.images if r.analysed for le in r.lesions]
    assert len(groups) == len(lesions) + len(study.breasts)
    tracking = [it.UID for g in groups for _, it in content_items(g) if concept(it) == "112040"]
    assert len(tracking) == len(groups) == len(set(tracking))
    for group, (result, lesion) in zip(groups, lesions, strict=False):
        items = [it for _, it in content_items(group)]
        region = next(it for it in items if concept(it) == "111030")
        g = [float(v) for v in region.GraphicData]
        assert region.GraphicType == "POLYLINE" and g[:2] == g[-2:]
        assert (g[0] - 0.5, g[1] - 0.5, g[4] - 0.5, g[5] - 0.5) == lesion.box
        ref = region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        assert ref == result.image.sop_instance_uid
        prob = next(it for it in items if concept(it) == "111047").MeasuredValueSequence[0]
        assert float(prob.NumericValue) == pytest.approx(lesion.probability_malignant * 100, abs=1e-3)
        assert prob.MeasurementUnitsCodeSequence[0].CodeValue == "%"
        site = next(it for it in items if concept(it) == "363698007")
        lat = site.ContentSequence[0].ConceptCodeSequence[0].CodeValue
        assert lat == {"L": "7771000", "R": "24028007"}[result.image.laterality]
        verdict = next(it for it in items if concept(it) == "122147").ConceptCodeSequence[0].CodeValue
        assert verdict == ("21594007" if lesion.lesion_class.value == "malignant" else "30807003")
    procedure = next(it for _, it in content_items(sr) if concept(it) == "121058")
    assert procedure.ConceptCodeSequence[0].CodeValue == "363679005"
    params = [it.TextValue for _, it in content_items(sr) if concept(it) == "111002"]
    assert params.count("device=cuda:0") == len(groups)
