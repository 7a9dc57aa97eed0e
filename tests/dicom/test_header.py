"""The one header reader: the node's raw C-STORE read and a full data set give the same answer."""

from __future__ import annotations

from io import BytesIO

import pytest
from pydicom.dataset import Dataset

from mammocad.dicom.header import laterality_view
from mammocad.node.header import read_header
from mammocad.node.receive import data_set_offset
from tests.factories import make_mammogram


def _raw(ds: Dataset) -> BytesIO:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf


def _code(value: str, designator: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, designator, meaning
    return item


def _strip(ds: Dataset) -> Dataset:
    for keyword in ("ImageLaterality", "Laterality", "ViewPosition", "ViewCodeSequence", "SeriesDescription"):
        if keyword in ds:
            delattr(ds, keyword)
    return ds


@pytest.mark.parametrize(("change", "expected"), [
    ({}, ("R", "MLO")),
    ({"ViewCodeSequence": [_code("R-10242", "SRT", "cranio-caudal")]}, ("", "CC")),
    ({"ViewCodeSequence": [_code("399368009", "SCT", "medio-lateral oblique")]}, ("", "MLO")),
    ({"ViewCodeSequence": [_code("99XYZ", "99LOCAL", "Medio-lateral oblique")]}, ("", "MLO")),
    ({"SeriesDescription": "L CC"}, ("L", "CC")),
    ({"Laterality": "R", "SeriesDescription": "RMLO screening"}, ("R", "MLO")),
])
def test_node_and_model_read_the_same_view(change: dict[str, object], expected: tuple[str, str]) -> None:
    ds = make_mammogram(laterality="R", view="MLO")
    if change:
        _strip(ds)
        for keyword, value in change.items():
            setattr(ds, keyword, value)
    raw = _raw(ds)
    header = read_header(raw, str(ds.file_meta.TransferSyntaxUID), data_set_offset(raw))
    assert (header.laterality, header.view) == laterality_view(ds) == expected
