"""The one CID 4014 table against pydicom's copy of PS3.16, and the readers and writers that use it.

Three hand-copied tables had drifted: an SIO image was read as XCCM (and cited so in the CAD
SR), an ISO one as "CV", an XCCM one as XCCL; the SNOMED RT map gave R-1024A/B the other
view's meaning, and SNOMED RT's Right (G-A100) and Left (G-A101) the other side's code.
"""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sr._snomed_dict import mapping as snomed_mapping
from pydicom.sr.codedict import codes

from mammocad.dicom.header import view_from_header
from mammocad.dicom.views import MAMMOGRAPHY_VIEWS, VIEW_CODES, MammographyView
from mammocad.results.sanitize import SRT_TO_SCT, map_code
from tests.factories import make_mammogram


def test_every_view_is_cid_4014_as_pydicom_has_it() -> None:
    standard = {concept.value: concept.meaning for concept in codes.CID4014.concepts.values()}
    ours = {view.code.value: view.code.meaning for view in MAMMOGRAPHY_VIEWS}
    assert {view.code.scheme for view in MAMMOGRAPHY_VIEWS} == {"SCT"}
    assert ours.items() <= standard.items()
    # every view of the group but the specimen one (no image of a breast has it)
    assert set(standard) - set(ours) == {codes.SCT.TissueSpecimenFromBreast.value}


def test_every_snomed_rt_code_maps_as_ps3_16_maps_it() -> None:
    sct_of_srt = snomed_mapping["SRT"]
    for view in MAMMOGRAPHY_VIEWS:
        assert sct_of_srt[view.srt] == view.code.value, view.name
    for srt, (sct, _meaning) in SRT_TO_SCT.items():
        assert sct_of_srt[srt] == sct, srt


def _view_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


@pytest.mark.parametrize("view", MAMMOGRAPHY_VIEWS, ids=lambda v: v.name)
def test_the_header_reader_names_each_view_from_either_code(view: MammographyView) -> None:
    for value, scheme in ((view.code.value, "SCT"), (view.srt, "SRT")):
        ds = make_mammogram(laterality="L", view="CC")
        del ds.ViewPosition
        ds.ViewCodeSequence = [_view_item(value, scheme, view.code.meaning)]
        assert view_from_header(ds) == (view.name, "ViewCodeSequence")


def test_a_snomed_rt_view_code_is_copied_as_its_own_view() -> None:
    mapped = map_code(_view_item("R-1024A", "SRT", "cranio-caudal exaggerated laterally"))
    assert (mapped.CodeValue, mapped.CodingSchemeDesignator, mapped.CodeMeaning) == (
        "399192008", "SCT", "cranio-caudal exaggerated laterally")
    assert VIEW_CODES["XCCL"].value == mapped.CodeValue


@pytest.mark.parametrize(("srt", "sct", "meaning"), [("G-A100", "24028007", "Right"), ("G-A101", "7771000", "Left")])
def test_a_snomed_rt_side_is_copied_as_the_same_side(srt: str, sct: str, meaning: str) -> None:
    mapped = map_code(_view_item(srt, "SRT", meaning))
    assert (mapped.CodeValue, mapped.CodeMeaning) == (sct, meaning)
    assert getattr(codes.SCT, meaning).value == sct
