"""TID 1500 Measurement Report (Comprehensive SR) built with highdicom.

Viewers that do not read the Mammography CAD SR (OHIF, 3D Slicer, most web viewers) do
read TID 1500. Each lesion is one Planar ROI group (TID 1410) with its own tracking UID
(OHIF merges groups that share one), its box as a closed POLYLINE in image pixel
coordinates, finding type, finding site breast + laterality, probability of cancer and
detection certainty in %, and the benign/malignant call. Each breast gets one
image-level group (TID 1501) with its risk. procedure_reported is SCT 363679005
"Imaging procedure": the Mammography code fails template validation.
"""

from __future__ import annotations

import numpy as np
from highdicom.sr import (
    AlgorithmIdentification,
    ComprehensiveSR,
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
    SourceImageForMeasurementGroup,
    SourceImageForRegion,
    TrackingIdentifier,
)
from highdicom.sr.coding import CodedConcept
from pydicom.dataset import Dataset

import mammocad
from mammocad.config.settings import OutputKind
from mammocad.model.results import BreastRisk, ImageResult, Lesion, LesionClass, LesionType
from mammocad.results import codes as C
from mammocad.results.cad_sr import box_outline
from mammocad.results.uids import (
    MANUFACTURER,
    OutputContext,
    predecessor_sequence,
    result_uid,
)

KIND = OutputKind.TID1500_SR
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
DEVICE_OBSERVER = CodedConcept("121007", "DCM", "Device")
CLINICAL_INTERPRETATION = C.Code("122147", "DCM", "Clinical Interpretation")
CERTAINTY = C.CERTAINTY_OF_FINDING


def _algorithm(ctx: OutputContext) -> AlgorithmIdentification:
    params = [f"device={ctx.device or 'unknown'}"]
    if ctx.study.synthetic_weights:
        params.append("demo weights trained on synthetic data only")
    return AlgorithmIdentification(
        name=ctx.study.model_name or "mammocad detector",
        version=ctx.study.model_version or "unknown",
        parameters=params,
    )


def _verdict(malignant: bool) -> QualitativeEvaluation:
    value = C.MALIGNANT if malignant else C.BENIGN
    return QualitativeEvaluation(CLINICAL_INTERPRETATION.to_hd(), value.to_hd())


def _lesion_group(n: int, lesion: Lesion, result: ImageResult, source: Dataset,
                  ctx: OutputContext) -> PlanarROIMeasurementsAndQualitativeEvaluations:
    outline = np.array(box_outline(lesion.box), dtype=float)
    region = ImageRegion(
        graphic_type="POLYLINE",
        graphic_data=outline,
        source_image=SourceImageForRegion.from_source_image(source),
    )
    finding = (C.INDIVIDUAL_CALCIFICATION if lesion.lesion_type is LesionType.INDIVIDUAL_CALCIFICATION
               else C.CALCIFICATION_CLUSTER)
    site = [FindingSite(C.BREAST.to_hd(), laterality=C.SIDE[result.image.laterality].to_hd())] \
        if result.image.laterality in C.SIDE else [FindingSite(C.BREAST.to_hd())]
    return PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=result_uid(ctx.study, KIND, "tracking", n), identifier=f"Lesion {n + 1}"),
        referenced_region=region,
        finding_type=finding.to_hd(),
        algorithm_id=_algorithm(ctx),
        finding_sites=site,
        measurements=[
            Measurement(C.PROBABILITY_OF_CANCER.to_hd(), round(lesion.probability_malignant * 100.0, 4),
                        C.PERCENT.to_hd()),
            Measurement(CERTAINTY.to_hd(), round(lesion.score * 100.0, 4), C.PERCENT.to_hd()),
        ],
        qualitative_evaluations=[_verdict(lesion.lesion_class is LesionClass.MALIGNANT)],
    )


def _breast_group(n: int, breast: BreastRisk, ctx: OutputContext,
                  sources: dict[str, Dataset]) -> MeasurementsAndQualitativeEvaluations:
    images = [sources[r.image.sop_instance_uid] for r in ctx.study.images
              if r.analysed and r.image.laterality == breast.laterality]
    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=result_uid(ctx.study, KIND, "breast", n),
            identifier=f"{'Left' if breast.laterality == 'L' else 'Right'} breast"),
        finding_type=C.BREAST.to_hd(),
        algorithm_id=_algorithm(ctx),
        finding_sites=[FindingSite(C.BREAST.to_hd(), laterality=C.SIDE[breast.laterality].to_hd())],
        measurements=[Measurement(C.PROBABILITY_OF_CANCER.to_hd(), round(breast.risk * 100.0, 4),
                                  C.PERCENT.to_hd())],
        qualitative_evaluations=[_verdict(breast.malignant)],
        source_images=[SourceImageForMeasurementGroup.from_source_image(ds) for ds in images] or None,
    )


def build_tid1500_sr(ctx: OutputContext, sources: dict[str, Dataset]) -> Dataset:
    """One TID 1500 Comprehensive SR for the study (header-only sources suffice)."""
    results = list(ctx.study.images)
    groups: list = []
    n = 0
    for r in results:
        if not r.analysed:
            continue
        for lesion in r.lesions:
            groups.append(_lesion_group(n, lesion, r, sources[r.image.sop_instance_uid], ctx))
            n += 1
    groups += [_breast_group(i, b, ctx, sources) for i, b in enumerate(ctx.study.breasts)]
    observer = ObserverContext(
        observer_type=DEVICE_OBSERVER,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=result_uid(ctx.study, KIND, "device"),
            name="mammocad",
            manufacturer_name=MANUFACTURER,
            model_name=(ctx.study.model_name or "mammocad")[:64],
        ),
    )
    report = MeasurementReport(
        observation_context=ObservationContext(observer_device_context=observer),
        procedure_reported=C.IMAGING_PROCEDURE.to_hd(),
        imaging_measurements=groups or None,
        title=C.IMAGING_MEASUREMENT_REPORT.to_hd(),
        referenced_images=None if groups else [sources[r.image.sop_instance_uid] for r in results],
    )
    evidence = [sources[r.image.sop_instance_uid] for r in results]
    ts = ctx.timestamp
    sr = ComprehensiveSR(
        evidence=evidence,
        content=report,
        series_instance_uid=result_uid(ctx.study, KIND, "series"),
        series_number=KIND.series_number,
        sop_instance_uid=result_uid(ctx.study, KIND, "sop"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        series_description=ctx.description("CAD measurements"),
        content_date=ts.date(),
        content_time=ts.time().replace(microsecond=0),
    )
    # highdicom annotates SoftwareVersions as str | tuple[str] (one item); pydicom takes a list for LO VM 1-n.
    sr.SoftwareVersions = [  # type: ignore[assignment]
        mammocad.__version__, (ctx.study.model_version or "unknown")[:64]]
    sr.ManufacturerModelName = (ctx.study.model_name or "mammocad")[:64]
    if ctx.predecessor:
        sr.PredecessorDocumentsSequence = predecessor_sequence(ctx.predecessor, COMPREHENSIVE_SR)
    return sr
