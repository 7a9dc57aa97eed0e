"""OHIF v3 shows our TID 1500 findings: the SR is read the way its SR extension reads it.

Source: OHIF/Viewers ``extensions/cornerstone-dicom-sr/src/getSopClassHandlerModule.ts``
(read at commits cccb0bf and 0012c30), functions ``_getDisplaySetsFromSeries``,
``_getReferencedImagesList``, ``_getMeasurements``,
``_getMergedContentSequencesByTrackingUniqueIdentifiers``, ``_processTID1410Measurement``,
``_processNonGeometricallyDefinedMeasurement``, ``_getCoordsFromSCOORDOrSCOORD3D`` and
``_checkIfCanAddMeasurementsToDisplaySet``. ``ohif_measurements`` below follows them step by
step and raises where OHIF would throw (a TypeError there fails the whole report):

* SOP Class one of Basic Text, Enhanced, Comprehensive or Comprehensive 3D SR, and the root
  concept (126000, "Imaging Measurement Report"), else "OHIF only supports TID1500";
* an Image Library (111028) holding an Image Library Group (126200) whose IMAGE items carry
  Referenced SOP Class and Instance UIDs (older versions dereference the group unchecked);
* an Imaging Measurements container (126010), dereferenced unchecked, holding Measurement
  Groups (125007);
* per group a Tracking Unique Identifier (112040, UIDREF; the first UIDREF is taken as it, and
  groups sharing one are merged into one measurement) and a Tracking Identifier (112039, TEXT);
* a top-level SCOORD (the older reader takes SCOORD only, not SCOORD3D) related by CONTAINS
  or INFERRED FROM, whose single child is the IMAGE **by value** (``ContentSequence
  .ReferencedSOPSequence``); the image is then matched to a displayed instance by SOP Class
  and SOP Instance UID;
* a group without geometry dereferences the ContentSequence of each of its NUMs;
* each NUM's label is its concept's meaning with ``NumericValue`` and the units' CodeValue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset

from mammocad.config import OutputKind
from mammocad.results.operating_points import RenderingIntent, marks
from mammocad.results.outputs import build_outputs
from tests.results.outputs_fixtures import concept, make_case
from tests.results.test_corpus import cbis_files, study_for

OHIF_SR_CLASSES = ("1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22",
                   "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34")
DRAWN_GRAPHIC_TYPES = ("POINT", "MULTIPOINT", "POLYLINE", "CIRCLE", "ELLIPSE")  # DICOMSRDisplayTool


class OhifWouldFail(AssertionError):
    """Where OHIF's reader throws or refuses the report."""


@dataclass
class Measurement:
    tracking_uid: str
    tracking_id: str
    coords: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)


def _find(items: Any, code: str) -> Dataset | None:
    return next((it for it in items or [] if concept(it) == code), None)


def _coords(item: Dataset) -> dict[str, Any]:
    if item.RelationshipType not in ("INFERRED FROM", "CONTAINS"):
        raise OhifWouldFail(f"SCOORD related by {item.RelationshipType}: OHIF skips it")
    children = item.get("ContentSequence") or []
    if len(children) != 1 or "ReferencedSOPSequence" not in children[0]:
        raise OhifWouldFail("the SCOORD's image must be its single child, by value (ReferencedSOPSequence)")
    ref = children[0].ReferencedSOPSequence[0]
    return {"GraphicType": item.GraphicType, "GraphicData": list(item.GraphicData),
            "ReferencedSOPClassUID": str(ref.ReferencedSOPClassUID),
            "ReferencedSOPInstanceUID": str(ref.ReferencedSOPInstanceUID)}


def _label(num: Dataset) -> tuple[str, str]:
    value = num.MeasuredValueSequence[0]
    units = value.MeasurementUnitsCodeSequence[0].CodeValue
    return num.ConceptNameCodeSequence[0].CodeMeaning, f"{float(value.NumericValue):.2f} {units}"


def ohif_measurements(sr: Dataset) -> tuple[list[tuple[str, str]], list[Measurement]]:
    """(referenced images, measurements) as OHIF v3 derives them from ``sr``."""
    if str(sr.SOPClassUID) not in OHIF_SR_CLASSES:
        raise OhifWouldFail("SOP Class not handled by the SR extension")
    if concept(sr) != "126000":
        raise OhifWouldFail("OHIF only supports TID1500 Imaging Measurement Report Structured Reports")
    library = _find(sr.ContentSequence, "111028")
    group = _find(library.ContentSequence if library else None, "126200")
    if library is None or group is None:
        raise OhifWouldFail("no Image Library Group (126200) in the Image Library (111028)")
    images = [(str(r.ReferencedSOPClassUID), str(r.ReferencedSOPInstanceUID))
              for it in group.ContentSequence for r in it.get("ReferencedSOPSequence", [])
              if r.get("ReferencedSOPClassUID")]
    imaging = _find(sr.ContentSequence, "126010")
    if imaging is None:
        raise OhifWouldFail("no Imaging Measurements container (126010)")
    merged: dict[str, list[Dataset]] = {}
    for mg in imaging.get("ContentSequence") or []:
        if concept(mg) != "125007":
            continue
        uidref = _find(mg.ContentSequence, "112040")
        if uidref is None:
            raise OhifWouldFail("a group without Tracking Unique Identifier")
        uid = str(uidref.UID)  # a later group with this UID adds its items, less the UIDREF
        merged[uid] = merged[uid] + [it for it in mg.ContentSequence if concept(it) != "112040"] \
            if uid in merged else list(mg.ContentSequence)
    out = []
    for items in merged.values():
        first_uidref = next(it for it in items if it.ValueType == "UIDREF")
        tracking = _find(items, "112039")
        if tracking is None:
            raise OhifWouldFail("a group without Tracking Identifier (112039)")
        m = Measurement(str(first_uidref.UID), str(tracking.TextValue))
        graphic = next((it for it in items if it.ValueType == "SCOORD"), None)
        nums = [it for it in items if it.ValueType == "NUM"]
        if graphic is not None:
            m.coords.append(_coords(graphic))
        elif any(it.ValueType == "SCOORD3D" for it in items):
            raise OhifWouldFail("SCOORD3D only: the older reader finds no SCOORD and throws")
        else:
            for num in nums:
                if "ContentSequence" not in num:
                    raise OhifWouldFail("a NUM without children in a group without geometry")
                m.coords.append(_coords(num.ContentSequence[0]))
        m.labels = dict(_label(num) for num in nums if "MeasuredValueSequence" in num)
        out.append(m)
    return images, out


def _check(sr: Dataset, sources: dict[str, Dataset], study: Any) -> list[Measurement]:
    sr = pydicom.dcmread(_written(sr))  # as a viewer gets it: from a file
    images, found = ohif_measurements(sr)
    sent = {(str(ds.SOPClassUID), uid) for uid, ds in sources.items()}
    analysed = {r.image.sop_instance_uid for r in study.images if r.analysed}
    assert {uid for _, uid in images} == analysed and set(images) <= sent
    presented = [m for m in marks(study) if m.intent is not RenderingIntent.NOT_FOR_PRESENTATION]
    drawn = [m for m in found if m.coords]
    assert len(drawn) == len(presented)  # one measurement per shown finding: no merging, none lost
    assert len({m.tracking_uid for m in found}) == len(found)
    assert all(not m.labels for m in found if not m.coords)  # "nothing found" groups: nothing to draw
    for m in drawn:
        (coord,) = m.coords
        assert (coord["ReferencedSOPClassUID"], coord["ReferencedSOPInstanceUID"]) in sent  # hangs on that image
        assert coord["GraphicType"] in DRAWN_GRAPHIC_TYPES
        assert m.tracking_id and m.labels["Probability of cancer"].endswith(" %")
    return found


def _written(sr: Dataset) -> Any:
    from io import BytesIO

    buffer = BytesIO()
    sr.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize("lesions", [(3, 2, 0, 1), (1, 0, 0, 0), (0, 0, 0, 0), (30, 1, 0, 0)])
def test_ohif_v3_shows_every_presented_finding(lesions: tuple[int, ...]) -> None:
    study, sources = make_case(lesions, failed=(2,) if lesions[2:3] == (0,) else ())
    (sr,) = build_outputs(study, sources, [OutputKind.TID1500_SR])
    found = _check(sr, sources, study)
    assert any(m.coords for m in found) == (sum(lesions) > 0)


def test_ohif_v3_shows_findings_on_digitised_film() -> None:
    """CBIS-DDSM films are Secondary Capture (Modality MG): the SCOORD's image must name that
    class, or OHIF never matches the finding to the displayed film."""
    ds = pydicom.dcmread(cbis_files()[0], stop_before_pixels=True)
    study, sources = study_for([ds], n_lesions=3)
    (sr,) = build_outputs(study, sources, [OutputKind.TID1500_SR])
    found = _check(sr, sources, study)
    assert found and {m.coords[0]["ReferencedSOPClassUID"] for m in found} == {"1.2.840.10008.5.1.4.1.1.7"}


def test_the_reader_port_refuses_what_ohif_refuses() -> None:
    """The port is not blind: a group without geometry whose NUM has no children, a SCOORD
    citing its image by reference and a missing Imaging Measurements container all fail."""
    study, sources = make_case((1, 1, 0, 0))
    (sr,) = build_outputs(study, sources, [OutputKind.TID1500_SR])
    imaging = _find(sr.ContentSequence, "126010")
    assert imaging is not None, "the TID 1500 SR has no Imaging Measurements container"
    group = imaging.ContentSequence[0]
    scoord = next(it for it in group.ContentSequence if it.ValueType == "SCOORD")
    image = scoord.ContentSequence[0]
    del image.ReferencedSOPSequence
    image.ReferencedContentItemIdentifier = [1, 3, 1]
    with pytest.raises(OhifWouldFail, match="by value"):
        ohif_measurements(sr)
    group.ContentSequence = [it for it in group.ContentSequence if it.ValueType != "SCOORD"]
    with pytest.raises(OhifWouldFail, match="NUM without children"):
        ohif_measurements(sr)
    sr.ContentSequence = [it for it in sr.ContentSequence if concept(it) != "126010"]
    with pytest.raises(OhifWouldFail, match="126010"):
        ohif_measurements(sr)
