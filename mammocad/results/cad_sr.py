"""Mammography CAD SR (PS3.3 A.35.5, PS3.16 TID 4000) built with pydicom.

highdicom has no Mammography CAD SR class, so the content tree is written here item by
item, with explicit code meanings (``codes.py``). What a viewer gets:

* an Image Library (TID 4020) with every image of the study set, analysed or not;
* the CAD Processing and Findings Summary (TID 4001), inferred from one Individual
  Impression/Recommendation (TID 4003) per lesion holding a Single Image Finding
  (TID 4006: finding type, algorithm, certainty, probability of cancer, centre and
  outline SCOORDs selected from the image, benign/malignant) and one per breast with the
  breast-level risk;
* Summary of Detections / Analyses (TID 4015/4016): images the detector failed on are
  listed under "Failed Detections"/"Failed Analyses", so a viewer can say "CAD failed".

Coordinates are the detector's boxes in the original image's pixel frame; SCOORD uses
the DICOM convention of the top-left pixel's top-left corner at (0, 0), so a box stored
with pixel centres at integers is shifted by +0.5.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from mammocad.config.settings import OutputKind
from mammocad.model.results import BreastRisk, ImageRef, ImageResult, Lesion, LesionClass, LesionType
from mammocad.results import codes as C
from mammocad.results.codes import Code
from mammocad.results.uids import (
    DISCLAIMER,
    OutputContext,
    copy_patient_study,
    hierarchical_references,
    predecessor_sequence,
    set_common,
)

MAMMO_CAD_SR = "1.2.840.10008.5.1.4.1.1.88.50"
KIND = OutputKind.MAMMO_CAD_SR

# --- generic content items -----------------------------------------------------------


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


def num_item(rel: str, name: Code, value: float, unit: Code) -> Dataset:
    ds = _item(rel, "NUM", name)
    mv = Dataset()
    mv.NumericValue = _ds_str(value)
    mv.MeasurementUnitsCodeSequence = [unit.to_dataset()]
    ds.MeasuredValueSequence = [mv]
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
                ref: ImageRef) -> Dataset:
    ds = _item(rel, "SCOORD", name)
    ds.GraphicType = graphic_type
    ds.GraphicData = [float(v) for xy in points for v in xy]
    ds.ContentSequence = [image_item("SELECTED FROM", ref)]
    return ds


def _ds_str(value: float) -> str:
    """A DS string (max 16 chars) for a number."""
    text = f"{value:.6g}"
    return text if len(text) <= 16 else f"{value:.4e}"


# --- geometry -------------------------------------------------------------------------


def box_outline(box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    """Closed polyline (5 points) of a pixel-centre box, in SCOORD image coordinates."""
    x1, y1, x2, y2 = (v + 0.5 for v in box)
    return [(x1, y1), (x2, y1), (x2, y2), (x1, y2), (x1, y1)]


def box_center(box: tuple[float, float, float, float]) -> tuple[float, float]:
    x1, y1, x2, y2 = box
    return ((x1 + x2) / 2.0 + 0.5, (y1 + y2) / 2.0 + 0.5)


# --- template parts --------------------------------------------------------------------


def _algorithm(rel: str, ctx: OutputContext) -> list[Dataset]:
    s = ctx.study
    params = f"device={ctx.device or 'unknown'}; synthetic_weights={'yes' if s.synthetic_weights else 'no'}"
    return [
        text_item(rel, C.ALGORITHM_NAME, s.model_name or "mammocad detector"),
        text_item(rel, C.ALGORITHM_VERSION, s.model_version or "unknown"),
        text_item(rel, C.ALGORITHM_PARAMETERS, params),
    ]


def _library_entry(ref: ImageRef, source: Dataset) -> Dataset:
    """TID 4020 entry: laterality (CID 6022), view (CID 4014), orientation, date, spacing."""
    acq: list[Dataset] = []
    if ref.laterality in C.BREAST_LATERALITY:
        acq.append(code_item("HAS ACQ CONTEXT", C.IMAGE_LATERALITY, C.BREAST_LATERALITY[ref.laterality]))
    if ref.view in C.VIEWS:
        acq.append(code_item("HAS ACQ CONTEXT", C.IMAGE_VIEW, C.VIEWS[ref.view]))
    orientation = list(source.get("PatientOrientation", []) or [])
    if len(orientation) == 2 and all(orientation):
        acq.append(text_item("HAS ACQ CONTEXT", C.PATIENT_ORIENTATION_ROW, str(orientation[0])))
        acq.append(text_item("HAS ACQ CONTEXT", C.PATIENT_ORIENTATION_COLUMN, str(orientation[1])))
    if source.get("StudyDate"):
        acq.append(date_item("HAS ACQ CONTEXT", C.STUDY_DATE, str(source.StudyDate)))
    spacing = source.get("ImagerPixelSpacing") or source.get("PixelSpacing")
    if spacing and len(spacing) == 2:
        acq.append(num_item("HAS ACQ CONTEXT", C.HORIZONTAL_PIXEL_SPACING, float(spacing[1]), C.MILLIMETER))
        acq.append(num_item("HAS ACQ CONTEXT", C.VERTICAL_PIXEL_SPACING, float(spacing[0]), C.MILLIMETER))
    return image_item("CONTAINS", ref, acq)


def _finding_code(lesion: Lesion) -> Code:
    if lesion.lesion_type is LesionType.INDIVIDUAL_CALCIFICATION:
        return C.INDIVIDUAL_CALCIFICATION
    return C.CALCIFICATION_CLUSTER


def _lesion_impression(lesion: Lesion, ref: ImageRef, ctx: OutputContext) -> Dataset:
    """TID 4003 container holding one TID 4006 Single Image Finding.

    Malignant calls are "Presentation Required", benign ones "Presentation Optional", with
    the probability of cancer beside them: the template's coded slots for a verdict
    (CID 6002 change, CID 6026 BI-RADS assessment) do not fit a CAD's call, and DCMTK's
    IOD constraints forbid text properties on the container.
    """
    malignant = lesion.lesion_class is LesionClass.MALIGNANT
    intent = C.PRESENTATION_REQUIRED if malignant else C.PRESENTATION_OPTIONAL
    finding_children = [
        code_item("HAS CONCEPT MOD", C.RENDERING_INTENT, intent),
        *_algorithm("HAS PROPERTIES", ctx),
        num_item("HAS PROPERTIES", C.CERTAINTY_OF_FINDING, round(lesion.score * 100.0, 4), C.PERCENT),
        num_item("HAS PROPERTIES", C.PROBABILITY_OF_CANCER,
                 round(lesion.probability_malignant * 100.0, 4), C.PERCENT),
        scoord_item("HAS PROPERTIES", C.CENTER, "POINT", [box_center(lesion.box)], ref),
        scoord_item("HAS PROPERTIES", C.OUTLINE, "POLYLINE", box_outline(lesion.box), ref),
    ]
    return container("INFERRED FROM", C.INDIVIDUAL_IMPRESSION, [
        code_item("HAS CONCEPT MOD", C.RENDERING_INTENT, intent),
        code_item("CONTAINS", C.SINGLE_IMAGE_FINDING, _finding_code(lesion), finding_children),
    ])


def breast_text(breast: BreastRisk) -> str:
    side = "Left" if breast.laterality == "L" else "Right"
    verdict = "MALIGNANT" if breast.malignant else "benign"
    return (f"{side} breast: CAD call {verdict}, malignancy risk {breast.risk * 100:.1f}% "
            f"(operating threshold {breast.threshold * 100:.1f}%, {breast.n_images} image(s) analysed)")


def _study_impression(ctx: OutputContext) -> list[Dataset]:
    """TID 4002 at summary level: the algorithm and one Impression Description (the breasts)."""
    lines = [breast_text(b) for b in sorted(ctx.study.breasts, key=lambda b: b.laterality, reverse=True)]
    failed = sum(not r.analysed for r in ctx.study.images)
    if failed:
        lines.append(f"CAD FAILED on {failed} image(s): those images were not analysed")
    lines.append(f"Model {ctx.model_label}. {DISCLAIMER}")
    if ctx.study.synthetic_weights:
        lines.append("Demo weights trained on synthetic data only.")
    return [*_algorithm("HAS PROPERTIES", ctx),
            text_item("HAS PROPERTIES", C.IMPRESSION_DESCRIPTION, "\n".join(lines))]


def _status(ok: int, failed: int) -> Code:
    if ok and not failed:
        return C.SUCCEEDED
    if ok:
        return C.PARTIALLY_SUCCEEDED
    return C.FAILED if failed else C.NOT_ATTEMPTED


def by_reference(rel: str, position: list[int]) -> Dataset:
    """A by-reference relationship to the content item at ``position`` (e.g. [1, 2, 3])."""
    ds = Dataset()
    ds.RelationshipType = rel
    ds.ReferencedContentItemIdentifier = position
    return ds


def _performed(name: Code, value: Code, positions: list[list[int]], ctx: OutputContext) -> Dataset:
    """TID 4017/4018: what was done, by which algorithm, on which library images (by reference)."""
    children = _algorithm("HAS PROPERTIES", ctx) + [by_reference("HAS PROPERTIES", p) for p in positions]
    return code_item("CONTAINS", name, value, children)


def _summary(results: list[ImageResult], ctx: OutputContext, *, detections: bool) -> Dataset:
    """TID 4015 (detections) or TID 4016 (analyses) with successful and failed images."""
    # Library entries sit at 1 (root) . 2 (Image Library) . k (k-th image, 1-based).
    ok = [[1, 2, k] for k, r in enumerate(results, 1) if r.analysed]
    bad = [[1, 2, k] for k, r in enumerate(results, 1) if not r.analysed]
    if detections:
        title, good_c, bad_c, item, value = (C.SUMMARY_OF_DETECTIONS, C.SUCCESSFUL_DETECTIONS,
                                             C.FAILED_DETECTIONS, C.DETECTION_PERFORMED,
                                             C.CALCIFICATION_CLUSTER)
    else:
        title, good_c, bad_c, item, value = (C.SUMMARY_OF_ANALYSES, C.SUCCESSFUL_ANALYSES,
                                             C.FAILED_ANALYSES, C.ANALYSIS_PERFORMED,
                                             C.INDIVIDUAL_ANALYSIS)
    children = []
    if ok:
        children.append(container("INFERRED FROM", good_c, [_performed(item, value, ok, ctx)]))
    if bad:
        children.append(container("INFERRED FROM", bad_c, [_performed(item, value, bad, ctx)]))
    return code_item("CONTAINS", title, _status(len(ok), len(bad)), children)


def _overall(results: list[ImageResult]) -> Code:
    n_ok = sum(r.analysed for r in results)
    n_bad = len(results) - n_ok
    findings = any(r.lesions for r in results if r.analysed)
    if n_ok == 0:
        return C.NONE_OK
    if n_bad:
        return C.SOME_OK_WITH_FINDINGS if findings else C.SOME_OK_NO_FINDINGS
    return C.ALL_OK_WITH_FINDINGS if findings else C.ALL_OK_NO_FINDINGS


def content_tree(ctx: OutputContext, sources: dict[str, Dataset]) -> Dataset:
    """The root CONTAINER (TID 4000) with its whole tree, as a Dataset."""
    results = list(ctx.study.images)
    library = [_library_entry(r.image, sources[r.image.sop_instance_uid]) for r in results]
    impressions = _study_impression(ctx)
    impressions += [
        _lesion_impression(lesion, r.image, ctx) for r in results if r.analysed for lesion in r.lesions
    ]
    root = container(None, C.MAMMOGRAPHY_CAD_REPORT, [
        code_item("HAS CONCEPT MOD", C.LANGUAGE, C.ENGLISH),
        container("CONTAINS", C.IMAGE_LIBRARY, library),
        code_item("CONTAINS", C.CAD_PROCESSING_SUMMARY, _overall(results), impressions),
        _summary(results, ctx, detections=True),
        _summary(results, ctx, detections=False),
    ], template="4000")
    return root


def evidence_sequence(results: list[ImageResult]) -> list[Dataset]:
    """Current Requested Procedure Evidence: every referenced image, by study and series."""
    return hierarchical_references(
        (r.image.study_uid, r.image.series_uid, r.image.sop_class_uid, r.image.sop_instance_uid) for r in results)


def build_mammo_cad_sr(ctx: OutputContext, sources: dict[str, Dataset]) -> Dataset:
    """One Mammography CAD SR for the study; ``sources`` may be header-only datasets."""
    results = list(ctx.study.images)
    first = sources[results[0].image.sop_instance_uid]
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    copy_patient_study(ds, first)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = MAMMO_CAD_SR
    set_common(ds, ctx, KIND, modality="SR", what="Mammography CAD SR")
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.PerformedProcedureCodeSequence = []
    ds.CurrentRequestedProcedureEvidenceSequence = evidence_sequence(results)
    if ctx.predecessor:
        ds.PredecessorDocumentsSequence = predecessor_sequence(ctx.predecessor, MAMMO_CAD_SR)
    root = content_tree(ctx, sources)
    for keyword in ("ValueType", "ConceptNameCodeSequence", "ContinuityOfContent",
                    "ContentTemplateSequence", "ContentSequence"):
        ds[keyword] = root[keyword]
    return ds
