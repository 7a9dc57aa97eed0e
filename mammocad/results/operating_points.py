"""Which CAD marks a workstation must show: Rendering Intent from the CAD operating point.

A finding's CAD score is the detector's probability that the box is a malignant lesion,
``probability_malignant × score`` (the box head's softmax "malignant"; ``model/risk.py``),
the same quantity the breast-level risk is built from. The CAD operating point is the
checkpoint's breast-level operating threshold (chosen on validation data):

* score ≥ operating point → Presentation Required (PS3.4 O.2.2.1: a workstation shows it);
* below it → Presentation Optional with a CAD Operating Point (TID 4006 row 3) of 1..N,
  in N equal bins of score below the threshold (1 = just below), so a workstation that
  offers more sensitive operating points (PS3.17 E.4) can show them; the SR
  recommends point 0 (TID 4023 row 2: Required marks only), where the model was tuned;
* individual calcifications that lie inside a reported cluster are its evidence (the
  cluster is INFERRED FROM them): Not for Presentation, the cluster's outline shows them.

Consistency with the breast-level call: a breast called malignant has at least one
Required finding (under the ``max`` and ``two_view`` rules this follows from the scores;
under ``noisy_or`` the breast's most suspicious finding is promoted, with a log line), and
a breast without Required findings is never worded as called malignant.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from mammocad.logs import log_event
from mammocad.model.results import ImageResult, Lesion, LesionType, StudyResult

logger = logging.getLogger(__name__)

#: Number of Presentation Optional bins (TID 4023 Maximum CAD Operating Point).
MAX_OPERATING_POINT = 4
#: The operating point the model was tuned at: Required marks only.
RECOMMENDED_OPERATING_POINT = 0
DEFAULT_THRESHOLD = 0.5


class RenderingIntent(Enum):
    """CID 6034 values, named as in the standard."""

    PRESENTATION_REQUIRED = "111150"
    PRESENTATION_OPTIONAL = "111151"
    NOT_FOR_PRESENTATION = "111152"


@dataclass(frozen=True)
class Mark:
    """One reported finding with its rendering decision."""

    image_index: int  # position of the image in study.images
    lesion_index: int  # position in that image's lesions
    lesion: Lesion
    laterality: str
    cad_score: float
    intent: RenderingIntent
    operating_point: int | None  # 1..MAX for Presentation Optional, else None
    #: (image_index, lesion_index) of the cluster this calcification belongs to.
    parent: tuple[int, int] | None = None


def cad_score(lesion: Lesion) -> float:
    return min(1.0, max(0.0, lesion.probability_malignant * lesion.score))


def threshold_for(study: StudyResult, laterality: str) -> float:
    """The breast's operating threshold (same for both breasts of one checkpoint)."""
    for breast in study.breasts:
        if breast.laterality == laterality:
            return breast.threshold
    return study.breasts[0].threshold if study.breasts else DEFAULT_THRESHOLD


def optional_point(score: float, threshold: float) -> int:
    """CAD Operating Point (1..MAX) of a score below the threshold: 1 = just below."""
    if threshold <= 0:
        return MAX_OPERATING_POINT
    step = threshold / MAX_OPERATING_POINT
    return min(MAX_OPERATING_POINT, int((threshold - score) / step) + 1)


def _inside(point: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    x, y = point
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def parents(result: ImageResult) -> dict[int, int]:
    """Individual calcification index → index of the cluster whose box holds its centre."""
    clusters = [(j, le) for j, le in enumerate(result.lesions)
                if le.lesion_type is LesionType.CALCIFICATION_CLUSTER]
    out = {}
    for i, le in enumerate(result.lesions):
        if le.lesion_type is not LesionType.INDIVIDUAL_CALCIFICATION:
            continue
        holder = [j for j, cl in clusters if _inside(le.center, cl.box)]
        if holder:
            out[i] = max(holder, key=lambda j: cad_score(result.lesions[j]))
    return out


def marks(study: StudyResult) -> list[Mark]:
    """Every reported finding of the study with its Rendering Intent and operating point."""
    out: list[Mark] = []
    for i, result in enumerate(study.images):
        if not result.analysed:
            continue
        owner = parents(result)
        for j, lesion in enumerate(result.lesions):
            score = cad_score(lesion)
            t = threshold_for(study, result.image.laterality)
            if j in owner:
                out.append(Mark(i, j, lesion, result.image.laterality, score,
                                RenderingIntent.NOT_FOR_PRESENTATION, None, (i, owner[j])))
            elif score >= t:
                out.append(Mark(i, j, lesion, result.image.laterality, score,
                                RenderingIntent.PRESENTATION_REQUIRED, None))
            else:
                out.append(Mark(i, j, lesion, result.image.laterality, score,
                                RenderingIntent.PRESENTATION_OPTIONAL, optional_point(score, t)))
    return _consistent(study, out)


def _consistent(study: StudyResult, found: list[Mark]) -> list[Mark]:
    """Promote the most suspicious presentable finding of a malignant breast without a Required one."""
    for breast in study.breasts:
        if not breast.malignant:
            continue
        own = [m for m in found if m.laterality == breast.laterality
               and m.intent is not RenderingIntent.NOT_FOR_PRESENTATION]
        if not own or any(m.intent is RenderingIntent.PRESENTATION_REQUIRED for m in own):
            continue
        top = max(own, key=lambda m: m.cad_score)
        log_event(logger, "finding_promoted_to_required", laterality=breast.laterality,
                  cad_score=round(top.cad_score, 4), breast_risk=round(breast.risk, 4))
        found[found.index(top)] = Mark(top.image_index, top.lesion_index, top.lesion, top.laterality,
                                       top.cad_score, RenderingIntent.PRESENTATION_REQUIRED, None)
    return found


def breast_called_malignant(study: StudyResult, laterality: str, found: list[Mark]) -> bool:
    """The breast-level call written in the reports: malignant only with a Required finding."""
    breast = next((b for b in study.breasts if b.laterality == laterality), None)
    if breast is None or not breast.malignant:
        return False
    return any(m.laterality == laterality and m.intent is RenderingIntent.PRESENTATION_REQUIRED for m in found)
