"""TID 1500 Measurement Report in a Comprehensive 3D SR, as IHE AI Results (AIR) asks.

Viewers that do not read the Mammography CAD SR (OHIF v3, 3D Slicer, most web viewers) do
read TID 1500. The document is FINAL and COMPLETE, Verification UNVERIFIED (no human
signed it), with a TID 1600 image library of every analysed image. Each finding is one
Planar ROI group (TID 1410) with its own tracking identifier and UID (OHIF merges groups
that share a UID), the box as a closed POLYLINE in image pixel coordinates, the finding
type (CID 6014), finding site breast with laterality, TID 4019 algorithm identification,
probability of cancer and certainty of finding in %, and as qualitative evaluation the
Rendering Intent (CID 6034) the operating point gives it. Every group has geometry: the
per-breast probability of cancer is in the Mammography CAD SR only, because OHIF v3's SR
reader fails the whole report on a group without geometry whose NUM has no children
(``_processNonGeometricallyDefinedMeasurement`` in extensions/cornerstone-dicom-sr,
getSopClassHandlerModule.ts, dereferences each NUM's ContentSequence). No pathology code is
written: a CAD cannot assert benign or malignant. procedure_reported is SCT 363679005 "Imaging procedure" (the
Mammography code fails template validation).
"""

from __future__ import annotations

import numpy as np
from highdicom.sr import (
    AlgorithmIdentification,
    Comprehensive3DSR,
    DeviceObserverIdentifyingAttributes,
    FindingSite,
    ImageRegion,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    ObserverContext,
    PlanarROIMeasurementsAndQualitativeEvaluations,
    QualitativeEvaluation,
    SourceImageForRegion,
    TrackingIdentifier,
)
from highdicom.sr.coding import CodedConcept
from pydicom.dataset import Dataset

from mammocad.config.settings import OutputKind
from mammocad.dicom.header import usable_spacing
from mammocad.model.results import ImageResult, LesionType
from mammocad.results import codes as C
from mammocad.results import operating_points as OP
from mammocad.results.sanitize import cited_uid, copy_patient_study, patient_orientation
from mammocad.results.sr_items import box_outline
from mammocad.results.uids import (
    MANUFACTURER,
    MODEL_NAME,
    OutputContext,
    device_serial,
    predecessor_sequence,
    product_uid,
    result_uid,
    series_number,
    set_equipment,
    set_times,
)

KIND = OutputKind.TID1500_SR
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
DEVICE_OBSERVER = CodedConcept("121007", "DCM", "Device")
_INTENT = {OP.RenderingIntent.PRESENTATION_REQUIRED: C.PRESENTATION_REQUIRED,
           OP.RenderingIntent.PRESENTATION_OPTIONAL: C.PRESENTATION_OPTIONAL,
           OP.RenderingIntent.NOT_FOR_PRESENTATION: C.NOT_FOR_PRESENTATION}


def _algorithm(ctx: OutputContext) -> AlgorithmIdentification:
    params = [f"device={ctx.device or 'unknown'}"]
    if ctx.study.synthetic_weights:
        params.append("demo weights trained on synthetic data only")
    return AlgorithmIdentification(
        name=ctx.study.model_name or "mammocad detector",
        version=ctx.study.model_version or "unknown",
        parameters=params,
    )


def _intent(intent: OP.RenderingIntent) -> QualitativeEvaluation:
    return QualitativeEvaluation(C.RENDERING_INTENT.to_hd(), _INTENT[intent].to_hd())


def _lesion_group(n: int, mark: OP.Mark, result: ImageResult, source: Dataset,
                  ctx: OutputContext) -> PlanarROIMeasurementsAndQualitativeEvaluations:
    lesion = mark.lesion
    region = ImageRegion(
        graphic_type="POLYLINE",
        graphic_data=np.array(box_outline(lesion.box), dtype=float),
        # Built from the UIDs: highdicom's from_source_image raised on an image without Modality.
        source_image=SourceImageForRegion(referenced_sop_class_uid=cited_uid(source, "SOPClassUID"),
                                          referenced_sop_instance_uid=cited_uid(source, "SOPInstanceUID")),
    )
    finding = (C.INDIVIDUAL_CALCIFICATION if lesion.lesion_type is LesionType.INDIVIDUAL_CALCIFICATION
               else C.CALCIFICATION_CLUSTER)
    site = [FindingSite(C.BREAST.to_hd(), laterality=C.SIDE[result.image.laterality].to_hd())] \
        if result.image.laterality in C.SIDE else [FindingSite(C.BREAST.to_hd())]
    return PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=result_uid(ctx.study, KIND, "tracking", f"{mark.image_index}.{mark.lesion_index}"),
            identifier=f"Finding {n + 1}"),
        referenced_region=region,
        finding_type=finding.to_hd(),
        algorithm_id=_algorithm(ctx),
        finding_sites=site,
        measurements=[
            Measurement(C.PROBABILITY_OF_CANCER.to_hd(), round(lesion.probability_malignant * 100.0, 4),
                        C.PERCENT.to_hd()),
            Measurement(C.CERTAINTY_OF_FINDING.to_hd(), round(lesion.score * 100.0, 4), C.PERCENT.to_hd()),
        ],
        qualitative_evaluations=[_intent(mark.intent)],
    )


_SIDE_NAME = {"L": "Left", "R": "Right"}


def _analysed_breast_groups(ctx: OutputContext) -> list[MeasurementsAndQualitativeEvaluations]:
    """With nothing to show, one group per analysed breast says it was analysed (TID 1500 needs
    at least one group): finding site and algorithm, no NUM, so OHIF draws nothing for it."""
    sides = sorted({r.image.laterality for r in ctx.study.images if r.analysed} & set(C.SIDE), reverse=True)
    return [MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=result_uid(ctx.study, KIND, "breast", side or "unknown"),
            identifier=f"{_SIDE_NAME[side]} breast: nothing found" if side else "Nothing found"),
        finding_type=C.BREAST.to_hd(),
        algorithm_id=_algorithm(ctx),
        finding_sites=[FindingSite(C.BREAST.to_hd(), laterality=C.SIDE[side].to_hd()) if side
                       else FindingSite(C.BREAST.to_hd())],
    ) for side in sides or [""]]


def _library_header(source: Dataset) -> Dataset:
    """What highdicom's TID 1600 entry may read of one image, checked first.

    highdicom reads Patient Orientation and Imager Pixel Spacing unchecked for projection
    radiography (MG, CR, DX...) and fails without them or splits a one-value orientation
    into letters ("CC" -> "C", "C"). So it gets a header holding them only when both are
    valid (spacing positive and finite: "1e999" is a valid DS that reads as inf); otherwise no
    modality, and the entry carries the generic descriptors only.
    """
    out = Dataset()
    for keyword in ("SOPClassUID", "SOPInstanceUID", "Rows", "Columns"):
        out[keyword] = source[keyword]
    orientation = patient_orientation(source)
    spacing = source.get("ImagerPixelSpacing")
    usable = usable_spacing(source, ("ImagerPixelSpacing",))
    if orientation and usable is not None and len(spacing) == 2:
        out.Modality = source.get("Modality", "")
        out.PatientOrientation = list(orientation)
        out.ImagerPixelSpacing = list(usable[0])
    else:
        out.Modality = ""
    return out


def _evidence_header(source: Dataset) -> Dataset:
    """The identifiers highdicom copies from the evidence, checked (``sanitize.py``) first."""
    out = Dataset()
    copy_patient_study(out, source)
    for keyword in ("SeriesInstanceUID", "SOPClassUID", "SOPInstanceUID"):
        setattr(out, keyword, cited_uid(source, keyword))
    return out


#: CID 29 modality codes for the images mammocad analyses (highdicom derives "OT" from the
#: Secondary Capture SOP class of digitised film, which CID 29 does not hold).
_MODALITY = {"MG": "Mammography", "CR": "Computed Radiography", "DX": "Digital Radiography"}


def _library_modalities(sr: Dataset, sources: dict[str, Dataset]) -> None:
    """Library entries of Secondary Capture mammograms name their real modality (MG)."""
    def walk(items: list[Dataset]) -> None:
        for item in items:
            if item.get("ValueType") == "IMAGE" and "ContentSequence" in item:
                uid = str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
                modality = str(sources[uid].get("Modality", "")) if uid in sources else ""
                for child in item.ContentSequence:
                    code = child.get("ConceptCodeSequence")
                    if child.ConceptNameCodeSequence[0].CodeValue == "121139" and code and \
                            code[0].CodeValue == "OT" and modality in _MODALITY:
                        code[0].CodeValue, code[0].CodeMeaning = modality, _MODALITY[modality]
            walk(list(item.get("ContentSequence", [])))
    walk(list(sr.get("ContentSequence", [])))


def _library_images(ctx: OutputContext, sources: dict[str, Dataset]) -> list[Dataset]:
    """The TID 1600 Image Library: every analysed image (header-only sources suffice)."""
    analysed = [sources[r.image.sop_instance_uid] for r in ctx.study.images if r.analysed]
    return [_library_header(ds) for ds in analysed or [sources[ctx.study.images[0].image.sop_instance_uid]]]


def build_tid1500_sr(ctx: OutputContext, sources: dict[str, Dataset]) -> Dataset:
    """One TID 1500 Comprehensive 3D SR for the study (header-only sources suffice)."""
    results = list(ctx.study.images)
    found = [m for m in OP.marks(ctx.study) if m.intent is not OP.RenderingIntent.NOT_FOR_PRESENTATION]
    groups: list = [
        _lesion_group(n, m, results[m.image_index], sources[results[m.image_index].image.sop_instance_uid], ctx)
        for n, m in enumerate(found)] or _analysed_breast_groups(ctx)
    observer = ObserverContext(
        observer_type=DEVICE_OBSERVER,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=product_uid("device", device_serial()),
            name="mammocad",
            manufacturer_name=MANUFACTURER,
            model_name=MODEL_NAME,
            serial_number=device_serial(),
        ),
    )
    report = MeasurementReport(
        observation_context=ObservationContext(observer_device_context=observer),
        procedure_reported=C.IMAGING_PROCEDURE.to_hd(),
        imaging_measurements=groups,
        title=C.IMAGING_MEASUREMENT_REPORT.to_hd(),
        referenced_images=_library_images(ctx, sources),
    )
    sr = Comprehensive3DSR(
        evidence=[_evidence_header(sources[r.image.sop_instance_uid]) for r in results],
        content=report,
        series_instance_uid=result_uid(ctx.study, KIND, "series"),
        series_number=series_number(KIND, ctx.version),
        sop_instance_uid=result_uid(ctx.study, KIND, "sop"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=True,
        is_verified=False,
        series_description=ctx.description("CAD findings"),
    )
    header = Dataset()
    copy_patient_study(header, sources[results[0].image.sop_instance_uid])
    for elem in header:
        sr[elem.keyword] = elem
    set_equipment(sr, ctx)
    set_times(sr, ctx)
    _library_modalities(sr, sources)
    if ctx.predecessor:
        sr.PredecessorDocumentsSequence = predecessor_sequence(ctx.predecessor, COMPREHENSIVE_3D_SR)
    return sr
