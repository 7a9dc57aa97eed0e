"""GSPS: valid, one per analysed image in one series per breast, each with its own image's
VOI window(s) and displayed area."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from mammocad.config import OutputKind
from mammocad.results.outputs import build_outputs
from tests import validators as V
from tests.factories import make_mammogram
from tests.results.outputs_fixtures import make_case, write_all

KIND = [OutputKind.GSPS]


def _referenced(gsps: pydicom.Dataset) -> list[str]:
    return [ref.ReferencedSOPInstanceUID for se in gsps.ReferencedSeriesSequence
            for ref in se.ReferencedImageSequence]


def test_gsps_per_image_with_its_own_window_and_area(tmp_path: Path) -> None:
    study, sources = make_case((2, 1, 0, 3), failed=(2,), photometric="MONOCHROME1")
    for i, ds in enumerate(sources.values()):  # every image its own window and size
        ds.WindowCenter, ds.WindowWidth = 1000 + 100 * i, 2000 + 50 * i
    outs = build_outputs(study, sources, KIND, device="cpu")
    paths = write_all(outs, tmp_path)
    analysed = {r.image.sop_instance_uid: r for r in study.images if r.analysed}
    assert len(paths) == len(analysed)
    assert {p.name: e for p in paths if (e := V.dciodvfy_errors(p))} == {}
    series: dict[str, set[str]] = {}
    for path in paths:
        gsps = pydicom.dcmread(path)
        (uid,) = _referenced(gsps)
        src, result = sources[uid], analysed[uid]
        assert gsps.Laterality == result.image.laterality
        series.setdefault(gsps.SeriesInstanceUID, set()).add(gsps.Laterality)
        assert gsps.PresentationLUTShape == "INVERSE"  # MONOCHROME1 sources
        (voi,) = gsps.SoftcopyVOILUTSequence
        assert (float(voi.WindowCenter), float(voi.WindowWidth)) == (float(src.WindowCenter), float(src.WindowWidth))
        (area,) = gsps.DisplayedAreaSelectionSequence
        assert [int(v) for v in area.DisplayedAreaBottomRightHandCorner] == [int(src.Columns), int(src.Rows)]
        boxes = {le.box for le in result.lesions}
        n_boxes = 0
        for ann in gsps.GraphicAnnotationSequence:
            for obj in ann.get("GraphicObjectSequence", []):
                g = [float(v) for v in obj.GraphicData]
                assert obj.GraphicType == "POLYLINE" and g[:2] == g[-2:]
                assert (g[0] - 0.5, g[1] - 0.5, g[4] - 0.5, g[5] - 0.5) in boxes
                n_boxes += 1
        assert n_boxes == len(result.lesions)
    assert all(len(lats) == 1 for lats in series.values()) and len(series) == 2  # one series per breast


def test_two_window_centres_with_one_width_and_voi_lut(tmp_path: Path) -> None:
    right = [make_mammogram(laterality="R", view=v, seed=i) for i, v in enumerate(("CC", "MLO"))]
    right[0].WindowCenter, right[0].WindowWidth = [2000, 1500], [4000]
    right[0].WindowCenterWidthExplanation = ["NORMAL", "HARDER"]
    del right[1].WindowCenter, right[1].WindowWidth
    lut = pydicom.Dataset()
    lut.LUTDescriptor = [4096, 0, 12]
    lut.LUTData = list(range(4096))
    lut.LUTExplanation = "LINEAR"
    right[1].VOILUTSequence = [lut]
    study, sources = make_case((1, 2), datasets=right)
    outs = build_outputs(study, sources, KIND)
    assert {g.Laterality for g in outs} == {"R"}
    first = next(g for g in outs if _referenced(g) == [str(right[0].SOPInstanceUID)])
    (voi,) = first.SoftcopyVOILUTSequence
    assert float(voi.WindowCenter) == 2000 and float(voi.WindowWidth) == 4000
    assert voi.WindowCenterWidthExplanation == "NORMAL"  # one value, never split into letters
    second = next(g for g in outs if g is not first)
    assert "VOILUTSequence" in second.SoftcopyVOILUTSequence[0]
    paths = write_all(outs, tmp_path)
    assert {p.name: e for p in paths if (e := V.dciodvfy_errors(p))} == {}


def test_gsps_monochrome2_identity_and_header_only_sources(tmp_path: Path) -> None:
    study, sources = make_case((1, 0, 1, 0))
    paths = write_all(list(sources.values()), tmp_path / "src")
    headers: dict[str, Dataset] = {str(d.SOPInstanceUID): d
                                   for d in (pydicom.dcmread(p, stop_before_pixels=True) for p in paths)}
    outs = build_outputs(study, headers, KIND)
    assert len(outs) == 4 and {g.PresentationLUTShape for g in outs} == {"IDENTITY"}
    assert sorted(int(g.InstanceNumber) for g in outs) == [1, 2, 3, 4]  # RCC, LCC, RMLO, LMLO
    out_paths = write_all(outs, tmp_path / "out")
    assert {p.name: e for p in out_paths if (e := V.dciodvfy_errors(p))} == {}
