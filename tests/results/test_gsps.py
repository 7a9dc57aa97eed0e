"""GSPS: valid, one per study, references each analysed image, keeps the image's own window."""

from __future__ import annotations

from pathlib import Path

import pydicom

from mammocad.config import OutputKind
from mammocad.results.outputs import build_outputs
from tests import validators as V
from tests.results.outputs_fixtures import make_case, write_all

KIND = [OutputKind.GSPS]


def _referenced(gsps: pydicom.Dataset) -> list[str]:
    return [ref.ReferencedSOPInstanceUID for se in gsps.ReferencedSeriesSequence
            for ref in se.ReferencedImageSequence]


def test_gsps_valid_and_references_each_analysed_image(tmp_path: Path) -> None:
    study, sources = make_case((2, 1, 0, 3), failed=(2,), photometric="MONOCHROME1")
    outs = build_outputs(study, sources, KIND, device="cpu")
    paths = write_all(outs, tmp_path)
    assert len(paths) == 1, "one GSPS for the study"
    assert {p.name: e for p in paths if (e := V.dciodvfy_errors(p))} == {}
    analysed = {r.image.sop_instance_uid: r for r in study.images if r.analysed}
    seen: list[str] = []
    for path in paths:
        gsps = pydicom.dcmread(path)
        refs = _referenced(gsps)
        seen += refs
        assert {analysed[u].image.laterality for u in refs} == {"L", "R"}
        assert "Laterality" in gsps and gsps.Laterality == ""  # Type 2C: present, empty for both breasts
        assert gsps.PresentationLUTShape == "INVERSE"  # MONOCHROME1 sources
        assert "NOT FOR DIAGNOSTIC USE" in gsps.SeriesDescription
        for voi in gsps.SoftcopyVOILUTSequence:
            # Without Referenced Image Sequence the item applies to every referenced image.
            applies_to = [r.ReferencedSOPInstanceUID for r in voi.get("ReferencedImageSequence", [])] or refs
            for uid in applies_to:
                src = sources[uid]
                assert float(voi.WindowCenter) == float(src.WindowCenter)
                assert float(voi.WindowWidth) == float(src.WindowWidth)
        for ann in gsps.GraphicAnnotationSequence:
            (ref,) = ann.ReferencedImageSequence
            result = analysed[ref.ReferencedSOPInstanceUID]
            boxes = {le.box for le in result.lesions}
            for obj in ann.get("GraphicObjectSequence", []):
                g = [float(v) for v in obj.GraphicData]
                assert obj.GraphicType == "POLYLINE" and g[:2] == g[-2:]
                assert (g[0] - 0.5, g[1] - 0.5, g[4] - 0.5, g[5] - 0.5) in boxes
        n_boxes = sum(len(ann.get("GraphicObjectSequence", [])) for ann in gsps.GraphicAnnotationSequence)
        assert n_boxes == sum(len(analysed[u].lesions) for u in refs)
    assert sorted(seen) == sorted(analysed)


def test_gsps_monochrome2_identity_and_header_only_sources(tmp_path: Path) -> None:
    study, sources = make_case((1, 0, 1, 0))
    paths = write_all(list(sources.values()), tmp_path / "src")
    headers = {str(d.SOPInstanceUID): d for d in (pydicom.dcmread(p, stop_before_pixels=True) for p in paths)}
    outs = build_outputs(study, headers, KIND)
    assert len(outs) == 1 and {g.PresentationLUTShape for g in outs} == {"IDENTITY"}
    out_paths = write_all(outs, tmp_path / "out")
    assert {p.name: e for p in out_paths if (e := V.dciodvfy_errors(p))} == {}


def test_one_breast_names_it_and_mixed_photometric_splits(tmp_path: Path) -> None:
    from tests.factories import make_mammogram

    right = [make_mammogram(laterality="R", view=v, seed=i) for i, v in enumerate(("CC", "MLO"))]
    study, sources = make_case((1, 2), datasets=right)
    (gsps,) = build_outputs(study, sources, KIND)
    assert gsps.Laterality == "R" and len(_referenced(gsps)) == 2

    mixed = [make_mammogram(laterality="R", photometric="MONOCHROME1", seed=1),
             make_mammogram(laterality="L", photometric="MONOCHROME2", seed=2)]
    study, sources = make_case((1, 1), datasets=mixed)
    outs = build_outputs(study, sources, KIND)
    assert sorted(g.PresentationLUTShape for g in outs) == ["IDENTITY", "INVERSE"]
    assert len({g.SOPInstanceUID for g in outs}) == 2
    paths = write_all(outs, tmp_path)
    assert {p.name: e for p in paths if (e := V.dciodvfy_errors(p))} == {}
