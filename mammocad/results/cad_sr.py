"""Mammography CAD SR (PS3.3 A.35.5, PS3.16 TID 4000) built with pydicom.

highdicom has no Mammography CAD SR class, so the content tree is written here item by
item, with explicit code meanings (``codes.py``). What a viewer gets:

* an Image Library (TID 4020) with every image of the study set, analysed or not: laterality
  (CID 6022), view (CID 4014), patient orientation when valid, study date/time, content
  date/time and pixel spacing;
* the CAD Processing and Findings Summary (TID 4001) whose body (TID 4002) holds the
  per-breast Probability of cancer (NUM, laterality modifier from CID 6022) and a text
  impression, inferred from one Individual Impression/Recommendation (TID 4003) per
  finding holding a Single Image Finding (TID 4006): Calcification Cluster or Individual
  Calcification, Rendering Intent from the CAD operating point (``operating_points.py``)
  with its CAD Operating Point when Optional, algorithm, certainty, probability of cancer,
  centre and outline SCOORDs that reference their Image Library entry by reference; a
  cluster's Individual Impression also holds the Individual Calcifications the detector
  resolved inside it (Not for Presentation: the cluster's evidence, with the cluster's
  Number of calcifications);
* Summary of Detections / Analyses (TID 4015/4016): what was performed on which images, the
  CAD Operating Points table (TID 4023), and the images or analyses that failed, so a
  viewer can say "CAD failed".

No finding carries a pathology code: benign/malignant is conveyed by the probability of
cancer and the operating point (docs/CONFORMANCE.md).
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from mammocad.config.settings import OutputKind
from mammocad.dicom.header import magnification_from_header, usable_spacing
from mammocad.model.results import ImageRef, ImageResult, LesionType
from mammocad.results import codes as C
from mammocad.results import operating_points as OP
from mammocad.results.codes import Code
from mammocad.results.sanitize import copy_patient_study, normalise_time, patient_orientation, problem
from mammocad.results.sr_items import (
    box_center,
    box_outline,
    by_reference,
    code_item,
    container,
    date_item,
    image_item,
    num_item,
    scoord_item,
    text_item,
    time_item,
)
from mammocad.results.uids import (
    DISCLAIMER,
    OutputContext,
    hierarchical_references,
    predecessor_sequence,
    set_common,
)

MAMMO_CAD_SR = "1.2.840.10008.5.1.4.1.1.88.50"
KIND = OutputKind.MAMMO_CAD_SR
#: Positions (1-based) of the root's children; the library entries are [1, 2, k].
_LIBRARY, _SUMMARY = 2, 3
_INTENT = {OP.RenderingIntent.PRESENTATION_REQUIRED: C.PRESENTATION_REQUIRED,
           OP.RenderingIntent.PRESENTATION_OPTIONAL: C.PRESENTATION_OPTIONAL,
           OP.RenderingIntent.NOT_FOR_PRESENTATION: C.NOT_FOR_PRESENTATION}
#: The two finding types the detector reports (TID 4017 Detection Performed values).
DETECTIONS = (C.CALCIFICATION_CLUSTER, C.INDIVIDUAL_CALCIFICATION)


def _algorithm(rel: str, ctx: OutputContext) -> list[Dataset]:
    s = ctx.study
    params = f"device={ctx.device or 'unknown'}; synthetic_weights={'yes' if s.synthetic_weights else 'no'}"
    return [
        text_item(rel, C.ALGORITHM_NAME, (s.model_name or "mammocad detector")[:64] or "mammocad detector"),
        text_item(rel, C.ALGORITHM_VERSION, (s.model_version or "unknown")[:64]),
        text_item(rel, C.ALGORITHM_PARAMETERS, params[:1024]),
    ]


#: PS3.3 10.7.1.2: a Pixel Spacing corrected to the patient, not the receptor's.
_CALIBRATED = ("GEOMETRY", "FIDUCIAL")


def _spacing(source: Dataset) -> tuple[float, float] | None:
    """(row, column) spacing in mm at the image receptor, positive and finite; None when the
    header does not give it.

    TID 4020 states it with DCM 111026/111066, which PS3.16 Annex D defines for projection
    radiography as measured "at the front plane of an Image Receptor housing": Imager Pixel
    Spacing, also for a magnification view (its breast-plane spacing is Pixel Spacing, or
    Imager Pixel Spacing / Estimated Radiographic Magnification Factor, and a reader derives
    it from the image). Without Imager Pixel Spacing: a digitised film's Nominal Scanned Pixel
    Spacing (the film is the receptor), else Pixel Spacing, times the magnification when it
    is calibrated to the breast; a calibrated one whose magnification is unknown is not
    stated, since it is not the receptor's.
    """
    found = usable_spacing(source, ("ImagerPixelSpacing", "NominalScannedPixelSpacing"))
    if found:
        return found[0]
    pixel = usable_spacing(source, ("PixelSpacing",))
    if pixel is None:
        return None
    if str(source.get("PixelSpacingCalibrationType", "") or "").strip().upper() not in _CALIBRATED:
        return pixel[0]
    magnification = magnification_from_header(source)
    if magnification is None:
        return None
    return pixel[0][0] * magnification[0], pixel[0][1] * magnification[0]


def _valid(vr_check: str, value: object) -> str:
    """The source's date or time as the library entry may carry it; a time is normalised
    first (``normalise_time``: "10:15:00" is read, a leap second kept to the minute)."""
    text = str(value or "").strip()
    if vr_check == "TM" and text:
        text = normalise_time(text) or text
    return text if text and problem(vr_check, text) is None else ""


def _library_entry(ref: ImageRef, source: Dataset) -> Dataset:
    """TID 4020 entry: laterality (CID 6022), view (CID 4014), orientation, dates, spacing."""
    acq: list[Dataset] = []
    if ref.laterality in C.BREAST_LATERALITY:
        acq.append(code_item("HAS ACQ CONTEXT", C.IMAGE_LATERALITY, C.BREAST_LATERALITY[ref.laterality]))
    if ref.view in C.VIEWS:
        acq.append(code_item("HAS ACQ CONTEXT", C.IMAGE_VIEW, C.VIEWS[ref.view]))
    orientation = patient_orientation(source)
    if orientation:
        acq.append(text_item("HAS ACQ CONTEXT", C.PATIENT_ORIENTATION_ROW, orientation[0]))
        acq.append(text_item("HAS ACQ CONTEXT", C.PATIENT_ORIENTATION_COLUMN, orientation[1]))
    for keyword, name, make, vr in (("StudyDate", C.STUDY_DATE, date_item, "DA"),
                                    ("StudyTime", C.STUDY_TIME, time_item, "TM"),
                                    ("ContentDate", C.CONTENT_DATE, date_item, "DA"),
                                    ("ContentTime", C.CONTENT_TIME, time_item, "TM")):
        value = _valid(vr, source.get(keyword))
        if value:
            acq.append(make("HAS ACQ CONTEXT", name, value))
    spacing = _spacing(source)
    if spacing:
        acq.append(num_item("HAS ACQ CONTEXT", C.HORIZONTAL_PIXEL_SPACING, spacing[1], C.MILLIMETER))
        acq.append(num_item("HAS ACQ CONTEXT", C.VERTICAL_PIXEL_SPACING, spacing[0], C.MILLIMETER))
    return image_item("CONTAINS", ref, acq)


def _finding_code(mark: OP.Mark) -> Code:
    if mark.lesion.lesion_type is LesionType.INDIVIDUAL_CALCIFICATION:
        return C.INDIVIDUAL_CALCIFICATION
    return C.CALCIFICATION_CLUSTER


def _intent_item(mark: OP.Mark) -> Dataset:
    """Rendering Intent, with the CAD Operating Point below it when Presentation Optional."""
    children = None
    if mark.operating_point is not None:
        children = [num_item("HAS PROPERTIES", C.CAD_OPERATING_POINT, mark.operating_point,
                             C.OPERATING_POINT_RANGE)]
    return code_item("HAS CONCEPT MOD", C.RENDERING_INTENT, _INTENT[mark.intent], children)


def _single_image_finding(mark: OP.Mark, library_pos: list[int], ctx: OutputContext,
                          n_specks: int = 0) -> Dataset:
    """TID 4006: finding type, Rendering Intent, algorithm, certainty, probability, geometry."""
    lesion = mark.lesion
    count = [num_item("HAS PROPERTIES", C.NUMBER_OF_CALCIFICATIONS, n_specks, C.NO_UNITS)] if n_specks else []
    children = [
        _intent_item(mark),
        *_algorithm("HAS PROPERTIES", ctx),
        num_item("HAS PROPERTIES", C.CERTAINTY_OF_FINDING, round(lesion.score * 100.0, 4), C.PERCENT),
        num_item("HAS PROPERTIES", C.PROBABILITY_OF_CANCER,
                 round(lesion.probability_malignant * 100.0, 4), C.PERCENT),
        *count,
        scoord_item("HAS PROPERTIES", C.CENTER, "POINT", [box_center(lesion.box)], library_pos),
        scoord_item("HAS PROPERTIES", C.OUTLINE, "POLYLINE", box_outline(lesion.box), library_pos),
    ]
    return code_item("CONTAINS", C.SINGLE_IMAGE_FINDING, _finding_code(mark), children)


def _impression(mark: OP.Mark, specks: list[OP.Mark], ctx: OutputContext) -> Dataset:
    """TID 4003 container: one presented finding and, for a cluster, the individual
    calcifications the detector resolved inside it (Not for Presentation: its evidence)."""
    findings = [_single_image_finding(mark, [1, _LIBRARY, mark.image_index + 1], ctx, len(specks))]
    findings += [_single_image_finding(s, [1, _LIBRARY, s.image_index + 1], ctx) for s in specks]
    return container("INFERRED FROM", C.INDIVIDUAL_IMPRESSION, [
        code_item("HAS CONCEPT MOD", C.RENDERING_INTENT, _INTENT[mark.intent]), *findings])


def _side(laterality: str) -> str:
    return "Left" if laterality == "L" else "Right"


def breast_lines(ctx: OutputContext, found: list[OP.Mark]) -> list[str]:
    """One sentence per breast: probability of cancer against the operating point."""
    lines = []
    for breast in sorted(ctx.study.breasts, key=lambda b: b.laterality, reverse=True):
        called = OP.breast_called_malignant(ctx.study, breast.laterality, found)
        required = sum(m.laterality == breast.laterality and m.intent is OP.RenderingIntent.PRESENTATION_REQUIRED
                       for m in found)
        verdict = ("AT OR ABOVE the CAD operating point" if called else "below the CAD operating point")
        lines.append(f"{_side(breast.laterality)} breast: probability of cancer {breast.risk * 100:.1f}%, {verdict} "
                     f"({breast.threshold * 100:.1f}%); {required} mark(s) Presentation Required; "
                     f"{breast.n_images} image(s) analysed")
    return lines


def _body(ctx: OutputContext, found: list[OP.Mark]) -> list[Dataset]:
    """TID 4002 at summary level: algorithm, per-breast probability of cancer, impression text."""
    lines = breast_lines(ctx, found)
    failed = [r for r in ctx.study.images if not r.analysed]
    if failed:
        lines.append(f"CAD FAILED on {len(failed)} image(s): those images were not analysed")
    for name in ctx.failed_analyses:
        lines.append(f"CAD FAILED: {name} could not be computed")
    lines.append(f"Model {ctx.model_label}. {DISCLAIMER}")
    if ctx.study.synthetic_weights:
        lines.append("Demo weights trained on synthetic data only.")
    risks = [
        num_item("HAS PROPERTIES", C.PROBABILITY_OF_CANCER, round(b.risk * 100.0, 4), C.PERCENT, [
            code_item("HAS CONCEPT MOD", C.LATERALITY, C.BREAST_LATERALITY[b.laterality])])
        for b in sorted(ctx.study.breasts, key=lambda b: b.laterality, reverse=True)
        if "breast risk" not in ctx.failed_analyses
    ]
    return [*_algorithm("HAS PROPERTIES", ctx),
            text_item("HAS PROPERTIES", C.IMPRESSION_DESCRIPTION, "\n".join(lines)[:10240]), *risks]


def _status(ok: int, failed: int) -> Code:
    if ok and not failed:
        return C.SUCCEEDED
    if ok:
        return C.PARTIALLY_SUCCEEDED
    return C.FAILED if failed else C.NOT_ATTEMPTED


def _operating_points() -> list[Dataset]:
    """TID 4023 rows 1 and 2: N Presentation Optional bins, and the point a workstation should
    show first (0: the Presentation Required marks only, where the model was tuned)."""
    return [num_item("HAS PROPERTIES", C.MAXIMUM_CAD_OPERATING_POINT, OP.MAX_OPERATING_POINT, C.ARBITRARY_UNIT),
            num_item("HAS PROPERTIES", C.RECOMMENDED_CAD_OPERATING_POINT, OP.RECOMMENDED_OPERATING_POINT,
                     C.RECOMMENDED_POINT_RANGE)]


def _performed(name: Code, value: Code, positions: list[list[int]], ctx: OutputContext,
               extra: list[Dataset] | None = None) -> Dataset:
    """TID 4017/4018: what was done, by which algorithm, on which library images (by reference)."""
    children = _algorithm("HAS PROPERTIES", ctx) + [by_reference("HAS PROPERTIES", p) for p in positions]
    return code_item("CONTAINS", name, value, children + (extra or []))


def _detections(results: list[ImageResult], ctx: OutputContext) -> Dataset:
    """TID 4015: calcification detection per image, successful and failed."""
    ok = [[1, _LIBRARY, k] for k, r in enumerate(results, 1) if r.analysed]
    bad = [[1, _LIBRARY, k] for k, r in enumerate(results, 1) if not r.analysed]
    children = []
    if ok:
        children.append(container("INFERRED FROM", C.SUCCESSFUL_DETECTIONS, [
            _performed(C.DETECTION_PERFORMED, value, ok, ctx, _operating_points()) for value in DETECTIONS]))
    if bad:
        children.append(container("INFERRED FROM", C.FAILED_DETECTIONS, [
            _performed(C.DETECTION_PERFORMED, value, bad, ctx) for value in DETECTIONS]))
    return code_item("CONTAINS", C.SUMMARY_OF_DETECTIONS, _status(len(ok), len(bad)), children)


def _analyses(results: list[ImageResult], ctx: OutputContext) -> Dataset:
    """TID 4016: per-finding analysis on the analysed images, breast-level analysis on the study."""
    ok = [[1, _LIBRARY, k] for k, r in enumerate(results, 1) if r.analysed]
    bad = [[1, _LIBRARY, k] for k, r in enumerate(results, 1) if not r.analysed]
    overall_failed = "breast risk" in ctx.failed_analyses or not ok
    good_items, bad_items = [], []
    if ok:
        good_items.append(_performed(C.ANALYSIS_PERFORMED, C.INDIVIDUAL_ANALYSIS, ok, ctx))
    if bad:
        bad_items.append(_performed(C.ANALYSIS_PERFORMED, C.INDIVIDUAL_ANALYSIS, bad, ctx))
    everything = ok + bad
    (bad_items if overall_failed else good_items).append(
        _performed(C.ANALYSIS_PERFORMED, C.OVERALL_ANALYSIS, everything, ctx))
    children = []
    if good_items:
        children.append(container("INFERRED FROM", C.SUCCESSFUL_ANALYSES, good_items))
    if bad_items:
        children.append(container("INFERRED FROM", C.FAILED_ANALYSES, bad_items))
    return code_item("CONTAINS", C.SUMMARY_OF_ANALYSES, _status(len(good_items), len(bad_items)), children)


def _overall(results: list[ImageResult], found: list[OP.Mark], ctx: OutputContext) -> Code:
    n_ok = sum(r.analysed for r in results)
    n_bad = len(results) - n_ok + len(ctx.failed_analyses)
    findings = bool(found)
    if n_ok == 0:
        return C.NONE_OK
    if n_bad:
        return C.SOME_OK_WITH_FINDINGS if findings else C.SOME_OK_NO_FINDINGS
    return C.ALL_OK_WITH_FINDINGS if findings else C.ALL_OK_NO_FINDINGS


def _findings(ctx: OutputContext, found: list[OP.Mark]) -> list[Dataset]:
    """Individual Impressions: one per presented finding, a cluster with its calcifications."""
    return [_impression(m, [c for c in found if c.parent == (m.image_index, m.lesion_index)], ctx)
            for m in found if m.parent is None]


def content_tree(ctx: OutputContext, sources: dict[str, Dataset]) -> Dataset:
    """The root CONTAINER (TID 4000) with its whole tree, as a Dataset."""
    results = list(ctx.study.images)
    found = OP.marks(ctx.study)
    library = [_library_entry(r.image, sources[r.image.sop_instance_uid]) for r in results]
    body = _body(ctx, found)
    summary = body + _findings(ctx, found)
    return container(None, C.MAMMOGRAPHY_CAD_REPORT, [
        code_item("HAS CONCEPT MOD", C.LANGUAGE, C.ENGLISH),
        container("CONTAINS", C.IMAGE_LIBRARY, library),
        code_item("CONTAINS", C.CAD_PROCESSING_SUMMARY, _overall(results, found, ctx), summary),
        _detections(results, ctx),
        _analyses(results, ctx),
    ], template="4000")


def evidence_sequence(results: list[ImageResult]) -> list[Dataset]:
    """Current Requested Procedure Evidence: every referenced image, by study and series."""
    return hierarchical_references(
        (r.image.study_uid, r.image.series_uid, r.image.sop_class_uid, r.image.sop_instance_uid) for r in results)


def build_mammo_cad_sr(ctx: OutputContext, sources: dict[str, Dataset]) -> Dataset:
    """One Mammography CAD SR for the study; ``sources`` may be header-only datasets."""
    results = list(ctx.study.images)
    first = sources[results[0].image.sop_instance_uid]
    ds = Dataset()
    copy_patient_study(ds, first)
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
