"""SR content items written with plain pydicom (highdicom has no Mammography CAD SR).

Shared by the Mammography CAD SR builder and anything else that writes SR trees by hand;
code meanings are always explicit (``codes.py``). Coordinates: the detector's boxes are in
the original image's pixel frame with pixel centres at integers; SCOORD puts the top-left
pixel's top-left corner at (0, 0), so a box is shifted by +0.5.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from mammocad.model.results import ImageRef
from mammocad.results.codes import Code


def _item(rel: str | None, value_type: str, name: Code | None) -> Dataset:
    ds = Dataset()
    if rel is not None:
        ds.RelationshipType = rel
    ds.ValueType = value_type
    if name is not None:
        ds.ConceptNameCodeSequence = [name.to_dataset()]
    return ds


def container(rel: str | None, name: Code, children: list[Dataset], template: str | None = None) -> Dataset:
    ds = _item(rel, "CONTAINER", name)
    ds.ContinuityOfContent = "SEPARATE"
    if template:
        tpl = Dataset()
        tpl.MappingResource = "DCMR"
        tpl.TemplateIdentifier = template
        ds.ContentTemplateSequence = [tpl]
    if children:
        ds.ContentSequence = children
    return ds


def code_item(rel: str, name: Code, value: Code, children: list[Dataset] | None = None) -> Dataset:
    ds = _item(rel, "CODE", name)
    ds.ConceptCodeSequence = [value.to_dataset()]
    if children:
        ds.ContentSequence = children
    return ds


def text_item(rel: str, name: Code, text: str) -> Dataset:
    ds = _item(rel, "TEXT", name)
    ds.TextValue = text
    return ds


def num_item(rel: str, name: Code, value: float, unit: Code, children: list[Dataset] | None = None) -> Dataset:
    ds = _item(rel, "NUM", name)
    mv = Dataset()
    mv.NumericValue = ds_str(value)
    mv.MeasurementUnitsCodeSequence = [unit.to_dataset()]
    ds.MeasuredValueSequence = [mv]
    if children:
        ds.ContentSequence = children
    return ds


def time_item(rel: str, name: Code, time: str) -> Dataset:
    ds = _item(rel, "TIME", name)
    ds.Time = time
    return ds


def date_item(rel: str, name: Code, date: str) -> Dataset:
    ds = _item(rel, "DATE", name)
    ds.Date = date
    return ds


def image_item(rel: str, ref: ImageRef, children: list[Dataset] | None = None) -> Dataset:
    ds = _item(rel, "IMAGE", None)
    sop = Dataset()
    sop.ReferencedSOPClassUID = ref.sop_class_uid
    sop.ReferencedSOPInstanceUID = ref.sop_instance_uid
    ds.ReferencedSOPSequence = [sop]
    if children:
        ds.ContentSequence = children
    return ds


def scoord_item(rel: str, name: Code, graphic_type: str, points: list[tuple[float, float]],
                library_position: list[int]) -> Dataset:
    """SCOORD selected from an Image Library entry, referenced by position (TID 4021)."""
    ds = _item(rel, "SCOORD", name)
    ds.GraphicType = graphic_type
    ds.GraphicData = [float(v) for xy in points for v in xy]
    ds.ContentSequence = [by_reference("SELECTED FROM", library_position)]
    return ds


def by_reference(rel: str, position: list[int]) -> Dataset:
    """A by-reference relationship to the content item at ``position`` (e.g. [1, 2, 3])."""
    ds = Dataset()
    ds.RelationshipType = rel
    ds.ReferencedContentItemIdentifier = position
    return ds


def ds_str(value: float) -> str:
    """A DS string (max 16 chars) for a number."""
    text = f"{value:.6g}"
    return text if len(text) <= 16 else f"{value:.4e}"




def box_outline(box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    """Closed polyline (5 points) of a pixel-centre box, in SCOORD image coordinates."""
    x1, y1, x2, y2 = (v + 0.5 for v in box)
    return [(x1, y1), (x2, y1), (x2, y2), (x1, y2), (x1, y1)]


def box_center(box: tuple[float, float, float, float]) -> tuple[float, float]:
    x1, y1, x2, y2 = box
    return ((x1 + x2) / 2.0 + 0.5, (y1 + y2) / 2.0 + 0.5)


