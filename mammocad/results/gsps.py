"""Grayscale Softcopy Presentation State: CAD marks drawn by the viewer over the originals.

One GSPS per study referencing every analysed image: lesion boxes as closed POLYLINEs and
labels as text, on two graphic layers (malignant / benign) so a viewer can toggle them.
General Series Laterality is Type 2C for a paired body part: it names the breast when all
images are of one breast and is present but empty (unknown, the value the standard allows)
for a state spanning both, which dciodvfy accepts. The image's own modality LUT
and VOI window are copied (highdicom does so from the references), so applying the
state does not change how the mammogram looks. The Presentation LUT is INVERSE for
MONOCHROME1 images and IDENTITY otherwise; since one GSPS has one Presentation LUT, a
study mixing both gets one GSPS per photometric interpretation.
"""

from __future__ import annotations

import numpy as np
from highdicom import PresentationLUTTransformation
from highdicom.color import CIELabColor
from highdicom.enum import PresentationLUTShapeValues
from highdicom.pr import (
    GraphicAnnotation,
    GraphicLayer,
    GraphicObject,
    GrayscaleSoftcopyPresentationState,
    TextObject,
)
from pydicom.dataset import Dataset

import mammocad
from mammocad.config.settings import OutputKind
from mammocad.model.results import ImageResult, LesionClass
from mammocad.results.cad_sr import box_outline
from mammocad.results.uids import (
    DISCLAIMER,
    MANUFACTURER,
    OutputContext,
    result_uid,
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


def build_gsps(results: list[ImageResult], sources: dict[str, Dataset], ctx: OutputContext,
               index: int = 0) -> Dataset:
    """One GSPS over ``results`` (one photometric interpretation; one or both breasts)."""
    images = [sources[r.image.sop_instance_uid] for r in results]
    photometric = {str(ds.get("PhotometricInterpretation", "MONOCHROME2")) for ds in images}
    if len(photometric) != 1:
        raise ValueError(f"one GSPS needs one photometric interpretation, got {sorted(photometric)}")
    shape = (PresentationLUTShapeValues.INVERSE if photometric == {"MONOCHROME1"}
             else PresentationLUTShapeValues.IDENTITY)
    annotations = [a for r in results for a in _annotations(r, sources[r.image.sop_instance_uid], ctx)]
    gsps = GrayscaleSoftcopyPresentationState(
        referenced_images=images,
        series_instance_uid=result_uid(ctx.study, KIND, "series"),
        series_number=KIND.series_number,
        sop_instance_uid=result_uid(ctx.study, KIND, "sop", index),
        instance_number=index + 1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=(ctx.study.model_name or "mammocad")[:64],
        software_versions=mammocad.__version__,
        device_serial_number=ctx.device[:64] or "unknown",
        content_label="MAMMOCAD_CAD",
        content_description=ctx.description("CAD marks")[:64],
        graphic_annotations=annotations,
        graphic_layers=[MALIGNANT_LAYER, BENIGN_LAYER, TEXT_LAYER],
        presentation_lut_transformation=PresentationLUTTransformation(presentation_lut_shape=shape),
        series_description=ctx.description("CAD marks"),
    )
    # highdicom annotates SoftwareVersions as str | tuple[str] (one item); pydicom takes a list for LO VM 1-n.
    gsps.SoftwareVersions = [  # type: ignore[assignment]
        mammocad.__version__, (ctx.study.model_version or "unknown")[:64]]
    lateralities = {r.image.laterality for r in results}
    # Type 2C in General Series for a paired body part: present, and empty when both breasts.
    gsps.Laterality = lateralities.pop() if len(lateralities) == 1 and lateralities <= {"L", "R"} else ""
    if "BodyPartExamined" in images[0]:
        gsps.BodyPartExamined = images[0].BodyPartExamined
    return gsps


def group_images(results: list[ImageResult], sources: dict[str, Dataset]) -> list[list[ImageResult]]:
    """Analysed images grouped so each group can share one GSPS (and its Presentation LUT).

    One group per photometric interpretation, so one GSPS per study unless the study mixes
    MONOCHROME1 and MONOCHROME2 images.
    """
    groups: dict[str, list[ImageResult]] = {}
    for r in results:
        if not r.analysed:
            continue
        photometric = str(sources[r.image.sop_instance_uid].get("PhotometricInterpretation", ""))
        groups.setdefault(photometric, []).append(r)
    return [groups[k] for k in sorted(groups)]
