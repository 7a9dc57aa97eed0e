"""Grayscale Softcopy Presentation State: CAD marks drawn by the viewer over the originals.

One GSPS per analysed image, in one series per breast (General Series Laterality R or L):
lesion boxes as closed POLYLINEs and labels as text, on graphic layers (malignant /
benign / info) a viewer can toggle. Each state carries *its own image's* VOI window(s)
(every centre/width pair, with explanations) or VOI LUT and that image's displayed area, so
applying it shows the mammogram as the modality intended. A GSPS fixes the window while it
is applied (PS3.4 N.2): a viewer that applies it overrides the reader's own window (Weasis
issue 746). Destinations whose viewers do that can ask for graphics-only output
(``graphics_only``: SR + SC instead of GSPS). The Presentation LUT is INVERSE for
MONOCHROME1 and IDENTITY otherwise.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from highdicom import PresentationLUTTransformation
from highdicom.color import CIELabColor
from highdicom.content import VOILUT
from highdicom.enum import PresentationLUTShapeValues
from highdicom.pr import (
    GraphicAnnotation,
    GraphicLayer,
    GraphicObject,
    GrayscaleSoftcopyPresentationState,
    SoftcopyVOILUTTransformation,
    TextObject,
)
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

import mammocad
from mammocad.config.settings import OutputKind
from mammocad.model.results import ImageResult, LesionClass
from mammocad.results.overlay_sc import instance_index
from mammocad.results.sanitize import (
    PATIENT_STUDY,
    cited_uid,
    copy_checked,
    copy_patient_study,
    first_number,
    fit,
    problem,
    repaired,
)
from mammocad.results.sr_items import box_outline
from mammocad.results.uids import (
    DISCLAIMER,
    MANUFACTURER,
    MODEL_NAME,
    OutputContext,
    device_serial,
    result_uid,
    series_number,
    set_times,
    software_versions,
)

KIND = OutputKind.GSPS
GSPS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"
MALIGNANT_LAYER = GraphicLayer("CAD_MALIGNANT", order=1, description="CAD: malignant calcifications",
                               display_color=CIELabColor(53.2, 80.1, 67.2))
BENIGN_LAYER = GraphicLayer("CAD_BENIGN", order=2, description="CAD: benign calcifications",
                            display_color=CIELabColor(73.0, -25.0, -40.0))
TEXT_LAYER = GraphicLayer("CAD_INFO", order=3, description="CAD: model and disclaimer",
                          display_color=CIELabColor(97.1, -21.6, 94.5))


def _annotations(result: ImageResult, source: Dataset, ctx: OutputContext) -> list[GraphicAnnotation]:
    """Boxes and labels of one image, grouped per layer (empty layers are left out)."""
    per_layer: dict[str, tuple[GraphicLayer, list[GraphicObject], list[TextObject]]] = {}
    for lesion in result.lesions:
        malignant = lesion.lesion_class is LesionClass.MALIGNANT
        layer = MALIGNANT_LAYER if malignant else BENIGN_LAYER
        _, graphics, texts = per_layer.setdefault(layer.GraphicLayer, (layer, [], []))
        graphics.append(GraphicObject("POLYLINE", np.array(box_outline(lesion.box)), units="PIXEL"))
        x1, y1 = lesion.box[0] + 0.5, lesion.box[1] + 0.5
        label = f"{'M' if malignant else 'B'} {lesion.probability_malignant * 100:.0f}%"
        texts.append(TextObject(label, units="PIXEL", anchor_point=(x1, y1), anchor_point_visible=False))
    info = TextObject(
        f"{DISCLAIMER} - CAD {ctx.model_label}"[:64], units="DISPLAY",
        bounding_box=(0.01, 0.01, 0.99, 0.05),
        text_justification="LEFT",
    )
    per_layer[TEXT_LAYER.GraphicLayer] = (TEXT_LAYER, [], [info])
    return [
        GraphicAnnotation(referenced_images=[source], graphic_layer=layer,
                          graphic_objects=graphics or None, text_objects=texts or None)
        for layer, graphics, texts in per_layer.values()
    ]


def voi_transformations(source: Dataset) -> tuple[list[SoftcopyVOILUTTransformation] | None, list[str]]:
    """The image's own VOI: every window (centre, width, explanation) it carries, else its VOI LUT.

    Values are read tolerantly: two centres with one width keep the pairs that exist (and
    log it); a window with width <= 0 is skipped. None when the image has no usable VOI.
    Also returns the windows' explanations (set by the caller: highdicom splits a single
    explanation string into letters).
    """
    centers = _numbers(source, "WindowCenter")
    widths = _numbers(source, "WindowWidth")
    if len(centers) != len(widths) and centers and widths:
        repaired("WindowCenter", f"{len(centers)} centres, {len(widths)} widths", "kept matching pairs")
    pairs = [(c, w) for c, w in zip(centers, widths, strict=False) if w > 0]
    if pairs:
        explanations = [_explanation(e) for e in _values(source, "WindowCenterWidthExplanation")]
        keep = explanations[: len(pairs)] if len(explanations) >= len(pairs) and all(explanations[: len(pairs)]) \
            else []
        return [SoftcopyVOILUTTransformation(
            window_center=[c for c, _ in pairs] if len(pairs) > 1 else pairs[0][0],
            window_width=[w for _, w in pairs] if len(pairs) > 1 else pairs[0][1])], keep
    if source.get("VOILUTSequence"):
        luts = [VOILUT(lut_data=_lut_16bit(item), first_mapped_value=int(item.LUTDescriptor[1]),
                       lut_explanation=_explanation(item.get("LUTExplanation")) or None)
                for item in source.VOILUTSequence]
        return [SoftcopyVOILUTTransformation(voi_luts=luts)], []
    return None, []


def _explanation(value: object) -> str:
    """A window or LUT explanation (LO) copied from the image: cut to 64 bytes of UTF-8 (a
    Latin-1 one grows when re-encoded), "" when it is still not a valid LO (a tab in it)."""
    text = fit(str(value or ""), 64)
    return "" if problem("LO", text) else text


def _checked_header(source: Dataset) -> Dataset:
    """The image's header (no pixels) with its Patient/Study values checked, for highdicom,
    which reads and copies them unchecked (and fails on an absent Type 2 Study ID).

    highdicom copies the image's whole Patient and Study modules into the GSPS, not only the
    attributes the other outputs carry (Patient's Size, Last Menstrual Date, Patient
    Comments...): each of those is checked too, and left out when invalid.
    """
    extra = _patient_study_modules(str(source.SOPClassUID)) - set(PATIENT_STUDY)
    out = Dataset()
    for elem in source:
        if elem.tag != 0x7FE00010 and elem.keyword not in (*PATIENT_STUDY, *_VOI, *_RESCALE) \
                and elem.keyword not in extra:
            out.add(elem)
    copy_patient_study(out, source)
    for keyword in sorted(extra):
        copy_checked(out, source, keyword)
    _copy_usable_rescale(out, source)
    return out


#: The image's VOI: never handed to highdicom. The GSPS's VOI is what voi_transformations
#: chose; given none, highdicom would copy the image's own unchecked (a window width of 0
#: or an empty centre made it raise).
_VOI = ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTFunction", "VOILUTSequence")
_RESCALE = ("RescaleIntercept", "RescaleSlope", "RescaleType")


def _copy_usable_rescale(header: Dataset, source: Dataset) -> None:
    """The image's rescale, which highdicom copies as the GSPS's Modality LUT, when usable.

    Usable: slope and intercept both numbers, slope not 0 (highdicom raised on an intercept
    without a slope; dciodvfy rejects a zero slope). Otherwise the GSPS has no Modality LUT:
    stored values pass unchanged, as pydicom shows such an image and the SC renders it.
    """
    slope, intercept = first_number(source, "RescaleSlope"), first_number(source, "RescaleIntercept")
    if slope is None or intercept is None or slope == 0:
        if "RescaleSlope" in source or "RescaleIntercept" in source:
            repaired("RescaleSlope", "no usable slope and intercept pair", "no Modality LUT in the GSPS")
        return
    header.RescaleSlope, header.RescaleIntercept = slope, intercept
    copy_checked(header, source, "RescaleType")


@cache
def _patient_study_modules(sop_class_uid: str) -> frozenset[str]:
    """Root attributes of the Patient and Study modules of an image's IOD: what highdicom's
    ``copy_patient_and_study_information`` copies from it, from highdicom's own tables (the
    private module is pinned with highdicom's minor version in pyproject.toml)."""
    from highdicom._standard_utils import get_iod_module_map, get_module_attribute_map, get_sop_class_iod_map

    iod = get_sop_class_iod_map().get(sop_class_uid)
    if iod is None:  # highdicom cannot build a GSPS for it anyway
        return frozenset()
    attributes = get_module_attribute_map()
    return frozenset(item["keyword"] for module in get_iod_module_map()[iod] if module["ie"] in ("Patient", "Study")
                     for item in attributes[module["key"]] if not item["path"])


def _lut_array(item: Dataset) -> np.ndarray:
    """LUT Data as numbers, whether it was read as US values or as OW bytes."""
    bits = int(item.LUTDescriptor[2]) if "LUTDescriptor" in item else 16
    dtype = np.uint8 if bits <= 8 else np.uint16
    data = item.LUTData
    if isinstance(data, bytes | bytearray):
        return np.frombuffer(data, dtype="<u2").astype(dtype)
    return np.asarray(data if isinstance(data, list | MultiValue) else [data]).astype(dtype)


def _lut_16bit(item: Dataset) -> np.ndarray:
    """The image's VOI LUT rescaled to 16-bit output.

    A Softcopy VOI LUT's output range is 0..2^bits-1 of its descriptor and its bits must be
    8 or 16; a 12-bit image LUT copied as is would display at a sixteenth of full
    brightness, so its values are scaled to the 16-bit range (the displayed image is the same).
    """
    data = _lut_array(item).astype(np.float64)
    bits = int(item.LUTDescriptor[2]) if "LUTDescriptor" in item else 16
    top = float(2**bits - 1) if data.max(initial=0) < 2**bits else float(data.max())
    return np.round(data * (65535.0 / max(top, 1.0))).astype(np.uint16)


def _values(source: Dataset, keyword: str) -> list:  # type: ignore[type-arg]
    value = source.get(keyword)
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, MultiValue | list) else [value]


def _numbers(source: Dataset, keyword: str) -> list[float]:
    out = []
    for v in _values(source, keyword):
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            repaired(keyword, "not a number", "value skipped")
    return out


def build_gsps(result: ImageResult, source: Dataset, ctx: OutputContext, index: int = 0) -> Dataset:
    """One GSPS for one image: its marks, its own VOI window(s) and its own displayed area.

    Series per breast (General Series Laterality is constant in a series).
    """
    if not cited_uid(source, "SeriesInstanceUID"):
        raise ValueError(f"image {result.image.sop_instance_uid}: SeriesInstanceUID is missing or has several "
                         "values, and a GSPS must cite the image's series; correct the image's header at the "
                         "sender, or ask this destination for graphics-only output (SR + SC)")
    photometric = str(source.get("PhotometricInterpretation", "MONOCHROME2"))
    shape = (PresentationLUTShapeValues.INVERSE if photometric == "MONOCHROME1"
             else PresentationLUTShapeValues.IDENTITY)
    lat = result.image.laterality if result.image.laterality in ("L", "R") else ""
    series_kind = f"{KIND}-{lat}" if lat else KIND
    voi, explanations = voi_transformations(source)
    gsps = GrayscaleSoftcopyPresentationState(
        referenced_images=[_checked_header(source)],
        series_instance_uid=result_uid(ctx.study, series_kind, "series"),
        series_number=series_number(series_kind, ctx.version),
        sop_instance_uid=result_uid(ctx.study, KIND, "sop", index),
        instance_number=index + 1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME,
        software_versions=mammocad.__version__,
        device_serial_number=device_serial(),
        content_label="MAMMOCAD_CAD",
        content_description=ctx.description("CAD marks")[:64],
        graphic_annotations=_annotations(result, source, ctx),
        graphic_layers=[MALIGNANT_LAYER, BENIGN_LAYER, TEXT_LAYER],
        voi_lut_transformations=voi,
        presentation_lut_transformation=PresentationLUTTransformation(presentation_lut_shape=shape),
        series_description=ctx.description(f"CAD marks {'right' if lat == 'R' else 'left' if lat == 'L' else ''}"
                                           .strip()),
    )
    # highdicom annotates SoftwareVersions as str | tuple[str] (one item); pydicom takes a list for LO VM 1-n.
    gsps.SoftwareVersions = software_versions(ctx)  # type: ignore[assignment]
    if explanations:
        gsps.SoftcopyVOILUTSequence[0].WindowCenterWidthExplanation = explanations
    for keyword in PATIENT_STUDY:  # highdicom copied them unchecked from the image
        if keyword in gsps:
            del gsps[keyword]
    copy_patient_study(gsps, source)
    gsps.Laterality = lat or None  # Type 2C for a paired body part: empty when unknown
    gsps.BodyPartExamined = "BREAST"
    set_times(gsps, ctx)
    return gsps


def gsps_order(results: list[ImageResult]) -> list[tuple[int, ImageResult]]:
    """Analysed images with their instance index (RCC, LCC, RMLO, LMLO first)."""
    analysed = [r for r in results if r.analysed]
    return [(instance_index(r, analysed), r) for r in analysed]
