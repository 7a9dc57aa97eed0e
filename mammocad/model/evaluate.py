"""Run a checkpoint over an annotated data set and compute every metric of ``metrics.py``.

Images go through the same path as in production (standardise → tiled detection → boxes
mapped back to the original pixels → breast risk over all views of the breast), and the
metrics compare boxes in original-image coordinates with the annotations, so what is
measured is what the node would report.

Breast risks use only the boxes at or above the lesion threshold, exactly as the Detector
does in production. Two thresholds matter and both come from the checkpoint (chosen on validation data when
it was trained, see ``train.py``): the breast-level operating threshold
(``DetectorSpec.operating_threshold``) and ``metadata["lesion_score_threshold"]``, the
detection score at or above which a box counts as a finding for the lesion-level metrics.
FROC uses every box the detector returns (score >= ``box_score_thresh``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from mammocad.logs import log_event
from mammocad.model import metrics as m
from mammocad.model import risk
from mammocad.model.annotations import AnnotatedImage, AnnotatedLesion
from mammocad.model.dataset import decode_image
from mammocad.model.results import DEFAULT_MALIGNANT_THRESHOLD, ImageRef, ImageResult, Lesion, LesionClass

logger = logging.getLogger(__name__)

DEFAULT_LESION_SCORE_THRESHOLD = 0.5


@dataclass(frozen=True)
class Evaluated:
    """Predictions of one data set, ready for metrics (one entry per image)."""

    items: list[AnnotatedImage]
    results: list[ImageResult]


def predict_items(det: Any, items: Sequence[AnnotatedImage], *, desc: str = "evaluate",
                  progress: bool = True) -> Evaluated:
    """Run the detector (``inference.Detector``) on every image, with a progress bar."""
    results = []
    for item in tqdm(items, desc=desc, unit="img", disable=not progress):
        std = decode_image(item, det.preprocess)
        pred = det.predict_standardised(std.image)
        boxes = std.transform.clip_original(std.transform.to_original(pred.boxes)) if len(pred.boxes) else []
        lesions = []
        for box, label, score, p_mal in zip(boxes, pred.labels, pred.scores, pred.p_malignant, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            if x1 < x2 and y1 < y2:
                lesions.append(Lesion(box=(x1, y1, x2, y2), lesion_class=LesionClass.from_label(int(label)),
                                      probability_malignant=float(p_mal), score=float(score)))
        rows, cols = std.transform.original_shape
        ref = ImageRef(study_uid=str(item.extra.get("study_uid", "")), series_uid="",
                       sop_instance_uid=str(item.extra.get("sop_instance_uid", item.image_path.name)),
                       sop_class_uid="", laterality=item.laterality, view=item.view, rows=rows, columns=cols)
        results.append(ImageResult(image=ref, lesions=tuple(lesions), model_name=det.model_name,
                                   model_version=det.model_version, device=det.device))
    return Evaluated(list(items), results)


def truths_and_predictions(ev: Evaluated) -> tuple[list[m.ImageTruth], list[m.ImagePredictions]]:
    truths, preds = [], []
    for item, res in zip(ev.items, ev.results, strict=True):
        truths.append(m.ImageTruth.make([les.box for les in item.lesions],
                                        [les.lesion_class.label for les in item.lesions],
                                        item.breast_id, item.malignant))
        preds.append(m.ImagePredictions.make([les.box for les in res.lesions], [les.score for les in res.lesions],
                                             [les.lesion_class.label for les in res.lesions]))
    return truths, preds


def breast_scores(ev: Evaluated, risk_method: str = "max", min_score: float = 0.0) -> dict[str, float]:
    """breast_id → risk over all its views, by the production rule (``risk.py``).

    ``min_score``: the lesion reporting threshold; the Detector drops boxes below it before
    computing breast risks, so evaluation must too, or it measures a risk nobody is shown.
    """
    groups: dict[str, list[ImageResult]] = {}
    for item, res in zip(ev.items, ev.results, strict=True):
        groups.setdefault(item.breast_id, []).append(res)
    out = {}
    for breast_id, results in groups.items():
        risks = risk.breast_risks(results, threshold=0.5, method=risk_method, min_score=min_score)
        out[breast_id] = max((r.risk for r in risks), default=0.0)
    return out


def matched_lesions(ev: Evaluated, lesion_threshold: float, rule: str = "centre"
                    ) -> Iterator[tuple[AnnotatedLesion, Lesion | None]]:
    """Every annotated lesion with the reported box that found it (None: missed), image by image."""
    for item, res, truth, pred in zip(ev.items, ev.results, *truths_and_predictions(ev), strict=True):
        kept = np.nonzero(pred.scores >= lesion_threshold)[0]  # pred.above() keeps this order
        for les, k in zip(item.lesions, m.match_lesions(truth, pred.above(lesion_threshold), rule=rule), strict=True):
            yield les, (res.lesions[kept[k]] if k >= 0 else None)


def matched_malignancy(ev: Evaluated, lesion_threshold: float, rule: str = "centre") -> tuple[np.ndarray, np.ndarray]:
    """(probability_malignant of the best-matching reported box, truth is malignant) per detected lesion."""
    found = [(box.probability_malignant, les.lesion_class is LesionClass.MALIGNANT)
             for les, box in matched_lesions(ev, lesion_threshold, rule) if box is not None]
    return (np.asarray([p for p, _ in found], dtype=np.float64), np.asarray([t for _, t in found], dtype=bool))


def found_by_description(ev: Evaluated, lesion_threshold: float, rule: str = "centre") -> list[dict[str, Any]]:
    """Lesions, found and found with the right class, per annotated description, most common first.

    Which kinds a detector misses (amorphous clusters, say) is what the next training run must
    change; one sensitivity figure hides it. Lesions without a description are "(none)".
    """
    tally: dict[str, list[int]] = {}
    for les, box in matched_lesions(ev, lesion_threshold, rule):
        row = tally.setdefault(les.description or "(none)", [0, 0, 0])
        row[0] += 1
        if box is not None:
            row[1] += 1
            row[2] += box.lesion_class is les.lesion_class
    return [{"description": d, "lesions": n, "found": f, "class_right": c}
            for d, (n, f, c) in sorted(tally.items(), key=lambda kv: (-kv[1][0], kv[0]))]


def relabel(ev: Evaluated, malignant_threshold: float) -> Evaluated:
    """The same predictions with each box's class decided at ``malignant_threshold`` (as the Detector does)."""
    results = []
    for res in ev.results:
        lesions = tuple(dataclasses.replace(les, lesion_class=LesionClass.MALIGNANT
                                            if les.probability_malignant >= malignant_threshold else LesionClass.BENIGN)
                        for les in res.lesions)
        results.append(dataclasses.replace(res, lesions=lesions))
    return Evaluated(ev.items, results)


def choose_thresholds(ev: Evaluated, *, risk_method: str = "max", method: str = "youden",
                      target_sensitivity: float = 0.9, max_fp_per_image: float = 1.0,
                      class_threshold: bool = True, class_method: str = "accuracy",
                      class_target_sensitivity: float = 0.9) -> dict[str, float]:
    """Operating thresholds from a *validation* set (``metrics`` module doc).

    Lesion score threshold first (the FP budget), then on the lesions it reports the
    malignant cut-off by ``class_method`` (``class_threshold=False`` keeps 0.5), then the breast operating
    threshold on the breast risks those lesions give, by ``risk_method``. When the lesions
    reported at that budget are all of one class (or none), the cut-off stays 0.5 and a
    warning says why; the budget's lesion threshold stands, so a tighter budget never gives a
    lower one. Raises ValueError when the breast threshold cannot be chosen (one class of breast).
    """
    truths, preds = truths_and_predictions(ev)
    fpi, sens, thr = m.froc_curve(truths, preds)
    lesion_t = m.threshold_for_fp_rate(fpi, sens, thr, max_fp_per_image)
    malignant_t = DEFAULT_MALIGNANT_THRESHOLD
    if class_threshold:
        try:
            malignant_t = m.choose_class_threshold(*matched_malignancy(ev, lesion_t), method=class_method,
                                                   target=class_target_sensitivity)
        except ValueError as exc:
            log_event(logger, "threshold_default", logging.WARNING, threshold="malignant",
                      value=DEFAULT_MALIGNANT_THRESHOLD, lesion_score_threshold=round(lesion_t, 4), reason=str(exc))
    scores = breast_scores(ev, risk_method, min_score=lesion_t)
    labels = {t.breast_id: t.breast_malignant for t in truths}
    ids = sorted(scores)
    breast_t = m.choose_threshold([labels[i] for i in ids], [scores[i] for i in ids], method=method,
                                  target=target_sensitivity)
    return {"operating_threshold": float(min(1.0, max(0.0, breast_t))), "lesion_score_threshold": lesion_t,
            "malignant_threshold": malignant_t}


def compute_report(ev: Evaluated, *, breast_threshold: float, lesion_threshold: float, risk_method: str = "max",
                   n_bootstrap: int = 1000, seed: int = 0, rule: str = "centre") -> dict[str, Any]:
    """Every metric with bootstrap 95% intervals, FROC points and the curves for plots."""
    truths, preds = truths_and_predictions(ev)
    scores = breast_scores(ev, risk_method, min_score=lesion_threshold)
    records = m.breast_records(truths, preds, scores, score_threshold=lesion_threshold, rule=rule)
    point = m.summarise(records, breast_threshold)
    ci = m.bootstrap_ci(records, lambda r: m.summarise(r, breast_threshold), n_resamples=n_bootstrap, seed=seed)
    fpi, sens, thr = m.froc_curve(truths, preds, rule=rule)
    froc_points = m.froc_at(fpi, sens)
    if not any(len(t.boxes) for t in truths):
        # No lesion, no sensitivity: an unmarked lesion-free set would otherwise read 0 (the
        # curve's (0, 0) start) and a marked one NaN, which json.dumps writes as bare NaN.
        froc_points = dict.fromkeys(froc_points, float("nan"))
    y = [r.malignant for r in records]
    s = [r.score for r in records]
    fpr, tpr, _ = m.roc_curve(y, s)
    return {
        "definitions": {"detection_rule": rule, "lesion_score_threshold": lesion_threshold,
                        "breast_threshold": breast_threshold, "risk_method": risk_method,
                        "bootstrap": {"unit": "breast", "resamples": n_bootstrap, "seed": seed, "level": 0.95},
                        "doc": "mammocad.model.metrics module docstring"},
        "counts": m.counts_total(records),
        "metrics": {k: _clean(v) for k, v in point.items()},
        "ci95": {k: [_clean(a), _clean(b)] for k, (a, b) in ci.items()},
        "froc": {"sensitivity_at_fp_per_image": {k: _clean(v) for k, v in froc_points.items()},
                 # Rates past this are read as the sensitivity here (metrics doc): the table says so.
                 "curve_ends_at_fp_per_image": float(fpi[-1]) if len(fpi) else 0.0,
                 "curve": {"fp_per_image": fpi.tolist(), "sensitivity": _clean_list(sens),
                           "thresholds": thr.tolist()}},
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
        "by_description": found_by_description(ev, lesion_threshold, rule),
    }


def _clean(v: float) -> float | None:
    """JSON has no NaN: an undefined metric (e.g. no benign lesion in the set) becomes null."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _clean_list(values: np.ndarray) -> list[float | None]:
    return [_clean(float(v)) for v in values]


METRIC_LABELS = {
    "lesion_detection_sensitivity": "lesion detection sensitivity",
    "lesion_accuracy": "lesion accuracy (benign/malignant; misses wrong)",
    "malignant_lesion_sensitivity": "malignant-lesion sensitivity",
    "lesion_specificity": "lesion specificity (benign called benign)",
    "false_positives_per_image": "false positives per image",
    "breast_accuracy": "breast accuracy",
    "breast_sensitivity": "breast sensitivity",
    "breast_specificity": "breast specificity",
    "breast_roc_auc": "breast ROC AUC",
    "image_roc_auc": "image ROC AUC (lesion vs none; top reported mark)",
}


def format_table(report: dict[str, Any]) -> str:
    """Plain-text table of the report for the terminal and the model card."""
    lines = [f"{'metric':52s} {'value':>7s}   95% CI (bootstrap over breasts)"]
    for key, label in METRIC_LABELS.items():
        value = report["metrics"].get(key)
        lo, hi = report["ci95"].get(key, [None, None])
        val = "n/a" if value is None else f"{value:.3f}"
        ci = "" if lo is None or hi is None else f"[{lo:.3f}, {hi:.3f}]"
        lines.append(f"{label:52s} {val:>7s}   {ci}")
    end = report["froc"].get("curve_ends_at_fp_per_image")
    for rate, sens in report["froc"]["sensitivity_at_fp_per_image"].items():
        past = sens is not None and end is not None and float(rate) > end
        lines.append(f"{'FROC sensitivity at ' + rate + ' FP/image':52s} {'n/a' if sens is None else f'{sens:.3f}':>7s}"
                     + (f"   (not reached: the curve ends at {end:.3g} FP/image, read there)" if past else ""))
    c = report["counts"]
    lines.append(f"({c['images']} images, {c['images_with_lesions']} of them with lesions, {c['breasts']} breasts "
                 f"of which {c['malignant_breasts']} malignant, "
                 f"{c['lesions']} lesions: {c['malignant']} malignant, {c['benign']} benign)")
    rows = report.get("by_description", [])
    # Only where descriptions name kinds (synthetic, BI-RADS text), not one free text per lesion.
    if rows and len(rows) < sum(r["lesions"] for r in rows):
        lines.append("misses at the lesion threshold, by description (lesions, missed, found but called the wrong class):")
        for r in rows:
            lines.append(f"  {r['lesions']:4d} {r['lesions'] - r['found']:4d} {r['found'] - r['class_right']:4d}  "
                         f"{r['description']}")
    return "\n".join(lines)
