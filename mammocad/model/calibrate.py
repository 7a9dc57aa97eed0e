"""Choose a checkpoint's reporting thresholds on validation data, at training or afterwards.

Three numbers decide what the node reports, and none of them is learnt by the network:
the lesion score threshold (which boxes are shown), the malignant cut-off (which of them
are called malignant) and the breast operating threshold (which breasts are called
malignant, by the checkpoint's breast-risk rule). ``train.finalize`` chooses them on the
run's validation images; ``mammocad model calibrate`` chooses them again for an existing
checkpoint on a site's own annotated images, so a site can set its operating point (e.g.
a breast sensitivity target) without retraining. The network's weights are never changed.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from mammocad.logs import log_event
from mammocad.model.detector import DetectorSpec
from mammocad.model.evaluate import (
    DEFAULT_LESION_SCORE_THRESHOLD,
    Evaluated,
    breast_scores,
    choose_thresholds,
    compute_report,
    matched_malignancy,
    relabel,
    truths_and_predictions,
)
from mammocad.model.results import DEFAULT_MALIGNANT_THRESHOLD
from mammocad.model.train_config import ThresholdConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Calibration:
    """Thresholds chosen on ``validation_images`` images, and the validation report at them."""

    operating_threshold: float
    lesion_score_threshold: float
    malignant_threshold: float
    risk_method: str
    validation_images: int
    report: dict[str, Any]

    def thresholds(self) -> dict[str, float]:
        return {"operating_threshold": self.operating_threshold, "lesion_score_threshold": self.lesion_score_threshold,
                "malignant_threshold": self.malignant_threshold}


def calibrate(ev: Evaluated, *, risk_method: str, rules: ThresholdConfig, fallback_operating_threshold: float = 0.5,
              malignant_threshold: float | None = None, n_bootstrap: int = 200, seed: int = 0) -> Calibration:
    """Thresholds for ``risk_method`` from validation predictions (``evaluate.choose_thresholds``).

    ``malignant_threshold``: keep this cut-off instead of choosing one (``rules.class_threshold``
    false means 0.5).

    Validation data without both classes of breast cannot set the breast threshold: the
    defaults stand (0.5 for score and cut-off, the fallback for the breast) and a warning is
    logged, so a tiny run still ends with a checkpoint. Reported lesions of one class only
    leave just the cut-off at 0.5 (``choose_thresholds``).
    """
    try:
        chosen = choose_thresholds(ev, risk_method=risk_method, method=rules.method,
                                   target_sensitivity=rules.target_sensitivity,
                                   max_fp_per_image=rules.max_fp_per_image,
                                   class_threshold=rules.class_threshold and malignant_threshold is None,
                                   class_method=rules.class_method,
                                   class_target_sensitivity=rules.class_target_sensitivity)
    except ValueError as exc:
        log_event(logger, "threshold_default", logging.WARNING, reason=str(exc))
        chosen = {"operating_threshold": fallback_operating_threshold,
                  "lesion_score_threshold": DEFAULT_LESION_SCORE_THRESHOLD,
                  "malignant_threshold": DEFAULT_MALIGNANT_THRESHOLD}
    if malignant_threshold is not None:
        chosen["malignant_threshold"] = malignant_threshold
    report = compute_report(relabel(ev, chosen["malignant_threshold"]), breast_threshold=chosen["operating_threshold"],
                            lesion_threshold=chosen["lesion_score_threshold"], risk_method=risk_method,
                            n_bootstrap=n_bootstrap, seed=seed)
    return Calibration(operating_threshold=chosen["operating_threshold"],
                       lesion_score_threshold=chosen["lesion_score_threshold"],
                       malignant_threshold=chosen["malignant_threshold"], risk_method=risk_method,
                       validation_images=len(ev.items), report=report)


@dataclass(frozen=True)
class RightCounts:
    """How many of ``total`` validation items a new threshold and the checkpoint's get right."""

    new: int
    previous: int
    total: int


def against_previous(ev: Evaluated, cal: Calibration, *, malignant_threshold: float,
                     operating_threshold: float) -> dict[str, RightCounts]:
    """The chosen cut-off and breast threshold beside the checkpoint's, on the same validation images.

    Why: each threshold is the best of a curve over a few dozen breasts or lesions, and a flat
    curve's best moves with a handful of them (model card: the malignant cut-off of 0.15.0-demo
    went from 0.39 to 0.79 on twice the validation lesions, 5 more of 134 classed right). Counts
    at both, at the new lesion threshold, let the operator see whether the move is worth making.
    ``lesions``: found validation lesions classed right; ``breasts``: validation breasts called right.
    """
    lesion_t = cal.lesion_score_threshold
    p_mal, malignant = matched_malignancy(ev, lesion_t)
    scores = breast_scores(ev, cal.risk_method, min_score=lesion_t)
    labels = {t.breast_id: t.breast_malignant for t in truths_and_predictions(ev)[0]}
    breasts = [(scores[b], labels[b]) for b in sorted(scores)]

    def lesions_right(cut: float) -> int:
        return int(((p_mal >= cut) == malignant).sum())

    def breasts_right(cut: float) -> int:
        return sum((risk >= cut) == truth for risk, truth in breasts)

    return {"lesions": RightCounts(lesions_right(cal.malignant_threshold), lesions_right(malignant_threshold),
                                   len(p_mal)),
            "breasts": RightCounts(breasts_right(cal.operating_threshold), breasts_right(operating_threshold),
                                   len(breasts))}


def apply(spec: DetectorSpec, metadata: dict[str, Any], cal: Calibration, *, rules: ThresholdConfig,
          chosen_on: str = "validation") -> tuple[DetectorSpec, dict[str, Any]]:
    """The checkpoint header with ``cal``'s thresholds (new objects; the inputs are not changed)."""
    new_spec = dataclasses.replace(spec, operating_threshold=cal.operating_threshold, risk_method=cal.risk_method)
    meta = dict(metadata)
    meta["lesion_score_threshold"] = cal.lesion_score_threshold
    meta["malignant_threshold"] = cal.malignant_threshold
    meta["thresholds"] = {**cal.thresholds(), "risk_method": cal.risk_method, "chosen_on": chosen_on,
                          "validation_images": cal.validation_images, "method": dataclasses.asdict(rules)}
    return new_spec, meta
